//! raftmq-store: every byte raftmq keeps on disk.
//!
//! Layout of the commitlog side:
//! - [`error`]: `StoreError` / `Result`, the one error type.
//! - [`format`]: record header, end-of-segment marker, entry-index unit, file names.
//! - [`config`]: `CommitLogConfig`, `FlushMode`, `RecoveryMode`, `RetentionConfig`.
//! - [`io`]: the `FileSystem` / `MappedFile` seam (real and fault-injecting).
//! - [`segment`]: preallocated mapped files named by global offset.
//! - [`commitlog`]: the Raft log as segment files, one writer, group commit.
//! - [`dirlock`]: the `lock` and `abort` files of a store directory.
//! - [`retention`]: which sealed segments `fileReservedTime` / `deleteWhen` / disk ratio let go.
//!
//! Layout of the derived-files side:
//! - [`message`]: the RocketMQ stored-message codec (`StoredMessage`, `MessageView`,
//!   batch iteration, in-place patches, tag hash, offsetMsgId).
//! - [`consume_queue`]: per-queue 20-byte units, queue offset → commitlog position.
//! - [`index_file`]: the key → position hash index (`index/` files).
//! - [`dispatch`]: `Dispatcher`, committed entries → consumequeue and index; queries.
//! - [`checkpoint`]: the dispatch checkpoint (what the derived files durably cover).
//! - [`metadata`]: topic, group and consumer-offset tables (sled behind one module).
//! - [`store`]: `Store`, one store root wiring the commitlog, dispatcher and metadata.
//!
//! No tokio, no openraft, no sockets: the raft layer adapts this crate, never the reverse.

pub mod commitlog;
pub mod config;
pub mod dirlock;
pub mod error;
pub mod format;
pub mod io;
pub mod retention;
pub mod segment;

// Derived files side: stored-message codec, consumequeue, index, dispatcher, metadata.
pub mod checkpoint;
pub mod consume_queue;
pub mod dispatch;
pub mod index_file;
pub mod message;
pub mod metadata;
pub mod store;

pub use error::{Result, StoreError};
