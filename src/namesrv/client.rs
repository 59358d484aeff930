//! The calls brokers and tools make to nameservers: register/unregister a broker with every
//! nameserver, fetch a topic route or the cluster info from any of them.
//!
//! Nameservers are independent (no shared state), so a broker registers with **each** one, in
//! parallel, and a route can come from whichever answers first. Addresses are given as
//! RocketMQ's `namesrvAddr` (`host:port;host:port`). Bodies are read with the remoting JSON
//! dialect reader, so routes from Java nameservers (unquoted numeric keys) parse as well.
//!
//! This module only speaks the protocol; when to register (start-up, every 30 s, at once on a
//! Raft role change) is the broker's business.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::bodies::{ClusterInfo, KvTable, RegisterBrokerBody, TopicRouteData};
use crate::remoting::header::namesrv::{
    GetRouteInfoRequestHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnRegisterBrokerRequestHeader,
};
use crate::remoting::json::{self, JsonError};
use crate::remoting::{
    ClientConfig, RemotingClient, RemotingCommand, RemotingError, RequestCode, ResponseCode,
};

/// Why a call to a nameserver failed.
#[derive(Debug, thiserror::Error)]
pub enum NamesrvClientError {
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    #[error("nameserver {addr}: bad response body: {source}")]
    Body {
        addr: String,
        #[source]
        source: JsonError,
    },
    #[error("nameserver {addr} answered code {code}: {remark}")]
    Response {
        addr: String,
        code: i32,
        remark: String,
    },
    #[error("no nameserver address configured")]
    NoNameserver,
}

/// The answer of one nameserver to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterResult {
    /// Registered. For a non-master: the current master's address and HA address.
    Registered {
        master_addr: Option<String>,
        ha_server_addr: Option<String>,
        /// KV namespace `ORDER_TOPIC_CONFIG`, when the nameserver has one.
        order_topic_config: Option<KvTable>,
    },
    /// The nameserver already has a leader of a higher Raft term for this group; nothing
    /// changed there. This member should stop claiming leadership.
    StaleTerm {
        current_term: u64,
        leader_addr: Option<String>,
    },
}

/// Clients for a set of nameservers.
#[derive(Debug, Clone)]
pub struct NamesrvClient {
    clients: Vec<Arc<RemotingClient>>,
    timeout: Duration,
}

