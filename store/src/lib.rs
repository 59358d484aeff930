//! raftmq-store: every byte raftmq keeps on disk.

// Derived files side: stored-message codec, consumequeue, index, dispatcher, metadata.
pub mod message;
