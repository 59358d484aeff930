//! The nameserver's request processor: maps remoting requests onto the route table and KV
//! config, and their results back onto RocketMQ response codes, headers and bodies.
//!
//! Served codes (protocol.md §2.1, §3.9, §8): PUT/GET/DELETE_KV_CONFIG (100–102),
//! REGISTER_BROKER (103), UNREGISTER_BROKER (104), GET_ROUTEINFO_BY_TOPIC (105),
//! GET_BROKER_CLUSTER_INFO (106), WIPE_WRITE_PERM_OF_BROKER (205),
//! GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206), DELETE_TOPIC_IN_NAMESRV (216),
//! GET_KVLIST_BY_NAMESPACE (219), GET_TOPICS_BY_CLUSTER (224),
//! GET_SYSTEM_TOPIC_LIST_FROM_NS (304), GET_NAMESRV_CONFIG (319), QUERY_DATA_VERSION (322),
//! ADD_WRITE_PERM_OF_BROKER (327), BROKER_HEARTBEAT (904). Anything else gets
//! REQUEST_CODE_NOT_SUPPORTED. A missing or malformed header field becomes SYSTEM_ERROR with
//! Java's wording (`the custom field <topic> is null`); the connection stays open.
//!
//! REGISTER_BROKER extensions for Raft groups (never sent by Java brokers, so a registration
//! without them is a classic RocketMQ one): ext fields `raftTerm` (u64) and `raftNodeId` (u64).
//! A stale registration (a leader claim below the term of the group's accepted leader, or a
//! member going back in (term, role), see [`super::route`]) is refused with SYSTEM_ERROR, remark
//! `stale raft term ...`, and ext fields `raftTerm` (the term already registered) and
//! `masterAddr` (the current leader, when known); the route is left unchanged.
//! Compressed registration bodies (`compressed=true`, off by default in Java brokers) are
//! refused with SYSTEM_ERROR.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::bodies::{DataVersion, KvTable, RegisterBrokerBody, TopicConfigSerializeWrapper};
use super::kvconfig::KvConfig;
use super::lock;
use super::route::{RaftInfo, RegisterOutcome, Registration, RouteInfoManager, MASTER_ID};
use crate::config::NamesrvConfig;
use crate::remoting::header::namesrv::{
    AddWritePermOfBrokerResponseHeader, DeleteKvConfigRequestHeader,
    DeleteTopicFromNamesrvRequestHeader, GetKvConfigRequestHeader, GetKvConfigResponseHeader,
    GetKvListByNamespaceRequestHeader, GetRouteInfoRequestHeader, GetTopicsByClusterRequestHeader,
    PutKvConfigRequestHeader, QueryDataVersionRequestHeader, QueryDataVersionResponseHeader,
    RegisterBrokerRequestHeader, RegisterBrokerResponseHeader, UnRegisterBrokerRequestHeader,
    WipeWritePermOfBrokerRequestHeader, WipeWritePermOfBrokerResponseHeader,
};
use crate::remoting::json;
use crate::remoting::{
    BoxFuture, ConnContext, ProcessError, ProcessResult, Processor, RemotingCommand, RequestCode,
    ResponseCode,
};

/// KV namespace holding per-topic order configuration (`brokerName:queueCount;...`).
pub const ORDER_TOPIC_CONFIG_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

/// MQVersion ordinal of V3_0_11: older brokers send a bare TopicConfigSerializeWrapper body.
const V3_0_11: i32 = 37;

/// Everything the nameserver's requests read and write.
#[derive(Debug)]
pub struct NamesrvState {
    pub config: NamesrvConfig,
    /// Shared with the liveness scanner. A std mutex: critical sections are short in-memory
    /// map updates and never span an `.await`.
    pub routes: Arc<Mutex<RouteInfoManager>>,
    /// KV config; a write may flush the persistent store while the lock is held (rare admin
    /// operation, kept simple on purpose).
    pub kv: Mutex<KvConfig>,
}

/// The [`Processor`] plugged into the remoting server.
#[derive(Debug, Clone)]
pub struct NamesrvProcessor {
    state: Arc<NamesrvState>,
}

impl NamesrvProcessor {
    pub fn new(state: Arc<NamesrvState>) -> Self {
        NamesrvProcessor { state }
    }

