//! Peer transport of a broker group: length-prefixed binary TCP between group members.
//!
//! - [`frame`]: `[len u32][kind u8][req_id u64][bincode body]`, two-phase check/parse.
//! - [`client`]: [`TcpNetworkFactory`] (openraft's `RaftNetworkFactory`): one persistent,
//!   pipelined connection per target (requests matched by `req_id`), `TCP_NODELAY`, lazy
//!   connect with a handshake, reconnect with backoff, bounded send queue, max frame size.
//! - [`server`]: [`PeerListener`]/[`PeerServer`]: accepts peers, checks the handshake (group
//!   name, addressed node id, no self-connection) and dispatches to `Raft::{append_entries,
//!   vote, install_snapshot}`.
//! - [`router`]: an in-memory [`Router`] implementing the same factory, for tests: drop,
//!   delay, partition.
//!
//! Transport failures map onto openraft's `RPCError` in one place, [`to_rpc_error`]. This
//! module knows nothing of the RocketMQ remoting protocol or of the store.

pub mod client;
pub mod frame;
pub mod router;
pub mod server;

use std::io;
use std::time::Duration;

use openraft::error::{NetworkError, PayloadTooLarge, RPCError, RaftError, Timeout, Unreachable};
use openraft::network::RPCTypes;
use serde::{Deserialize, Serialize};

pub use client::{PeerClient, TcpNetwork, TcpNetworkFactory};
pub use frame::{Frame, FrameError, FrameKind};
pub use router::{Router, RouterNetwork};
pub use server::{PeerListener, PeerServer};

use crate::codec::CodecError;
use crate::config::RaftGroupConfig;
use crate::types::{NodeId, PeerNode};

/// Settings shared by the client and server sides of the transport.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Group name; a peer announcing another group is refused.
    pub group: String,
    /// This node's id; a peer must address exactly this id, and must not be this id.
    pub self_id: NodeId,
    /// Largest frame sent or accepted, header included.
    pub max_frame_bytes: usize,
    pub connect_timeout: Duration,
    /// Deadline for the handshake once connected.
    pub handshake_timeout: Duration,
    /// Most inbound connections served at once.
    pub max_inbound_connections: usize,
    /// Most requests of one connection being served at once (server) / frames queued for
    /// writing (client); beyond that the reader or the caller waits.
    pub max_inflight_per_connection: usize,
    /// First and longest wait between reconnect attempts to one peer.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl TransportConfig {
    pub fn from_group(cfg: &RaftGroupConfig) -> Self {
        TransportConfig {
            group: cfg.group.clone(),
            self_id: cfg.self_id,
            max_frame_bytes: cfg.max_frame_bytes,
            connect_timeout: cfg.connect_timeout,
            handshake_timeout: cfg.connect_timeout,
            max_inbound_connections: cfg.max_inbound_connections,
            max_inflight_per_connection: 64,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(1000),
        }
    }
}

/// First frame of every connection, client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub group: String,
    pub from: NodeId,
    pub to: NodeId,
}

impl Hello {
    /// Why the server must refuse this handshake, if it must.
    pub fn check(&self, cfg: &TransportConfig) -> Result<(), String> {
        if self.version != frame::PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} not supported (want {})",
                self.version,
                frame::PROTOCOL_VERSION
            ));
        }
        if self.group != cfg.group {
            return Err(format!(
                "group {:?} is not this node's group {:?}",
                self.group, cfg.group
            ));
        }
        if self.to != cfg.self_id {
            return Err(format!(
                "addressed node n{} but this is n{}",
                self.to, cfg.self_id
            ));
        }
        if self.from == cfg.self_id {
            return Err(format!("node n{} connecting to itself", self.from));
        }
        Ok(())
    }
}

/// Administrative requests between group members (leadership transfer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Switch the receiver's election timer off for at most `millis`; it comes back on by
    /// itself, so a requester that dies mid-transfer cannot leave the group unable to elect.
    PauseElect { millis: u64 },
    /// Switch the receiver's election timer back on.
    ResumeElect,
    /// Make the receiver start an election now.
    Elect,
}

impl AdminRequest {
    /// Carry out the request on the local node.
    pub async fn execute(self, raft: &crate::types::typ::Raft) -> Result<(), String> {
        match self {
            AdminRequest::PauseElect { millis } => {
                raft.runtime_config().elect(false);
                let raft = raft.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    raft.runtime_config().elect(true);
                });
                Ok(())
            }
            AdminRequest::ResumeElect => {
                raft.runtime_config().elect(true);
                Ok(())
            }
            AdminRequest::Elect => raft.trigger().elect().await.map_err(|e| e.to_string()),
        }
    }
}

