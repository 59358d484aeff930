//! Topic administration and broker information: UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), GET_ALL_TOPIC_CONFIG (21), GET_BROKER_RUNTIME_INFO (28),
//! GET_TOPIC_STATS_INFO (202), GET_CONSUMER_CONNECTION_LIST (203),
//! GET_PRODUCER_CONNECTION_LIST (204), GET_CONSUME_STATS (208), GET_BROKER_CONFIG (26),
//! subscription groups (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP 200, GET_ALL_SUBSCRIPTIONGROUP_CONFIG
//! 201, DELETE_SUBSCRIPTIONGROUP 207; changes replicated).
//!
//! Topic changes are replicated through the group (leader only) and trigger a registration
//! with the nameservers.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftmq_store::metadata::{SubscriptionGroupConfig, TopicConfig};

use crate::broker::client_manager::Channel;
use crate::broker::BrokerState;
use crate::namesrv::bodies::{KvTable, TopicConfigSerializeWrapper};
use crate::remoting::body::{
    encode_consume_stats, encode_topic_stats_table, Connection, ConsumerConnection, MessageQueue,
    OffsetWrapper, ProducerConnection, TopicOffset,
};
use crate::remoting::header::admin::{
    CreateTopicRequestHeader, DeleteSubscriptionGroupRequestHeader, DeleteTopicRequestHeader,
    GetConsumeStatsRequestHeader, GetConsumerConnectionListRequestHeader,
    GetProducerConnectionListRequestHeader, GetTopicStatsInfoRequestHeader,
};
use crate::remoting::json;
use crate::remoting::{ProcessError, ProcessResult, RemotingCommand, ResponseCode};

pub async fn create_topic(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: CreateTopicRequestHeader = req.decode_header()?;
    if let Err(e) = raftmq_store::message::validate_topic_name(&h.topic) {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            e.to_string(),
        )));
    }
    if h.topic == state.cfg.broker_cluster_name
        || h.topic == crate::broker::topic::TBW102 && h.perm & 1 == 0
    {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("the topic[{}] is conflict with system topic.", h.topic),
        )));
    }
    if !(1..=1024).contains(&h.read_queue_nums)
        || !(1..=1024).contains(&h.write_queue_nums)
        || h.perm & !7 != 0
    {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!(
                "invalid queue numbers {}/{} or perm {}",
                h.read_queue_nums, h.write_queue_nums, h.perm
            ),
        )));
    }
    let t = TopicConfig {
        topic_name: h.topic.clone(),
        read_queue_nums: h.read_queue_nums,
        write_queue_nums: h.write_queue_nums,
        perm: h.perm,
        topic_filter_type: if h.topic_filter_type.is_empty() {
            "SINGLE_TAG".into()
        } else {
            h.topic_filter_type.clone()
        },
        topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
        order: h.order,
    };
    match state.topics.put(&state.node, t).await {
        Ok(()) => {
            state.registrar.register_soon();
            Ok(Some(RemotingCommand::response_to(&req)))
        }
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub async fn delete_topic(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: DeleteTopicRequestHeader = req.decode_header()?;
    match state.topics.delete(&state.node, &h.topic).await {
        Ok(()) => {
            state.registrar.register_soon();
            Ok(Some(RemotingCommand::response_to(&req)))
        }
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub fn all_topic_config(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let topics = state
        .topics
        .all(&state.node)
        .map_err(|e| ProcessError::msg(e.to_string()))?;
    let wrapper = TopicConfigSerializeWrapper {
        data_version: state.topics.data_version(),
        topic_config_table: topics
            .iter()
            .map(|t| (t.topic_name.clone(), crate::broker::topic::to_wire(t)))
            .collect(),
    };
    let body = serde_json::to_vec(&wrapper).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

pub fn runtime_info(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let m = state.node.group.metrics();
    let role = state.node.role();
    let mut table = BTreeMap::new();
    table.insert("brokerVersionDesc".to_string(), "raftmq".to_string());
    table.insert(
        "brokerRole".to_string(),
        if role.is_leader {
            "SYNC_MASTER"
        } else {
            "SLAVE"
        }
        .to_string(),
    );
    table.insert("raftTerm".to_string(), m.term.to_string());
    table.insert("raftNodeId".to_string(), m.id.to_string());
    table.insert(
        "raftLeader".to_string(),
        m.leader.map(|l| l.to_string()).unwrap_or_default(),
    );
    table.insert(
        "raftAppliedIndex".to_string(),
        m.applied_index.map(|i| i.to_string()).unwrap_or_default(),
    );
    let st = state.node.log.state();
    table.insert("commitLogMinOffset".to_string(), st.first_pos.to_string());
    table.insert("commitLogMaxOffset".to_string(), st.next_pos.to_string());
    let body =
        serde_json::to_vec(&KvTable { table }).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

fn connection(c: &Channel) -> Connection {
    Connection {
        client_id: c.client_id.clone(),
        client_addr: c.ctx.peer_addr().to_string(),
        language: c.language.name().to_string(),
        version: c.version,
    }
}

pub fn consumer_connections(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetConsumerConnectionListRequestHeader = req.decode_header()?;
    let channels = state.clients.consumer_channels(&h.consumer_group);
    let Some(data) = state.clients.consumer_data(&h.consumer_group) else {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::ConsumerNotOnline,
            format!("the consumer group[{}] not online", h.consumer_group),
        )));
    };
    if channels.is_empty() {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::ConsumerNotOnline,
            format!("the consumer group[{}] not online", h.consumer_group),
        )));
    }
    let body = ConsumerConnection {
        connection_set: channels.iter().map(connection).collect(),
        subscription_table: data
            .subscription_data_set
            .iter()
            .map(|s| (s.topic.clone(), s.clone()))
            .collect(),
        consume_type: data.consume_type,
        message_model: data.message_model,
        consume_from_where: data.consume_from_where,
    };
    Ok(Some(
        RemotingCommand::response_to(&req).with_body(json::to_vec(&body)?),
    ))
}

