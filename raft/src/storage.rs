//! Opening one node's storage: the commitlog, the dispatcher and the metadata tables under a
//! store root, wrapped as openraft's log store and state machine.
//!
//! Layout under `root`: `commitlog/` (segments, entry index, meta file, lock), the
//! dispatcher's `consumequeue/`, `index/` and checkpoint, and `meta/` (metadata tables).
//! If a crash left the dispatcher ahead of the recovered commitlog, its derived files are
//! rolled back to the log's end before anything runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raftmq_store::commitlog::{CommitLog, CommitLogConfig, RecoveryReport};
use raftmq_store::dispatch::{DispatchConfig, Dispatcher};
use raftmq_store::io::{FileSystem, StdFileSystem};
use raftmq_store::metadata::Metadata;
use raftmq_store::StoreError;

use crate::log_store::LogStore;
use crate::state_machine::{install_marker, CheckpointPolicy, StateMachine};

/// Settings of one node's storage.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    pub commitlog: CommitLogConfig,
    pub dispatch: DispatchConfig,
    pub checkpoint: CheckpointPolicy,
}

/// One node's storage, ready for [`crate::RaftGroup::start`].
pub struct NodeStorage {
    pub commit_log: CommitLog,
    pub log_store: LogStore,
    pub state_machine: StateMachine,
    pub recovery: RecoveryReport,
}

/// Errors opening storage, with the directory concerned.
#[derive(Debug, thiserror::Error)]
#[error("open storage {dir}: {source}")]
pub struct OpenStorageError {
    pub dir: PathBuf,
    #[source]
    pub source: StoreError,
}

/// Open (or create) the storage under `root`; `max_read_bytes` caps one replication read.
pub fn open_storage(
    root: &Path,
    cfg: &StorageConfig,
    max_read_bytes: usize,
) -> Result<NodeStorage, OpenStorageError> {
    open_storage_with_fs(root, cfg, max_read_bytes, StdFileSystem::arc())
}

/// [`open_storage`] through a given file system (fault injection in tests).
pub fn open_storage_with_fs(
    root: &Path,
    cfg: &StorageConfig,
    max_read_bytes: usize,
    fs: Arc<dyn FileSystem>,
) -> Result<NodeStorage, OpenStorageError> {
    let at = |dir: PathBuf| move |source| OpenStorageError { dir, source };
    let cl_dir = root.join("commitlog");
    let (commit_log, recovery) =
        CommitLog::open(&cl_dir, cfg.commitlog.clone(), fs.clone()).map_err(at(cl_dir.clone()))?;
    let mut dispatcher =
        Dispatcher::open_with_fs(root, cfg.dispatch.clone(), fs).map_err(at(root.to_path_buf()))?;
    let meta_dir = root.join("meta");
    let metadata = Metadata::open(&meta_dir).map_err(at(meta_dir.clone()))?;

    let snapshot_dir = root.join("snapshots");
    let install = install_marker::read(&snapshot_dir).map_err(|e| OpenStorageError {
        dir: snapshot_dir.clone(),
        source: StoreError::io("read", &snapshot_dir, e),
    })?;
    if let Some((snap, next_pos)) = install {
        let st = commit_log.state();
        if dispatcher.applied() == Some(snap) && st.next_index <= snap.index + 1 {
            // The state machine holds the snapshot; the log was not restarted after it yet.
            tracing::warn!(
                snapshot = snap.index,
                next_pos,
                log_next = st.next_index,
                "finishing an interrupted snapshot install: the commitlog restarts after it"
            );
            commit_log
                .reset(snap, next_pos)
                .map_err(at(cl_dir.clone()))?;
        }
        install_marker::remove(&snapshot_dir).map_err(|e| OpenStorageError {
            dir: snapshot_dir.clone(),
            source: StoreError::io("remove", &snapshot_dir, e),
        })?;
    }
    let st = commit_log.state();
    if let Some(applied) = dispatcher.applied() {
        if applied.index >= st.next_index {
            tracing::warn!(
                applied = applied.index,
                log_next = st.next_index,
                "dispatcher ahead of the recovered commitlog; rolling derived files back"
            );
            dispatcher
                .truncate_from_pos(st.next_pos)
                .map_err(at(root.to_path_buf()))?;
            dispatcher.reset_applied(st.last, st.next_pos);
        }
    }
    let state_machine = StateMachine::new(
        commit_log.clone(),
        dispatcher,
        metadata,
        cfg.checkpoint,
        Some(snapshot_dir),
    )
    .map_err(|e| OpenStorageError {
        dir: root.to_path_buf(),
        source: StoreError::Fatal(e.to_string()),
    })?;
    Ok(NodeStorage {
        log_store: LogStore::new(commit_log.clone(), max_read_bytes),
        commit_log,
        state_machine,
        recovery,
    })
}
