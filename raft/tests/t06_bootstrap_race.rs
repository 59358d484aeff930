//! Every node bootstraps the same group at once: all three end up replicating, whatever
//! the interleaving of their first elections.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bootstrap_converges_on_one_leader_replicating_to_all() {
    for round in 0..5 {
        let c = Cluster::start().await;
        let leader = c.wait_leader(Duration::from_secs(20)).await;
        c.send(leader, 0, "x").await.unwrap();
        let start = std::time::Instant::now();
        loop {
            let m = c.node(leader).group.metrics();
            let ok = m.replication.len() == 3
                && m.replication
                    .values()
                    .all(|v| v.is_some() && *v == m.last_log_index);
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "round {round}: not every node replicates: {m:?} / {:?}",
                (0..3)
                    .map(|i| c.node(i).group.metrics())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn stable_leader_with_all(c: &Cluster, leader: usize, term: u64) {
    let start = std::time::Instant::now();
    loop {
        let m = c.node(leader).group.metrics();
        assert_eq!(m.leader, Some(leader as u64), "leader changed: {m:?}");
        assert_eq!(m.term, term, "term changed: {m:?}");
        if m.replication.len() == 3
            && m.replication
                .values()
                .all(|v| v.is_some() && *v == m.last_log_index)
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "late node never replicated: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_pristine_node_joins_without_deposing_the_leader() {
    // n2 (highest id) comes up after n0 and n1 formed the group.
    let mut c = Cluster::start_only(&[0, 1]).await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    c.send(leader, 0, "before").await.unwrap();
    let term = c.node(leader).group.metrics().term;
    c.restart(2).await;
    stable_leader_with_all(&c, leader, term).await;
    // Still stable a little later (no delayed campaign).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stable_leader_with_all(&c, leader, term).await;
    c.send(leader, 1, "after").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_forms_without_its_lowest_id_which_then_joins() {
    // n0 is down at first start: n1 and n2 initialise by themselves after waiting.
    let mut c = Cluster::start_only(&[1, 2]).await;
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    c.send(leader, 0, "before").await.unwrap();
    let term = c.node(leader).group.metrics().term;
    c.restart(0).await;
    stable_leader_with_all(&c, leader, term).await;
    c.send(leader, 1, "after").await.unwrap();
}