pub fn producer_connections(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetProducerConnectionListRequestHeader = req.decode_header()?;
    let channels = state.clients.producer_channels(&h.producer_group);
    if channels.is_empty() {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::SystemError,
            format!("the producer group[{}] not exist", h.producer_group),
        )));
    }
    let body = ProducerConnection {
        connection_set: channels.iter().map(connection).collect(),
    };
    Ok(Some(
        RemotingCommand::response_to(&req).with_body(json::to_vec(&body)?),
    ))
}

/// Store time of the last message of a queue (0 when empty).
fn last_store_time(state: &BrokerState, topic: &str, queue_id: i32, max: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    state
        .node
        .sm
        .with_dispatcher(|d| d.unit(topic, queue_id, max - 1))
        .ok()
        .flatten()
        .and_then(|u| state.node.read_message(u.phys_offset, u.size).ok())
        .and_then(|b| {
            raftmq_store::message::MessageView::parse(&b)
                .ok()
                .map(|v| v.store_timestamp())
        })
        .unwrap_or(0)
}

pub fn topic_stats(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetTopicStatsInfoRequestHeader = req.decode_header()?;
    let Some(t) = state
        .topics
        .get(&state.node, &h.topic)
        .map_err(|e| ProcessError::msg(e.to_string()))?
    else {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::TopicNotExist,
            format!("topic[{}] not exist", h.topic),
        )));
    };
    let mut table = BTreeMap::new();
    for q in 0..t.write_queue_nums.max(t.read_queue_nums) {
        let (min, max) = state
            .node
            .sm
            .with_dispatcher(|d| (d.min_offset(&h.topic, q), d.max_offset(&h.topic, q)));
        table.insert(
            MessageQueue::new(&h.topic, &state.cfg.broker_name, q),
            TopicOffset {
                min_offset: min,
                max_offset: max,
                last_update_timestamp: last_store_time(state, &h.topic, q, max),
            },
        );
    }
    let body = encode_topic_stats_table(&table)?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