    fn handle(&self, ctx: &ConnContext, req: &RemotingCommand) -> ProcessResult {
        let Some(code) = RequestCode::from_code(req.code) else {
            return Ok(Some(RemotingCommand::not_supported(req)));
        };
        let resp = match code {
            RequestCode::PutKvConfig => self.put_kv_config(req)?,
            RequestCode::GetKvConfig => self.get_kv_config(req)?,
            RequestCode::DeleteKvConfig => self.delete_kv_config(req)?,
            RequestCode::GetKvlistByNamespace => self.get_kv_list(req)?,
            RequestCode::RegisterBroker => self.register_broker(ctx, req)?,
            RequestCode::UnregisterBroker => self.unregister_broker(req)?,
            RequestCode::BrokerHeartbeat => self.broker_heartbeat(req)?,
            RequestCode::QueryDataVersion => self.query_data_version(req)?,
            RequestCode::GetRouteinfoByTopic => self.get_route(req)?,
            RequestCode::GetBrokerClusterInfo => {
                let info = lock(&self.state.routes).cluster_info();
                json_response(req, &info)?
            }
            RequestCode::GetAllTopicListFromNameserver => {
                let list = lock(&self.state.routes).all_topics();
                json_response(req, &list)?
            }
            RequestCode::GetTopicsByCluster => {
                let h: GetTopicsByClusterRequestHeader = req.decode_header()?;
                let list = lock(&self.state.routes).topics_by_cluster(&h.cluster);
                json_response(req, &list)?
            }
            RequestCode::GetSystemTopicListFromNs => {
                let list = lock(&self.state.routes).system_topics();
                json_response(req, &list)?
            }
            RequestCode::DeleteTopicInNamesrv => {
                let h: DeleteTopicFromNamesrvRequestHeader = req.decode_header()?;
                let cluster = h.cluster_name.as_deref().filter(|c| !c.is_empty());
                let removed = lock(&self.state.routes).delete_topic(&h.topic, cluster);
                tracing::info!(topic = %h.topic, cluster, removed, "topic deleted from routes");
                RemotingCommand::response_to(req)
            }
            RequestCode::WipeWritePermOfBroker => {
                let h: WipeWritePermOfBrokerRequestHeader = req.decode_header()?;
                let n = lock(&self.state.routes).set_write_perm(&h.broker_name, false);
                tracing::info!(broker_name = %h.broker_name, topics = n, "write permission wiped");
                RemotingCommand::response_to(req).with_header(
                    &WipeWritePermOfBrokerResponseHeader {
                        wipe_topic_count: count_i32(n),
                    },
                )
            }
            RequestCode::AddWritePermOfBroker => {
                // Same header shape as WIPE_WRITE_PERM_OF_BROKER (`brokerName`).
                let h: WipeWritePermOfBrokerRequestHeader = req.decode_header()?;
                let n = lock(&self.state.routes).set_write_perm(&h.broker_name, true);
                tracing::info!(broker_name = %h.broker_name, topics = n, "write permission added");
                RemotingCommand::response_to(req).with_header(&AddWritePermOfBrokerResponseHeader {
                    add_topic_count: count_i32(n),
                })
            }
            RequestCode::GetNamesrvConfig => RemotingCommand::response_to(req)
                .with_body(Bytes::from(self.state.config.to_properties_text())),
            _ => RemotingCommand::not_supported(req),
        };
        Ok(Some(resp))
    }

