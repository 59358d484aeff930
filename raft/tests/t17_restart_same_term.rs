//! A leader that restarts keeps its term (openraft 0.9 restores a committed vote of its own
//! as leadership, without a new blank entry), and it reports itself `ready` at once because
//! its last applied entry is of that term. Entries of the same term after the applied point
//! (here: an uncommitted tail it appended while cut off) are not applied yet, so the applied
//! queue-offset table is stale. The proposer must not sequence a send until the whole log is
//! applied; otherwise it reuses queue offsets of the tail, and once the tail commits, apply
//! meets a queue-offset gap on every member and the group stops.
//!
//! The window is held open deterministically with the in-memory router: the restarted
//! leader stays isolated, so its tail cannot commit, while the followers' long election
//! timeouts keep the term unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{message, Cluster, TOPIC};
use raftmq_raft::network::Router;
use raftmq_raft::{NodeId, PeerNode, RaftGroupConfig};

/// Followers wait at least 3 s (lease) + 3 s before campaigning: far longer than the test
/// keeps the leader cut off, so the term never changes.
fn slow_election(id: NodeId, peers: &BTreeMap<NodeId, PeerNode>) -> RaftGroupConfig {
    let mut c = common::cluster::group_config(id, peers);
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(3000);
    c.election_timeout_max = Duration::from_millis(4000);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_leader_does_not_sequence_before_its_same_term_tail_is_applied() {
    let router = Router::new();
    let mut c = Cluster::start_routed_with(router.clone(), slow_election).await;
    let t = Duration::from_secs(20);
    let leader = c.wait_leader(t).await;
    let term = c.node(leader).group.role().borrow().term;

    // Acknowledged: queue 0 offsets 0..5, applied everywhere.
    for i in 0..5 {
        let r = c.send(leader, 0, &format!("acked-{i}")).await.unwrap();
        assert_eq!(r[0].queue_offset, i);
    }
    let applied_before = c
        .node(leader)
        .sm
        .with_dispatcher(|d| d.max_offset(TOPIC, 0));
    assert_eq!(applied_before, 5);

    // Cut off, the leader appends a tail of term `term` it cannot commit: one entry of
    // three messages, queue 0 offsets 5..8.
    router.isolate(leader as NodeId);
    let before = c.node(leader).group.metrics().last_log_index.unwrap();
    let mut batch = message(0, "tail-0");
    batch.extend_from_slice(&message(0, "tail-1"));
    batch.extend_from_slice(&message(0, "tail-2"));
    let tail = tokio::spawn(c.node(leader).proposer.send_owned(batch));
    common::wait_until("the tail is in the leader's log", t, || {
        let last = c.node(leader).group.metrics().last_log_index.unwrap();
        async move { last == before + 1 }
    })
    .await;

    // Killed and restarted from disk, still cut off: the same term, leader at once, and
    // `ready` although the tail is not applied.
    c.kill(leader);
    assert!(
        tail.await.unwrap().is_err(),
        "an uncommitted send was acknowledged"
    );
    c.restart(leader).await;
    common::wait_until("the restarted node leads its old term", t, || {
        let r = *c.node(leader).group.role().borrow();
        async move { r.is_leader && r.ready }
    })
    .await;
    let n = c.node(leader);
    let role = *n.group.role().borrow();
    let m = n.group.metrics();
    assert_eq!(role.term, term, "the restarted leader changed term: {m:?}");
    assert_eq!(m.last_log_index, Some(before + 1));
    assert!(
        m.applied_index < m.last_log_index,
        "the window is closed: the tail was applied at restart: {m:?}"
    );
    assert_eq!(n.sm.with_dispatcher(|d| d.max_offset(TOPIC, 0)), 5);

    // A send now must wait for the tail to be applied. Sequenced from the stale table it
    // would reuse offset 5 and reach the log at once.
    let send = tokio::spawn(n.proposer.send_owned(message(0, "after-restart")));
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        let last = c.node(leader).group.metrics().last_log_index;
        assert_eq!(
            last,
            Some(before + 1),
            "a send was sequenced while the same-term tail was unapplied (its queue offsets repeat the tail's)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Reconnected, the tail commits and the send follows it.
    router.heal();
    let mut first = tokio::time::timeout(t, send).await.unwrap().unwrap();
    let deadline = Instant::now() + t;
    while first.is_err() && Instant::now() < deadline {
        // Refused while the reseed waited: a retry goes through once the tail is applied.
        first = c.send(leader, 0, "after-restart").await;
    }
    let first = first.unwrap();
    assert_eq!(first[0].queue_offset, 8, "the send did not follow the tail");
    assert_eq!(c.node(leader).group.role().borrow().term, term);

    // Every member applied the same queue 0 without a gap, and nobody stopped.
    c.wait_dispatched(&[9, 0, 0, 0], t).await;
    let want = [
        "acked-0",
        "acked-1",
        "acked-2",
        "acked-3",
        "acked-4",
        "tail-0",
        "tail-1",
        "tail-2",
        "after-restart",
    ];
    for node in 0..3 {
        assert_eq!(c.node(node).group.metrics().fatal, None, "n{node} stopped");
        for (off, body) in want.iter().enumerate() {
            let got = c.read_body(node, 0, off as i64).map(|(_, b)| b);
            assert_eq!(got.as_deref(), Some(*body), "n{node} queue 0 offset {off}");
        }
    }
}
