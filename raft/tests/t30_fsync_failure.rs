//! A failing fsync stops the node it happens on, never the group: a follower that cannot
//! make its log durable drops out while the others keep committing; a leader that cannot is
//! replaced and every acknowledged send survives.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::{Cluster, QUEUES};
use raftmq_store::io::{FaultyFileSystem, FileSystem};

async fn faulty_cluster() -> (Cluster, Vec<Arc<FaultyFileSystem>>) {
    let faulty: Vec<Arc<FaultyFileSystem>> = (0..3).map(|_| FaultyFileSystem::new()).collect();
    let fs: Vec<Arc<dyn FileSystem>> = faulty
        .iter()
        .map(|f| f.clone() as Arc<dyn FileSystem>)
        .collect();
    (Cluster::start_with_fs(fs).await, faulty)
}

fn fatal(c: &Cluster, n: usize) -> bool {
    c.node(n).group.metrics().fatal.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_fsync_failure_stops_only_that_follower() {
    let (c, faulty) = faulty_cluster().await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    let victim = (leader + 1) % 3;
    c.send(leader, 0, "before").await.unwrap();
    faulty[victim].enable("commitlog::sync::err", None);
    for i in 0..30 {
        c.send(leader, i % QUEUES, &format!("during-{i}"))
            .await
            .unwrap();
    }
    common::wait_until(
        "the follower stopped on the fsync error",
        Duration::from_secs(10),
        || {
            let f = fatal(&c, victim);
            async move { f }
        },
    )
    .await;
    assert!(c.node(victim).log.is_poisoned());
    assert!(!fatal(&c, leader));
    assert!(!c.node(victim).group.role().borrow().is_leader);
    // The group still commits with two nodes.
    let r = c.send(leader, 1, "after").await.unwrap();
    assert_eq!(
        c.read_body(leader, 1, r[0].queue_offset).unwrap().1,
        "after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_fsync_failure_hands_over_without_losing_acks() {
    let (c, faulty) = faulty_cluster().await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    let mut acks = vec![];
    for i in 0..20 {
        let body = format!("pre-{i}");
        let r = c.send(leader, i % QUEUES, &body).await.unwrap();
        acks.push((i % QUEUES, r[0].queue_offset, body));
    }
    faulty[leader].enable("commitlog::sync::err", None);
    // This send cannot become durable on the leader: it must not be acknowledged by it.
    let lost = tokio::time::timeout(Duration::from_secs(5), c.send(leader, 0, "doomed")).await;
    assert!(
        !matches!(lost, Ok(Ok(_))),
        "acked without a durable leader log: {lost:?}"
    );
    common::wait_until("the old leader stopped", Duration::from_secs(10), || {
        let f = fatal(&c, leader);
        async move { f }
    })
    .await;
    // A new leader among the others takes sends.
    let start = std::time::Instant::now();
    let new = loop {
        let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let l = c.node(others[0]).group.role().borrow().leader;
        if let Some(l) = l.map(|l| l as usize).filter(|l| *l != leader) {
            if c.node(l).group.role().borrow().ready {
                break l;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let r = c.send(new, 2, "new-leader").await.unwrap();
    acks.push((2, r[0].queue_offset, "new-leader".into()));
    for n in (0..3).filter(|i| *i != leader) {
        for (q, off, body) in &acks {
            common::wait_until("ack present on a survivor", Duration::from_secs(10), || {
                let got = c.read_body(n, *q, *off).map(|(_, b)| b);
                async move { got.as_deref() == Some(body.as_str()) }
            })
            .await;
        }
    }
}
