//! The writer and its flusher: group commit with FIFO completions.
//!
//! The writer is the only code that mutates the log; it sits behind a mutex. Appends run it
//! on the caller's thread (no hand-off: the caller would only wait for the copy anyway), the
//! writer thread runs everything else from a channel and the idle-time upkeep. An append
//! copies records into the mapped segments under the state write lock (readable on return)
//! and hands "flush up to here, then fire this completion" jobs to the flusher. The flusher
//! drains every queued job, issues one msync per touched file over the whole dirty span, then
//! fires the completions in order. While it syncs, appenders keep copying, so the next sync
//! covers everything that arrived meanwhile: that is the group commit. Under ASYNC_FLUSH a
//! completion fires as soon as the copy is done and the dirty span goes to the flusher once per
//! flush interval, so the flusher thread sleeps between its periodic syncs.
//!
//! Everything that is not an append (vote, truncate, purge, reset, shutdown) first waits for
//! the flusher to drain (a barrier), so it is ordered after every earlier append and their
//! completions have fired. A failed write or msync poisons the store: pending and later
//! completions get an error, later requests `Fatal`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Completion, EntryId, EntryKind, Meta, NewEntry, Shared, StoredEntry};
use crate::config::FlushMode;
use crate::dirlock::StoreDir;
use crate::error::{Result, StoreError};
use crate::format::{self, IndexUnit, HEADER_LEN};

/// How often the committed mark is written to the meta file at most.
const COMMITTED_PERSIST_INTERVAL: Duration = Duration::from_secs(1);
/// How often entry-index units are synced at most (outside barriers).
const INDEX_FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Size of an entry-index unit.
const UNIT: u64 = format::INDEX_UNIT_LEN as u64;

/// A request to the writer thread.
pub(crate) enum Request {
    SaveVote {
        vote: Vec<u8>,
        reply: SyncSender<Result<()>>,
    },
    Truncate {
        from: u64,
        reply: SyncSender<Result<()>>,
    },
    Purge {
        upto: EntryId,
        reply: SyncSender<Result<()>>,
    },
    Reset {
        purged: EntryId,
        next_pos: u64,
        reply: SyncSender<Result<()>>,
    },
    Flush {
        reply: SyncSender<Result<()>>,
    },
    Shutdown {
        reply: SyncSender<Result<()>>,
    },
}

/// A job for the flusher thread.
enum FlushJob {
    /// Make log bytes `[from, to)` and index units `[idx_from, idx_to)` durable, then fire
    /// `done` (if any). `idx_to` is also the log's next index after this write.
    Data {
        from: u64,
        to: u64,
        idx_from: u64,
        idx_to: u64,
        done: Option<Completion>,
    },
    /// Flush everything queued, then reply.
    Barrier { reply: SyncSender<Result<()>> },
    /// Flush, reply to pending work, exit.
    Stop,
}

/// What one append dirtied: log bytes `[from, to)` and index units `[idx_from, idx_to)`.
type DirtySpan = (u64, u64, u64, u64);

/// The writer, shared by appenders and the writer thread.
pub(crate) type SharedWriter = Arc<Mutex<Writer>>;

