//! A 3-node group on the real store in temporary directories, over loopback TCP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raftmq_raft::network::{PeerListener, Router, TransportConfig};
use raftmq_raft::{
    open_storage_with_fs, AppendedMessage, CheckpointPolicy, NodeId, PeerNode, Proposer, RaftGroup,
    RaftGroupConfig, RaftGroupError, StateMachine, StorageConfig, Transport,
};
use raftmq_store::commitlog::{CommitLog, CommitLogConfig};
use raftmq_store::io::{FileSystem, StdFileSystem};
use raftmq_store::message::{MessageView, StoredMessage};
use tempfile::TempDir;

pub const TOPIC: &str = "TopicTest";
pub const QUEUES: i32 = 4;

pub struct Node {
    pub dir: PathBuf,
    pub group: RaftGroup,
    pub proposer: Proposer,
    pub sm: StateMachine,
    pub log: CommitLog,
}

pub struct Cluster {
    pub tmp: TempDir,
    pub fs: Vec<Arc<dyn FileSystem>>,
    /// `Some`: nodes talk through this in-memory router instead of TCP.
    pub router: Option<Router>,
    pub peers: BTreeMap<NodeId, PeerNode>,
    pub nodes: Vec<Option<Node>>,
    /// Each node's group settings (default [`group_config`]).
    pub config: GroupConfigFn,
    /// When the state machines checkpoint (default: the store's policy).
    pub checkpoint: CheckpointPolicy,
}

/// Builds a node's group settings from its id and the peer set.
pub type GroupConfigFn = fn(NodeId, &BTreeMap<NodeId, PeerNode>) -> RaftGroupConfig;

