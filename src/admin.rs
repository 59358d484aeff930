//! Broker group administration over the remoting protocol: the raftmq request codes
//! RAFTMQ_GROUP_STATUS (9101), RAFTMQ_ADD_LEARNER (9102), RAFTMQ_PROMOTE (9103),
//! RAFTMQ_REMOVE_NODE (9104) and RAFTMQ_TRANSFER_LEADER (9105), the JSON body of a group
//! status, and [`GroupAdmin`], the client `raftmq admin`, the tests and the chaos harness use.
//!
//! Any member answers a status; the four changes are served by the leader only, and other
//! members answer SERVICE_NOT_AVAILABLE with `[NOT_LEADER]` in the remark and the leader's
//! broker address in the `leaderAddr` ext field ([`AdminError::NotLeader`]).
//!
//! This module knows the wire format only: the broker side is
//! `broker::processor::group`, which knows the Raft group.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::remoting::header::group::{AddLearnerRequestHeader, GroupNodeRequestHeader};
use crate::remoting::{
    ClientConfig, RemotingClient, RemotingCommand, RemotingError, RequestCode, ResponseCode,
};

/// Default time a membership change or a transfer may take on the broker.
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of the group as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Raft id (`n3` is 3).
    pub id: u64,
    /// Voter (true) or learner (false).
    pub voter: bool,
    /// `host:port` of its Raft transport.
    pub raft_addr: String,
    /// `host:port` of its broker, when known.
    pub broker_addr: Option<String>,
    /// Highest log index the leader knows it holds (reported by the leader only).
    pub matched_index: Option<u64>,
}

/// RAFTMQ_GROUP_STATUS response body (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// `dLegerGroup`.
    pub group: String,
    /// `brokerName`.
    pub broker_name: String,
    /// The answering node's Raft id.
    pub self_id: u64,
    /// The answering node's broker address.
    pub self_addr: String,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// Its broker address, when known.
    pub leader_addr: Option<String>,
    /// This node leads and takes writes.
    pub ready: bool,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub members: Vec<MemberStatus>,
    /// Set once the node's Raft core stopped on a fatal error.
    pub fatal: Option<String>,
}

impl GroupStatus {
    /// This node is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader == Some(self.self_id) && self.state == "Leader"
    }

    /// The member with id `id`.
    pub fn member(&self, id: u64) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.id == id)
    }
}

impl std::fmt::Display for GroupStatus {
    /// A human-readable table: the node's view, then one line per member.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "group {} (broker {}) as seen by n{} at {}",
            self.group, self.broker_name, self.self_id, self.self_addr
        )?;
        writeln!(
            f,
            "  state {}  term {}  leader {}{}{}",
            self.state,
            self.term,
            self.leader
                .map_or_else(|| "none".to_owned(), |l| format!("n{l}")),
            self.leader_addr
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default(),
            if self.ready { "  ready for writes" } else { "" }
        )?;
        writeln!(
            f,
            "  log last {}  committed {}  applied {}  purged {}  snapshot {}",
            opt(self.last_log_index),
            opt(self.committed_index),
            opt(self.applied_index),
            opt(self.purged_index),
            opt(self.snapshot_index)
        )?;
        if let Some(e) = &self.fatal {
            writeln!(f, "  FATAL: {e}")?;
        }
        writeln!(
            f,
            "  {:<6} {:<8} {:<22} {:<22} matched",
            "member", "role", "raft", "broker"
        )?;
        for m in &self.members {
            writeln!(
                f,
                "  {:<6} {:<8} {:<22} {:<22} {}",
                format!("n{}", m.id),
                if m.voter { "voter" } else { "learner" },
                m.raft_addr,
                m.broker_addr.as_deref().unwrap_or("-"),
                opt(m.matched_index)
            )?;
        }
        Ok(())
    }
}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The broker could not be reached or did not answer in time.
    #[error("{addr}: {source}")]
    Remoting {
        addr: String,
        #[source]
        source: RemotingError,
    },
    /// The node is not the leader; `leader_addr` is where to ask instead, when known.
    #[error("{addr} is not the leader ({}): {remark}",
        leader_addr.as_deref().map(|a| format!("the leader is {a}")).unwrap_or_else(|| "no leader known".into()))]
    NotLeader {
        addr: String,
        leader_addr: Option<String>,
        remark: String,
    },
    /// The broker refused the request.
    #[error("{addr} refused {request}: {remark} (code {code})")]
    Refused {
        addr: String,
        request: &'static str,
        code: i32,
        remark: String,
    },
    /// The broker answered with a body this client cannot read.
    #[error("{addr}: unreadable {request} answer: {reason}")]
    BadAnswer {
        addr: String,
        request: &'static str,
        reason: String,
    },
}

/// Parses a node id: `n3` (DLedger style) or `3`.
pub fn parse_node_id(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.strip_prefix('n')
        .unwrap_or(t)
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a node id (n<number>, e.g. n3)"))
}

/// Administration client for one broker node.
pub struct GroupAdmin {
    client: RemotingClient,
    /// How long the broker may take to carry out a change.
    change_timeout: Duration,
    /// How long a status request may take.
    status_timeout: Duration,
}

impl GroupAdmin {
    /// A client for the broker at `addr` (`host:port`); nothing is connected yet.
    pub fn new(addr: impl Into<String>) -> Self {
        GroupAdmin {
            client: RemotingClient::new(
                addr,
                ClientConfig {
                    connect_timeout: Duration::from_secs(2),
                    ..ClientConfig::default()
                },
            ),
            change_timeout: DEFAULT_CHANGE_TIMEOUT,
            status_timeout: Duration::from_secs(3),
        }
    }

