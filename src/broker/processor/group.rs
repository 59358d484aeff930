//! Raft group administration: RAFTMQ_GROUP_STATUS (9101), RAFTMQ_ADD_LEARNER (9102),
//! RAFTMQ_PROMOTE (9103), RAFTMQ_REMOVE_NODE (9104), RAFTMQ_TRANSFER_LEADER (9105); the wire
//! types are in [`crate::admin`].
//!
//! Every member answers a status. Changes run on the leader only (others answer with the
//! usual not-leader redirect plus a `leaderAddr` ext field) and go through openraft's
//! membership change (joint consensus), so a change under load loses no acknowledged write:
//! sends keep being committed by the old and then the new majority. A leadership transfer
//! stops the leader from taking sends until it is over (producers retry). Removing the
//! leader itself is refused: transfer leadership first.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use raftmq_raft::{NodeId, PeerNode, RaftGroupError};

use crate::admin::{parse_node_id, GroupStatus, MemberStatus, DEFAULT_CHANGE_TIMEOUT};
use crate::broker::BrokerState;
use crate::remoting::header::group::{AddLearnerRequestHeader, GroupNodeRequestHeader};
use crate::remoting::{ProcessError, ProcessResult, RemotingCommand, ResponseCode};

/// Longest change timeout a request may ask for.
const MAX_CHANGE_TIMEOUT: Duration = Duration::from_secs(600);

fn change_timeout(millis: Option<i64>) -> Duration {
    match millis {
        Some(ms) if ms > 0 => {
            Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(MAX_CHANGE_TIMEOUT)
        }
        _ => DEFAULT_CHANGE_TIMEOUT,
    }
}

/// The group as this node sees it.
pub fn status(state: &BrokerState) -> GroupStatus {
    let m = state.node.group.metrics();
    let role = state.node.role();
    let members = m
        .nodes
        .iter()
        .map(|(id, n)| MemberStatus {
            id: *id,
            voter: m.voters.contains(id),
            raft_addr: n.raft_addr.clone(),
            broker_addr: if *id == m.id {
                Some(state.addr.to_string())
            } else {
                state.node.broker_addr_of(*id)
            },
            matched_index: m.replication.get(id).copied().flatten(),
        })
        .collect();
    GroupStatus {
        group: state.cfg.dleger_group.clone(),
        broker_name: state.cfg.broker_name.clone(),
        self_id: m.id,
        self_addr: state.addr.to_string(),
        state: m.state.clone(),
        term: m.term,
        leader: m.leader,
        leader_addr: m.leader.and_then(|l| {
            if l == m.id {
                Some(state.addr.to_string())
            } else {
                state.node.broker_addr_of(l)
            }
        }),
        ready: role.is_leader && role.ready,
        last_log_index: m.last_log_index,
        committed_index: m.committed_index,
        applied_index: m.applied_index,
        purged_index: m.purged_index,
        snapshot_index: m.snapshot_index,
        voters: m.voters.iter().copied().collect(),
        learners: m.learners.iter().copied().collect(),
        members,
        fatal: m.fatal,
    }
}

pub fn group_status(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let body = serde_json::to_vec(&status(state)).map_err(|e| ProcessError::msg(e.to_string()))?;
    Ok(Some(RemotingCommand::response_to(&req).with_body(body)))
}

/// The not-leader answer, with the leader's broker address as an ext field too.
fn redirect(state: &BrokerState, req: &RemotingCommand) -> RemotingCommand {
    let leader = state.node.leader_addr();
    let resp = super::not_leader(state, req, leader.as_deref());
    match leader {
        Some(a) => resp.with_ext("leaderAddr", a),
        None => resp,
    }
}

fn refuse(req: &RemotingCommand, why: impl Into<String>) -> ProcessResult {
    Ok(Some(RemotingCommand::error_to(
        req,
        ResponseCode::SystemError,
        why,
    )))
}

