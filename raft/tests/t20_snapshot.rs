//! Segment-boundary snapshots and purge: purges stop at a retention bound and at what every
//! member matched; a follower that was down while the leader purged comes back through the
//! snapshot at the leader's purge point (never a newer one) plus the retained log, with
//! record positions identical to the leader's.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::cluster::{Cluster, QUEUES, TOPIC};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_respects_bounds_and_snapshot_brings_a_follower_back() {
    let mut c = Cluster::start().await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    let victim = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let pad = "y".repeat(1000);
    let t = Duration::from_secs(10);

    let mut acks = vec![];
    for i in 0..100 {
        let body = format!("a-{i}-{pad}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    let n = c.node(leader);
    common::wait_until("followers matched", t, || {
        let m = n.group.metrics();
        let ok = m.replication.values().all(|v| *v == m.last_log_index);
        async move { ok }
    })
    .await;
    // A retention bound: the purge stops at the newest boundary at or below it.
    let bounds = n.sm.boundary_snapshots();
    assert!(bounds.len() >= 2, "test did not roll segments: {bounds:?}");
    let bound = bounds[1].index;
    let first = n
        .group
        .compact(&n.sm, &n.log, Some(bound), false, t)
        .await
        .unwrap();
    assert_eq!(first, Some(bound));
    assert_eq!(n.sm.current_snapshot(), Some(bounds[1]));
    assert!(n.log.state().first_pos > 0);
    assert!(
        n.sm.boundary_snapshots().iter().all(|b| b.index >= bound),
        "snapshots below the purge point kept"
    );

    // Now a follower is down while the leader writes and purges again.
    c.kill(victim);
    for i in 100..400 {
        let body = format!("b-{i}-{pad}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    let n = c.node(leader);
    // Without force, the purge stays at or below what the dead follower matched.
    let victim_matched = n.group.metrics().replication[&(victim as u64)].unwrap();
    if let Some(p) = n
        .group
        .compact(&n.sm, &n.log, None, false, t)
        .await
        .unwrap()
    {
        assert!(
            p <= victim_matched,
            "purged {p} past the follower's {victim_matched}"
        );
    }
    let purged = n
        .group
        .compact(&n.sm, &n.log, None, true, t)
        .await
        .unwrap()
        .expect("forced purge");
    assert!(purged > victim_matched);
    // More segments roll after the purge: a follower must still get the snapshot at the
    // purge point, not a newer boundary (it would lack messages the leader retains).
    for i in 400..520 {
        let body = format!("c-{i}-{pad}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    // The other follower purges independently.
    let o = c.node(other);
    o.group.compact(&o.sm, &o.log, None, true, t).await.unwrap();

    c.restart(victim).await;
    common::wait_until(
        "restarted follower caught up",
        Duration::from_secs(30),
        || {
            let (a, b) = (c.node(leader).log.state(), c.node(victim).log.state());
            async move { a.next_index == b.next_index && a.next_pos == b.next_pos }
        },
    )
    .await;
    let v = c.node(victim);
    // It never purged by itself: its purge mark is the installed snapshot's id.
    let vm = v.group.metrics();
    assert_eq!(
        vm.purged_index,
        Some(purged),
        "the follower did not come back through the snapshot at the leader's purge point: {vm:?}"
    );
    // Queues continue where the leader's do.
    for q in 0..QUEUES {
        let want = c
            .node(leader)
            .sm
            .with_dispatcher(|d| d.max_offset(TOPIC, q));
        common::wait_until("queue caught up", t, || {
            let got = v.sm.with_dispatcher(|d| d.max_offset(TOPIC, q));
            async move { got == want }
        })
        .await;
    }
    // Every acked message the leader still retains is on the follower at the same place.
    let retained = c.node(leader).log.state().first_pos;
    for (q, off, phys, body) in &acks {
        if (*phys as u64) < retained {
            continue;
        }
        let (p, b) = c
            .read_body(victim, *q, *off)
            .unwrap_or_else(|| panic!("follower lacks retained {q}/{off}"));
        assert_eq!((&b, p), (body, *phys));
    }
    // And new sends flow to it.
    let r = c.send(leader, 1, "after-snapshot").await.unwrap();
    common::wait_until("new send dispatched on the follower", t, || {
        let got = c.read_body(victim, 1, r[0].queue_offset).map(|(_, b)| b);
        async move { got.as_deref() == Some("after-snapshot") }
    })
    .await;
    // Byte-identical segment files from the leader's first retained position on, read from
    // disk after the nodes stopped, up to the end of the committed entry.
    let start = retained.max(c.node(victim).log.state().first_pos);
    let commit = c.node(leader).log.committed().unwrap().index;
    c.stop_all().await;
    common::cluster::assert_raw_logs_identical(&c, &[leader, victim], start, commit);
}

/// A purge must not outrun the state machine's persisted checkpoint: a node killed right
/// after compacting restarts by re-applying the log from its checkpoint, which the purge
/// would otherwise have deleted. The checkpoint policy here never checkpoints by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_right_after_compacting_restarts() {
    let mut c = Cluster::start_with_checkpoint(raftmq_raft::CheckpointPolicy {
        every_entries: u64::MAX,
        every: Duration::from_secs(3600),
    })
    .await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    let t = Duration::from_secs(10);
    let pad = "k".repeat(1000);
    let mut acks = vec![];
    for i in 0..200 {
        let body = format!("k-{i}-{pad}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    let n = c.node(leader);
    common::wait_until("followers matched", t, || {
        let m = n.group.metrics();
        let ok = m.replication.values().all(|v| *v == m.last_log_index);
        async move { ok }
    })
    .await;
    let purged = n
        .group
        .compact(&n.sm, &n.log, None, false, t)
        .await
        .unwrap()
        .expect("nothing purged");
    let first_pos = n.log.state().first_pos;
    assert!(first_pos > 0);

    c.kill(leader);
    c.restart(leader).await;
    let back = c.node(leader);
    assert_eq!(back.group.metrics().purged_index, Some(purged));
    // Everything it retains is readable again where it was.
    let counts: Vec<i64> = (0..QUEUES)
        .map(|q| acks.iter().filter(|a| a.0 == q).count() as i64)
        .collect();
    c.wait_dispatched(&counts, Duration::from_secs(30)).await;
    for (q, off, phys, body) in &acks {
        if (*phys as u64) < first_pos {
            continue;
        }
        assert_eq!(
            c.read_body(leader, *q, *off),
            Some((*phys, body.clone())),
            "{q}/{off} after the restart"
        );
    }
}
