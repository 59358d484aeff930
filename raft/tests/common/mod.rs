//! Shared helpers of the raft integration tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cluster;
pub mod mem;

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll `cond` until it holds or `deadline` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback address (bind to port 0 and read it back).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
