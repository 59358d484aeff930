//! raftmq-store: every byte raftmq keeps on disk.
//!
//! Layout of the commitlog side:
//! - [`error`]: `StoreError` / `Result`, the one error type.
//! - [`format`]: record header, end-of-segment marker, entry-index unit, file names.
//! - [`config`]: `CommitLogConfig`, `FlushMode`, `RecoveryMode`, `RetentionConfig`.
//! - [`io`]: the `FileSystem` / `MappedFile` seam (real and fault-injecting).
//! - [`commitlog`]: the Raft log as segment files, one writer thread, group commit.
//!
//! No tokio, no openraft, no sockets: the raft layer adapts this crate, never the reverse.

pub mod commitlog;
pub mod config;
pub mod dirlock;
pub mod error;
pub mod format;
pub mod io;
pub mod segment;

// Derived files side: stored-message codec, consumequeue, index, dispatcher, metadata.
pub mod checkpoint;
pub mod consume_queue;
pub mod dispatch;
pub mod index_file;
pub mod message;
pub mod metadata;

pub use error::{Result, StoreError};
