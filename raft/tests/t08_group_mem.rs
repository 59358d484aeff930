//! RaftGroup lifecycle over loopback TCP with the in-memory test store: bootstrap on every
//! node at once, role watcher, failover after the leader is dropped without shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::mem::{MemLog, MemSm};
use common::wait_until;
use raftmq_raft::network::{PeerListener, TransportConfig};
use raftmq_raft::{
    BrokerCommand, NodeId, PeerNode, RaftGroup, RaftGroupConfig, RaftGroupError, Transport,
};

fn config(id: NodeId, peers: &BTreeMap<NodeId, PeerNode>) -> RaftGroupConfig {
    let mut c = RaftGroupConfig::new("g", id, peers.clone());
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(500);
    c.election_timeout_max = Duration::from_millis(1000);
    c
}

async fn start3() -> (Vec<Option<RaftGroup>>, Vec<MemSm>) {
    let mut listeners = vec![];
    let mut peers = BTreeMap::new();
    for id in 0..3u64 {
        let tmp = RaftGroupConfig::new("g", id, [(id, PeerNode::new("127.0.0.1:1"))].into());
        let l = PeerListener::bind("127.0.0.1:0", TransportConfig::from_group(&tmp))
            .await
            .unwrap();
        peers.insert(id, PeerNode::new(l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    let mut groups = vec![];
    let mut sms = vec![];
    for (id, l) in listeners.into_iter().enumerate() {
        let sm = MemSm::default();
        let g = RaftGroup::start(
            &config(id as NodeId, &peers),
            Transport::Tcp(Some(l)),
            MemLog::default(),
            sm.clone(),
            true,
        )
        .await
        .unwrap();
        groups.push(Some(g));
        sms.push(sm);
    }
    (groups, sms)
}

fn agreed_leader(groups: &[Option<RaftGroup>]) -> Option<usize> {
    let live: Vec<_> = groups.iter().flatten().collect();
    let l = live.first()?.role().borrow().leader?;
    let all = live.iter().all(|g| g.role().borrow().leader == Some(l));
    let ready = groups.get(l as usize)?.as_ref()?.role().borrow().ready;
    (all && ready).then_some(l as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_everywhere_elect_then_fail_over_after_kill() {
    let (mut groups, sms) = start3().await;
    wait_until(
        "one ready leader all agree on",
        Duration::from_secs(15),
        || {
            let ok = agreed_leader(&groups).is_some();
            async move { ok }
        },
    )
    .await;
    let leader = agreed_leader(&groups).unwrap();
    let follower = (leader + 1) % 3;

    // A follower refuses writes and names the leader.
    let err = groups[follower]
        .as_ref()
        .unwrap()
        .write(BrokerCommand::DeleteTopic { topic: "x".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(err, RaftGroupError::NotLeader { leader: Some(l), .. } if l as usize == leader),
        "{err:?}"
    );

    let mut acked = vec![];
    for i in 0..10 {
        let (idx, _) = groups[leader]
            .as_ref()
            .unwrap()
            .write(BrokerCommand::DeleteTopic {
                topic: format!("t{i}"),
            })
            .await
            .unwrap();
        acked.push(idx);
    }
    let m = groups[leader].as_ref().unwrap().metrics();
    assert_eq!(m.voters.len(), 3);
    assert!(m.replication.len() >= 2, "{m:?}");

    // Watch a survivor's role, then kill the leader (drop without shutdown).
    let mut survivor_role = groups[follower].as_ref().unwrap().role();
    let old_term = survivor_role.borrow().term;
    let killed_at = std::time::Instant::now();
    groups[leader] = None;

    let new_leader = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            survivor_role.changed().await.unwrap();
            let r = *survivor_role.borrow();
            if let Some(l) = r.leader {
                if l as usize != leader && r.term > old_term {
                    return l as usize;
                }
            }
        }
    })
    .await
    .expect("a new leader within 15s");
    let g = groups[new_leader].as_ref().unwrap();
    g.wait_for_ready_leader(Duration::from_secs(10))
        .await
        .unwrap();
    g.write(BrokerCommand::DeleteTopic {
        topic: "after".into(),
    })
    .await
    .unwrap();
    tracing::info!(elapsed = ?killed_at.elapsed(), "failover");

    for (i, sm) in sms.iter().enumerate() {
        if i == leader {
            continue;
        }
        wait_until(
            "survivor applied all acked writes",
            Duration::from_secs(10),
            || {
                let n = sm.inner.lock().unwrap().commands.len();
                async move { n == 11 }
            },
        )
        .await;
        let cmds = sm.inner.lock().unwrap().commands.clone();
        for (k, idx) in acked.iter().enumerate() {
            assert!(
                cmds.iter().any(|(i, c)| i == idx
                    && *c
                        == BrokerCommand::DeleteTopic {
                            topic: format!("t{k}")
                        }),
                "acked write {k} at index {idx} missing on node {i}"
            );
        }
    }
    for g in groups.into_iter().flatten() {
        g.shutdown().await.unwrap();
    }
}
