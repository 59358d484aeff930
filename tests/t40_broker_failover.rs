//! Failover over real processes: `kill -9` of the leader of a 3-node group while a producer
//! sends; the producer resumes on the new leader (found through the nameserver), and every
//! acknowledged message is there afterwards, on the new leader and on the restarted node.
#![allow(clippy::unwrap_used)]

#[path = "common/broker_cluster.rs"]
mod broker_cluster;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker_cluster::*;

/// Send one message, retrying on refusals and lost connections against whatever the
/// nameserver says leads, until `deadline`. Returns (queueId, queueOffset, leader used).
async fn send_until_ok(
    cluster: &Cluster,
    uniq: &str,
    deadline: Instant,
    leader: &mut String,
) -> (i32, i64) {
    let p = props(&[("TAGS", "T"), ("UNIQ_KEY", uniq), ("KEYS", uniq)]);
    loop {
        assert!(
            Instant::now() < deadline,
            "could not send {uniq} before the deadline"
        );
        let c = Cluster::client(leader);
        match c
            .invoke(
                send_req("Failover", -1, &p, uniq.as_bytes()),
                Duration::from_secs(3),
            )
            .await
        {
            Ok(resp) if resp.code == 0 => {
                return (
                    resp.ext_fields["queueId"].parse().unwrap(),
                    resp.ext_fields["queueOffset"].parse().unwrap(),
                )
            }
            Ok(resp) => assert!(
                [1, 2, 14].contains(&resp.code),
                "unexpected send answer {} {:?}",
                resp.code,
                resp.remark
            ),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        *leader = cluster.leader_addr(None, Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(3);
    let first_leader = cluster.leader_addr(None, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut leader = first_leader.clone();
    let mut acked: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for i in 0..30 {
        let uniq = format!("M{i:05}");
        let at = send_until_ok(&cluster, &uniq, deadline, &mut leader).await;
        acked.insert(uniq, at);
    }

    // kill -9 the leader with sends in flight.
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.addr == first_leader)
        .unwrap();
    let inflight = tokio::spawn({
        let leader = first_leader.clone();
        async move {
            let c = Cluster::client(&leader);
            let mut ok = vec![];
            for i in 0..200 {
                let uniq = format!("F{i:05}");
                let p = props(&[("TAGS", "T"), ("UNIQ_KEY", &uniq)]);
                match c
                    .invoke(
                        send_req("Failover", -1, &p, uniq.as_bytes()),
                        Duration::from_secs(3),
                    )
                    .await
                {
                    Ok(r) if r.code == 0 => ok.push(uniq),
                    _ => break,
                }
            }
            ok
        }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    cluster.kill(victim);
    let killed_at = Instant::now();
    for uniq in inflight.await.unwrap() {
        acked.insert(uniq, (-1, -1));
    }

    // The producer resumes on the new leader.
    for i in 30..60 {
        let uniq = format!("M{i:05}");
        let at = send_until_ok(&cluster, &uniq, deadline, &mut leader).await;
        acked.insert(uniq, at);
    }
    assert_ne!(leader, first_leader);
    let failover = killed_at.elapsed();
    eprintln!("producer resumed on {leader} {failover:?} after kill -9 of {first_leader}");

    // Every acknowledged message is on the new leader, at the offset it was acknowledged with.
    let got = drain(&leader, "Failover", 4, "*").await;
    let by_uniq: BTreeMap<String, (i32, i64)> = got
        .iter()
        .map(|((q, o), m)| (m.uniq.clone().unwrap(), (*q, *o)))
        .collect();
    for (uniq, at) in &acked {
        assert!(
            by_uniq.contains_key(uniq),
            "acknowledged message {uniq} lost"
        );
        if at.0 >= 0 {
            assert_eq!(
                got.get(at).and_then(|m| m.uniq.as_deref()),
                Some(uniq.as_str()),
                "{uniq} acknowledged at {at:?} but stored elsewhere"
            );
        }
    }

    // The killed node comes back, catches up and serves the same bytes.
    cluster.start_node(victim);
    let back = cluster.nodes[victim].addr.clone();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let theirs = drain(&back, "Failover", 4, "*").await;
        if theirs.len() == got.len() {
            assert_eq!(theirs, got);
            break;
        }
        assert!(
            Instant::now() < until,
            "restarted node has {} of {}",
            theirs.len(),
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
