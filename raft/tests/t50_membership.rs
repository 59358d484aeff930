//! Membership change and leadership transfer under load on the real store over TCP: add a
//! learner, promote it, remove an old voter, hand leadership to the new node; no
//! acknowledged send is lost and the new node holds them all.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{message, Cluster, QUEUES};
use raftmq_raft::NodeId;
use tokio::sync::{Mutex, RwLock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_promote_remove_and_transfer_under_load() {
    // Senders hold a read lock only to queue a send; the transfer holds one across its
    // waits (readers do not block each other); adding and killing nodes take the write lock.
    let c = Arc::new(RwLock::new(Cluster::start().await));
    let first = c.read().await.wait_leader(Duration::from_secs(20)).await;

    // Load: two senders sending to whoever leads, recording acks.
    let acks = Arc::new(Mutex::new(Vec::<(i32, i64, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for s in 0..2usize {
        let (c, acks, stop) = (c.clone(), acks.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                let q = ((s + i) % QUEUES as usize) as i32;
                let body = format!("s{s}-{i}");
                i += 1;
                let fut = {
                    let g = c.read().await;
                    g.ready_leader()
                        .map(|l| g.node(l).proposer.send_owned(message(q, &body)))
                };
                match fut {
                    Some(f) => {
                        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), f).await {
                            acks.lock().await.push((q, r[0].queue_offset, body));
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    // Add n3 as a learner (blocking: returns once it caught up), then make it a voter in
    // place of one of the followers, then drop that follower from the group.
    let n3 = c.write().await.add_node(3).await;
    let removed = (first + 1) % 3;
    {
        let g = c.read().await;
        let leader = g.node(first);
        leader.group.add_learner(3, n3, true).await.unwrap();
        let voters: BTreeSet<NodeId> = [0, 1, 2, 3]
            .into_iter()
            .filter(|v| *v != removed as NodeId)
            .collect();
        leader.group.change_voters(voters.clone()).await.unwrap();
        leader
            .group
            .remove_nodes([removed as NodeId].into())
            .await
            .unwrap();
        let m = leader.group.metrics();
        assert_eq!(m.voters, voters);
    }
    c.write().await.kill(removed);

    // Hand leadership to the new node while the senders keep going. Right after the
    // membership change the members may briefly disagree on who leads: wait (bounded) for a
    // ready leader, and give the transfer at most three tries.
    let mut moved = false;
    let mut tries = 0;
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while tries < 3 && std::time::Instant::now() < until {
        let g = c.read().await;
        match g.ready_leader() {
            Some(3) => {
                moved = true;
                break;
            }
            Some(cur) => {
                tries += 1;
                let t = g
                    .node(cur)
                    .group
                    .transfer_leadership(3, Duration::from_secs(15));
                if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(20), t).await {
                    moved = true;
                    break;
                }
            }
            None => {
                drop(g);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(moved, "leadership never reached n3");
    let before = acks.lock().await.len();
    common::wait_until("more acks with n3 leading", Duration::from_secs(20), || {
        let acks = acks.clone();
        async move { acks.lock().await.len() >= before + 20 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    let g = c.read().await;
    let leader = g.wait_leader(Duration::from_secs(20)).await;
    assert_eq!(leader, 3);
    let acks = acks.lock().await.clone();
    let mut seen: BTreeMap<(i32, i64), &str> = BTreeMap::new();
    for (q, off, body) in &acks {
        assert!(
            seen.insert((*q, *off), body).is_none(),
            "queue {q} offset {off} acked twice"
        );
    }
    for n in g.live() {
        for (q, off, body) in &acks {
            common::wait_until("ack present", Duration::from_secs(10), || {
                let got = g.read_body(n, *q, *off).map(|(_, b)| b);
                async move { got.as_deref() == Some(body.as_str()) }
            })
            .await;
        }
    }
}