/// Why a request could not be carried to its target.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("io with {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{addr} refused the handshake: {reason}")]
    Rejected { addr: String, reason: String },
    #[error("bad frame from {addr}: {source}")]
    Frame {
        addr: String,
        #[source]
        source: FrameError,
    },
    #[error("request of {size} bytes exceeds the frame limit of {max}")]
    RequestTooLarge { size: usize, max: usize },
    #[error("connection to {addr} closed")]
    Closed { addr: String },
    #[error("backing off from {addr} after {failures} failed connects")]
    BackingOff { addr: String, failures: u32 },
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("refusing to send to this node itself (n{0})")]
    SelfTarget(NodeId),
    #[error("peer n{0} is unreachable (partitioned)")]
    Partitioned(NodeId),
    #[error("unexpected response kind {got:?} from {addr}")]
    UnexpectedKind { addr: String, got: FrameKind },
}

/// The one place that turns a transport failure into openraft's `RPCError` (openraft.md §6):
/// connect, IO and handshake failures are `Unreachable` (openraft backs off), an oversized
/// request is `PayloadTooLarge` with a halved entries hint (openraft splits the batch), a
/// malformed response is a `Network` error.
pub fn to_rpc_error<E: std::error::Error>(
    err: TransportError,
    action: RPCTypes,
    entries: usize,
) -> RPCError<NodeId, PeerNode, RaftError<NodeId, E>> {
    match err {
        TransportError::RequestTooLarge { .. }
            if action == RPCTypes::AppendEntries && entries > 1 =>
        {
            RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1) as u64)
                    .with_source_error(&err),
            )
        }
        TransportError::Codec(_)
        | TransportError::UnexpectedKind { .. }
        | TransportError::Frame { .. } => RPCError::Network(NetworkError::new(&err)),
        TransportError::Connect { .. }
        | TransportError::Io { .. }
        | TransportError::Rejected { .. }
        | TransportError::RequestTooLarge { .. }
        | TransportError::Closed { .. }
        | TransportError::BackingOff { .. }
        | TransportError::SelfTarget(_)
        | TransportError::Partitioned(_) => RPCError::Unreachable(Unreachable::new(&err)),
    }
}

/// openraft's `Timeout` error for an RPC that exceeded its hard TTL.
pub fn timeout_error<E: std::error::Error>(
    action: RPCTypes,
    from: NodeId,
    target: NodeId,
    ttl: Duration,
) -> RPCError<NodeId, PeerNode, RaftError<NodeId, E>> {
    RPCError::Timeout(Timeout {
        action,
        id: from,
        target,
        timeout: ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TransportConfig {
        let peers = crate::config::parse_peers("n0-127.0.0.1:1;n1-127.0.0.1:2").unwrap();
        TransportConfig::from_group(&RaftGroupConfig::new("g", 1, peers))
    }

    #[test]
    fn handshake_checks() {
        let c = cfg();
        let ok = Hello {
            version: frame::PROTOCOL_VERSION,
            group: "g".into(),
            from: 0,
            to: 1,
        };
        assert!(ok.check(&c).is_ok());
        assert!(Hello {
            group: "h".into(),
            ..ok.clone()
        }
        .check(&c)
        .is_err());
        assert!(Hello {
            to: 2,
            ..ok.clone()
        }
        .check(&c)
        .is_err());
        assert!(Hello {
            from: 1,
            ..ok.clone()
        }
        .check(&c)
        .is_err());
        assert!(Hello { version: 99, ..ok }.check(&c).is_err());
    }

    #[test]
    fn error_mapping() {
        type E = openraft::error::Infallible;
        let e = to_rpc_error::<E>(
            TransportError::RequestTooLarge { size: 10, max: 5 },
            RPCTypes::AppendEntries,
            8,
        );
        match e {
            RPCError::PayloadTooLarge(p) => assert_eq!(p.entries_hint(), 4),
            other => panic!("{other:?}"),
        }
        let e = to_rpc_error::<E>(
            TransportError::Closed { addr: "a".into() },
            RPCTypes::Vote,
            0,
        );
        assert!(matches!(e, RPCError::Unreachable(_)));
        let e = to_rpc_error::<E>(
            TransportError::RequestTooLarge { size: 10, max: 5 },
            RPCTypes::AppendEntries,
            1,
        );
        assert!(matches!(e, RPCError::Unreachable(_)));
    }
}
