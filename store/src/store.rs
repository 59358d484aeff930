//! The store façade: one store root directory with everything a broker node keeps on disk.
//!
//! Owns the root layout (`storePathRootDir`, RocketMQ's names plus `meta/`):
//!
//! ```text
//! <root>/lock           held while open (a second process gets StoreError::Locked)
//! <root>/abort          present while open; found at start = the last stop was unclean
//! <root>/commitlog/     the Raft log (segments, entry index, meta)
//! <root>/consumequeue/<topic>/<queueId>/   consumequeue files
//! <root>/index/         hash index files
//! <root>/checkpoint     dispatch checkpoint
//! <root>/meta/          metadata tables (topics, groups, consumer offsets)
//! ```
//!
//! At open it reconciles the derived files with the log: the dispatcher trims everything
//! past its checkpoint, and if the log itself ends before that point (it lost a tail that
//! was never durable) the derived files are cut back to the log's end as well, so
//! re-dispatching the entries after the applied index is exact. It wires the read path
//! (pull, time search) from consumequeue units to commitlog bytes. It knows nothing of Raft
//! libraries or sockets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::commitlog::{CommitLog, RecoveryReport, StoredEntry};
use crate::config::CommitLogConfig;
use crate::consume_queue::{CqUnit, PhysReader};
use crate::dirlock::StoreDir;
use crate::dispatch::{DispatchConfig, DispatchedMessage, Dispatcher};
use crate::error::{Result, StoreError};
use crate::io::{FileSystem, StdFileSystem};
use crate::message::{store_timestamp_from_prefix, MessageView, STORE_TIMESTAMP_PREFIX_LEN};
use crate::metadata::Metadata;

/// Directory of the commitlog inside the root.
pub const COMMITLOG_DIR: &str = "commitlog";
/// Directory of the metadata tables inside the root.
pub const META_DIR: &str = "meta";

/// Everything configurable about a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreConfig {
    pub commitlog: CommitLogConfig,
    pub dispatch: DispatchConfig,
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// The root's `abort` marker was absent: the last stop was clean.
    pub clean: bool,
    /// What commitlog recovery did.
    pub commitlog: RecoveryReport,
    /// True when the derived files were cut back because the log ended before the checkpoint.
    pub derived_rolled_back: bool,
}

/// Messages read for one pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullResult {
    /// Stored messages (the bytes a pull response carries), with their queue offsets.
    pub messages: Vec<(i64, Bytes)>,
    /// Offset the next pull should ask for.
    pub next_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
}

/// Reads store timestamps from the commitlog for consumequeue time searches; install it with
/// [`Dispatcher::set_phys_reader`] when the dispatcher is used without [`Store`].
#[derive(Clone, Debug)]
pub struct CommitLogReader(pub CommitLog);

