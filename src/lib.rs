//! raftmq: a RocketMQ-compatible broker whose commitlog is a Raft log.
//!
//! Layout:
//! - [`admin`]: broker group administration over remoting (status, membership, leadership).
//! - [`remoting`]: the RocketMQ remoting protocol (frames, commands, codes, headers, server, client).
//! - [`broker`]: the broker node: request processors over a Raft group.
//! - [`namesrv`]: the nameserver (route registry, broker liveness, KV config).
//! - [`client`]: a minimal RocketMQ client (producer, pull consumer) over the remoting protocol.
//! - [`config`]: RocketMQ-style `key=value` config files and the typed configs built from them.
//! - [`bench`]: `raftmq bench` load generators (produce, consume, in-process Raft group).
//! - [`telemetry`]: the `tracing` subscriber set-up used by the binary.
//! - `failpoints` (cargo feature `failpoints` only): simulated power cuts for chaos tests.

pub mod admin;
pub mod bench;
pub mod broker;
pub mod client;
pub mod config;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod namesrv;
pub mod remoting;
pub mod telemetry;
