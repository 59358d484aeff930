//! Compatibility tests of the crates.io client `rocketmq-client-rust` against raftmq.
//!
//! The tests live in `tests/`; this library only holds nothing so the crate builds on its own.
