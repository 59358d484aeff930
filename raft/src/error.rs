//! Errors of the raft crate, with the context needed to act on them.
//!
//! [`RaftGroupError`] is what the broker sees; [`ConfigError`] is returned by configuration
//! validation before anything starts. openraft's own error types stay inside this crate.

use std::io;

use crate::types::{NodeId, PeerNode};

/// A configuration value was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Errors of a running broker group.
#[derive(Debug, thiserror::Error)]
pub enum RaftGroupError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// This node is not the leader (or not yet ready to take writes as leader).
    #[error("not leader (leader: {leader:?})")]
    NotLeader {
        leader: Option<NodeId>,
        leader_node: Option<PeerNode>,
    },

    /// The Raft core stopped (storage failure, panic or shutdown); the node must be fenced.
    #[error("raft stopped: {0}")]
    Fatal(String),

    /// The group has been shut down.
    #[error("group is shut down")]
    Shutdown,

    /// The entry was handed to Raft, but this node stopped leading (or stopped) before it was
    /// known committed: it may still commit under the next leader, or be truncated. A writer
    /// must treat the write as possibly done (a retry may duplicate it).
    #[error("outcome unknown: {0}")]
    Indeterminate(String),

    /// A write or admin request failed inside openraft for another reason.
    #[error("raft {op} failed: {reason}")]
    Raft { op: &'static str, reason: String },

    /// A command was rejected before it was proposed.
    #[error("invalid command: {0}")]
    InvalidCommand(String),

    /// The request did not finish in time.
    #[error("{op} timed out")]
    Timeout { op: &'static str },

    #[error("{op} {addr}: {source}")]
    Io {
        op: &'static str,
        addr: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = RaftGroupError> = std::result::Result<T, E>;

impl RaftGroupError {
    /// The same error for another waiter of one failed batch (I/O sources are not cloneable,
    /// so they travel as text).
    pub fn duplicate(&self) -> RaftGroupError {
        match self {
            RaftGroupError::NotLeader {
                leader,
                leader_node,
            } => RaftGroupError::NotLeader {
                leader: *leader,
                leader_node: leader_node.clone(),
            },
            RaftGroupError::Fatal(s) => RaftGroupError::Fatal(s.clone()),
            RaftGroupError::Shutdown => RaftGroupError::Shutdown,
            RaftGroupError::Indeterminate(s) => RaftGroupError::Indeterminate(s.clone()),
            RaftGroupError::Timeout { op } => RaftGroupError::Timeout { op },
            RaftGroupError::InvalidCommand(s) => RaftGroupError::InvalidCommand(s.clone()),
            other => RaftGroupError::Raft {
                op: "send",
                reason: other.to_string(),
            },
        }
    }
}
