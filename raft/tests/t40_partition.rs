//! An isolated leader's uncommitted suffix is truncated when it rejoins: on the real store
//! over the in-memory router, the old leader ends with commitlog segment files byte-identical
//! to the new leader's up to the commit index (read from disk after the nodes stop), and its
//! unacknowledged sends are never acknowledged nor dispatched anywhere.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::cluster::{message, Cluster, QUEUES, TOPIC};
use raftmq_raft::network::Router;
use raftmq_raft::{NodeId, RaftGroupError};

fn bodies_in_queue(c: &Cluster, node: usize, q: i32) -> Vec<String> {
    let max = c.node(node).sm.with_dispatcher(|d| d.max_offset(TOPIC, q));
    (0..max)
        .filter_map(|o| c.read_body(node, q, o).map(|(_, b)| b))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_suffix_is_truncated_and_logs_converge() {
    let router = Router::new();
    let mut c = Cluster::start_routed(router.clone()).await;
    let old = c.wait_leader(Duration::from_secs(20)).await;
    let mut acked = vec![];
    for i in 0..10 {
        let body = format!("ok-{i}");
        let r = c.send(old, i % QUEUES, &body).await.unwrap();
        acked.push((i % QUEUES, r[0].queue_offset, body));
    }

    router.isolate(old as NodeId);
    let before = c.node(old).group.metrics().last_log_index;
    let doomed: Vec<_> = (0..5)
        .map(|i| {
            let f = c
                .node(old)
                .proposer
                .send_owned(message(i % QUEUES, &format!("doomed-{i}")));
            tokio::spawn(f)
        })
        .collect();
    common::wait_until(
        "the isolated leader appended an uncommitted suffix",
        Duration::from_secs(10),
        || {
            let last = c.node(old).group.metrics().last_log_index;
            async move { last > before }
        },
    )
    .await;

    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let start = std::time::Instant::now();
    let new = loop {
        let l = c
            .node(others[0])
            .group
            .role()
            .borrow()
            .leader
            .map(|l| l as usize);
        if let Some(l) = l.filter(|l| *l != old) {
            let agree = c.node(others[1]).group.role().borrow().leader == Some(l as NodeId);
            if agree && c.node(l).group.role().borrow().ready {
                break l;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for i in 0..10 {
        let body = format!("new-{i}");
        let r = c.send(new, i % QUEUES, &body).await.unwrap();
        acked.push((i % QUEUES, r[0].queue_offset, body));
    }

    router.heal();
    common::wait_until("old leader's log converged", Duration::from_secs(20), || {
        let (a, b) = (c.node(new).log.state(), c.node(old).log.state());
        async move { a.next_index == b.next_index && a.next_pos == b.next_pos && a.last == b.last }
    })
    .await;
    // Sends that reached the log before the old leader stepped down get "outcome unknown"
    // (the entry could have committed under the next leader); any still queued get a plain
    // refusal. None is acknowledged.
    let mut unknown = 0;
    for d in doomed {
        let res = tokio::time::timeout(Duration::from_secs(10), d).await;
        match res {
            Ok(Ok(Err(RaftGroupError::Indeterminate(_)))) => unknown += 1,
            Ok(Ok(Err(RaftGroupError::NotLeader { .. }))) => {}
            other => panic!("an uncommitted send ended with {other:?}"),
        }
    }
    assert!(
        unknown > 0,
        "no send in the appended suffix was reported as unknown"
    );
    // Identical derived state and identical bytes everywhere.
    let counts: Vec<i64> = (0..QUEUES)
        .map(|q| c.node(new).sm.with_dispatcher(|d| d.max_offset(TOPIC, q)))
        .collect();
    c.wait_dispatched(&counts, Duration::from_secs(10)).await;
    for n in 0..3 {
        for (q, off, body) in &acked {
            assert_eq!(
                c.read_body(n, *q, *off).map(|(_, b)| b).as_deref(),
                Some(body.as_str())
            );
        }
        for q in 0..QUEUES {
            assert!(
                bodies_in_queue(&c, n, q)
                    .iter()
                    .all(|b| !b.starts_with("doomed")),
                "n{n} dispatched an uncommitted message"
            );
        }
    }
    // Byte identity of the segment files themselves, read from disk once every node is
    // stopped, up to the end of the committed entry (its position from the raw entry index).
    let commit = c.node(new).log.committed().unwrap().index;
    let old_end = c.node(old).log.state().next_pos;
    c.stop_all().await;
    let order = [new, (new + 1) % 3, (new + 2) % 3];
    let end = common::cluster::assert_raw_logs_identical(&c, &order, 0, commit);
    assert_eq!(
        end, old_end,
        "the old leader's log does not end at the commit point"
    );
}
