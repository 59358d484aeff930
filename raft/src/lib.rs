//! raftmq-raft: replication of the commitlog with openraft.
