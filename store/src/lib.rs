//! raftmq-store: every byte raftmq keeps on disk.
