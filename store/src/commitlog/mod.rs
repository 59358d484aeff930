//! The commitlog: the replicated Raft log kept as RocketMQ-style segment files.
//!
//! Owns the segment list, the entry index, the meta file (vote, committed, purged, start),
//! the single writer (appends on the caller's thread, the rest on its own thread) with group
//! commit, truncation, purge and recovery. It knows the record format (`crate::format`) and
//! asks `crate::message` only to patch PHYSICALOFFSET; it knows nothing of Raft libraries,
//! consumequeues or sockets.
//!
//! Directory layout (`dir` given to `CommitLog::open`):
//!
//! | path | content |
//! |---|---|
//! | `00000000000000000000`, `00000000001073741824`, ... | segments, preallocated to `segment_size`, named by the global offset of their first byte |
//! | `entryindex/<20 digits>` | entry-index files: unit of index `i` at global byte `i * 32` |
//! | `meta` | vote, committed, purged, start (index, pos), clean end; atomically replaced |
//! | `lock` | `flock`ed while open |
//! | `abort` | present while open; left behind by an unclean stop |
//!
//! Threads: one writer mutates everything (appends, truncate, purge, reset, meta writes); one
//! flusher msyncs what the writer dirtied and fires completions in order. Readers copy bytes
//! out under a read lock, so they never see a half-applied truncation.

use std::time::Duration;

use bytes::Bytes;

pub use crate::config::{CommitLogConfig, FlushMode, RecoveryMode};
pub use crate::format::EntryKind;

/// Identity of a log entry, as openraft's `LogId` plus the index: (term, leader node, index).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct EntryId {
    pub index: u64,
    pub term: u64,
    /// Node id of the leader that created the entry.
    pub leader: u64,
}

/// An entry to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    pub id: EntryId,
    pub kind: EntryKind,
    /// For `Messages`: concatenated RocketMQ stored messages (PHYSICALOFFSET is patched at
    /// append). For the other kinds: opaque versioned bytes.
    pub payload: Bytes,
}

/// An entry read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub id: EntryId,
    pub kind: EntryKind,
    /// Global offset of the record header; the payload starts at `pos + HEADER_LEN`.
    pub pos: u64,
    /// A copy of the payload (for `Messages`, with PHYSICALOFFSET patched).
    pub payload: Bytes,
}

/// Where the log stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    /// Last entry present, or `None` when the log is empty (then `purged` is the last id).
    pub last: Option<EntryId>,
    /// Last purged entry (everything up to it is gone).
    pub purged: Option<EntryId>,
    /// Index the next append must carry.
    pub next_index: u64,
    /// Global offset where the next record would start (before any roll-over).
    pub next_pos: u64,
    /// Global offset of the first byte still in the log.
    pub first_pos: u64,
}

/// Called once when an append is durable (Sync) or written to the page cache (Async);
/// `Err` when the store was poisoned before that happened. Runs on the flusher (Sync) or
/// writer (Async) thread: keep it short and never call back into the `CommitLog` from it
/// synchronously (send on a channel instead), or the log deadlocks.
pub type Completion = Box<dyn FnOnce(std::io::Result<()>) + Send + 'static>;

/// What `CommitLog::open` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The `abort` marker was absent: the last stop was clean.
    pub clean: bool,
    /// Records whose header and CRC were checked.
    pub records_scanned: u64,
    /// Bytes discarded past the end: the claimed length of a cut record (its header when the
    /// length is unreadable) plus the size of every segment file removed after the end.
    pub bytes_cut: u64,
    /// Entry-index units rewritten from the segments.
    pub index_units_rebuilt: u64,
    /// Why the scan stopped, if it stopped on a bad record rather than a clean end.
    pub cut_reason: Option<String>,
    /// Wall time spent in recovery.
    pub elapsed: Duration,
}

