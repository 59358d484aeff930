//! raftmq: a RocketMQ-compatible broker whose commitlog is a Raft log.
//!
//! Layout:
//! - [`remoting`]: the RocketMQ remoting protocol (frames, commands, codes, headers, server, client).
//! - [`namesrv`]: the nameserver (route registry, broker liveness, KV config).

pub mod namesrv;
pub mod remoting;
