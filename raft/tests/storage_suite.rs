//! openraft's storage conformance suite against the real store: the commitlog (segments,
//! entry index, meta file, writer) as the log, the dispatcher and metadata tables as
//! the state machine, each case in a fresh temporary directory.
#![allow(clippy::unwrap_used)]

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use raftmq_raft::{open_storage, LogStore, NodeId, StateMachine, StorageConfig, TypeConfig};
use raftmq_store::commitlog::CommitLogConfig;
use tempfile::TempDir;

struct RealStore;

fn small() -> StorageConfig {
    StorageConfig {
        commitlog: CommitLogConfig {
            segment_size: 64 * 1024,
            index_file_size: 32 * 1024,
            ..Default::default()
        },
        ..Default::default()
    }
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RealStore {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let s = open_storage(dir.path(), &small(), 1 << 20).unwrap();
        Ok((dir, s.log_store, s.state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes_on_the_real_store() {
    Suite::test_all(RealStore).unwrap();
}
