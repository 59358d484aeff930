//! The commitlog: the replicated Raft log kept as RocketMQ-style segment files.
//!
//! Owns the segment list, the entry index, the meta file (vote, committed, purged, start),
//! the single writer thread with group commit, truncation, purge and recovery. It knows the
//! record format (`crate::format`) and asks `crate::message` only to patch PHYSICALOFFSET;
//! it knows nothing of Raft libraries, consumequeues or sockets.

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
/// `Err` when the store was poisoned before that happened.
pub type Completion = Box<dyn FnOnce(std::io::Result<()>) + Send + 'static>;

/// What `CommitLog::open` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The `abort` marker was absent: the last stop was clean.
    pub clean: bool,
    /// Records whose header and CRC were checked.
    pub records_scanned: u64,
    /// Bytes cut from the tail (a torn or stale record and anything after it).
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
