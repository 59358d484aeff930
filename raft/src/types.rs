//! openraft type configuration for a raftmq broker group.
//!
//! Owns [`TypeConfig`] (the `declare_raft_types!` declaration), the node id and node types, and
//! the [`typ`] module of aliases for openraft's generic types instantiated with our config.
//! Every other module of this crate names openraft types through here; no crate outside
//! `raft/` sees openraft at all.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{BrokerCommand, CommandResult};

/// Raft node id. DLedger peer names `n0`, `n1`, ... map to 0, 1, ...
pub type NodeId = u64;

/// A member of the group: where its Raft transport listens and where its broker serves clients.
///
/// Membership entries carry these, so the replicated membership doubles as the peer directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of the peer transport (the address in `dLegerPeers`).
    pub raft_addr: String,
    /// `host:port` of the broker's RocketMQ remoting listener; empty when not known.
    pub broker_addr: String,
}

impl PeerNode {
    /// A node known only by its Raft address.
    pub fn new(raft_addr: impl Into<String>) -> Self {
        PeerNode {
            raft_addr: raft_addr.into(),
            broker_addr: String::new(),
        }
    }
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={}", self.raft_addr)?;
        if !self.broker_addr.is_empty() {
            write!(f, ",broker={}", self.broker_addr)?;
        }
        Ok(())
    }
}

openraft::declare_raft_types!(
    /// The openraft type configuration of a broker group.
    pub TypeConfig:
        D = BrokerCommand,
        R = CommandResult,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// openraft's generic types instantiated with [`TypeConfig`].
pub mod typ {
    use super::{NodeId, PeerNode, TypeConfig};

    pub type Raft = openraft::Raft<TypeConfig>;
    pub type Entry = openraft::Entry<TypeConfig>;
    pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
    pub type LogId = openraft::LogId<NodeId>;
    pub type Vote = openraft::Vote<NodeId>;
    pub type LeaderId = openraft::CommittedLeaderId<NodeId>;
    pub type Membership = openraft::Membership<NodeId, PeerNode>;
    pub type StoredMembership = openraft::StoredMembership<NodeId, PeerNode>;
    pub type LogState = openraft::storage::LogState<TypeConfig>;
    pub type LogFlushed = openraft::storage::LogFlushed<TypeConfig>;
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, PeerNode>;
    pub type RaftMetrics = openraft::RaftMetrics<NodeId, PeerNode>;
    pub type ServerMetrics = openraft::metrics::RaftServerMetrics<NodeId, PeerNode>;
    pub type DataMetrics = openraft::metrics::RaftDataMetrics<NodeId>;

    pub type StorageError = openraft::StorageError<NodeId>;
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
    pub type RPCError<E = openraft::error::Infallible> =
        openraft::error::RPCError<NodeId, PeerNode, RaftError<E>>;
    pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, PeerNode>;
    pub type ClientWriteResponse = openraft::raft::ClientWriteResponse<TypeConfig>;
    pub type ForwardToLeader = openraft::error::ForwardToLeader<NodeId, PeerNode>;
    pub type InitializeError = openraft::error::InitializeError<NodeId, PeerNode>;
    pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
    pub type Fatal = openraft::error::Fatal<NodeId>;

    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
    pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
    pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
    pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
}
