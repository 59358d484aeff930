//! Compatibility tests of the crates.io client `rocketmq-client-rust` (=1.0.0) against raftmq:
//! the real `raftmq` processes (`namesrv`, `broker`, `dev`) driven by the third-party client.
//!
//! Everything lives in `tests/` (`common/` holds the process harness and the scenarios); this
//! library target is empty. The crate exists so that no raftmq crate depends on the
//! third-party client: it knows raftmq only through its binary and, for a fake broker
//! registration, its public remoting/nameserver API.
