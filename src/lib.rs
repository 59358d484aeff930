//! raftmq: a RocketMQ-compatible broker whose commitlog is a Raft log.
