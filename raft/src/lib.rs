//! raftmq-raft: replication of a broker group's commitlog with openraft (`=0.9.25`).
//!
//! The Raft log **is** the commitlog of `raftmq-store`: every entry is one record of the
//! store's segment files, and applying a committed entry is dispatching it into consumequeue
//! and index files. This crate owns everything Raft: the openraft type configuration, the
//! log-storage and state-machine adapters over the store, the peer transport (length-prefixed
//! binary TCP with a node-id handshake), the proposer that batches sends into entries, and the
//! group lifecycle with its role watcher.
//!
//! It knows nothing of the RocketMQ remoting protocol: the broker builds [`BrokerCommand`]s
//! and reads [`CommandResult`]s. No other crate imports openraft.
//!
//! Layout:
//! - [`types`]: `TypeConfig`, [`NodeId`], [`PeerNode`], the [`typ`] aliases.
//! - [`command`]: [`BrokerCommand`] (openraft `D`) and [`CommandResult`] (openraft `R`).
//! - [`codec`]: versioned bincode payloads.
//! - [`config`]: [`RaftGroupConfig`] from the DLedger keys, validated.
//! - [`error`]: [`RaftGroupError`], [`ConfigError`].
//! - [`group`]: [`RaftGroup`] lifecycle, [`Role`] watcher, metrics, membership calls.
//! - [`entry`]: openraft entries ↔ commitlog records.
//! - [`log_store`]: [`LogStore`], openraft's log storage over the commitlog.
//! - [`state_machine`]: [`StateMachine`], apply = dispatch; metadata; snapshots.
//! - [`storage`]: [`open_storage`] of one node's store root.
//! - [`node`]: [`start_node`], everything a broker needs in one call.
//! - [`proposer`]: [`Proposer`], group commit of sends and the per-term queue-offset sequencer.
//! - [`network`]: the peer transport (frames, client, server) and an in-memory router for tests.

pub mod codec;
pub mod command;
pub mod config;
pub mod entry;
pub mod error;
pub mod group;
pub mod log_store;
pub mod network;
pub mod node;
pub mod proposer;
pub mod state_machine;
pub mod storage;
pub mod types;

pub use command::{AppendedMessage, BrokerCommand, CommandResult, OffsetCommit};
pub use config::RaftGroupConfig;
pub use error::{ConfigError, RaftGroupError};
pub use group::{GroupMetrics, RaftGroup, Role, Transport};
pub use log_store::LogStore;
pub use node::{start_node, BrokerNode};
pub use proposer::{Proposer, ProposerLimits, QueueOffsetSource};
pub use state_machine::{CheckpointPolicy, StateMachine};
pub use storage::{open_storage, open_storage_with_fs, NodeStorage, StorageConfig};
pub use types::{typ, NodeId, PeerNode, TypeConfig};