/// One segment file, for retention and inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Global offset of the segment's first byte (its file name).
    pub base: u64,
    /// File size (the configured segment size).
    pub size: u64,
    /// First and last entry indexes whose records start in this segment.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// Last modification time of the file.
    pub mtime: std::time::SystemTime,
    /// True when no more records will be written to it (a later segment exists).
    pub sealed: bool,
}

mod entry_index;
mod meta;
mod recovery;
mod tail;
mod writer;

pub use meta::Meta;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::dirlock::StoreDir;
use crate::error::{Result, StoreError};
use crate::format::{self, IndexUnit, Slot, HEADER_LEN};
use crate::io::FileSystem;
use crate::segment::SegmentList;
use entry_index::EntryIndex;
use writer::Request;

/// Largest entry index the log accepts: its entry-index unit offset (`index * 32`) must fit
/// in a u64 with room to spare.
pub const MAX_INDEX: u64 = u64::MAX / 64;
/// Largest global position: RocketMQ physical offsets are Java longs.
pub const MAX_POS: u64 = i64::MAX as u64 / 2;

fn check_index(what: &'static str, index: u64) -> Result<()> {
    if index > MAX_INDEX {
        return Err(StoreError::InvalidArgument(format!(
            "{what} {index} exceeds the largest entry index {MAX_INDEX}"
        )));
    }
    Ok(())
}

/// Name of the entry-index directory inside the commitlog directory.
pub const ENTRY_INDEX_DIR: &str = "entryindex";

/// The in-memory view of the log, shared by the writer (mutates under the write lock) and
/// readers (copy out under the read lock).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) segments: SegmentList,
    pub(crate) index: EntryIndex,
    pub(crate) first_index: u64,
    pub(crate) first_pos: u64,
    pub(crate) next_index: u64,
    pub(crate) next_pos: u64,
    pub(crate) last: Option<EntryId>,
    pub(crate) purged: Option<EntryId>,
    /// The newest entries as written (see `tail`).
    pub(crate) tail: tail::TailCache,
}

impl Inner {
    fn state(&self) -> LogState {
        LogState {
            last: self.last,
            purged: self.purged,
            next_index: self.next_index,
            next_pos: self.next_pos,
            first_pos: self.first_pos,
        }
    }

    /// The index unit of a present entry; a missing unit inside the log is corruption.
    pub(crate) fn unit(&self, index: u64) -> Result<IndexUnit> {
        self.index.get(index)?.ok_or_else(|| {
            StoreError::corruption(
                self.index_dir(),
                index * format::INDEX_UNIT_LEN as u64,
                format!("entry-index unit of present entry {index} is empty"),
            )
        })
    }

    fn index_dir(&self) -> PathBuf {
        self.segments.dir().join(ENTRY_INDEX_DIR)
    }

    /// Reads and verifies the record of a present entry.
    fn read_entry(&self, index: u64) -> Result<StoredEntry> {
        if let Some(e) = self.tail.get(index) {
            return Ok(e.clone());
        }
        let unit = self.unit(index)?;
        let seg = self.segments.get(unit.pos).ok_or_else(|| {
            StoreError::corruption(
                self.segments.dir(),
                unit.pos,
                format!("segment of entry {index} is missing"),
            )
        })?;
        let bad =
            |reason: String| StoreError::corruption(seg.path(), unit.pos - seg.base(), reason);
        if (unit.record_len as usize) < HEADER_LEN
            || unit.pos + u64::from(unit.record_len) > seg.end()
        {
            return Err(bad(format!(
                "entry {index}: index unit length {} is impossible",
                unit.record_len
            )));
        }
        let mut buf = vec![0u8; unit.record_len as usize];
        seg.read_at(unit.pos, &mut buf)?;
        let h = match format::decode_slot(&buf) {
            Ok(Slot::Record(h)) => h,
            Ok(other) => {
                return Err(bad(format!(
                    "entry {index}: expected a record, found {other:?}"
                )))
            }
            Err(e) => return Err(bad(format!("entry {index}: {}", e.0))),
        };
        if h.id.index != index || h.pos != unit.pos || h.record_len() != u64::from(unit.record_len)
        {
            return Err(bad(format!(
                "entry {index}: header says index {} pos {} len {}",
                h.id.index,
                h.pos,
                h.record_len()
            )));
        }
        if !format::crc_matches(&buf[..HEADER_LEN], &buf[HEADER_LEN..]) {
            return Err(bad(format!("entry {index}: CRC mismatch")));
        }
        let payload = bytes::Bytes::from(buf).slice(HEADER_LEN..);
        Ok(StoredEntry {
            id: h.id,
            kind: h.kind,
            pos: unit.pos,
            payload,
        })
    }