/// Locks the writer (a panic while it was held poisons the store, not the lock).
pub(crate) fn lock(w: &Mutex<Writer>) -> std::sync::MutexGuard<'_, Writer> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the writer thread and the flusher.
pub(crate) fn start(
    shared: Arc<Shared>,
    meta: Meta,
    dirlock: StoreDir,
) -> Result<(Sender<Request>, JoinHandle<()>, SharedWriter)> {
    let (tx, rx) = mpsc::channel();
    let (ftx, frx) = mpsc::channel();
    // The segment holding the tail may contain stale bytes past it (a cut at recovery).
    let stale_until = {
        let inner = shared.read();
        inner
            .segments
            .get(inner.next_pos)
            .map(|s| s.end())
            .unwrap_or(0)
    };
    let fshared = shared.clone();
    let flusher = std::thread::Builder::new()
        .name("commitlog-flush".into())
        .spawn(move || flusher_loop(fshared, frx))
        .map_err(|e| StoreError::io("spawn flusher", &shared.dir, e))?;
    let dir = shared.dir.clone();
    let w = Arc::new(Mutex::new(Writer {
        shared,
        meta,
        dirlock: Some(dirlock),
        ftx,
        flusher: Some(flusher),
        committed_dirty: false,
        last_meta_write: Instant::now(),
        buf: Vec::new(),
        stale_until,
        unsent: None,
        last_sent: Instant::now(),
        closed: false,
    }));
    let tw = w.clone();
    let writer = std::thread::Builder::new()
        .name("commitlog-writer".into())
        .spawn(move || run(&tw, rx))
        .map_err(|e| StoreError::io("spawn writer", dir, e))?;
    Ok((tx, writer, w))
}

/// The writer thread: runs requests and, when idle, hands the flusher what ASYNC appends left
/// unsent and persists the committed mark.
fn run(w: &Mutex<Writer>, rx: Receiver<Request>) {
    loop {
        let idle = lock(w).idle_timeout();
        let req = match rx.recv_timeout(idle) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                let mut w = lock(w);
                w.send_due();
                w.sync_committed();
                w.maybe_persist_committed();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Every handle vanished without a shutdown (cannot happen through
                // `CommitLog`, whose drop sends one); stop without marking clean.
                let mut w = lock(w);
                w.closed = true;
                w.stop_flusher();
                return;
            }
        };
        let mut w = lock(w);
        if w.serve(req) {
            return;
        }
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The writer's copy of the meta file (it is the only writer of it).
    meta: Meta,
    dirlock: Option<StoreDir>,
    ftx: Sender<FlushJob>,
    flusher: Option<JoinHandle<()>>,
    committed_dirty: bool,
    last_meta_write: Instant,
    /// Reused encode buffer.
    buf: Vec<u8>,
    /// Bytes of the log below this position may be stale records (left behind by a truncate
    /// or a recovery cut). While writing there, the header after each batch is zeroed too, so
    /// a stale record of an older term can never be read back as the continuation of the log.
    stale_until: u64,
    /// ASYNC_FLUSH: what appends dirtied since the last job sent to the flusher.
    unsent: Option<DirtySpan>,
    last_sent: Instant,
    /// Set by shutdown: later appends fail instead of writing.
    closed: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.shared.dir)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn io_err(reason: &str) -> std::io::Error {
    std::io::Error::other(reason.to_string())
}

impl Writer {
    /// Runs one request; true once the writer shut down.
    fn serve(&mut self, req: Request) -> bool {
        // Every committed index saved before this request was sent is seen first, as when
        // each save travelled through the channel.
        self.sync_committed();
        match req {
            Request::SaveVote { vote, reply } => {
                let r = self.save_vote(vote);
                let _ = reply.send(r);
            }
            Request::Truncate { from, reply } => {
                let r = self.guarded(|w| w.truncate(from));
                let _ = reply.send(r);
            }
            Request::Purge { upto, reply } => {
                let r = self.guarded(|w| w.purge(upto));
                let _ = reply.send(r);
            }
            Request::Reset {
                purged,
                next_pos,
                reply,
            } => {
                let r = self.guarded(|w| w.reset(purged, next_pos));
                let _ = reply.send(r);
            }
            Request::Flush { reply } => {
                let _ = reply.send(self.barrier());
            }
            Request::Shutdown { reply } => {
                let r = self.shutdown();
                let _ = reply.send(r);
                return true;
            }
        }
        self.maybe_persist_committed();
        false
    }