    fn put_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: PutKvConfigRequestHeader = req.decode_header()?;
        lock(&self.state.kv)
            .put(&h.namespace, &h.key, &h.value)
            .map_err(|e| ProcessError::msg(e.to_string()))?;
        tracing::info!(namespace = %h.namespace, key = %h.key, value = %h.value, "KV config put");
        Ok(RemotingCommand::response_to(req))
    }

    fn get_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: GetKvConfigRequestHeader = req.decode_header()?;
        let value = lock(&self.state.kv)
            .get(&h.namespace, &h.key)
            .map(str::to_owned);
        Ok(match value {
            Some(v) => RemotingCommand::response_to(req)
                .with_header(&GetKvConfigResponseHeader { value: Some(v) }),
            None => RemotingCommand::error_to(
                req,
                ResponseCode::QueryNotFound,
                format!("No config item, Namespace: {} Key: {}", h.namespace, h.key),
            ),
        })
    }

    fn delete_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: DeleteKvConfigRequestHeader = req.decode_header()?;
        lock(&self.state.kv)
            .delete(&h.namespace, &h.key)
            .map_err(|e| ProcessError::msg(e.to_string()))?;
        tracing::info!(namespace = %h.namespace, key = %h.key, "KV config deleted");
        Ok(RemotingCommand::response_to(req))
    }

    fn get_kv_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: GetKvListByNamespaceRequestHeader = req.decode_header()?;
        let table = lock(&self.state.kv).namespace(&h.namespace).cloned();
        match table {
            Some(table) => json_response(req, &KvTable { table }),
            None => Ok(RemotingCommand::error_to(
                req,
                ResponseCode::QueryNotFound,
                format!("No config item, Namespace: {}", h.namespace),
            )),
        }
    }

    fn register_broker(
        &self,
        ctx: &ConnContext,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ProcessError> {
        let h: RegisterBrokerRequestHeader = req.decode_header()?;
        if h.broker_id < 0 {
            // A DLedger broker before its first role decision has id -1; it must not appear
            // in routes.
            return Err(ProcessError::msg(format!(
                "brokerId {} is not a valid broker id (must be >= 0)",
                h.broker_id
            )));
        }
        let body = req.body.as_deref().unwrap_or_default();
        if h.body_crc32 != 0 {
            let actual = crc32fast::hash(body) & 0x7FFF_FFFF;
            if i64::from(actual) != i64::from(h.body_crc32) {
                return Err(ProcessError::msg(format!(
                    "crc32 not match: header says {}, body has {actual}",
                    h.body_crc32
                )));
            }
        }
        if h.compressed {
            return Err(ProcessError::msg(
                "compressed registration bodies are not supported; set compressedRegister=false",
            ));
        }
        let (topic_config, filter_server_list) = if body.is_empty() {
            (TopicConfigSerializeWrapper::default(), Vec::new())
        } else if req.version < V3_0_11 {
            (
                json::from_slice::<TopicConfigSerializeWrapper>(body)?,
                Vec::new(),
            )
        } else {
            let b = json::from_slice::<RegisterBrokerBody>(body)?;
            (b.topic_config_serialize_wrapper, b.filter_server_list)
        };
        let topics = topic_config.topic_config_table.len();
        let registration = Registration {
            cluster_name: h.cluster_name.clone(),
            broker_name: h.broker_name.clone(),
            broker_addr: h.broker_addr.clone(),
            ha_server_addr: h.ha_server_addr.clone(),
            broker_id: h.broker_id,
            raft: h.raft_term.map(|term| RaftInfo {
                term,
                node_id: h.raft_node_id,
            }),
            topic_config,
            filter_server_list,
            conn: Some(ctx.id()),
            heartbeat_timeout: h
                .heartbeat_timeout_millis
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms.unsigned_abs())),
        };
        let outcome = lock(&self.state.routes).register(registration, Instant::now());
        match outcome {
            RegisterOutcome::Accepted {
                master_addr,
                master_ha_addr,
            } => {
                tracing::debug!(
                    cluster = %h.cluster_name,
                    broker_name = %h.broker_name,
                    broker_addr = %h.broker_addr,
                    broker_id = h.broker_id,
                    raft_term = h.raft_term,
                    topics,
                    "broker registered"
                );
                let header = if h.broker_id == MASTER_ID {
                    RegisterBrokerResponseHeader::default()
                } else {
                    RegisterBrokerResponseHeader {
                        ha_server_addr: master_ha_addr,
                        master_addr,
                        raft_term: None,
                    }
                };
                let mut resp = RemotingCommand::response_to(req).with_header(&header);
                let order = lock(&self.state.kv)
                    .namespace(ORDER_TOPIC_CONFIG_NAMESPACE)
                    .cloned();
                if let Some(table) = order {
                    resp = resp.with_body(body_bytes(&KvTable { table })?);
                }
                Ok(resp)
            }
            RegisterOutcome::StaleTerm {
                claimed_term,
                current_term,
                leader_addr,
            } => {
                tracing::warn!(
                    broker_name = %h.broker_name,
                    broker_addr = %h.broker_addr,
                    claimed_term,
                    current_term,
                    leader = leader_addr.as_deref().unwrap_or("-"),
                    "stale leader registration ignored"
                );
                Ok(RemotingCommand::error_to(
                    req,
                    ResponseCode::SystemError,
                    format!(
                        "stale raft term {claimed_term}: broker group {} is already registered at term {current_term}",
                        h.broker_name
                    ),
                )
                .with_header(&RegisterBrokerResponseHeader {
                    ha_server_addr: None,
                    master_addr: leader_addr,
                    raft_term: Some(current_term),
                }))
            }
        }
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: UnRegisterBrokerRequestHeader = req.decode_header()?;
        let (broker_name, broker_addr) = (h.broker_name.as_str(), h.broker_addr.as_str());
        match lock(&self.state.routes).unregister(broker_name, broker_addr) {
            Some(r) => tracing::info!(
                cluster = %r.cluster_name,
                broker_name,
                broker_addr,
                broker_id = r.broker_id,
                "broker unregistered"
            ),
            None => tracing::debug!(broker_name, broker_addr, "unregister of unknown broker"),
        }
        Ok(RemotingCommand::response_to(req))
    }

    fn broker_heartbeat(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let broker_name = req.ext_str("brokerName")?;
        let broker_addr = req.ext_str("brokerAddr")?;
        let known = lock(&self.state.routes).heartbeat(broker_name, broker_addr, Instant::now());
        if !known {
            tracing::debug!(
                broker_name,
                broker_addr,
                "heartbeat from unregistered broker"
            );
        }
        Ok(RemotingCommand::response_to(req))
    }

    fn query_data_version(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        let h: QueryDataVersionRequestHeader = req.decode_header()?;
        let theirs = match req.body.as_deref() {
            Some(b) if !b.is_empty() => json::from_slice::<DataVersion>(b)?,
            _ => DataVersion::default(),
        };
        let (changed, ours) = lock(&self.state.routes).query_data_version(
            &h.broker_name,
            &h.broker_addr,
            &theirs,
            Instant::now(),
        );
        let mut resp =
            RemotingCommand::response_to(req).with_header(&QueryDataVersionResponseHeader {
                changed: Some(changed),
            });
        if let Some(dv) = ours {
            resp = resp.with_body(body_bytes(&dv)?);
        }
        Ok(resp)
    }

    fn get_route(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProcessError> {
        // Routes are always written as standard JSON (quoted broker ids), which every client
        // accepts, so `acceptStandardJsonOnly` needs no special case.
        let h: GetRouteInfoRequestHeader = req.decode_header()?;
        let topic = h.topic.as_str();
        let route = lock(&self.state.routes).topic_route(topic);
        let Some(mut route) = route else {
            return Ok(RemotingCommand::error_to(
                req,
                ResponseCode::TopicNotExist,
                format!("No topic route info in name server for the topic: {topic}"),
            ));
        };
        if self.state.config.order_message_enable {
            route.order_topic_conf = lock(&self.state.kv)
                .get(ORDER_TOPIC_CONFIG_NAMESPACE, topic)
                .map(str::to_owned);
        }
        json_response(req, &route)
    }
}