/// Splits a RocketMQ `namesrvAddr` (`a:9876;b:9876`, optional `http://` prefixes as the Go
/// client allows) into addresses; empty parts are skipped.
pub fn parse_namesrv_addr(list: &str) -> Vec<String> {
    list.split(';')
        .map(str::trim)
        .map(|a| {
            a.strip_prefix("http://")
                .or_else(|| a.strip_prefix("https://"))
                .unwrap_or(a)
        })
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_success(addr: &str, resp: &RemotingCommand) -> Result<(), NamesrvClientError> {
    if resp.code == ResponseCode::Success.code() {
        Ok(())
    } else {
        Err(NamesrvClientError::Response {
            addr: addr.to_owned(),
            code: resp.code,
            remark: resp.remark.clone().unwrap_or_default(),
        })
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(
    addr: &str,
    resp: &RemotingCommand,
) -> Result<T, NamesrvClientError> {
    json::from_slice(resp.body.as_deref().unwrap_or_default()).map_err(|source| {
        NamesrvClientError::Body {
            addr: addr.to_owned(),
            source,
        }
    })
}

/// Interprets a REGISTER_BROKER response (see the processor's doc for the stale-term form).
fn register_result(
    addr: &str,
    resp: &RemotingCommand,
) -> Result<RegisterResult, NamesrvClientError> {
    let header: RegisterBrokerResponseHeader =
        resp.decode_header()
            .map_err(|e| NamesrvClientError::Response {
                addr: addr.to_owned(),
                code: resp.code,
                remark: e.to_string(),
            })?;
    if resp.code != ResponseCode::Success.code() {
        if let Some(current_term) = header.raft_term {
            return Ok(RegisterResult::StaleTerm {
                current_term,
                leader_addr: header.master_addr,
            });
        }
        check_success(addr, resp)?;
    }
    let order_topic_config = match resp.body.as_deref() {
        Some(b) if !b.is_empty() && b != b"null" => Some(parse_body::<KvTable>(addr, resp)?),
        _ => None,
    };
    Ok(RegisterResult::Registered {
        master_addr: header.master_addr,
        ha_server_addr: header.ha_server_addr,
        order_topic_config,
    })
}

impl NamesrvClient {
    /// Clients for `addrs`; nothing connects until the first call. `timeout` bounds each
    /// request (RocketMQ brokers use 6 s for registration).
    pub fn new(addrs: &[String], config: ClientConfig, timeout: Duration) -> Self {
        NamesrvClient {
            clients: addrs
                .iter()
                .map(|a| Arc::new(RemotingClient::new(a.clone(), config.clone())))
                .collect(),
            timeout,
        }
    }

    /// The nameserver addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.clients.iter().map(|c| c.addr().to_owned()).collect()
    }

    /// Builds the REGISTER_BROKER request: JSON body, `bodyCrc32` set so the nameserver can
    /// detect corruption, `compressed=false`.
    pub fn register_command(
        header: &RegisterBrokerRequestHeader,
        body: &RegisterBrokerBody,
    ) -> Result<RemotingCommand, JsonError> {
        let bytes = json::to_vec(body)?;
        let crc = crc32fast::hash(&bytes) & 0x7FFF_FFFF;
        let header = RegisterBrokerRequestHeader {
            compressed: false,
            body_crc32: i32::try_from(crc).unwrap_or(0),
            ..header.clone()
        };
        Ok(RemotingCommand::request(RequestCode::RegisterBroker)
            .with_header(&header)
            .with_body(Bytes::from(bytes)))
    }

    /// Registers with every nameserver in parallel; one result per address, in order.
    pub async fn register_broker(
        &self,
        header: &RegisterBrokerRequestHeader,
        body: &RegisterBrokerBody,
    ) -> Result<Vec<(String, Result<RegisterResult, NamesrvClientError>)>, JsonError> {
        let cmd = Self::register_command(header, body)?;
        Ok(self
            .each(cmd, |addr, resp| register_result(addr, &resp))
            .await)
    }

    /// Unregisters from every nameserver in parallel (clean shutdown).
    pub async fn unregister_broker(
        &self,
        header: &UnRegisterBrokerRequestHeader,
    ) -> Vec<(String, Result<(), NamesrvClientError>)> {
        let cmd = RemotingCommand::request(RequestCode::UnregisterBroker).with_header(header);
        self.each(cmd, |addr, resp| check_success(addr, &resp))
            .await
    }

    /// Sends `cmd` to every nameserver at once and maps each response.
    async fn each<T: Send + 'static>(
        &self,
        cmd: RemotingCommand,
        map: fn(&str, RemotingCommand) -> Result<T, NamesrvClientError>,
    ) -> Vec<(String, Result<T, NamesrvClientError>)> {
        let mut set = JoinSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let client = client.clone();
            let cmd = cmd.clone();
            let timeout = self.timeout;
            set.spawn(async move {
                let addr = client.addr().to_owned();
                let result = match client.invoke(cmd, timeout).await {
                    Ok(resp) => map(&addr, resp),
                    Err(e) => Err(NamesrvClientError::from(e)),
                };
                (i, addr, result)
            });
        }
        let mut out: Vec<(usize, String, Result<T, NamesrvClientError>)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(r) => out.push(r),
                // A panicking task cannot be attributed; the address simply has no result.
                Err(e) => tracing::warn!(cause = %e, "nameserver call task failed"),
            }
        }
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, a, r)| (a, r)).collect()
    }

    /// Asks the nameservers in order until one answers. `Ok(None)` = TOPIC_NOT_EXIST.
    pub async fn topic_route(
        &self,
        topic: &str,
    ) -> Result<Option<TopicRouteData>, NamesrvClientError> {
        let cmd = RemotingCommand::request(RequestCode::GetRouteinfoByTopic).with_header(
            &GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: None,
            },
        );
        let (addr, resp) = self.first_answer(cmd).await?;
        if resp.code == ResponseCode::TopicNotExist.code() {
            return Ok(None);
        }
        check_success(&addr, &resp)?;
        parse_body(&addr, &resp).map(Some)
    }

    /// GET_BROKER_CLUSTER_INFO from the first nameserver that answers.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, NamesrvClientError> {
        let cmd = RemotingCommand::request(RequestCode::GetBrokerClusterInfo);
        let (addr, resp) = self.first_answer(cmd).await?;
        check_success(&addr, &resp)?;
        parse_body(&addr, &resp)
    }

    async fn first_answer(
        &self,
        cmd: RemotingCommand,
    ) -> Result<(String, RemotingCommand), NamesrvClientError> {
        let mut last = NamesrvClientError::NoNameserver;
        for client in &self.clients {
            match client.invoke(cmd.clone(), self.timeout).await {
                Ok(resp) => return Ok((client.addr().to_owned(), resp)),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_addr_list_parsing() {
        assert_eq!(
            parse_namesrv_addr(" 10.0.0.1:9876; http://10.0.0.2:9876;;"),
            vec!["10.0.0.1:9876", "10.0.0.2:9876"]
        );
        assert!(parse_namesrv_addr("").is_empty());
    }

    #[test]
    fn register_command_sets_crc_of_body() {
        let header = RegisterBrokerRequestHeader {
            broker_name: "b".into(),
            broker_addr: "h:1".into(),
            cluster_name: "C".into(),
            ha_server_addr: "h:2".into(),
            broker_id: 0,
            raft_term: Some(3),
            ..Default::default()
        };
        let cmd = NamesrvClient::register_command(&header, &RegisterBrokerBody::default()).unwrap();
        let body = cmd.body.clone().unwrap();
        let crc = crc32fast::hash(&body) & 0x7FFF_FFFF;
        assert_eq!(&cmd.ext_fields["bodyCrc32"], crc.to_string());
        assert_eq!(&cmd.ext_fields["raftTerm"], "3");
        assert_eq!(&cmd.ext_fields["compressed"], "false");
    }

    #[test]
    fn java_route_with_unquoted_ids_parses() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"a","cluster":"C"}],"filterServerTable":{},"queueDatas":[{"brokerName":"a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
        let resp = RemotingCommand::response(0, "").with_body(Bytes::from_static(body));
        let route: TopicRouteData = parse_body("ns", &resp).unwrap();
        assert_eq!(route.broker_datas[0].broker_addrs[&1], "10.0.0.2:10911");
        assert_eq!(route.queue_datas[0].topic_syn_flag, 0);
    }

    #[test]
    fn stale_and_error_register_responses() {
        let stale = RemotingCommand::response(1, "stale raft term 1")
            .with_ext("raftTerm", 4)
            .with_ext("masterAddr", "h:9");
        assert_eq!(
            register_result("ns", &stale).unwrap(),
            RegisterResult::StaleTerm {
                current_term: 4,
                leader_addr: Some("h:9".into())
            }
        );
        let err = RemotingCommand::response(1, "crc32 not match");
        assert!(matches!(
            register_result("ns", &err),
            Err(NamesrvClientError::Response { code: 1, .. })
        ));
    }
}
