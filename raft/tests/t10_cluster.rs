//! Three nodes on the real store over loopback TCP: replication through the proposer,
//! identical dispatch on every node, leader kill under load, restart from disk.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{Cluster, QUEUES};
use tokio::sync::Mutex;

/// An acknowledged send: (queue, queue offset, phys offset, body).
type Ack = (i32, i64, i64, String);

fn check_acks_unique_and_contiguous(acks: &[Ack]) -> Vec<i64> {
    let mut per_queue: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (q, off, _, body) in acks {
        assert!(
            per_queue.entry(*q).or_default().insert(*off),
            "queue {q} offset {off} acked twice ({body})"
        );
    }
    let mut counts = vec![0i64; QUEUES as usize];
    for (q, offs) in per_queue {
        counts[q as usize] = offs.len() as i64;
    }
    counts
}

/// Every acked message is at its offset with its body on `node`.
fn check_acks_on(c: &Cluster, node: usize, acks: &[Ack]) {
    for (q, off, phys, body) in acks {
        let (p, b) = c
            .read_body(node, *q, *off)
            .unwrap_or_else(|| panic!("n{node} lacks acked {body} at queue {q} offset {off}"));
        assert_eq!(&b, body, "n{node} queue {q} offset {off}");
        assert_eq!(
            p, *phys,
            "n{node}: physical offset of {body} differs from the ack"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_dispatch_the_same_committed_messages() {
    let c = Arc::new(Cluster::start().await);
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    // A follower reports queue advances (what long polling listens to).
    let advanced = Arc::new(std::sync::Mutex::new(BTreeMap::<i32, i64>::new()));
    let seen = advanced.clone();
    c.node((leader + 1) % 3)
        .sm
        .set_queue_advanced_hook(Box::new(move |_topic: &str, q: i32, max: i64| {
            seen.lock().unwrap().insert(q, max);
        }));

    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let mut tasks = vec![];
    let senders = 8;
    let per_sender = 25;
    for s in 0..senders {
        let c = c.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_sender {
                let q = ((s + i) % QUEUES as usize) as i32;
                let body = format!("s{s}-m{i}");
                let r = c.send(leader, q, &body).await.unwrap();
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].queue_id, q);
                acks.lock()
                    .await
                    .push((q, r[0].queue_offset, r[0].phys_offset, body));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().await.clone();
    assert_eq!(acks.len(), senders * per_sender);
    let counts = check_acks_unique_and_contiguous(&acks);
    assert_eq!(counts.iter().sum::<i64>(), (senders * per_sender) as i64);
    c.wait_dispatched(&counts, Duration::from_secs(20)).await;
    for n in 0..3 {
        check_acks_on(&c, n, &acks);
    }
    let advanced = advanced.lock().unwrap().clone();
    for q in 0..QUEUES {
        assert_eq!(
            advanced.get(&q).copied().unwrap_or(0),
            counts[q as usize],
            "hook of queue {q}"
        );
    }
    // Group commit: concurrent sends share entries.
    let entries = c.node(leader).group.metrics().last_log_index.unwrap();
    assert!(
        (entries as usize) < senders * per_sender,
        "{entries} entries for {} sends: no batching",
        senders * per_sender
    );
    // A multi-message send gets consecutive offsets in one queue.
    let mut batch = common::cluster::message(2, "b1");
    batch.extend_from_slice(&common::cluster::message(2, "b2"));
    let r = c.node(leader).proposer.send(batch).await.unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].queue_offset, r[0].queue_offset + 1);
    assert_eq!(r[0].queue_offset, counts[2]);
    // A follower refuses sends.
    let f = (leader + 1) % 3;
    assert!(matches!(
        c.send(f, 0, "x").await,
        Err(raftmq_raft::RaftGroupError::NotLeader { .. })
    ));
    // Malformed bytes are refused without touching the sequencer.
    let bad = bytes::BytesMut::from(&b"not a message"[..]);
    assert!(matches!(
        c.node(leader).proposer.send(bad).await,
        Err(raftmq_raft::RaftGroupError::InvalidCommand(_))
    ));
    // So is a send larger than one batch may be (it could not fit a record).
    let mut huge = common::cluster::message(2, &"z".repeat(20_000));
    huge.extend_from_slice(&common::cluster::message(2, &"w".repeat(20_000)));
    assert!(matches!(
        c.node(leader).proposer.send(huge).await,
        Err(raftmq_raft::RaftGroupError::InvalidCommand(_))
    ));
    let r = c.send(leader, 2, "after-bad").await.unwrap();
    assert_eq!(r[0].queue_offset, counts[2] + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_send() {
    let c = Arc::new(Mutex::new(Cluster::start().await));
    let first = c.lock().await.wait_leader(Duration::from_secs(20)).await;

    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = vec![];
    for s in 0..4usize {
        let c = c.clone();
        let acks = acks.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                let q = ((s + i) % QUEUES as usize) as i32;
                let body = format!("s{s}-m{i}");
                i += 1;
                // Send to whoever leads now; failures are simply not acknowledged.
                let fut = {
                    let g = c.lock().await;
                    match g.ready_leader() {
                        Some(l) => {
                            let msg = common::cluster::message(q, &body);
                            let p = &g.node(l).proposer;
                            // Queue the send while holding the lock, await it after.
                            Some(p.send_owned(msg))
                        }
                        None => None,
                    }
                };
                match fut {
                    Some(f) => {
                        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), f).await {
                            acks.lock()
                                .await
                                .push((q, r[0].queue_offset, r[0].phys_offset, body));
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    // Let some load through, then kill the leader mid-stream.
    common::wait_until("40 acks before the kill", Duration::from_secs(20), || {
        let acks = acks.clone();
        async move { acks.lock().await.len() >= 40 }
    })
    .await;
    c.lock().await.kill(first);
    let before = acks.lock().await.len();
    common::wait_until(
        "40 more acks after the kill",
        Duration::from_secs(30),
        || {
            let acks = acks.clone();
            async move { acks.lock().await.len() >= before + 40 }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().await.clone();
    let g = c.lock().await;
    let new = g.wait_leader(Duration::from_secs(20)).await;
    assert_ne!(new, first);
    check_acks_unique_and_contiguous(&acks);
    // Survivors converge on the same queues; every ack is there, at its acked place.
    let counts: Vec<i64> = (0..QUEUES)
        .map(|q| {
            g.node(new)
                .sm
                .with_dispatcher(|d| d.max_offset(common::cluster::TOPIC, q))
        })
        .collect();
    g.wait_dispatched(&counts, Duration::from_secs(20)).await;
    for n in g.live() {
        check_acks_on(&g, n, &acks);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_catches_up_across_segments() {
    let mut c = Cluster::start().await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    let victim = (leader + 1) % 3;
    let mut acks = vec![];
    for i in 0..20 {
        let body = format!("pre-{i}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    c.kill(victim);
    // About 300 KiB of messages: several 64 KiB segments while the follower is down.
    let pad = "x".repeat(1000);
    for i in 0..300 {
        let body = format!("down-{i}-{pad}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, r[0].phys_offset, body));
    }
    assert!(
        c.node(leader).log.segments().len() >= 4,
        "test did not roll segments"
    );
    c.restart(victim).await;
    let counts = check_acks_unique_and_contiguous(&acks);
    c.wait_dispatched(&counts, Duration::from_secs(30)).await;
    for n in 0..3 {
        check_acks_on(&c, n, &acks);
    }
    // Byte-identical logs: every record the leader has is at the same place on the follower.
    let ls = c.node(leader).log.state();
    let fs = c.node(victim).log.state();
    assert_eq!(ls.first_pos, fs.first_pos);
    common::wait_until("follower log end matches", Duration::from_secs(10), || {
        let (a, b) = (c.node(leader).log.state(), c.node(victim).log.state());
        async move { a.next_pos == b.next_pos && a.next_index == b.next_index }
    })
    .await;
    // The segment files themselves, read from disk after every node stopped, hold the same
    // bytes up to the end of the committed entry (its position from the raw entry index).
    let commit = c.node(leader).log.committed().unwrap().index;
    c.stop_all().await;
    let others: Vec<usize> = (0..3).filter(|n| *n != leader).collect();
    common::cluster::assert_raw_logs_identical(
        &c,
        &[leader, others[0], others[1]],
        ls.first_pos,
        commit,
    );
}