    /// Sets how long a change may take on the broker (the call waits a little longer).
    pub fn with_change_timeout(mut self, t: Duration) -> Self {
        self.change_timeout = t;
        self
    }

    /// Sets how long a status request may take.
    pub fn with_status_timeout(mut self, t: Duration) -> Self {
        self.status_timeout = t;
        self
    }

    pub fn addr(&self) -> &str {
        self.client.addr()
    }

    async fn call(
        &self,
        request: RequestCode,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, AdminError> {
        let resp =
            self.client
                .invoke(cmd, timeout)
                .await
                .map_err(|source| AdminError::Remoting {
                    addr: self.addr().to_owned(),
                    source,
                })?;
        if resp.code == ResponseCode::Success.code() {
            return Ok(resp);
        }
        let remark = resp.remark.clone().unwrap_or_default();
        if resp.code == ResponseCode::ServiceNotAvailable.code() && remark.contains("[NOT_LEADER]")
        {
            return Err(AdminError::NotLeader {
                addr: self.addr().to_owned(),
                leader_addr: resp
                    .ext_opt_str("leaderAddr")
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
                remark,
            });
        }
        Err(AdminError::Refused {
            addr: self.addr().to_owned(),
            request: request.name(),
            code: resp.code,
            remark,
        })
    }

    /// The group as this node sees it.
    pub async fn status(&self) -> Result<GroupStatus, AdminError> {
        let code = RequestCode::RaftmqGroupStatus;
        let resp = self
            .call(code, RemotingCommand::request(code), self.status_timeout)
            .await?;
        let body = resp.body.as_deref().unwrap_or_default();
        serde_json::from_slice(body).map_err(|e| AdminError::BadAnswer {
            addr: self.addr().to_owned(),
            request: code.name(),
            reason: e.to_string(),
        })
    }

    fn change_millis(&self) -> i64 {
        i64::try_from(self.change_timeout.as_millis()).unwrap_or(i64::MAX)
    }

    async fn change(&self, code: RequestCode, cmd: RemotingCommand) -> Result<(), AdminError> {
        self.call(code, cmd, self.change_timeout + Duration::from_secs(5))
            .await
            .map(|_| ())
    }

    /// Adds node `id` (Raft transport at `raft_addr`, broker at `broker_addr`) as a learner
    /// and waits until it has caught up with the leader's log.
    pub async fn add_learner(
        &self,
        id: u64,
        raft_addr: &str,
        broker_addr: Option<&str>,
    ) -> Result<(), AdminError> {
        let code = RequestCode::RaftmqAddLearner;
        let h = AddLearnerRequestHeader {
            node_id: format!("n{id}"),
            raft_addr: raft_addr.to_owned(),
            broker_addr: broker_addr.map(str::to_owned),
            timeout_millis: Some(self.change_millis()),
        };
        self.change(code, RemotingCommand::request(code).with_header(&h))
            .await
    }

    async fn node_change(&self, code: RequestCode, id: u64) -> Result<(), AdminError> {
        let h = GroupNodeRequestHeader {
            node_id: format!("n{id}"),
            timeout_millis: Some(self.change_millis()),
        };
        self.change(code, RemotingCommand::request(code).with_header(&h))
            .await
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&self, id: u64) -> Result<(), AdminError> {
        self.node_change(RequestCode::RaftmqPromote, id).await
    }

    /// Removes member `id` (a voter first stops voting, then leaves).
    pub async fn remove_node(&self, id: u64) -> Result<(), AdminError> {
        self.node_change(RequestCode::RaftmqRemoveNode, id).await
    }

    /// Hands leadership to voter `id` and waits until it leads.
    pub async fn transfer_leader(&self, id: u64) -> Result<(), AdminError> {
        self.node_change(RequestCode::RaftmqTransferLeader, id)
            .await
    }
}

/// Asks each of `addrs` for its status and returns the first node that says it leads.
pub async fn find_leader(addrs: &[String]) -> Option<(String, GroupStatus)> {
    for a in addrs {
        if let Ok(s) = GroupAdmin::new(a.clone()).status().await {
            if s.is_leader() {
                return Some((a.clone(), s));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_parse_in_both_spellings() {
        assert_eq!(parse_node_id("n3"), Ok(3));
        assert_eq!(parse_node_id("12"), Ok(12));
        assert!(parse_node_id("x3").is_err());
        assert!(parse_node_id("n").is_err());
        assert!(parse_node_id("n-1").is_err());
    }

    #[test]
    fn status_body_round_trips_in_camel_case() {
        let s = GroupStatus {
            group: "broker-a".into(),
            broker_name: "broker-a".into(),
            self_id: 1,
            self_addr: "127.0.0.1:10911".into(),
            state: "Leader".into(),
            term: 4,
            leader: Some(1),
            leader_addr: Some("127.0.0.1:10911".into()),
            ready: true,
            last_log_index: Some(9),
            committed_index: Some(9),
            applied_index: Some(9),
            purged_index: None,
            snapshot_index: None,
            voters: vec![0, 1, 2],
            learners: vec![3],
            members: vec![MemberStatus {
                id: 3,
                voter: false,
                raft_addr: "127.0.0.1:40914".into(),
                broker_addr: None,
                matched_index: Some(7),
            }],
            fatal: None,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"selfId\":1") && text.contains("\"matchedIndex\":7"));
        assert_eq!(serde_json::from_str::<GroupStatus>(&text).unwrap(), s);
        assert!(s.is_leader());
        assert_eq!(s.member(3).map(|m| m.voter), Some(false));
    }
}