    /// Index of the first entry whose record starts at or after `pos` (binary search over
    /// the entry index; record positions grow with the index).
    fn index_at_or_after(&self, pos: u64) -> Result<u64> {
        let (mut lo, mut hi) = (self.first_index, self.next_index);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.unit(mid)?.pos < pos {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// State shared by every handle, the writer and the flusher.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) cfg: CommitLogConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) inner: RwLock<Inner>,
    /// Last durable vote (what `vote()` returns).
    pub(crate) vote: Mutex<Option<Vec<u8>>>,
    /// Last `save_committed` value (in memory at once; on disk with a later meta write).
    pub(crate) committed: Mutex<Option<EntryId>>,
    /// Set once, never cleared: why the store is poisoned.
    pub(crate) poison: Mutex<Option<String>>,
    pub(crate) poisoned: AtomicBool,
    /// One past the highest index known durable (maintained by the flusher).
    pub(crate) durable_next_index: AtomicU64,
    /// Flush rounds that synced data (for group-commit statistics).
    pub(crate) flushes: AtomicU64,
}

impl Shared {
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Poisons the store (first reason wins) and logs it.
    pub(crate) fn poison(&self, reason: String) {
        let mut p = self.poison.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            tracing::error!(dir = %self.dir.display(), cause = %reason, "commitlog poisoned; no further writes");
            *p = Some(reason);
        }
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// `Err(Fatal)` once poisoned.
    pub(crate) fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        let p = self.poison.lock().unwrap_or_else(|p| p.into_inner());
        Err(StoreError::Fatal(
            p.clone().unwrap_or_else(|| "store poisoned".into()),
        ))
    }
}

/// Owns the writer and flusher threads; the last handle's drop shuts them down cleanly.
#[derive(Debug)]
struct Handle {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer itself: appends lock it on the caller's thread.
    log_writer: writer::SharedWriter,
}

impl Handle {
    fn send(&self, req: Request) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref() {
            Some(tx) => tx
                .send(req)
                .map_err(|_| StoreError::Fatal("commitlog writer thread is gone".into())),
            None => Err(StoreError::Fatal("commitlog is closed".into())),
        }
    }

    fn shutdown(&self) -> Result<()> {
        let (reply, rx) = mpsc::sync_channel(1);
        let sent = self.send(Request::Shutdown { reply });
        let res = match sent {
            Ok(()) => rx
                .recv()
                .unwrap_or_else(|_| Err(StoreError::Fatal("writer thread is gone".into()))),
            Err(e) => Err(e),
        };
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(j) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if j.join().is_err() {
                tracing::error!("commitlog writer thread panicked");
            }
        }
        res
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let open = self.tx.lock().map(|t| t.is_some()).unwrap_or(false);
        if open {
            if let Err(e) = self.shutdown() {
                tracing::warn!(cause = %e, "commitlog shutdown was not clean");
            }
        }
    }
}

/// The replicated log on disk. A cheap `Clone` handle: every clone talks to the same writer
/// thread, and the last one dropped shuts it down cleanly (flush, meta, remove `abort`).
#[derive(Clone, Debug)]
pub struct CommitLog {
    shared: Arc<Shared>,
    handle: Arc<Handle>,
}