pub fn storage_config() -> StorageConfig {
    StorageConfig {
        commitlog: CommitLogConfig {
            segment_size: 64 * 1024,
            index_file_size: 32 * 1024,
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn group_config(id: NodeId, peers: &BTreeMap<NodeId, PeerNode>) -> RaftGroupConfig {
    let mut c = RaftGroupConfig::new("broker-a", id, peers.clone());
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout_min = Duration::from_millis(600);
    c.election_timeout_max = Duration::from_millis(1200);
    c.replication_max_bytes = 256 * 1024;
    c.max_batch_bytes = 32 * 1024;
    c
}

/// One stored message with an identifying body.
pub fn message(queue_id: i32, body: &str) -> BytesMut {
    let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
    let m = StoredMessage {
        topic: TOPIC.into(),
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
        body: body.as_bytes().to_vec(),
        properties: vec![("UNIQ_KEY".into(), body.to_string())],
    };
    BytesMut::from(&m.encode().unwrap()[..])
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_with_fs((0..3).map(|_| StdFileSystem::arc()).collect()).await
    }

    /// Start with one file system per node (fault injection).
    pub async fn start_with_fs(fs: Vec<Arc<dyn FileSystem>>) -> Cluster {
        Cluster::start_with(fs, None).await
    }

    /// Start over the in-memory router (partitions), on the real store.
    pub async fn start_routed(router: Router) -> Cluster {
        Cluster::start_with((0..3).map(|_| StdFileSystem::arc()).collect(), Some(router)).await
    }

    async fn start_with(fs: Vec<Arc<dyn FileSystem>>, router: Option<Router>) -> Cluster {
        Cluster::start_up(fs, router, &[0, 1, 2], group_config).await
    }

    /// Start over the in-memory router with other group settings.
    pub async fn start_routed_with(router: Router, config: GroupConfigFn) -> Cluster {
        let fs = (0..3).map(|_| StdFileSystem::arc()).collect();
        Cluster::start_up(fs, Some(router), &[0, 1, 2], config).await
    }

    /// Start over TCP with another checkpoint policy on every node (restarts included).
    pub async fn start_with_checkpoint(checkpoint: CheckpointPolicy) -> Cluster {
        let fs = (0..3).map(|_| StdFileSystem::arc()).collect();
        let mut c = Cluster::start_up(fs, None, &[], group_config).await;
        c.checkpoint = checkpoint;
        for id in 0..3 {
            c.restart(id).await;
        }
        c
    }

    /// Start only the nodes in `up`; the others stay pristine until [`Cluster::restart`].
    pub async fn start_only(up: &[usize]) -> Cluster {
        Cluster::start_up(
            (0..3).map(|_| StdFileSystem::arc()).collect(),
            None,
            up,
            group_config,
        )
        .await
    }

    async fn start_up(
        fs: Vec<Arc<dyn FileSystem>>,
        router: Option<Router>,
        up: &[usize],
        config: GroupConfigFn,
    ) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut listeners = vec![];
        let mut peers = BTreeMap::new();
        for id in 0..3u64 {
            let probe =
                RaftGroupConfig::new("broker-a", id, [(id, PeerNode::new("127.0.0.1:1"))].into());
            let l = PeerListener::bind("127.0.0.1:0", TransportConfig::from_group(&probe))
                .await
                .unwrap();
            peers.insert(id, PeerNode::new(l.local_addr().unwrap().to_string()));
            listeners.push(l);
        }
        let mut c = Cluster {
            tmp,
            fs,
            router,
            peers,
            nodes: vec![],
            config,
            checkpoint: CheckpointPolicy::default(),
        };
        for (id, l) in listeners.into_iter().enumerate() {
            if up.contains(&id) {
                let n = c.open_node(id as NodeId, Some(l)).await;
                c.nodes.push(Some(n));
            } else {
                c.nodes.push(None);
            }
        }
        c
    }

    fn dir(&self, id: NodeId) -> PathBuf {
        self.tmp.path().join(format!("n{id}"))
    }

    async fn open_node(&self, id: NodeId, listener: Option<PeerListener>) -> Node {
        self.open_node_with(id, listener, true).await
    }

    async fn open_node_with(
        &self,
        id: NodeId,
        listener: Option<PeerListener>,
        bootstrap: bool,
    ) -> Node {
        let dir = self.dir(id);
        let cfg = (self.config)(id, &self.peers);
        // A killed node's core lets go of its files asynchronously: retry until it has.
        let start = Instant::now();
        let scfg = StorageConfig {
            checkpoint: self.checkpoint,
            ..storage_config()
        };
        let storage = loop {
            match open_storage_with_fs(
                &dir,
                &scfg,
                cfg.replication_max_bytes,
                self.fs[id as usize].clone(),
            ) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < Duration::from_secs(15) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reopen n{id}: {e}"),
            }
        };
        let transport = match (&self.router, listener) {
            (Some(r), _) => Transport::Router(r.clone()),
            (None, Some(l)) => Transport::Tcp(Some(l)),
            (None, None) => {
                let addr = self.peers[&id].raft_addr.clone();
                let start = Instant::now();
                loop {
                    match PeerListener::bind(&addr, TransportConfig::from_group(&cfg)).await {
                        Ok(l) => break Transport::Tcp(Some(l)),
                        Err(e) if start.elapsed() < Duration::from_secs(15) => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("rebind n{id}: {e}"),
                    }
                }
            }
        };
        let sm = storage.state_machine.clone();
        let group = RaftGroup::start(
            &cfg,
            transport,
            storage.log_store,
            storage.state_machine,
            bootstrap,
        )
        .await
        .unwrap();
        let proposer = group.proposer(sm.queue_offsets());
        Node {
            dir,
            group,
            proposer,
            sm,
            log: storage.commit_log,
        }
    }

    /// Start a new, empty node `id` (not a member yet: it waits to be added).
    pub async fn add_node(&mut self, id: NodeId) -> PeerNode {
        assert_eq!(id as usize, self.nodes.len());
        let probe =
            RaftGroupConfig::new("broker-a", id, [(id, PeerNode::new("127.0.0.1:1"))].into());
        let l = PeerListener::bind("127.0.0.1:0", TransportConfig::from_group(&probe))
            .await
            .unwrap();
        let node = PeerNode::new(l.local_addr().unwrap().to_string());
        self.peers.insert(id, node.clone());
        self.fs.push(StdFileSystem::arc());
        let n = self.open_node_with(id, Some(l), false).await;
        self.nodes.push(Some(n));
        node
    }

    /// Drop a node without shutting it down (its files stay as they are).
    pub fn kill(&mut self, id: usize) {
        self.nodes[id] = None;
    }

    pub async fn restart(&mut self, id: usize) {
        assert!(self.nodes[id].is_none());
        let n = self.open_node(id as NodeId, None).await;
        self.nodes[id] = Some(n);
    }

    pub fn node(&self, id: usize) -> &Node {
        self.nodes[id].as_ref().unwrap()
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// The ready leader every live node agrees on, if any.
    pub fn ready_leader(&self) -> Option<usize> {
        let live = self.live();
        let l = self.node(*live.first()?).group.role().borrow().leader? as usize;
        let agree = live
            .iter()
            .all(|i| self.node(*i).group.role().borrow().leader == Some(l as NodeId));
        let ready = self.nodes.get(l)?.as_ref()?.group.role().borrow().ready;
        (agree && ready).then_some(l)
    }

    pub async fn wait_leader(&self, within: Duration) -> usize {
        let start = Instant::now();
        loop {
            if let Some(l) = self.ready_leader() {
                return l;
            }
            assert!(
                start.elapsed() < within,
                "no ready leader within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn send(
        &self,
        node: usize,
        queue_id: i32,
        body: &str,
    ) -> Result<Vec<AppendedMessage>, RaftGroupError> {
        self.node(node).proposer.send(message(queue_id, body)).await
    }

    /// Wait until every live node dispatched `counts[q]` messages in each queue.
    pub async fn wait_dispatched(&self, counts: &[i64], within: Duration) {
        let start = Instant::now();
        loop {
            let done = self.live().iter().all(|i| {
                self.node(*i).sm.with_dispatcher(|d| {
                    (0..QUEUES).all(|q| d.max_offset(TOPIC, q) == counts[q as usize])
                })
            });
            if done {
                return;
            }
            assert!(
                start.elapsed() < within,
                "dispatch did not reach {counts:?} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Body of the message at `offset` of `queue_id` on `node`, read through its consumequeue.
    pub fn read_body(&self, node: usize, queue_id: i32, offset: i64) -> Option<(i64, String)> {
        let n = self.node(node);
        let unit =
            n.sm.with_dispatcher(|d| d.unit(TOPIC, queue_id, offset))
                .unwrap()?;
        let bytes = n
            .log
            .read_at(unit.phys_offset as u64, unit.size as usize)
            .unwrap();
        let view = MessageView::parse(&bytes).unwrap();
        assert_eq!(view.queue_offset(), offset);
        assert_eq!(view.physical_offset(), unit.phys_offset);
        Some((
            unit.phys_offset,
            String::from_utf8_lossy(view.body()).into_owned(),
        ))
    }
}

impl Cluster {
    /// Stop every live node cleanly: proposer, Raft core, then the commitlog (flushed, meta
    /// written), so the files on disk are final and can be read without the store.
    pub async fn stop_all(&mut self) {
        for slot in &mut self.nodes {
            if let Some(n) = slot.take() {
                let Node {
                    group,
                    proposer,
                    sm,
                    log,
                    ..
                } = n;
                drop(proposer);
                group.shutdown().await.unwrap();
                drop(sm);
                log.close().unwrap();
            }
        }
    }

    /// The commitlog directory of node `id`.
    pub fn commitlog_dir(&self, id: usize) -> PathBuf {
        self.dir(id as NodeId).join("commitlog")
    }
}

/// Files of a directory named by the 20-digit global offset of their first byte, sorted.
fn offset_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_string();
            (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (name.parse().unwrap(), p))
        })
        .collect();
    out.sort();
    out
}

/// Bytes `[from, to)` of a list of offset-named files read straight from disk; panics if
/// part of the range lies in no file.
fn read_offset_files(dir: &Path, from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity((to - from) as usize);
    let mut pos = from;
    for (base, path) in offset_files(dir) {
        let data = std::fs::read(&path).unwrap();
        let end = base + data.len() as u64;
        if pos >= to {
            break;
        }
        if pos < base || pos >= end {
            continue;
        }
        let stop = to.min(end);
        out.extend_from_slice(&data[(pos - base) as usize..(stop - base) as usize]);
        pos = stop;
    }
    assert_eq!(
        pos,
        to,
        "{}: no file holds byte {pos} of [{from}, {to})",
        dir.display()
    );
    out
}

/// The entry-index unit of `index`, read from the raw `entryindex/` files of a (stopped)
/// node's commitlog directory.
pub fn raw_index_unit(commitlog_dir: &Path, index: u64) -> raftmq_store::format::IndexUnit {
    let unit = raftmq_store::format::INDEX_UNIT_LEN as u64;
    let at = index * unit;
    let bytes = read_offset_files(&commitlog_dir.join("entryindex"), at, at + unit);
    raftmq_store::format::IndexUnit::decode(&bytes).unwrap_or_else(|| {
        panic!(
            "{}: no entry-index unit for index {index}",
            commitlog_dir.display()
        )
    })
}

/// Segment bytes `[from, to)` read from the raw segment files of a (stopped) node's
/// commitlog directory.
pub fn raw_segment_bytes(commitlog_dir: &Path, from: u64, to: u64) -> Vec<u8> {
    read_offset_files(commitlog_dir, from, to)
}

/// Asserts that the commitlog segment files of `nodes` (all stopped) hold the same bytes
/// from `from` up to the end of the record of `commit_index`, whose position every node's
/// raw entry index must agree on. Returns that end position.
pub fn assert_raw_logs_identical(
    c: &Cluster,
    nodes: &[usize],
    from: u64,
    commit_index: u64,
) -> u64 {
    let units: Vec<_> = nodes
        .iter()
        .map(|n| raw_index_unit(&c.commitlog_dir(*n), commit_index))
        .collect();
    for (n, u) in nodes.iter().zip(&units) {
        assert_eq!(
            *u, units[0],
            "n{n}'s entry index places entry {commit_index} elsewhere than n{}'s",
            nodes[0]
        );
    }
    let end = units[0].pos + u64::from(units[0].record_len);
    assert!(end > from, "nothing to compare: [{from}, {end})");
    let reference = raw_segment_bytes(&c.commitlog_dir(nodes[0]), from, end);
    for n in &nodes[1..] {
        let bytes = raw_segment_bytes(&c.commitlog_dir(*n), from, end);
        if let Some(at) = bytes.iter().zip(&reference).position(|(a, b)| a != b) {
            panic!(
                "n{n}'s segment files differ from n{}'s at byte {} (compared [{from}, {end}) up to entry {commit_index})",
                nodes[0],
                from + at as u64
            );
        }
    }
    end
}
