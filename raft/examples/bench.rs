//! Replication benchmark: a 3-node group on loopback over the real store.
//!
//! `cargo run --release -p raftmq-raft --example bench -- [sync|async] [messages] [kills] [election_min_ms election_max_ms heartbeat_ms]`
//!
//! Without the last three, the group uses `RaftGroupConfig`'s default timeouts.
//!
//! Prints the machine's fdatasync rate (measured first, in the same directory), then
//! messages/s and send latency (p50/p99/max) for 1 KiB messages with 1 and 64 sends in
//! flight, then the time from killing the leader to the first acknowledged send on the new
//! leader (default timeouts), over `kills` kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raftmq_raft::network::{PeerListener, TransportConfig};
use raftmq_raft::{
    start_node, BrokerNode, NodeId, PeerNode, RaftGroupConfig, StorageConfig, Transport,
};
use raftmq_store::commitlog::{CommitLogConfig, FlushMode};
use raftmq_store::message::StoredMessage;
use tokio::sync::RwLock;

fn message(queue_id: i32, body: &[u8]) -> BytesMut {
    let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
    let m = StoredMessage {
        topic: "BenchTopic".into(),
        queue_id,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host,
        store_timestamp: 0,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: body.to_vec(),
        properties: vec![],
    };
    BytesMut::from(&m.encode().unwrap()[..])
}

fn fdatasync_rate(dir: &Path) -> f64 {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = vec![7u8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let _ = std::fs::remove_file(&path);
    n as f64 / start.elapsed().as_secs_f64()
}

struct Bench {
    root: PathBuf,
    peers: BTreeMap<NodeId, PeerNode>,
    flush: FlushMode,
    timeouts: Option<(u64, u64, u64)>,
    nodes: Vec<Option<BrokerNode>>,
}

impl Bench {
    fn storage(&self) -> StorageConfig {
        StorageConfig {
            commitlog: CommitLogConfig {
                segment_size: 64 << 20,
                index_file_size: 4 << 20,
                flush: self.flush,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    async fn open(&self, id: NodeId) -> BrokerNode {
        let mut cfg = RaftGroupConfig::new("bench", id, self.peers.clone());
        if let Some((min, max, hb)) = self.timeouts {
            cfg.election_timeout_min = Duration::from_millis(min);
            cfg.election_timeout_max = Duration::from_millis(max);
            cfg.heartbeat_interval = Duration::from_millis(hb);
        }
        let start = Instant::now();
        loop {
            let l = match PeerListener::bind(
                &self.peers[&id].raft_addr,
                TransportConfig::from_group(&cfg),
            )
            .await
            {
                Ok(l) => l,
                Err(_) if start.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => panic!("bind: {e}"),
            };
            let dir = self.root.join(format!("n{id}"));
            match start_node(&cfg, &dir, &self.storage(), Transport::Tcp(Some(l)), true).await {
                Ok(n) => return n,
                Err(_) if start.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("start n{id}: {e}"),
            }
        }
    }

    fn ready_leader(&self) -> Option<usize> {
        self.nodes.iter().flatten().find_map(|n| {
            let r = *n.group.role().borrow();
            r.ready.then_some(n.group.id() as usize)
        })
    }

    async fn wait_leader(&self) -> usize {
        let start = Instant::now();
        loop {
            if let Some(l) = self.ready_leader() {
                return l;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no leader");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn load(b: &Arc<RwLock<Bench>>, inflight: usize, total: usize) {
    let leader = b.read().await.wait_leader().await;
    let body = vec![b'x'; 1024];
    let per = total / inflight;
    let start = Instant::now();
    let mut tasks = vec![];
    for t in 0..inflight {
        let b = b.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let q = ((t + i) % 8) as i32;
                let fut = b.read().await.nodes[leader]
                    .as_ref()
                    .unwrap()
                    .proposer
                    .send_owned(message(q, &body));
                let s = Instant::now();
                if let Err(e) = fut.await {
                    let g = b.read().await;
                    for n in g.nodes.iter().flatten() {
                        eprintln!(
                            "send failed ({e}); n{}: {:?} role {:?}",
                            n.group.id(),
                            n.group.metrics(),
                            *n.group.role().borrow()
                        );
                    }
                    panic!("send: {e}");
                }
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let el = start.elapsed();
    lat.sort();
    let entries = b.read().await.nodes[leader]
        .as_ref()
        .unwrap()
        .group
        .metrics()
        .last_log_index
        .unwrap_or(0);
    println!(
        "inflight {inflight:>3}: {:>8.0} msg/s  {:>6.1} MiB/s  p50 {:>7.2?}  p99 {:>7.2?}  max {:>7.2?}  (log index now {entries})",
        lat.len() as f64 / el.as_secs_f64(),
        lat.len() as f64 * 1024.0 / el.as_secs_f64() / (1 << 20) as f64,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
    );
}

async fn failover(b: &Arc<RwLock<Bench>>, kills: usize) {
    let mut times = vec![];
    for k in 0..kills {
        let old = b.read().await.wait_leader().await;
        let killed_at = Instant::now();
        b.write().await.nodes[old] = None;
        // First acknowledged send on a new leader.
        loop {
            let fut = {
                let g = b.read().await;
                g.ready_leader().map(|l| {
                    g.nodes[l]
                        .as_ref()
                        .unwrap()
                        .proposer
                        .send_owned(message(0, b"failover"))
                })
            };
            if let Some(f) = fut {
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), f).await {
                    break;
                }
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(60),
                "no write after kill {k}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(killed_at.elapsed());
        let n = b.read().await.open(old as NodeId).await;
        b.write().await.nodes[old] = Some(n);
        // Let the restarted node catch up before the next kill.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    times.sort();
    println!(
        "failover over {kills} kills: min {:.2?}  p50 {:.2?}  max {:.2?}",
        times.first().copied().unwrap_or_default(),
        pct(&times, 0.5),
        times.last().copied().unwrap_or_default()
    );
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let flush = match args.get(1).map(String::as_str) {
        Some("async") => FlushMode::Async,
        _ => FlushMode::Sync,
    };
    let messages: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let kills: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    let timeouts = match (num(4), num(5), num(6)) {
        (Some(a), Some(b), Some(c)) => Some((a, b, c)),
        _ => None,
    };
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "fdatasync: {:.0}/s (4 KiB writes, {})",
        fdatasync_rate(tmp.path()),
        tmp.path().display()
    );

    let mut peers = BTreeMap::new();
    let mut listeners = vec![];
    for id in 0..3u64 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        peers.insert(id, PeerNode::new(l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    drop(listeners);
    let mut b = Bench {
        root: tmp.path().to_path_buf(),
        peers,
        flush,
        timeouts,
        nodes: vec![],
    };
    for id in 0..3 {
        let n = b.open(id).await;
        b.nodes.push(Some(n));
    }
    let b = Arc::new(RwLock::new(b));
    println!("flush {flush:?}, 3 nodes on loopback, 1 KiB messages, timeouts (election min/max, heartbeat ms): {timeouts:?}");
    load(&b, 1, messages.min(2000)).await;
    load(&b, 64, messages * 4).await;
    failover(&b, kills).await;
}