pub fn consume_stats(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GetConsumeStatsRequestHeader = req.decode_header()?;
    let offsets = state
        .node
        .sm
        .with_metadata(|m| m.offsets_of_group(&h.consumer_group))
        .map_err(|e| ProcessError::msg(e.to_string()))?;
    let mut topics: Vec<String> = offsets.iter().map(|o| o.topic.clone()).collect();
    if let Some(t) = h.topic.as_ref().filter(|t| !t.is_empty()) {
        topics = vec![t.clone()];
    }
    topics.sort();
    topics.dedup();
    let mut table = BTreeMap::new();
    for topic in &topics {
        let Some(t) = state
            .topics
            .get(&state.node, topic)
            .map_err(|e| ProcessError::msg(e.to_string()))?
        else {
            continue;
        };
        for q in 0..t.write_queue_nums.max(t.read_queue_nums) {
            let max = state.node.sm.with_dispatcher(|d| d.max_offset(topic, q));
            let consumer = offsets
                .iter()
                .find(|o| o.topic == *topic && o.queue_id == q)
                .map(|o| o.offset)
                .unwrap_or(0);
            let last = if consumer > 0 {
                last_store_time(state, topic, q, consumer)
            } else {
                0
            };
            table.insert(
                MessageQueue::new(topic, &state.cfg.broker_name, q),
                OffsetWrapper {
                    broker_offset: max,
                    consumer_offset: consumer,
                    last_timestamp: last,
                },
            );
        }
    }
    if table.is_empty() {
        return Ok(Some(RemotingCommand::error_to(
            &req,
            ResponseCode::ConsumerNotOnline,
            format!("the consumer group[{}] has no offsets", h.consumer_group),
        )));
    }
    let body = encode_consume_stats(&table, 0.0)?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

pub fn broker_config(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let version = serde_json::to_string(&state.topics.data_version())
        .map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(
        RemotingCommand::response_to(&req)
            .with_ext("version", version)
            .with_body(state.cfg.to_properties_text().into_bytes()),
    ))
}

/// A subscription group config from its JSON body: RocketMQ's defaults for absent fields,
/// unknown (5.x) fields ignored.
pub fn parse_group_config(body: &[u8]) -> Result<SubscriptionGroupConfig, String> {
    let v = json::parse_lenient(body).map_err(|e| e.to_string())?;
    let name = v
        .get("groupName")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .ok_or("groupName is missing")?;
    raftmq_store::message::validate_topic_name(name).map_err(|e| format!("groupName: {e}"))?;
    let mut g = SubscriptionGroupConfig::new(name);
    let b = |k: &str, d: bool| v.get(k).and_then(|x| x.as_bool()).unwrap_or(d);
    let i = |k: &str, d: i64| v.get(k).and_then(|x| x.as_i64()).unwrap_or(d);
    g.consume_enable = b("consumeEnable", g.consume_enable);
    g.consume_from_min_enable = b("consumeFromMinEnable", g.consume_from_min_enable);
    g.consume_broadcast_enable = b("consumeBroadcastEnable", g.consume_broadcast_enable);
    g.notify_consumer_ids_changed_enable = b(
        "notifyConsumerIdsChangedEnable",
        g.notify_consumer_ids_changed_enable,
    );
    g.retry_queue_nums = i("retryQueueNums", g.retry_queue_nums.into()).clamp(1, 1024) as i32;
    g.retry_max_times = i("retryMaxTimes", g.retry_max_times.into()).clamp(0, 1000) as i32;
    g.broker_id = i("brokerId", g.broker_id);
    g.which_broker_when_consume_slowly = i(
        "whichBrokerWhenConsumeSlowly",
        g.which_broker_when_consume_slowly,
    );
    Ok(g)
}

pub async fn create_group(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let g = match parse_group_config(req.body.as_deref().unwrap_or_default()) {
        Ok(g) => g,
        Err(e) => {
            return Ok(Some(RemotingCommand::error_to(
                &req,
                ResponseCode::SystemError,
                e,
            )))
        }
    };
    match state
        .node
        .write(raftmq_raft::BrokerCommand::UpsertSubscriptionGroup { group: g })
        .await
    {
        Ok(()) => Ok(Some(RemotingCommand::response_to(&req))),
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub async fn delete_group(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: DeleteSubscriptionGroupRequestHeader = req.decode_header()?;
    match state
        .node
        .write(raftmq_raft::BrokerCommand::DeleteSubscriptionGroup {
            group: h.group_name,
        })
        .await
    {
        Ok(()) => Ok(Some(RemotingCommand::response_to(&req))),
        Err(e) => Ok(Some(super::error_response(state, &req, e))),
    }
}

pub fn all_group_config(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let groups = state
        .node
        .sm
        .with_metadata(|m| m.groups())
        .map_err(|e| ProcessError::msg(e.to_string()))?;
    let table: BTreeMap<String, SubscriptionGroupConfig> = groups
        .into_iter()
        .map(|g| (g.group_name.clone(), g))
        .collect();
    let body = serde_json::json!({
        "subscriptionGroupTable": table,
        "dataVersion": state.topics.data_version(),
    });
    let body = serde_json::to_vec(&body).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}
