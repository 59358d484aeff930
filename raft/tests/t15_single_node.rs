//! A standalone broker is a Raft group of one: start_node, send, clean restart and kill
//! restart from disk; queue offsets continue where they stopped.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::cluster::{group_config, message, storage_config, TOPIC};
use raftmq_raft::network::{PeerListener, TransportConfig};
use raftmq_raft::{start_node, BrokerNode, PeerNode, RaftGroupConfig, Transport};
use raftmq_store::message::MessageView;

async fn bind(addr: &str) -> PeerListener {
    let probe = RaftGroupConfig::new("broker-a", 0, [(0, PeerNode::new("127.0.0.1:1"))].into());
    let start = std::time::Instant::now();
    loop {
        match PeerListener::bind(addr, TransportConfig::from_group(&probe)).await {
            Ok(l) => return l,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// Start the node on `dir`, retrying while a killed predecessor still holds its files.
async fn boot(dir: &std::path::Path, addr: Option<String>) -> (BrokerNode, String) {
    let mut addr = addr.unwrap_or_else(|| "127.0.0.1:0".into());
    let start = std::time::Instant::now();
    loop {
        let l = bind(&addr).await;
        addr = l.local_addr().unwrap().to_string();
        let cfg = group_config(0, &[(0, PeerNode::new(addr.clone()))].into());
        match start_node(&cfg, dir, &storage_config(), Transport::Tcp(Some(l)), true).await {
            Ok(node) => {
                node.group
                    .wait_for_ready_leader(Duration::from_secs(10))
                    .await
                    .unwrap();
                return (node, addr);
            }
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("start {}: {e}", dir.display()),
        }
    }
}

async fn send_n(node: &BrokerNode, from: usize, n: usize) -> Vec<i64> {
    let mut offs = vec![];
    for i in from..from + n {
        let r = node
            .proposer
            .send(message(0, &format!("m{i}")))
            .await
            .unwrap();
        offs.push(r[0].queue_offset);
    }
    offs
}

fn body_at(node: &BrokerNode, off: i64) -> String {
    let u = node
        .state_machine
        .with_dispatcher(|d| d.unit(TOPIC, 0, off))
        .unwrap()
        .unwrap();
    let b = node
        .commit_log
        .read_at(u.phys_offset as u64, u.size as usize)
        .unwrap();
    String::from_utf8_lossy(MessageView::parse(&b).unwrap().body()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_one_restarts_from_disk_and_continues_queue_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, addr) = boot(tmp.path(), None).await;
    assert_eq!(send_n(&node, 0, 10).await, (0..10).collect::<Vec<i64>>());
    let m = node.group.metrics();
    assert!(
        m.committed_index.is_some() && m.committed_index == m.applied_index,
        "{m:?}"
    );
    node.shutdown().await.unwrap();

    // Clean restart: state is back, offsets continue.
    let (node, _) = boot(tmp.path(), Some(addr.clone())).await;
    assert_eq!(body_at(&node, 9), "m9");
    assert_eq!(send_n(&node, 10, 5).await, (10..15).collect::<Vec<i64>>());

    // Kill (drop without shutdown) and restart.
    drop(node);
    let (node, _) = boot(tmp.path(), Some(addr)).await;
    for i in 0..15 {
        assert_eq!(body_at(&node, i), format!("m{i}"));
    }
    assert_eq!(send_n(&node, 15, 1).await, vec![15]);
    node.shutdown().await.unwrap();
}