/// Maps the outcome of a change to its answer.
fn answer(
    state: &BrokerState,
    req: &RemotingCommand,
    what: &str,
    res: Result<Result<(), RaftGroupError>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> ProcessResult {
    match res {
        Ok(Ok(())) => {
            tracing::info!(
                node = state.node.group.id(),
                change = what,
                "group change done"
            );
            Ok(Some(RemotingCommand::response_to(req)))
        }
        Ok(Err(RaftGroupError::NotLeader { .. })) => Ok(Some(redirect(state, req))),
        Ok(Err(e)) => {
            tracing::warn!(node = state.node.group.id(), change = what, cause = %e, "group change failed");
            refuse(req, format!("{what}: {e}"))
        }
        Err(_) => refuse(
            req,
            format!("{what}: not finished within {timeout:?}; check group-status"),
        ),
    }
}

/// The node a change names, checked on the leader; otherwise the answer to send back: a bad
/// node id, or the not-leader redirect.
fn change_target(
    state: &BrokerState,
    req: &RemotingCommand,
    node_id: &str,
) -> Result<NodeId, Box<RemotingCommand>> {
    let id = parse_node_id(node_id)
        .map_err(|e| Box::new(RemotingCommand::error_to(req, ResponseCode::SystemError, e)))?;
    if state.node.role().is_leader {
        Ok(id)
    } else {
        Err(Box::new(redirect(state, req)))
    }
}

pub async fn add_learner(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: AddLearnerRequestHeader = req.decode_header()?;
    let id = match change_target(state, &req, &h.node_id) {
        Ok(id) => id,
        Err(resp) => return Ok(Some(*resp)),
    };
    if let Err(e) = check_addr(&h.raft_addr) {
        return refuse(&req, format!("raftAddr {:?}: {e}", h.raft_addr));
    }
    let broker_addr = h.broker_addr.clone().unwrap_or_default();
    if !broker_addr.is_empty() {
        if let Err(e) = check_addr(&broker_addr) {
            return refuse(&req, format!("brokerAddr {broker_addr:?}: {e}"));
        }
    }
    let m = state.node.group.metrics();
    if m.voters.contains(&id) {
        return refuse(&req, format!("n{id} is already a voter"));
    }
    if let Some((other, _)) = m
        .nodes
        .iter()
        .find(|(o, n)| **o != id && n.raft_addr == h.raft_addr)
    {
        return refuse(
            &req,
            format!(
                "raftAddr {} belongs to member n{other}; remove it first",
                h.raft_addr
            ),
        );
    }
    let timeout = change_timeout(h.timeout_millis);
    let node = PeerNode {
        raft_addr: h.raft_addr.clone(),
        broker_addr,
    };
    tracing::info!(node = m.id, learner = id, peer = %node, "adding a learner");
    let res = tokio::time::timeout(timeout, state.node.group.add_learner(id, node, true)).await;
    answer(state, &req, &format!("add learner n{id}"), res, timeout)
}

pub async fn promote(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GroupNodeRequestHeader = req.decode_header()?;
    let id = match change_target(state, &req, &h.node_id) {
        Ok(id) => id,
        Err(resp) => return Ok(Some(*resp)),
    };
    let m = state.node.group.metrics();
    if m.voters.contains(&id) {
        return Ok(Some(
            RemotingCommand::response_to(&req).with_remark(format!("n{id} is already a voter")),
        ));
    }
    if !m.learners.contains(&id) {
        return refuse(
            &req,
            format!("n{id} is not a learner of the group; add it with add-learner first"),
        );
    }
    let mut voters = m.voters.clone();
    voters.insert(id);
    let timeout = change_timeout(h.timeout_millis);
    let res = tokio::time::timeout(timeout, state.node.group.change_voters(voters)).await;
    answer(state, &req, &format!("promote n{id}"), res, timeout)
}

pub async fn remove_node(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GroupNodeRequestHeader = req.decode_header()?;
    let id = match change_target(state, &req, &h.node_id) {
        Ok(id) => id,
        Err(resp) => return Ok(Some(*resp)),
    };
    let m = state.node.group.metrics();
    if id == m.id {
        return refuse(
            &req,
            format!("n{id} is the leader; transfer leadership to another voter first"),
        );
    }
    if !m.nodes.contains_key(&id) {
        return refuse(&req, format!("n{id} is not a member of the group"));
    }
    let timeout = change_timeout(h.timeout_millis);
    let group = &state.node.group;
    let change = async {
        if m.voters.contains(&id) {
            let voters: BTreeSet<NodeId> = m.voters.iter().copied().filter(|v| *v != id).collect();
            group.change_voters(voters).await?;
        }
        group.remove_nodes([id].into()).await
    };
    let res = tokio::time::timeout(timeout, change).await;
    answer(state, &req, &format!("remove n{id}"), res, timeout)
}

pub async fn transfer_leader(state: &Arc<BrokerState>, req: RemotingCommand) -> ProcessResult {
    let h: GroupNodeRequestHeader = req.decode_header()?;
    let id = match change_target(state, &req, &h.node_id) {
        Ok(id) => id,
        Err(resp) => return Ok(Some(*resp)),
    };
    let timeout = change_timeout(h.timeout_millis);
    // The transfer bounds itself; the outer timeout only guards against a stuck call.
    let res = tokio::time::timeout(
        timeout + Duration::from_secs(5),
        state.node.group.transfer_leadership(id, timeout),
    )
    .await;
    answer(
        state,
        &req,
        &format!("transfer leadership to n{id}"),
        res,
        timeout,
    )
}

/// `host:port` with a numeric port.
fn check_addr(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| "expected host:port".to_owned())?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("bad port {port:?}"))
}
