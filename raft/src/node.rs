//! One broker-group node in one call: storage, Raft group and proposer, wired together.
//!
//! This is what the broker starts: [`start_node`] opens the store root (commitlog,
//! dispatcher, metadata), starts the [`RaftGroup`] on it and the [`Proposer`] seeded from
//! the state machine's queue table. The broker keeps the [`StateMachine`] and [`CommitLog`]
//! handles for its read paths (pull, offsets, admin).

use std::path::Path;

use raftmq_store::commitlog::{CommitLog, RecoveryReport};

use crate::config::RaftGroupConfig;
use crate::error::{RaftGroupError, Result};
use crate::group::{RaftGroup, Transport};
use crate::proposer::Proposer;
use crate::state_machine::StateMachine;
use crate::storage::{open_storage, StorageConfig};

/// A running node and the handles the broker reads through.
pub struct BrokerNode {
    pub group: RaftGroup,
    pub proposer: Proposer,
    pub state_machine: StateMachine,
    pub commit_log: CommitLog,
    pub recovery: RecoveryReport,
}

/// Open `root` and start the node (see [`RaftGroup::start`] for `bootstrap`).
pub async fn start_node(
    cfg: &RaftGroupConfig,
    root: &Path,
    storage: &StorageConfig,
    transport: Transport,
    bootstrap: bool,
) -> Result<BrokerNode> {
    let max_record = raftmq_store::format::max_payload(storage.commitlog.segment_size);
    if cfg.max_batch_bytes as u64 > max_record {
        return Err(RaftGroupError::Config(crate::error::ConfigError::Invalid {
            key: "max_batch_bytes",
            reason: format!(
                "{} exceeds the largest record a {}-byte segment holds ({max_record})",
                cfg.max_batch_bytes, storage.commitlog.segment_size
            ),
        }));
    }
    let s = open_storage(root, storage, cfg.replication_max_bytes)
        .map_err(|e| RaftGroupError::Fatal(e.to_string()))?;
    let mut group = RaftGroup::start(
        cfg,
        transport,
        s.log_store,
        s.state_machine.clone(),
        bootstrap,
    )
    .await?;
    group.set_commit_log(s.commit_log.clone());
    let proposer = group.proposer(s.state_machine.queue_offsets());
    Ok(BrokerNode {
        group,
        proposer,
        state_machine: s.state_machine,
        commit_log: s.commit_log,
        recovery: s.recovery,
    })
}

impl BrokerNode {
    /// Checkpoint the state machine and stop the group cleanly.
    pub async fn shutdown(self) -> Result<()> {
        drop(self.proposer);
        let cp = self.state_machine.checkpoint().await;
        self.group.shutdown().await?;
        cp.map_err(|e| RaftGroupError::Fatal(e.to_string()))
    }
}
