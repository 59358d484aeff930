//! The store's one error type.
//!
//! Owns `StoreError` and `Result`. Every variant carries the context an operator needs
//! (file, offset, queue). `Fatal` means the store is poisoned: after a failed fsync nobody can
//! know what is on disk, so every later write is refused with the original reason.

use std::io;
use std::path::PathBuf;

/// Result alias used across `raftmq-store`.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything that can go wrong inside the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}", path = .path.display())]
    Io {
        /// What was being done (`"open"`, `"msync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Bytes on disk do not match their own checks (magic, CRC, index or position).
    #[error("corruption in {file} at offset {offset}: {reason}", file = .file.display())]
    Corruption {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A record (header + payload + room for the end-of-segment marker) does not fit in one
    /// segment; records never span segments.
    #[error("record of {size} bytes does not fit a segment (max {max})")]
    RecordTooLarge { size: u64, max: u64 },

    /// The store is poisoned (a failed fsync or a lost writer); no write will succeed again.
    #[error("store poisoned: {0}")]
    Fatal(String),

    /// Another process holds the store directory's `lock` file.
    #[error("store directory is locked by another process: {path}", path = .path.display())]
    Locked { path: PathBuf },

    /// An appended entry does not continue the log (`index` must equal `next_index`).
    #[error("entry index {got} does not continue the log (expected {expected})")]
    IndexGap { expected: u64, got: u64 },

    /// A caller passed an argument the store cannot honour (described in the message).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The requested range was purged, or lies outside the log.
    #[error("{what} {at} is out of range [{first}, {end})")]
    OutOfRange {
        what: &'static str,
        at: u64,
        first: u64,
        end: u64,
    },

    /// A consumequeue would get a hole: queue offsets must be contiguous per queue.
    #[error("queue offset gap in {topic}/{queue_id}: expected {expected}, got {got}")]
    QueueOffsetGap {
        topic: String,
        queue_id: i32,
        expected: i64,
        got: i64,
    },

    /// A stored message could not be decoded or validated.
    #[error("message codec: {0}")]
    Codec(String),

    /// A stored message exceeds `maxMessageSize`.
    #[error("message of {size} bytes exceeds maxMessageSize {max}")]
    MessageTooLarge { size: u64, max: u64 },
}

impl StoreError {
    /// Builds an `Io` error; used as `.map_err(|e| StoreError::io("open", &path, e))`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a `Corruption` error.
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        StoreError::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors after which the store accepts no more writes.
    pub fn is_fatal(&self) -> bool {
        matches!(self, StoreError::Fatal(_))
    }
}
