//! In-memory network for tests: the same `RaftNetworkFactory` as the TCP transport, with faults.
//!
//! Every registered node's `Raft` handle sits in one [`Router`]; a [`RouterNetwork`] calls the
//! target's handle directly after a bincode round trip of request and response (so anything
//! that would not survive the wire fails here too). Faults: isolate a node, block a directed
//! link, drop a share of messages, delay every message. Unknown or removed nodes are
//! `Unreachable`, as a dead peer would be.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{timeout_error, to_rpc_error, TransportError};
use crate::codec;
use crate::types::{typ, NodeId, PeerNode, TypeConfig};

/// The in-memory "switch" connecting test nodes.
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<RouterState>>,
    counter: Arc<AtomicU64>,
}

#[derive(Default)]
struct RouterState {
    nodes: HashMap<NodeId, typ::Raft>,
    isolated: BTreeSet<NodeId>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Drop one message in `drop_one_in` (0 = never).
    drop_one_in: u64,
    delay: Duration,
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RouterState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register (or replace) a node's Raft handle.
    pub fn add(&self, id: NodeId, raft: typ::Raft) {
        self.state().nodes.insert(id, raft);
    }

    /// Forget a node: it becomes unreachable.
    pub fn remove(&self, id: NodeId) -> Option<typ::Raft> {
        self.state().nodes.remove(&id)
    }

    /// Cut every link to and from `id`.
    pub fn isolate(&self, id: NodeId) {
        self.state().isolated.insert(id);
    }

    /// Cut the directed link `from → to`.
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.state().blocked.insert((from, to));
    }

    /// Restore every link and stop dropping messages.
    pub fn heal(&self) {
        let mut s = self.state();
        s.isolated.clear();
        s.blocked.clear();
        s.drop_one_in = 0;
    }

    /// Drop one message in `n` (0 = none).
    pub fn drop_one_in(&self, n: u64) {
        self.state().drop_one_in = n;
    }

    /// Delay every message by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.state().delay = d;
    }

    /// Deliver an administrative request `from → to` (subject to the same faults).
    pub async fn admin(
        &self,
        from: NodeId,
        to: NodeId,
        req: super::AdminRequest,
    ) -> Result<(), String> {
        let (raft, delay) = self.route(from, to).map_err(|e| e.to_string())?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        req.execute(&raft).await
    }

    /// A network factory for node `from`.
    pub fn network(&self, from: NodeId) -> RouterNetwork {
        RouterNetwork {
            router: self.clone(),
            from,
            target: from,
        }
    }

    fn route(&self, from: NodeId, to: NodeId) -> Result<(typ::Raft, Duration), TransportError> {
        let s = self.state();
        if from == to {
            return Err(TransportError::SelfTarget(to));
        }
        if s.isolated.contains(&from) || s.isolated.contains(&to) || s.blocked.contains(&(from, to))
        {
            return Err(TransportError::Partitioned(to));
        }
        if s.drop_one_in > 0 && self.counter.fetch_add(1, Ordering::Relaxed) % s.drop_one_in == 0 {
            return Err(TransportError::Partitioned(to));
        }
        let raft = s
            .nodes
            .get(&to)
            .cloned()
            .ok_or(TransportError::Partitioned(to))?;
        Ok((raft, s.delay))
    }
}

/// [`Router`]'s `RaftNetworkFactory` / `RaftNetwork` for one source node.
#[derive(Clone)]
pub struct RouterNetwork {
    router: Router,
    from: NodeId,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for RouterNetwork {
    type Network = RouterNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &PeerNode) -> RouterNetwork {
        RouterNetwork {
            router: self.router.clone(),
            from: self.from,
            target,
        }
    }
}

fn roundtrip<T: Serialize + DeserializeOwned>(v: &T) -> Result<T, TransportError> {
    let b = codec::encode(v)?;
    Ok(codec::decode(&b, u64::MAX)?)
}

impl RouterNetwork {
    async fn call<Req, Resp, E, F, Fut>(
        &self,
        action: RPCTypes,
        req: Req,
        entries: usize,
        option: &RPCOption,
        f: F,
    ) -> Result<Resp, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>
    where
        Req: Serialize + DeserializeOwned,
        Resp: Serialize + DeserializeOwned,
        E: std::error::Error + Serialize + DeserializeOwned,
        F: FnOnce(typ::Raft, Req) -> Fut,
        Fut: std::future::Future<Output = Result<Resp, RaftError<NodeId, E>>>,
    {
        let ttl = option.hard_ttl();
        let work = async {
            let (raft, delay) = self.router.route(self.from, self.target)?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let req = roundtrip(&req)?;
            let res = f(raft, req).await;
            // The response crosses the same link back.
            self.router.route(self.target, self.from)?;
            roundtrip(&res)
        };
        match tokio::time::timeout(ttl, work).await {
            Err(_) => Err(timeout_error(action, self.from, self.target, ttl)),
            Ok(Err(e)) => Err(to_rpc_error(e, action, entries)),
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(RPCError::RemoteError(openraft::error::RemoteError::new(
                self.target,
                e,
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for RouterNetwork {
    async fn append_entries(
        &mut self,
        rpc: typ::AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<typ::AppendEntriesResponse, typ::RPCError> {
        let n = rpc.entries.len();
        self.call(
            RPCTypes::AppendEntries,
            rpc,
            n,
            &option,
            |raft, req| async move { raft.append_entries(req).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: typ::InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<typ::InstallSnapshotResponse, typ::RPCError<InstallSnapshotError>> {
        self.call(
            RPCTypes::InstallSnapshot,
            rpc,
            0,
            &option,
            |raft, req| async move { raft.install_snapshot(req).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: typ::VoteRequest,
        option: RPCOption,
    ) -> Result<typ::VoteResponse, typ::RPCError> {
        self.call(RPCTypes::Vote, rpc, 0, &option, |raft, req| async move {
            raft.vote(req).await
        })
        .await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