    /// How long the writer thread may sleep: until ASYNC appends' unsent span is due, else
    /// until the committed mark is due.
    fn idle_timeout(&self) -> Duration {
        match self.unsent {
            Some(_) => self
                .flush_interval()
                .saturating_sub(self.last_sent.elapsed()),
            None => COMMITTED_PERSIST_INTERVAL,
        }
    }

    fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.shared.cfg.flush_interval_ms)
    }

    /// Sends the flusher a job, poisoning the store if the flusher is gone.
    fn send_job(&mut self, job: FlushJob) {
        self.last_sent = Instant::now();
        if self.ftx.send(job).is_err() {
            self.shared.poison("flusher thread is gone".into());
        }
    }

    /// Hands the flusher what ASYNC appends dirtied since the last job.
    fn send_unsent(&mut self) {
        if let Some((from, to, idx_from, idx_to)) = self.unsent.take() {
            self.send_job(FlushJob::Data {
                from,
                to,
                idx_from,
                idx_to,
                done: None,
            });
        }
    }

    /// `send_unsent` once a flush interval has passed since the last job.
    fn send_due(&mut self) {
        if self.unsent.is_some() && self.last_sent.elapsed() >= self.flush_interval() {
            self.send_unsent();
        }
    }

    /// Runs a mutating operation after a barrier; any error poisons the store, because the
    /// files may be half-changed.
    fn guarded(&mut self, op: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.shared.check_poison()?;
        self.barrier()?;
        op(self).inspect_err(|e| {
            if !matches!(
                e,
                StoreError::InvalidArgument(_) | StoreError::OutOfRange { .. }
            ) {
                self.shared.poison(e.to_string());
            }
        })
    }

    /// Waits until the flusher made everything queued so far durable.
    fn barrier(&mut self) -> Result<()> {
        self.shared.check_poison()?;
        self.send_unsent();
        let (reply, rx) = mpsc::sync_channel(1);
        self.ftx
            .send(FlushJob::Barrier { reply })
            .map_err(|_| StoreError::Fatal("flusher thread is gone".into()))?;
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Fatal("flusher thread is gone".into())))
    }

    /// Appends on the caller's thread: the entries are readable when this returns. Under
    /// SYNC_FLUSH `done` goes to the flusher with the span; under ASYNC_FLUSH it fires here
    /// and the span waits for the next periodic flush.
    pub(crate) fn append(&mut self, entries: &[NewEntry], done: Completion) -> Result<Vec<u64>> {
        if self.closed {
            return Err(StoreError::Fatal("commitlog is closed".into()));
        }
        let (positions, (from, to, idx_from, idx_to)) = self.write_entries(entries)?;
        match self.shared.cfg.flush {
            FlushMode::Sync => self.send_job(FlushJob::Data {
                from,
                to,
                idx_from,
                idx_to,
                done: Some(done),
            }),
            FlushMode::Async => {
                done(Ok(()));
                self.unsent = Some(match self.unsent {
                    None => (from, to, idx_from, idx_to),
                    Some((a, b, c, d)) => (a.min(from), b.max(to), c.min(idx_from), d.max(idx_to)),
                });
                self.send_due();
            }
        }
        Ok(positions)
    }

    /// Encodes the whole batch first (so a rejected batch writes nothing), then copies it
    /// into the segments and the entry index under the write lock. Returns the record
    /// positions and what to flush: (from, to) bytes and (from, to) index units.
    fn write_entries(&mut self, entries: &[NewEntry]) -> Result<(Vec<u64>, DirtySpan)> {
        self.shared.check_poison()?;
        let seg_size = self.shared.cfg.segment_size;
        let mut inner = self.shared.write();
        // Plan: positions, end markers and encoded records.
        let mut pos = inner.next_pos;
        let mut plan: Vec<(Option<u64>, u64, std::ops::Range<usize>, Bytes)> = Vec::new();
        self.buf.clear();
        for (expected, e) in (inner.next_index..).zip(entries.iter()) {
            if e.id.index != expected {
                return Err(StoreError::IndexGap {
                    expected,
                    got: e.id.index,
                });
            }
            let rec_len = (HEADER_LEN + e.payload.len()) as u64;
            let (marker_at, at) = match format::place(pos, rec_len, seg_size) {
                Ok(p) => (None, p),
                Err(next_base) => (Some(pos), next_base),
            };
            let start = self.buf.len();
            // The payload as stored, kept for the tail cache.
            let stored = if e.kind == EntryKind::Messages {
                let mut payload = e.payload.to_vec();
                crate::message::patch_physical_offsets(&mut payload, at + HEADER_LEN as u64)
                    .map_err(|err| StoreError::Codec(format!("entry {}: {err}", e.id.index)))?;
                Bytes::from(payload)
            } else {
                e.payload.clone()
            };
            format::encode_record(&mut self.buf, e.kind, e.id, at, &stored);
            plan.push((marker_at, at, start..self.buf.len(), stored));
            pos = at + rec_len;
        }
        // Write. A failure here leaves the files half-written: poison.
        let mut positions = Vec::with_capacity(entries.len());
        let (from, idx_from) = (inner.next_pos, inner.next_index);
        let mut to = from;
        let stale_until = &mut self.stale_until;
        let res: Result<()> = (|| {
            for (e, (marker_at, at, range, stored)) in entries.iter().zip(plan) {
                if let Some(m) = marker_at {
                    let seg = inner.segments.get_or_create(m)?;
                    let len =
                        u32::try_from(seg.end() - m).expect("invariant: segment size fits u32");
                    seg.write_at(m, &format::encode_end_marker(len))?;
                }
                let existed = inner.segments.get(at).is_some();
                let seg = inner.segments.get_or_create(at)?;
                if !existed {
                    // Fresh preallocated file: all zeros, nothing stale.
                    *stale_until = 0;
                }
                seg.write_at(at, &self.buf[range.clone()])?;
                let record_len = u32::try_from(range.len()).expect("invariant: record fits u32");
                inner.index.put(
                    e.id.index,
                    &IndexUnit {
                        pos: at,
                        record_len,
                        kind: e.kind,
                        term: e.id.term,
                        leader: e.id.leader,
                    },
                )?;
                inner.next_index = e.id.index + 1;
                inner.next_pos = at + u64::from(record_len);
                inner.last = Some(e.id);
                inner.tail.push(StoredEntry {
                    id: e.id,
                    kind: e.kind,
                    pos: at,
                    payload: stored,
                });
                positions.push(at);
            }
            to = inner.next_pos;
            if to < *stale_until {
                if let Some(seg) = inner.segments.get(to) {
                    let n = (seg.end() - to).min(HEADER_LEN as u64);
                    seg.write_at(to, &[0u8; HEADER_LEN][..n as usize])?;
                    to += n;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            self.shared.poison(format!("append write failed: {e}"));
            return Err(StoreError::Fatal(format!("append write failed: {e}")));
        }
        Ok((positions, (from, to, idx_from, inner.next_index)))
    }

    fn store_meta(&mut self) -> Result<()> {
        self.meta.store(self.shared.fs.as_ref(), &self.shared.dir)?;
        self.last_meta_write = Instant::now();
        self.committed_dirty = false;
        Ok(())
    }

    fn save_vote(&mut self, vote: Vec<u8>) -> Result<()> {
        self.shared.check_poison()?;
        self.barrier()?;
        self.meta.vote = Some(vote.clone());
        self.meta.clean_end = None;
        if let Err(e) = self.store_meta() {
            self.shared.poison(format!("vote write failed: {e}"));
            return Err(e);
        }
        *self.shared.vote.lock().unwrap_or_else(|p| p.into_inner()) = Some(vote);
        Ok(())
    }

    /// Writes the committed mark if it changed, a second has passed, and the log holding it
    /// is durable (so the mark never points past what a crash keeps).
    /// Takes the committed index `CommitLog::save_committed` left in the shared state (it no
    /// longer wakes this thread for it: that was one thread hand-off per commit per node).
    fn sync_committed(&mut self) {
        let latest = *self
            .shared
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(id) = latest {
            if self.meta.committed.is_none_or(|c| c.index < id.index) {
                self.meta.committed = Some(id);
                self.committed_dirty = true;
            }
        }
    }

    fn maybe_persist_committed(&mut self) {
        if !self.committed_dirty
            || self.last_meta_write.elapsed() < COMMITTED_PERSIST_INTERVAL
            || self.shared.poisoned.load(Ordering::SeqCst)
        {
            return;
        }
        let durable = self.shared.durable_next_index.load(Ordering::SeqCst);
        if self.meta.committed.is_some_and(|c| c.index >= durable) {
            return;
        }
        self.meta.clean_end = None;
        if let Err(e) = self.store_meta() {
            self.shared.poison(format!("meta write failed: {e}"));
        }
    }

    fn truncate(&mut self, from: u64) -> Result<()> {
        let shared = self.shared.clone();
        let mut inner = shared.write();
        if from >= inner.next_index {
            return Ok(());
        }
        if from < inner.first_index {
            return Err(StoreError::OutOfRange {
                what: "truncate index",
                at: from,
                first: inner.first_index,
                end: inner.next_index,
            });
        }
        inner.tail.truncate(from);
        let (cut_pos, new_last) = if from == inner.first_index {
            (inner.first_pos, None)
        } else {
            let u = inner.unit(from - 1)?;
            let id = EntryId {
                index: from - 1,
                term: u.term,
                leader: u.leader,
            };
            (u.pos + u64::from(u.record_len), Some(id))
        };
        // 1. Zero every truncated byte of the segment holding the cut (the header there
        //    first) and make it durable: recovery then stops at the cut whatever else survives
        //    a crash, and no old record is left to be mistaken for a later one. Truncated
        //    tails are uncommitted, hence short.
        if let Some(seg) = inner.segments.get(cut_pos) {
            let stop = inner
                .next_pos
                .max(cut_pos + HEADER_LEN as u64)
                .min(seg.end());
            let zeros = vec![0u8; (stop - cut_pos).min(64 * 1024) as usize];
            let mut p = cut_pos;
            while p < stop {
                let n = (stop - p).min(zeros.len() as u64);
                seg.write_at(p, &zeros[..n as usize])?;
                p += n;
            }
            seg.flush(cut_pos, stop)?;
        }
        // 2. Zero the entry-index units and drop whole index files above the cut.
        let old_next = inner.next_index;
        inner.index.zero_range(from, old_next)?;
        inner.index.remove_from(from)?;
        // 3. The committed mark must never exceed the log.
        if self.meta.committed.is_some_and(|c| c.index >= from) {
            self.meta.committed = new_last.or(inner.purged);
            self.meta.clean_end = None;
            self.store_meta()?;
            *self
                .shared
                .committed
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = self.meta.committed;
        }
        // 4. Delete later segments, highest first.
        let seg_size = self.shared.cfg.segment_size;
        let keep_base = inner.segments.base_of(cut_pos);
        inner.segments.remove_from(keep_base + seg_size)?;
        inner.next_index = from;
        inner.next_pos = cut_pos;
        inner.last = new_last;
        // Old records of this segment may lie past the cut.
        self.stale_until = inner.segments.get(cut_pos).map(|s| s.end()).unwrap_or(0);
        drop(inner);
        // Everything before the cut was flushed by the barrier.
        self.shared.durable_next_index.store(from, Ordering::SeqCst);
        tracing::debug!(from, cut_pos, "commitlog truncated");
        Ok(())
    }

    fn purge(&mut self, upto: EntryId) -> Result<()> {
        let shared = self.shared.clone();
        let mut inner = shared.write();
        if inner.purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        inner.tail.purge(upto.index);
        let new_first = upto.index + 1;
        let beyond = new_first >= inner.next_index;
        let new_first_pos = if beyond {
            inner.next_pos
        } else if new_first <= inner.first_index {
            inner.first_pos
        } else {
            inner.unit(new_first)?.pos
        };
        let new_first = new_first.max(inner.first_index);
        // 1. Persist the mark first: a crash after this point never sees the old start.
        self.meta.purged = Some(upto);
        self.meta.start_index = new_first;
        self.meta.start_pos = new_first_pos;
        self.meta.clean_end = None;
        self.store_meta()?;
        // 2. Then delete what lies wholly below.
        inner.segments.remove_below(new_first_pos)?;
        inner.index.remove_below(new_first)?;
        inner.purged = Some(upto);
        inner.first_index = new_first;
        inner.first_pos = new_first_pos;
        if beyond {
            inner.next_index = new_first;
            inner.last = None;
        }
        tracing::debug!(
            upto = upto.index,
            first_pos = new_first_pos,
            "commitlog purged"
        );
        Ok(())
    }

    fn reset(&mut self, purged: EntryId, next_pos: u64) -> Result<()> {
        let shared = self.shared.clone();
        let mut inner = shared.write();
        inner.tail.clear();
        // Delete everything first: a crash midway leaves the old meta over a shorter old log
        // (highest segments go first), never old records under the new start.
        inner.segments.remove_from(0)?;
        inner.index.clear()?;
        self.meta.purged = Some(purged);
        self.meta.start_index = purged.index + 1;
        self.meta.start_pos = next_pos;
        if self.meta.committed.is_none_or(|c| c.index < purged.index) {
            self.meta.committed = Some(purged);
        }
        self.meta.clean_end = None;
        self.store_meta()?;
        *self
            .shared
            .committed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = self.meta.committed;
        inner.purged = Some(purged);
        inner.first_index = purged.index + 1;
        inner.next_index = purged.index + 1;
        inner.first_pos = next_pos;
        inner.next_pos = next_pos;
        inner.last = None;
        drop(inner);
        self.stale_until = 0;
        self.shared
            .durable_next_index
            .store(purged.index + 1, Ordering::SeqCst);
        Ok(())
    }

    fn stop_flusher(&mut self) {
        self.send_unsent();
        let _ = self.ftx.send(FlushJob::Stop);
        if let Some(j) = self.flusher.take() {
            if j.join().is_err() {
                tracing::error!("commitlog flusher thread panicked");
            }
        }
    }

    /// Flush, write the meta with the clean end, remove `abort`. On a poisoned store only
    /// the threads stop: the next open will scan.
    fn shutdown(&mut self) -> Result<()> {
        let res = (|| {
            self.shared.check_poison()?;
            self.barrier()?;
            let (next_index, next_pos) = {
                let inner = self.shared.read();
                (inner.next_index, inner.next_pos)
            };
            self.meta.clean_end = Some((next_index, next_pos));
            self.store_meta()?;
            if let Some(d) = self.dirlock.as_mut() {
                d.mark_clean()?;
            }
            Ok(())
        })();
        self.closed = true;
        self.stop_flusher();
        self.dirlock.take();
        res
    }
}

/// Flusher state: the dirty ranges not yet made durable.
struct Flusher {
    shared: Arc<Shared>,
    dirty: Option<(u64, u64)>,
    dirty_index: Option<(u64, u64)>,
    next_index: Option<u64>,
    last_flush: Instant,
    last_index_flush: Instant,
}

fn widen(r: &mut Option<(u64, u64)>, from: u64, to: u64) {
    if from >= to {
        return;
    }
    *r = Some(match *r {
        None => (from, to),
        Some((a, b)) => (a.min(from), b.max(to)),
    });
}

impl Flusher {
    /// Syncs the dirty log bytes. The entry index is derived data (recovery rebuilds it from
    /// the records), so its units are synced only every `INDEX_FLUSH_INTERVAL` or when
    /// `all` is set (barriers, shutdown); that keeps one sync per group on the hot path.
    fn flush(&mut self, all: bool) -> Result<()> {
        self.shared.check_poison()?;
        let dirty = self.dirty.take();
        let index_due = all || self.last_index_flush.elapsed() >= INDEX_FLUSH_INTERVAL;
        let dirty_index = if index_due {
            self.dirty_index.take()
        } else {
            None
        };
        let res: Result<()> = (|| {
            if let Some((from, to)) = dirty {
                // Collect the files under the read lock, msync without it: the writer keeps
                // copying while we wait for the disk.
                let segs = self.shared.read().segments.overlapping(from, to);
                for s in &segs {
                    s.flush(from, to)?;
                }
            }
            if let Some((from, to)) = dirty_index {
                let files = self.shared.read().index.files_for(from, to);
                for f in &files {
                    f.flush(from * UNIT, to * UNIT)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            let reason = format!("commitlog flush failed: {e}");
            self.shared.poison(reason.clone());
            return Err(StoreError::Fatal(reason));
        }
        if dirty.is_some() {
            self.shared.flushes.fetch_add(1, Ordering::Relaxed);
        }
        if index_due {
            self.last_index_flush = Instant::now();
            // Records and their units are both durable below this index: the committed mark
            // may point anywhere below it (recovery starts its scan there).
            if let Some(n) = self.next_index.take() {
                self.shared.durable_next_index.store(n, Ordering::SeqCst);
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }
}

fn flusher_loop(shared: Arc<Shared>, rx: Receiver<FlushJob>) {
    let asynchronous = shared.cfg.flush == FlushMode::Async;
    let interval = Duration::from_millis(shared.cfg.flush_interval_ms);
    let mut f = Flusher {
        shared,
        dirty: None,
        dirty_index: None,
        next_index: None,
        last_flush: Instant::now(),
        last_index_flush: Instant::now(),
    };
    let mut completions: Vec<Completion> = Vec::new();
    let mut barriers: Vec<SyncSender<Result<()>>> = Vec::new();
    loop {
        let first = if asynchronous {
            match rx.recv_timeout(interval) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(FlushJob::Stop),
            }
        } else {
            Some(rx.recv().unwrap_or(FlushJob::Stop))
        };
        let mut stop = false;
        let mut data = false;
        let mut jobs: Vec<FlushJob> = first.into_iter().collect();
        jobs.extend(rx.try_iter());
        for job in jobs {
            match job {
                FlushJob::Data {
                    from,
                    to,
                    idx_from,
                    idx_to,
                    done,
                } => {
                    widen(&mut f.dirty, from, to);
                    widen(&mut f.dirty_index, idx_from, idx_to);
                    f.next_index = Some(idx_to);
                    completions.extend(done);
                    data = true;
                }
                FlushJob::Barrier { reply } => barriers.push(reply),
                FlushJob::Stop => stop = true,
            }
        }
        // Under ASYNC_FLUSH the writer already sends data at most once per interval: sync it
        // on arrival rather than gate it on a second interval of our own.
        let due = !asynchronous
            || data
            || stop
            || !barriers.is_empty()
            || f.last_flush.elapsed() >= interval;
        if !due {
            continue;
        }
        let res = f.flush(stop || !barriers.is_empty());
        let io_res = || match &res {
            Ok(()) => Ok(()),
            Err(e) => Err(io_err(&e.to_string())),
        };
        for c in completions.drain(..) {
            c(io_res());
        }
        for b in barriers.drain(..) {
            let _ = b.send(match &res {
                Ok(()) => Ok(()),
                Err(StoreError::Fatal(m)) => Err(StoreError::Fatal(m.clone())),
                Err(e) => Err(StoreError::Fatal(e.to_string())),
            });
        }
        if stop {
            return;
        }
    }
}