fn body_bytes<T: serde::Serialize>(value: &T) -> Result<Bytes, ProcessError> {
    Ok(Bytes::from(json::to_vec(value)?))
}

/// Topic counts travel as Java `int`s.
fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn json_response<T: serde::Serialize>(
    req: &RemotingCommand,
    value: &T,
) -> Result<RemotingCommand, ProcessError> {
    Ok(RemotingCommand::response_to(req).with_body(body_bytes(value)?))
}

impl Processor for NamesrvProcessor {
    fn process<'a>(
        &'a self,
        ctx: &'a ConnContext,
        req: RemotingCommand,
    ) -> BoxFuture<'a, ProcessResult> {
        // Every handler is a short in-memory operation: answer without another task hop.
        let result = self.handle(ctx, &req);
        if let Err(err) = &result {
            tracing::warn!(
                peer = %ctx.peer_addr(),
                code = req.code,
                cause = %err,
                "request failed"
            );
        }
        Box::pin(std::future::ready(result))
    }

    fn on_disconnected(&self, ctx: &ConnContext) {
        let removed = lock(&self.state.routes).remove_by_conn(ctx.id());
        for r in removed {
            tracing::info!(
                peer = %ctx.peer_addr(),
                cluster = %r.cluster_name,
                broker_name = %r.broker_name,
                broker_addr = %r.broker_addr,
                broker_id = r.broker_id,
                "broker connection closed, removed from routes"
            );
        }
    }
}