impl PhysReader for CommitLogReader {
    fn store_timestamp(&self, phys_offset: i64, size: i32) -> Result<Option<i64>> {
        let (Ok(pos), Ok(size)) = (u64::try_from(phys_offset), usize::try_from(size)) else {
            return Ok(None);
        };
        let len = size.min(STORE_TIMESTAMP_PREFIX_LEN);
        match self.0.read_at(pos, len) {
            Ok(b) => Ok(Some(store_timestamp_from_prefix(&b)?)),
            Err(StoreError::OutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// An open store root.
pub struct Store {
    root: PathBuf,
    dir: StoreDir,
    commitlog: CommitLog,
    dispatcher: Arc<RwLock<Dispatcher>>,
    metadata: Arc<Metadata>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

impl Store {
    /// Opens `root` on the real file system.
    pub fn open(root: &Path, cfg: StoreConfig) -> Result<(Store, OpenReport)> {
        Self::open_with_fs(root, cfg, StdFileSystem::arc())
    }

    /// Opens `root` through `fs` (fault injection in tests).
    pub fn open_with_fs(
        root: &Path,
        cfg: StoreConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<(Store, OpenReport)> {
        let (dir, clean) = StoreDir::open_with(root, Arc::clone(&fs))?;
        let (commitlog, log_report) =
            CommitLog::open(&root.join(COMMITLOG_DIR), cfg.commitlog, Arc::clone(&fs))?;
        let metadata = Arc::new(Metadata::open(&root.join(META_DIR))?);
        let mut dispatcher = Dispatcher::open_with_fs(root, cfg.dispatch, Arc::clone(&fs))?;

        let state = commitlog.state();
        let mut rolled_back = false;
        if dispatcher.next_pos() > state.next_pos {
            // The log lost a tail the derived files had applied: only possible when that tail
            // was never durable (async flush and a power cut). Cut the derived files back.
            tracing::error!(
                dispatched_to = dispatcher.next_pos(),
                log_end = state.next_pos,
                "commitlog ends before the dispatch checkpoint; rolling derived files back"
            );
            dispatcher.truncate_from_pos(state.next_pos)?;
            dispatcher.reset_applied(state.last, state.next_pos);
            dispatcher.checkpoint()?;
            rolled_back = true;
        }
        if let (Some(purged), applied) = (state.purged, dispatcher.applied_index()) {
            if applied.is_none_or(|a| a < purged.index) {
                return Err(StoreError::corruption(
                    root.join(crate::checkpoint::CHECKPOINT_FILE),
                    0,
                    format!(
                        "derived files applied up to {applied:?} but the log is purged up to {}: \
                         the entries in between cannot be re-dispatched",
                        purged.index
                    ),
                ));
            }
        }
        if state.first_pos > 0 {
            // Files only remember whole-file purges; move every queue's min offset to the
            // log's first position again.
            dispatcher.purge_below_pos(state.first_pos)?;
        }
        dispatcher.set_phys_reader(Arc::new(CommitLogReader(commitlog.clone())));
        Ok((
            Store {
                root: root.to_path_buf(),
                dir,
                commitlog,
                dispatcher: Arc::new(RwLock::new(dispatcher)),
                metadata,
            },
            OpenReport {
                clean,
                commitlog: log_report,
                derived_rolled_back: rolled_back,
            },
        ))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commitlog (a cheap clone handle).
    pub fn commitlog(&self) -> &CommitLog {
        &self.commitlog
    }

    /// The dispatcher, shared: the state machine writes, pull and admin paths read.
    pub fn dispatcher(&self) -> Arc<RwLock<Dispatcher>> {
        Arc::clone(&self.dispatcher)
    }

    /// The metadata tables.
    pub fn metadata(&self) -> Arc<Metadata> {
        Arc::clone(&self.metadata)
    }

    fn read(&self) -> RwLockReadGuard<'_, Dispatcher> {
        self.dispatcher.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Dispatcher> {
        self.dispatcher.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one committed entry (see [`Dispatcher::dispatch`]).
    pub fn dispatch(&self, entry: &StoredEntry) -> Result<Vec<DispatchedMessage>> {
        self.write().dispatch(entry)
    }

    /// Re-applies committed entries after the applied index, up to `upto` (inclusive), from
    /// the log. A Raft state machine gets these from openraft instead; tools and tests use
    /// this. Returns how many entries were applied.
    pub fn dispatch_committed(&self, upto: u64) -> Result<u64> {
        let mut n = 0u64;
        loop {
            let next = self.read().applied_index().map_or(
                self.commitlog.state().purged.map_or(0, |p| p.index + 1),
                |a| a + 1,
            );
            if next > upto {
                return Ok(n);
            }
            let batch = self.commitlog.entries(next, upto + 1, 4 << 20)?;
            if batch.is_empty() {
                return Ok(n);
            }
            let mut d = self.write();
            for e in &batch {
                d.dispatch(e)?;
                n += 1;
            }
        }
    }

    /// Makes the metadata tables and the derived files durable, then records the dispatch
    /// checkpoint (in that order, so the checkpoint never claims more than is on disk).
    pub fn checkpoint(&self) -> Result<()> {
        self.metadata.flush()?;
        self.write().checkpoint()
    }

    /// Reads up to `max_count` messages (and about `max_bytes`, at least one) of a queue from
    /// `offset`, skipping units whose tags code `filter` rejects. An offset below the queue's
    /// minimum starts at the minimum.
    pub fn pull(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn Fn(i64) -> bool,
    ) -> Result<PullResult> {
        let units: Vec<(i64, CqUnit)>;
        let (min, max);
        {
            let d = self.read();
            min = d.min_offset(topic, queue_id);
            max = d.max_offset(topic, queue_id);
            units = d.units(topic, queue_id, offset.max(min), max_count.max(1) * 4)?;
        }
        let mut out = PullResult {
            messages: Vec::new(),
            next_offset: offset.max(min).min(max),
            min_offset: min,
            max_offset: max,
        };
        let mut bytes = 0usize;
        for (off, u) in units {
            if out.messages.len() >= max_count {
                break;
            }
            let size = usize::try_from(u.size).unwrap_or(0);
            if !out.messages.is_empty() && bytes + size > max_bytes {
                break;
            }
            out.next_offset = off + 1;
            if !filter(u.tags_code) {
                continue;
            }
            let pos = u64::try_from(u.phys_offset).map_err(|_| StoreError::Corruption {
                file: self.root.join("consumequeue").join(topic),
                offset: off as u64 * 20,
                reason: format!("negative physical offset {}", u.phys_offset),
            })?;
            let b = match self.commitlog.read_at(pos, size) {
                Ok(b) => b,
                // Purged under our feet: the caller retries from the new min offset.
                Err(StoreError::OutOfRange { .. }) => break,
                Err(e) => return Err(e),
            };
            bytes += size;
            out.messages.push((off, b));
        }
        Ok(out)
    }

    /// The stored message at a commitlog position (view-message-by-id).
    pub fn message_at(&self, phys_offset: i64, size: i32) -> Result<Bytes> {
        let (Ok(pos), Ok(len)) = (u64::try_from(phys_offset), usize::try_from(size)) else {
            return Err(StoreError::InvalidArgument(format!(
                "bad message position {phys_offset}/{size}"
            )));
        };
        self.commitlog.read_at(pos, len)
    }

    /// Store timestamp of the message at a queue offset (`None` outside the queue); the
    /// min offset gives GET_EARLIEST_MSG_STORETIME.
    pub fn store_time_at(&self, topic: &str, queue_id: i32, offset: i64) -> Result<Option<i64>> {
        let unit = self.read().unit(topic, queue_id, offset)?;
        match unit {
            Some(u) => {
                CommitLogReader(self.commitlog.clone()).store_timestamp(u.phys_offset, u.size)
            }
            None => Ok(None),
        }
    }

    /// The stored message starting at a commitlog position, its size read from its own
    /// TOTALSIZE (view by offsetMsgId; query results). Checks the record's layout.
    pub fn message_at_pos(&self, phys_offset: i64) -> Result<Bytes> {
        let pos = u64::try_from(phys_offset).map_err(|_| {
            StoreError::InvalidArgument(format!("bad message position {phys_offset}"))
        })?;
        let head = self.commitlog.read_at(pos, 4)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&head);
        let size = i32::from_be_bytes(b);
        let len = usize::try_from(size)
            .ok()
            .filter(|s| *s >= crate::message::MIN_STORED_SIZE)
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!(
                    "no stored message at {phys_offset} (TOTALSIZE {size})"
                ))
            })?;
        let bytes = self.commitlog.read_at(pos, len)?;
        MessageView::parse(&bytes).map_err(|e| {
            StoreError::InvalidArgument(format!("no stored message at {phys_offset}: {e}"))
        })?;
        Ok(bytes)
    }

    /// Messages of `topic` whose KEYS or UNIQ_KEY equal `key`, stored in `[begin, end]` ms,
    /// newest first, at most `max`. Index hits are verified against the stored message, so
    /// hash collisions and purged positions are dropped (QUERY_MESSAGE).
    pub fn query_messages_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<Bytes>> {
        // Ask the index for more than `max`: some hits may be collisions.
        let hits =
            self.read()
                .query_by_key(topic, key, max.saturating_mul(2).max(16), begin, end)?;
        let mut out = Vec::new();
        for pos in hits {
            if out.len() >= max {
                break;
            }
            let bytes = match self.message_at_pos(pos) {
                Ok(b) => b,
                Err(StoreError::OutOfRange { .. }) => continue,
                Err(e) => return Err(e),
            };
            let v = MessageView::parse(&bytes)?;
            let matches =
                v.topic() == topic && (v.uniq_key() == Some(key) || v.keys().any(|k| k == key));
            if matches {
                out.push(bytes);
            }
        }
        Ok(out)
    }

    /// Deletes derived files wholly below the log's first position (after a purge).
    pub fn purge_derived(&self) -> Result<()> {
        let first = self.commitlog.state().first_pos;
        self.write().purge_below_pos(first)
    }

    /// Clean shutdown: checkpoint, close the commitlog, then remove `abort`.
    pub fn close(mut self) -> Result<()> {
        self.checkpoint()?;
        self.metadata.flush()?;
        self.commitlog.clone().close()?;
        self.dir.mark_clean()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
};
