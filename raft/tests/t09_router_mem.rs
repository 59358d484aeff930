//! Group behaviour over the in-memory router with the in-memory test store: partitions,
//! message loss and delay, and the leadership-transfer workaround.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::mem::{MemLog, MemSm};
use common::wait_until;
use raftmq_raft::network::Router;
use raftmq_raft::{BrokerCommand, NodeId, PeerNode, RaftGroup, RaftGroupConfig, Transport};

fn config(id: NodeId) -> RaftGroupConfig {
    let peers: BTreeMap<NodeId, PeerNode> = (0..3)
        .map(|i| (i, PeerNode::new(format!("127.0.0.1:{}", 50000 + i))))
        .collect();
    let mut c = RaftGroupConfig::new("g", id, peers);
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(500);
    c.election_timeout_max = Duration::from_millis(1000);
    c
}

async fn start3(router: &Router) -> (Vec<RaftGroup>, Vec<MemSm>) {
    let mut groups = vec![];
    let mut sms = vec![];
    for id in 0..3 {
        let sm = MemSm::default();
        let g = RaftGroup::start(
            &config(id),
            Transport::Router(router.clone()),
            MemLog::default(),
            sm.clone(),
            true,
        )
        .await
        .unwrap();
        groups.push(g);
        sms.push(sm);
    }
    (groups, sms)
}

fn ready_leader(groups: &[RaftGroup], among: &[usize]) -> Option<usize> {
    let l = groups[among[0]].role().borrow().leader? as usize;
    let agree = among
        .iter()
        .all(|i| groups[*i].role().borrow().leader == Some(l as NodeId));
    (agree && among.contains(&l) && groups[l].role().borrow().ready).then_some(l)
}

async fn wait_leader(groups: &[RaftGroup], among: &[usize]) -> usize {
    wait_until("a ready leader", Duration::from_secs(15), || {
        let ok = ready_leader(groups, among).is_some();
        async move { ok }
    })
    .await;
    ready_leader(groups, among).unwrap()
}

fn topic(i: usize) -> BrokerCommand {
    BrokerCommand::DeleteTopic {
        topic: format!("t{i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_is_replaced_and_rejoins_as_follower() {
    let router = Router::new();
    let (groups, sms) = start3(&router).await;
    let old = wait_leader(&groups, &[0, 1, 2]).await;
    for i in 0..5 {
        groups[old].write(topic(i)).await.unwrap();
    }
    router.isolate(old as NodeId);
    // A write on the isolated leader cannot commit.
    let stuck =
        tokio::time::timeout(Duration::from_millis(1500), groups[old].write(topic(99))).await;
    assert!(
        !matches!(stuck, Ok(Ok(_))),
        "isolated leader acknowledged a write"
    );

    let rest: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = wait_leader(&groups, &rest).await;
    for i in 5..10 {
        groups[new].write(topic(i)).await.unwrap();
    }
    router.heal();
    wait_until(
        "old leader follows the new one",
        Duration::from_secs(15),
        || {
            let r = *groups[old].role().borrow();
            async move { !r.is_leader && r.leader == Some(new as NodeId) }
        },
    )
    .await;
    // Every node ends with the same committed commands; the unacknowledged one is absent.
    for sm in &sms {
        wait_until("10 commands applied", Duration::from_secs(10), || {
            let n = sm.inner.lock().unwrap().commands.len();
            async move { n == 10 }
        })
        .await;
    }
    let want: Vec<BrokerCommand> = (0..10).map(topic).collect();
    for sm in &sms {
        let got: Vec<BrokerCommand> = sm
            .inner
            .lock()
            .unwrap()
            .commands
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        assert_eq!(got, want);
    }
    for g in groups {
        g.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_message_loss_and_delay() {
    let router = Router::new();
    let (groups, sms) = start3(&router).await;
    let leader = wait_leader(&groups, &[0, 1, 2]).await;
    router.set_delay(Duration::from_millis(5));
    router.drop_one_in(7);
    let mut acked = 0;
    for i in 0..30 {
        // Lost messages may cost an election; retry on whoever leads.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let l = ready_leader(&groups, &[0, 1, 2]).unwrap_or(leader);
            match tokio::time::timeout(Duration::from_secs(3), groups[l].write(topic(i))).await {
                Ok(Ok(_)) => {
                    acked += 1;
                    break;
                }
                _ if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => panic!("write {i} never succeeded: {other:?}"),
            }
        }
    }
    router.heal();
    router.set_delay(Duration::ZERO);
    assert_eq!(acked, 30);
    // Retries may duplicate a command that was committed but not acknowledged; every acked
    // command must be present everywhere, in the same order on every node.
    for sm in &sms {
        wait_until(
            "all acked commands applied",
            Duration::from_secs(15),
            || {
                let cmds: Vec<BrokerCommand> = sm
                    .inner
                    .lock()
                    .unwrap()
                    .commands
                    .iter()
                    .map(|(_, c)| c.clone())
                    .collect();
                let ok = (0..30).all(|i| cmds.contains(&topic(i)));
                async move { ok }
            },
        )
        .await;
    }
    let first = sms[0].inner.lock().unwrap().commands.clone();
    for sm in &sms[1..] {
        let other = sm.inner.lock().unwrap().commands.clone();
        let n = first.len().min(other.len());
        assert_eq!(first[..n], other[..n]);
    }
    for g in groups {
        g.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfer_moves_the_leader_to_the_chosen_node() {
    let router = Router::new();
    let (groups, sms) = start3(&router).await;
    let leader = wait_leader(&groups, &[0, 1, 2]).await;
    for i in 0..5 {
        groups[leader].write(topic(i)).await.unwrap();
    }
    for target in [(leader + 1) % 3, (leader + 2) % 3] {
        let cur = wait_leader(&groups, &[0, 1, 2]).await;
        groups[cur]
            .transfer_leadership(target as NodeId, Duration::from_secs(10))
            .await
            .unwrap();
        let now = wait_leader(&groups, &[0, 1, 2]).await;
        assert_eq!(now, target);
        groups[now].write(topic(100 + target)).await.unwrap();
    }
    // A follower cannot transfer.
    let cur = wait_leader(&groups, &[0, 1, 2]).await;
    let f = (cur + 1) % 3;
    assert!(groups[f]
        .transfer_leadership(cur as NodeId, Duration::from_secs(2))
        .await
        .is_err());
    for sm in &sms {
        wait_until("7 commands applied", Duration::from_secs(10), || {
            let n = sm.inner.lock().unwrap().commands.len();
            async move { n == 7 }
        })
        .await;
    }
    for g in groups {
        g.shutdown().await.unwrap();
    }
}
