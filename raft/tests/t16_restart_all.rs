//! Every member killed at once (dropped without shutdown) and restarted, three times, each
//! time right after a burst that leaves the log ahead of the leader's dispatch checkpoint:
//! the group takes writes again and queue offsets continue without a gap or a repeat.
//!
//! The same-term restart race behind the proposer's reseed rule (a restarted leader keeps its
//! term, looks ready, and must not sequence from a stale applied table) is reproduced by
//! `raftmq-jepsen run` with kills of every node (`jepsen/tests/nemesis_run.rs`); this
//! in-process test covers the whole-group restart path but does not hit that window.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, TOPIC};
use raftmq_store::checkpoint::DispatchCheckpoint;
use raftmq_store::io::StdFileSystem;

const SEND_WITHIN: Duration = Duration::from_secs(30);

/// Send one message to queue 0 through whichever node leads, retrying while the group
/// elects or reseeds; returns its queue offset.
async fn send_until_acked(c: &Cluster, body: &str, within: Duration) -> i64 {
    let start = Instant::now();
    loop {
        // Like a client with a cached route: go to whichever node says it is a ready leader,
        // without waiting for the others to have heard of it.
        let claimed = c
            .live()
            .into_iter()
            .find(|n| c.node(*n).group.role().borrow().ready);
        if let Some(l) = claimed {
            if let Ok(r) = c.send(l, 0, body).await {
                return r[0].queue_offset;
            }
        }
        assert!(
            start.elapsed() < within,
            "{body} was never acknowledged within {within:?} (the group stopped taking writes)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_killed_whole_restarts_and_continues_queue_offsets() {
    let mut c = Cluster::start().await;
    let mut next = 0i64;
    for round in 0..3 {
        let leader = c.wait_leader(Duration::from_secs(30)).await;
        let term = c.node(leader).group.role().borrow().term;
        // Keep writing until the leader's dispatch checkpoint on disk is of this term (the
        // state machine checkpoints on apply, at most once a second) ...
        let start = Instant::now();
        let mut i = 0;
        loop {
            let off = send_until_acked(&c, &format!("r{round}-m{i}"), SEND_WITHIN).await;
            assert_eq!(off, next, "round {round}: offsets continue without a gap");
            next += 1;
            i += 1;
            let ckpt = DispatchCheckpoint::load(&StdFileSystem, &c.node(leader).dir).unwrap();
            if ckpt.and_then(|k| k.applied).is_some_and(|a| a.term == term) {
                break;
            }
            assert!(
                start.elapsed() < SEND_WITHIN,
                "no dispatch checkpoint of term {term}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ... then a burst right before the kill, so the log runs ahead of that checkpoint.
        for _ in 0..20 {
            let off = send_until_acked(&c, &format!("r{round}-m{i}"), SEND_WITHIN).await;
            assert_eq!(off, next, "round {round}: offsets continue without a gap");
            next += 1;
            i += 1;
        }
        for id in 0..3 {
            c.kill(id);
        }
        for id in 0..3 {
            c.restart(id).await;
        }
    }
    // After the last restart the group takes writes again, at the next offset.
    let off = send_until_acked(&c, "after", SEND_WITHIN).await;
    assert_eq!(off, next);
    next += 1;
    let mut counts = vec![0i64; common::cluster::QUEUES as usize];
    counts[0] = next;
    c.wait_dispatched(&counts, Duration::from_secs(30)).await;
    for node in c.live() {
        assert_eq!(
            c.read_body(node, 0, next - 1).map(|(_, b)| b).as_deref(),
            Some("after"),
            "node {node} serves the last message from {TOPIC}/0"
        );
        assert_eq!(c.read_body(node, 0, 0).unwrap().1, "r0-m0");
    }
}