impl CommitLog {
    /// Locks `dir`, loads the meta file, maps the segments, recovers the tail (a scan when the
    /// last stop was unclean) and starts the writer and flusher threads.
    pub fn open(
        dir: &Path,
        cfg: CommitLogConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<(CommitLog, RecoveryReport)> {
        cfg.validate()?;
        let (dirlock, clean) = StoreDir::open_with(dir, fs.clone())?;
        let meta = Meta::load(fs.as_ref(), dir)?;
        let segments = SegmentList::open(fs.clone(), dir, cfg.segment_size)?;
        let index = EntryIndex::open(fs.clone(), &dir.join(ENTRY_INDEX_DIR), cfg.index_file_size)?;
        let (inner, report) = recovery::recover(&cfg, &meta, clean, segments, index)?;
        tracing::info!(
            dir = %dir.display(),
            clean = report.clean,
            next_index = inner.next_index,
            next_pos = inner.next_pos,
            records_scanned = report.records_scanned,
            bytes_cut = report.bytes_cut,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "commitlog recovered"
        );
        let next_index = inner.next_index;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            cfg,
            fs,
            inner: RwLock::new(inner),
            vote: Mutex::new(meta.vote.clone()),
            committed: Mutex::new(meta.committed),
            poison: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            durable_next_index: AtomicU64::new(next_index),
            flushes: AtomicU64::new(0),
        });
        let (tx, writer, log_writer) = writer::start(shared.clone(), meta, dirlock)?;
        Ok((
            CommitLog {
                shared,
                handle: Arc::new(Handle {
                    tx: Mutex::new(Some(tx)),
                    writer: Mutex::new(Some(writer)),
                    log_writer,
                }),
            },
            report,
        ))
    }

    fn call<T>(&self, make: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Request) -> Result<T> {
        self.shared.check_poison()?;
        let (reply, rx) = mpsc::sync_channel(1);
        self.handle.send(make(reply))?;
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Fatal("commitlog writer thread is gone".into())))
    }

    /// Appends entries, on the caller's thread. They are readable by `entry`/`entries` when
    /// this returns; `on_durable` fires after fdatasync/msync (Sync, on the flusher thread) or
    /// at once after the page-cache write (Async, on this thread), in FIFO order with other
    /// completions. `entries[0].id.index` must equal `next_index` and the indexes must be
    /// consecutive, else `IndexGap`. Returns each record's position. On error nothing was
    /// written and `on_durable` is dropped uncalled. Concurrent appenders are serialized;
    /// while one waits for the writer, the flusher's sync in progress covers the others' next
    /// sync together (group commit).
    pub fn append(&self, entries: Vec<NewEntry>, on_durable: Completion) -> Result<Vec<u64>> {
        let max = format::max_payload(self.shared.cfg.segment_size);
        for e in &entries {
            check_index("entry index", e.id.index)?;
            if e.payload.len() as u64 > max {
                return Err(StoreError::RecordTooLarge {
                    size: (e.payload.len() + HEADER_LEN) as u64,
                    max: max + HEADER_LEN as u64,
                });
            }
        }
        self.shared.check_poison()?;
        writer::lock(&self.handle.log_writer).append(&entries, on_durable)
    }

    /// Stores the vote durably; ordered after every earlier append (which is durable too
    /// when this returns).
    pub fn save_vote(&self, vote: Vec<u8>) -> Result<()> {
        self.call(|reply| Request::SaveVote { vote, reply })
    }

    /// The last saved vote.
    pub fn vote(&self) -> Option<Vec<u8>> {
        self.shared
            .vote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the committed entry. Cheap: kept in memory at once and written to the meta
    /// file later (at most about once a second, on vote/purge/truncate and at shutdown),
    /// and never ahead of the durable log.
    pub fn save_committed(&self, id: EntryId) -> Result<()> {
        check_index("committed index", id.index)?;
        self.shared.check_poison()?;
        *self
            .shared
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(id);
        // The writer picks it up before its next request and on its idle tick.
        Ok(())
    }

    /// The last `save_committed` value (or what the meta file held at open).
    pub fn committed(&self) -> Option<EntryId> {
        *self
            .shared
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Drops entries `[from_index, ..)`. Durable on return: a truncated record never comes
    /// back after a crash. Truncating below the first present entry is an error.
    pub fn truncate(&self, from_index: u64) -> Result<()> {
        check_index("truncate index", from_index)?;
        self.call(|reply| Request::Truncate {
            from: from_index,
            reply,
        })
    }

    /// Drops entries `(.., upto.index]`: persists the purged mark first, then deletes whole
    /// segments below the new start. `upto` may lie past the last entry (the log is then
    /// empty and continues at `upto.index + 1`).
    pub fn purge(&self, upto: EntryId) -> Result<()> {
        check_index("purge index", upto.index)?;
        self.call(|reply| Request::Purge { upto, reply })
    }

    /// Empties the log and restarts it at index `purged.index + 1`, position `next_pos`
    /// (follower snapshot install; positions stay aligned with the leader). Durable on return.
    pub fn reset(&self, purged: EntryId, next_pos: u64) -> Result<()> {
        check_index("purged index", purged.index)?;
        if next_pos > MAX_POS {
            return Err(StoreError::InvalidArgument(format!(
                "position {next_pos} exceeds the largest position {MAX_POS}"
            )));
        }
        let seg = self.shared.cfg.segment_size;
        if seg - next_pos % seg < format::END_MARKER_LEN as u64 {
            // The roll rule leaves at least a marker's room after every record.
            return Err(StoreError::InvalidArgument(format!(
                "position {next_pos} is within {} bytes of a segment end; no log ends there",
                format::END_MARKER_LEN
            )));
        }
        self.call(|reply| Request::Reset {
            purged,
            next_pos,
            reply,
        })
    }

    /// Waits until everything appended so far is durable (a barrier).
    pub fn flush(&self) -> Result<()> {
        self.call(|reply| Request::Flush { reply })
    }

    /// Shuts down cleanly now: flushes, writes the meta file, removes `abort`. Later calls on
    /// any clone fail with `Fatal("commitlog is closed")`.
    pub fn close(self) -> Result<()> {
        self.handle.shutdown()
    }

    /// The entry at `index`, or `None` outside `[first, next_index)`. Verifies the CRC.
    pub fn entry(&self, index: u64) -> Result<Option<StoredEntry>> {
        let inner = self.shared.read();
        if index < inner.first_index || index >= inner.next_index {
            return Ok(None);
        }
        inner.read_entry(index).map(Some)
    }

    /// Entries in `[start, end)`, stopping once `max_bytes` of payload are collected, but at
    /// least one if `start` exists. Empty if `start` is not present.
    pub fn entries(&self, start: u64, end: u64, max_bytes: usize) -> Result<Vec<StoredEntry>> {
        let inner = self.shared.read();
        let start = start.max(inner.first_index);
        let end = end.min(inner.next_index);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for i in start..end {
            let e = inner.read_entry(i)?;
            if !out.is_empty() && bytes + e.payload.len() > max_bytes {
                break;
            }
            bytes += e.payload.len();
            out.push(e);
        }
        Ok(out)
    }

    /// Raw bytes at global position `pos` (pull / view-message path). The range must lie
    /// inside the log and inside one segment. Callers read committed data only.
    pub fn read_at(&self, pos: u64, len: usize) -> Result<bytes::Bytes> {
        let inner = self.shared.read();
        let end = pos.checked_add(len as u64);
        match end {
            Some(end) if pos >= inner.first_pos && end <= inner.next_pos => {}
            _ => {
                return Err(StoreError::OutOfRange {
                    what: "position",
                    at: pos,
                    first: inner.first_pos,
                    end: inner.next_pos,
                })
            }
        }
        let mut buf = vec![0u8; len];
        inner.segments.read_at(pos, &mut buf)?;
        Ok(bytes::Bytes::from(buf))
    }

    /// Where the log stands.
    pub fn state(&self) -> LogState {
        self.shared.read().state()
    }

    /// The segment files, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let inner = self.shared.read();
        let last_base = inner.segments.last().map(|s| s.base());
        let mut out = Vec::new();
        for seg in inner.segments.iter() {
            let lo = inner
                .index_at_or_after(seg.base().max(inner.first_pos))
                .ok();
            let hi = inner.index_at_or_after(seg.end()).ok();
            let (first_index, last_index) = match (lo, hi) {
                (Some(lo), Some(hi)) if lo < hi => (Some(lo), Some(hi - 1)),
                _ => (None, None),
            };
            let mtime = self
                .shared
                .fs
                .modified(seg.path())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            out.push(SegmentInfo {
                base: seg.base(),
                size: seg.end() - seg.base(),
                first_index,
                last_index,
                mtime,
                sealed: Some(seg.base()) != last_base,
            });
        }
        out
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &CommitLogConfig {
        &self.shared.cfg
    }

    /// Capacity and free space of the disk holding the log (retention's disk-ratio rule).
    pub fn disk_space(&self) -> Result<crate::io::DiskSpace> {
        self.shared.fs.disk_space(&self.shared.dir)
    }

    /// How many flush rounds synced data since open. Appends divided by this is the mean
    /// group-commit size.
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// True once a write or fsync failed; every later write returns `Fatal`.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdFileSystem;
    use std::sync::mpsc::channel;

    fn cfg() -> CommitLogConfig {
        CommitLogConfig {
            segment_size: 4096,
            index_file_size: 32 * 64,
            ..Default::default()
        }
    }

    fn id(index: u64, term: u64) -> EntryId {
        EntryId {
            index,
            term,
            leader: 1,
        }
    }

    fn entry(index: u64, term: u64, len: usize) -> NewEntry {
        NewEntry {
            id: id(index, term),
            kind: EntryKind::Command,
            payload: bytes::Bytes::from(vec![(index % 251) as u8; len]),
        }
    }

    fn open(dir: &Path) -> (CommitLog, RecoveryReport) {
        CommitLog::open(dir, cfg(), Arc::new(StdFileSystem)).unwrap()
    }

    fn append_sync(log: &CommitLog, entries: Vec<NewEntry>) -> Vec<u64> {
        let (tx, rx) = channel();
        let pos = log
            .append(entries, Box::new(move |r| tx.send(r.is_ok()).unwrap()))
            .unwrap();
        assert!(rx.recv().unwrap());
        pos
    }

    #[test]
    fn appended_entries_are_readable_and_roll_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let (log, rep) = open(dir.path());
        assert!(rep.clean);
        let mut positions = Vec::new();
        for i in 0..40 {
            positions.extend(append_sync(&log, vec![entry(i, 1, 300)]));
        }
        // 348-byte records: 11 fit in a 4096-byte segment (11*348 + 8 <= 4096), then roll.
        assert_eq!(positions[10], 10 * 348);
        assert_eq!(positions[11], 4096);
        let e = log.entry(11).unwrap().unwrap();
        assert_eq!(e.pos, 4096);
        assert_eq!(e.payload.len(), 300);
        assert_eq!(log.entry(40).unwrap(), None);
        let st = log.state();
        assert_eq!(st.next_index, 40);
        assert_eq!(st.last, Some(id(39, 1)));
        let es = log.entries(5, 30, 1000).unwrap();
        assert_eq!(es.len(), 3, "capped by bytes");
        assert_eq!(log.entries(5, 30, 0).unwrap().len(), 1, "at least one");
        let raw = log.read_at(4096 + 48, 300).unwrap();
        assert_eq!(raw[0], 11);
        let segs = log.segments();
        assert_eq!(segs[0].first_index, Some(0));
        assert_eq!(segs[0].last_index, Some(10));
        assert!(segs[0].sealed);
        assert!(!segs.last().unwrap().sealed);
        drop(log);
        let (log, rep) = open(dir.path());
        assert!(rep.clean);
        assert_eq!(rep.records_scanned, 0, "clean start does not scan");
        assert_eq!(log.state(), st);
        assert_eq!(log.entry(39).unwrap().unwrap().payload[0], 39);
    }

    #[test]
    fn non_contiguous_append_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        append_sync(&log, vec![entry(0, 1, 10)]);
        let err = log
            .append(vec![entry(2, 1, 10)], Box::new(|_| {}))
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::IndexGap {
                expected: 1,
                got: 2
            }
        ));
        let err = log
            .append(vec![entry(1, 1, 5000)], Box::new(|_| {}))
            .unwrap_err();
        assert!(matches!(err, StoreError::RecordTooLarge { .. }));
    }

    #[test]
    fn absurd_indexes_and_positions_are_refused_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        assert!(log.purge(id(u64::MAX, 1)).is_err());
        assert!(log.reset(id(u64::MAX - 1, 1), 0).is_err());
        assert!(log.reset(id(5, 1), u64::MAX - 3).is_err());
        assert!(
            log.reset(id(5, 1), 4096 - 7).is_err(),
            "inside a segment's last 8 bytes"
        );
        assert!(log.truncate(u64::MAX).is_err());
        assert!(log.save_committed(id(u64::MAX, 1)).is_err());
        assert!(log.entry(u64::MAX).unwrap().is_none());
        assert!(log.entries(u64::MAX - 1, u64::MAX, 10).unwrap().is_empty());
        assert!(log.read_at(u64::MAX - 1, 10).is_err());
        // Still healthy.
        append_sync(&log, vec![entry(0, 1, 10)]);
        // The largest accepted values work.
        let top = MAX_POS - MAX_POS % 4096 - 100;
        log.reset(id(MAX_INDEX - 1, 1), top).unwrap();
        append_sync(&log, vec![entry(MAX_INDEX, 1, 10)]);
        assert_eq!(log.entry(MAX_INDEX).unwrap().unwrap().pos, top);
    }

    #[test]
    fn vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        append_sync(&log, vec![entry(0, 1, 10), entry(1, 1, 10)]);
        log.save_vote(b"v1".to_vec()).unwrap();
        log.save_committed(id(1, 1)).unwrap();
        assert_eq!(log.committed(), Some(id(1, 1)));
        drop(log);
        let (log, _) = open(dir.path());
        assert_eq!(log.vote(), Some(b"v1".to_vec()));
        assert_eq!(log.committed(), Some(id(1, 1)));
    }

    #[test]
    fn truncate_purge_and_reset_move_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        for i in 0..30 {
            append_sync(&log, vec![entry(i, 1, 300)]);
        }
        log.truncate(20).unwrap();
        let st = log.state();
        assert_eq!(st.next_index, 20);
        assert_eq!(st.last, Some(id(19, 1)));
        assert_eq!(log.entry(20).unwrap(), None);
        // A new entry of another term continues where entry 19 ended.
        let p = append_sync(&log, vec![entry(20, 2, 10)]);
        assert_eq!(
            p[0],
            4096 + 9 * 348,
            "entry 20 follows entry 19 in segment 1"
        );
        log.purge(id(14, 1)).unwrap();
        assert_eq!(log.entry(14).unwrap(), None);
        assert_eq!(log.entry(15).unwrap().unwrap().id.index, 15);
        assert_eq!(log.segments()[0].base, 4096, "segment 0 deleted");
        log.reset(id(99, 3), 3 * 4096 + 100).unwrap();
        let st = log.state();
        assert_eq!(st.next_index, 100);
        assert_eq!(st.next_pos, 3 * 4096 + 100);
        assert_eq!(st.last, None);
        assert_eq!(st.purged, Some(id(99, 3)));
        let p = append_sync(&log, vec![entry(100, 3, 10)]);
        assert_eq!(p[0], 3 * 4096 + 100);
        drop(log);
        let (log, _) = open(dir.path());
        assert_eq!(log.entry(100).unwrap().unwrap().pos, 3 * 4096 + 100);
        assert_eq!(log.state().purged, Some(id(99, 3)));
    }
}
