//! `raftmq bench raft`: a Raft broker group inside this process, without the RocketMQ
//! protocol.
//!
//! `nodes` members are started with [`raftmq_raft::start_node`] (as the broker starts them)
//! on the real store in a fresh directory under `data_dir`, talking over loopback TCP. Before
//! the group starts, the same directory's `fdatasync` rate is measured (append 4 KiB, then
//! `fdatasync`, repeatedly for 2 s), so every throughput figure comes with the disk's own limit
//! measured in the same run and the ratio to it.
//!
//! For each in-flight window, that many tasks propose stored messages of `size` bytes through
//! the leader's proposer, one message per proposal, each waiting for its own commit (and
//! dispatch) before proposing the next; the proposer merges what is queued into entries.
//!
//! With `failover`, the leader is then killed that many times (dropped without shutdown, as
//! a crashed process: its peers lose the connection at once and it does no further I/O), and
//! the time from the kill to the first proposal committed by the new leader is measured; the
//! killed member is restarted from its directory and allowed to catch up before the next
//! kill. The directory is removed at the end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use raftmq_raft::network::{PeerListener, TransportConfig};
use raftmq_raft::{
    start_node, BrokerNode, NodeId, PeerNode, RaftGroupConfig, StorageConfig, Transport,
};
use raftmq_store::config::FlushMode;
use raftmq_store::message::StoredMessage;
use serde::Serialize;

use super::stats::{micros, LatencySummary, Recorder};
use super::{positive, spawn_progress, BenchError, RssPeak};

const GROUP: &str = "bench-raft";
const TOPIC: &str = "BenchTopic";
const QUEUES: i32 = 4;
/// How long the disk's sync rate is measured.
const FSYNC_PROBE: Duration = Duration::from_secs(2);
/// Longest wait for a leader, a restart or a catch-up.
const WAIT: Duration = Duration::from_secs(30);

/// Options of a raft run.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Group size (1..=5). Default 3.
    pub nodes: usize,
    /// `flushDiskType` of every member.
    pub flush: FlushMode,
    /// Proposals in flight, one measuring run each. Default `[1, 64]`.
    pub inflight: Vec<usize>,
    /// Message body size. Default 1024.
    pub size: usize,
    /// Length of each measuring run. Default 10 s.
    pub duration: Duration,
    /// Leader kills after the runs. Default 0.
    pub failover: usize,
    /// Parent of the temporary group directory. Default the system temp dir.
    pub data_dir: Option<PathBuf>,
    /// Leader heartbeat period; `None` keeps the group default (50 ms).
    pub heartbeat: Option<Duration>,
    /// Election timeout range; `None` keeps the group default (200..300 ms).
    pub election_timeout: Option<(Duration, Duration)>,
    /// No progress lines.
    pub quiet: bool,
}

impl RaftOptions {
    /// Defaults: 3 nodes, SYNC, 1 and 64 in flight, 1 KiB, 10 s, no failover.
    pub fn new(flush: FlushMode) -> Self {
        RaftOptions {
            nodes: 3,
            flush,
            inflight: vec![1, 64],
            size: 1024,
            duration: Duration::from_secs(10),
            failover: 0,
            data_dir: None,
            heartbeat: None,
            election_timeout: None,
            quiet: false,
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        positive("--size", self.size)?;
        if !(1..=5).contains(&self.nodes) {
            return Err(BenchError::Option {
                option: "--nodes",
                reason: "1 to 5".to_owned(),
            });
        }
        if self.size > super::produce::MAX_SIZE {
            return Err(BenchError::Option {
                option: "--size",
                reason: format!("at most {} bytes", super::produce::MAX_SIZE),
            });
        }
        for k in &self.inflight {
            positive("--inflight", *k)?;
            if *k > 100_000 {
                return Err(BenchError::Option {
                    option: "--inflight",
                    reason: "at most 100000".to_owned(),
                });
            }
        }
        if self.failover > 0 && self.nodes < 3 {
            return Err(BenchError::Option {
                option: "--failover",
                reason: "needs at least 3 nodes (a majority must survive the kill)".to_owned(),
            });
        }
        if self.failover > 1000 {
            return Err(BenchError::Option {
                option: "--failover",
                reason: "at most 1000".to_owned(),
            });
        }
        Ok(())
    }

    fn group_config(&self, id: NodeId, peers: BTreeMap<NodeId, PeerNode>) -> RaftGroupConfig {
        let mut c = RaftGroupConfig::new(GROUP, id, peers);
        if let Some(h) = self.heartbeat {
            c.heartbeat_interval = h;
        }
        if let Some((min, max)) = self.election_timeout {
            c.election_timeout_min = min;
            c.election_timeout_max = max;
        }
        c
    }

    fn storage_config(&self) -> StorageConfig {
        let mut s = StorageConfig::default();
        // As `raftmq dev`: 64 MiB segments, entry-index files sized to them.
        s.commitlog.segment_size = 64 << 20;
        s.commitlog.index_file_size = 16 << 20;
        s.commitlog.flush = self.flush;
        s
    }
}

/// One measuring run.
#[derive(Debug, Clone, Serialize)]
pub struct RaftRun {
    pub inflight: usize,
    pub elapsed_s: f64,
    pub messages: u64,
    pub errors: u64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    /// Proposal to commit-and-dispatch on the leader.
    pub latency: LatencySummary,
    /// `msgs_per_s` over the measured `fdatasync` rate after appends.
    pub vs_fsync: f64,
    /// `msgs_per_s` over the measured `fdatasync` rate after preallocated overwrites.
    pub vs_fsync_prealloc: f64,
    /// `msgs_per_s` over the measured `msync` rate.
    pub vs_msync: f64,
    /// Highest term any member was in when the run started and when it ended: a difference
    /// means an election happened during the run (the leader was never killed in a run).
    pub term_start: u64,
    pub term_end: u64,
    /// Leadership changes the members' role watchers reported during the run.
    pub role_changes: u64,
}

/// Kill-to-first-write times.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverSummary {
    pub kills: usize,
    /// Kills after which no write succeeded within 30 s.
    pub failed: usize,
    /// Every measured time, in kill order.
    pub times_ms: Vec<f64>,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// How many were under 1 s.
    pub under_1s: usize,
    /// Where the time went, per kill: kill → a survivor leads the new term (election
    /// timeout, vote round), and kill → that leader is `ready` (its blank entry of the term
    /// committed and applied). The rest, up to the first write, is the proposer's reseed,
    /// the write's own commit and the client's retry.
    pub elected_ms: Vec<f64>,
    pub ready_ms: Vec<f64>,
    pub elected_p50_ms: f64,
    pub elected_max_ms: f64,
    pub ready_p50_ms: f64,
    pub ready_max_ms: f64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
}

/// Everything a raft run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RaftSummary {
    pub nodes: usize,
    /// `SYNC_FLUSH` or `ASYNC_FLUSH`.
    pub flush: String,
    pub size: usize,
    pub data_dir: String,
    /// 4 KiB append + `fdatasync` per second in the same directory, measured before the group
    /// started.
    pub fsync_per_s: f64,
    /// 4 KiB overwrite in a preallocated file + `fdatasync` per second (the cheaper case the
    /// store's preallocated, mapped segments are closer to).
    pub fsync_prealloc_per_s: f64,
    /// 1 KiB write into a mapped, preallocated file + `msync(MS_SYNC)` per second (what one
    /// SYNC_FLUSH group commit of the store costs at least).
    pub msync_per_s: f64,
    /// The same msync probe repeated after the runs (the limit can drift while they run).
    pub msync_after_per_s: f64,
    pub runs: Vec<RaftRun>,
    pub failover: Option<FailoverSummary>,
}

impl std::fmt::Display for RaftSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "raft: {} nodes on loopback, {}, {} B messages, data under {}",
            self.nodes, self.flush, self.size, self.data_dir
        )?;
        writeln!(
            f,
            "  machine: fdatasync after a 4 KiB append: {:.0} /s; after a 4 KiB overwrite in a preallocated file: {:.0} /s; msync after 1 KiB into a mapping: {:.0} /s",
            self.fsync_per_s, self.fsync_prealloc_per_s, self.msync_per_s
        )?;
        writeln!(
            f,
            "  machine after the runs: msync after 1 KiB into a mapping: {:.0} /s (ratios below use the figures before)",
            self.msync_after_per_s
        )?;
        writeln!(
            f,
            "  {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9}",
            "inflight",
            "msgs/s",
            "MB/s",
            "vs fsync",
            "vs prealc",
            "vs msync",
            "p50",
            "p99",
            "p999",
            "max",
            "errors",
            "elections"
        )?;
        for r in &self.runs {
            writeln!(
                f,
                "  {:>8} {:>10.0} {:>8.2} {:>8.2}x {:>8.2}x {:>8.2}x {:>10} {:>10} {:>10} {:>10} {:>7} {:>9}",
                r.inflight,
                r.msgs_per_s,
                r.mb_per_s,
                r.vs_fsync,
                r.vs_fsync_prealloc,
                r.vs_msync,
                super::stats::fmt_us(r.latency.p50_us),
                super::stats::fmt_us(r.latency.p99_us),
                super::stats::fmt_us(r.latency.p999_us),
                super::stats::fmt_us(r.latency.max_us),
                r.errors,
                r.term_end - r.term_start
            )?;
        }
        if let Some(fo) = &self.failover {
            writeln!(
                f,
                "  failover: {} kills (heartbeat {} ms, election timeout {}..{} ms), {} without a new leader in 30 s",
                fo.kills, fo.heartbeat_ms, fo.election_timeout_ms.0, fo.election_timeout_ms.1, fo.failed
            )?;
            writeln!(
                f,
                "    kill -> first write: min {:.0} ms  p50 {:.0} ms  p90 {:.0} ms  max {:.0} ms  mean {:.0} ms; under 1 s: {}/{}",
                fo.min_ms, fo.p50_ms, fo.p90_ms, fo.max_ms, fo.mean_ms, fo.under_1s, fo.times_ms.len()
            )?;
            writeln!(
                f,
                "    kill -> new leader elected: p50 {:.0} ms  max {:.0} ms; kill -> leader ready (blank entry applied): p50 {:.0} ms  max {:.0} ms",
                fo.elected_p50_ms, fo.elected_max_ms, fo.ready_p50_ms, fo.ready_max_ms
            )?;
            let all: Vec<String> = fo.times_ms.iter().map(|t| format!("{t:.0}")).collect();
            writeln!(f, "    all (ms): {}", all.join(" "))?;
        }
        Ok(())
    }
}

/// Removes the run's directory when dropped.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), cause = %e, "could not remove bench directory");
        }
    }
}

/// Writes 4 KiB and calls `fdatasync`, repeatedly for `span`; returns syncs per second.
/// `prealloc`: overwrite the same block of a preallocated file (no file-size change to
/// journal, like the store's preallocated segments); else append to a growing file.
fn fsync_rate(dir: &Path, span: Duration, prealloc: bool) -> std::io::Result<f64> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5au8; 4096];
    if prealloc {
        f.write_all(&[0u8; 1 << 20])?;
        f.sync_all()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    // Bounded in time and in count (an appended file is cut back every 4096 syncs).
    while start.elapsed() < span && n < 200_000 {
        if prealloc {
            f.seek(SeekFrom::Start((n % 256) * 4096))?;
        }
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
        if !prealloc && n % 4096 == 0 {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            f.sync_all()?;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-6);
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// Writes 1 KiB into a mapped, preallocated file and calls `msync(MS_SYNC)` on it,
/// repeatedly for `span` (the store's segments are such files and SYNC_FLUSH msyncs them);
/// returns syncs per second.
fn msync_rate(dir: &Path, span: Duration) -> std::io::Result<f64> {
    let path = dir.join("msync-probe");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    f.set_len(1 << 20)?;
    f.sync_all()?;
    // SAFETY: the file was created above, is private to this run and is not resized or
    // truncated while mapped.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&f)? };
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < span && n < 200_000 {
        let at = (n % 1024) * 1024;
        map[at..at + 1024].fill(n as u8);
        map.flush_range(at, 1024)?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-6);
    drop(map);
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// One stored message of `size` bytes for queue `queue_id`.
fn message(queue_id: i32, size: usize) -> Result<BytesMut, BenchError> {
    let host: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 10911));
    let born = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let m = StoredMessage {
        topic: TOPIC.to_owned(),
        queue_id,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: born,
        born_host: host,
        store_timestamp: 0,
        store_host: host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
        properties: vec![],
    };
    let bytes = m.encode().map_err(|e| BenchError::Option {
        option: "--size",
        reason: format!("cannot encode a message of this size: {e}"),
    })?;
    Ok(BytesMut::from(&bytes[..]))
}

struct Member {
    id: NodeId,
    dir: PathBuf,
    node: Option<Arc<BrokerNode>>,
}

struct Group {
    opts: RaftOptions,
    peers: BTreeMap<NodeId, PeerNode>,
    members: Vec<Member>,
}

fn listener_config(opts: &RaftOptions, id: NodeId) -> TransportConfig {
    let probe = opts.group_config(id, [(id, PeerNode::new("127.0.0.1:1"))].into());
    TransportConfig::from_group(&probe)
}

impl Group {
    async fn start(opts: &RaftOptions, root: &Path) -> Result<Group, BenchError> {
        let mut listeners = vec![];
        let mut peers = BTreeMap::new();
        for id in 0..opts.nodes as NodeId {
            let l = PeerListener::bind("127.0.0.1:0", listener_config(opts, id))
                .await
                .map_err(|source| BenchError::Io {
                    context: format!("binding the peer port of n{id}"),
                    source,
                })?;
            let addr = l.local_addr().map_err(|source| BenchError::Io {
                context: "peer listener address".to_owned(),
                source,
            })?;
            peers.insert(id, PeerNode::new(addr.to_string()));
            listeners.push(l);
        }
        let mut g = Group {
            opts: opts.clone(),
            peers: peers.clone(),
            members: vec![],
        };
        for (id, l) in listeners.into_iter().enumerate() {
            let id = id as NodeId;
            let dir = root.join(format!("n{id}"));
            let node = g.open(id, &dir, Some(l), id == 0).await?;
            g.members.push(Member {
                id,
                dir,
                node: Some(Arc::new(node)),
            });
        }
        Ok(g)
    }

    /// Starts member `id` on `dir`; without a listener, binds its address (retrying while a
    /// killed predecessor still holds the port or its files).
    async fn open(
        &self,
        id: NodeId,
        dir: &Path,
        listener: Option<PeerListener>,
        bootstrap: bool,
    ) -> Result<BrokerNode, BenchError> {
        let cfg = self.opts.group_config(id, self.peers.clone());
        let storage = self.opts.storage_config();
        let addr = self
            .peers
            .get(&id)
            .map(|p| p.raft_addr.clone())
            .unwrap_or_default();
        let deadline = Instant::now() + WAIT;
        let mut listener = listener;
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => match PeerListener::bind(&addr, listener_config(&self.opts, id)).await {
                    Ok(l) => l,
                    Err(source) if Instant::now() > deadline => {
                        return Err(BenchError::Io {
                            context: format!("rebinding {addr} for n{id}"),
                            source,
                        })
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            match start_node(&cfg, dir, &storage, Transport::Tcp(Some(l)), bootstrap).await {
                Ok(n) => return Ok(n),
                Err(source) if Instant::now() > deadline => {
                    return Err(BenchError::Raft {
                        context: format!("starting n{id} on {}", dir.display()),
                        source,
                    })
                }
                Err(e) => {
                    tracing::debug!(node = id, cause = %e, "start failed; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The member that leads and is ready for proposals, waiting up to `WAIT`.
    async fn leader(&self) -> Result<usize, BenchError> {
        let deadline = Instant::now() + WAIT;
        loop {
            // A member that claims to lead counts only when a majority sees it as leader of
            // the same term: a restarted former leader can briefly claim its old term.
            let roles: Vec<Option<raftmq_raft::Role>> = self
                .members
                .iter()
                .map(|m| m.node.as_ref().map(|n| n.group.current_role()))
                .collect();
            let majority = self.members.len() / 2 + 1;
            for (i, m) in self.members.iter().enumerate() {
                let Some(r) = roles[i] else { continue };
                if !(r.is_leader && r.ready) {
                    continue;
                }
                let backers = roles
                    .iter()
                    .flatten()
                    .filter(|o| o.term == r.term && o.leader == Some(m.id))
                    .count();
                if backers >= majority {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!(
                    "no ready leader within {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every running member has applied what the leader has committed.
    async fn caught_up(&self) -> Result<(), BenchError> {
        let li = self.leader().await?;
        let target = self.members[li]
            .node
            .as_ref()
            .and_then(|n| n.group.metrics().committed_index);
        let deadline = Instant::now() + WAIT;
        loop {
            let behind = self
                .members
                .iter()
                .filter_map(|m| m.node.as_ref())
                .any(|n| {
                    let applied = n.group.metrics().applied_index;
                    applied < target
                });
            if !behind {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(format!(
                    "members did not apply index {target:?} within {WAIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The highest term any running member is in.
    fn max_term(&self) -> u64 {
        self.members
            .iter()
            .filter_map(|m| m.node.as_ref())
            .map(|n| n.group.metrics().term)
            .max()
            .unwrap_or(0)
    }

    /// Counts the leadership changes (new term or new leader) any running member's role
    /// watcher reports until the returned task is aborted.
    fn count_role_changes(
        &self,
    ) -> (
        Arc<std::sync::atomic::AtomicU64>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let changes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = vec![];
        for n in self.members.iter().filter_map(|m| m.node.as_ref()) {
            let mut rx = n.group.role();
            let changes = changes.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = {
                    let r = *rx.borrow_and_update();
                    (r.term, r.leader)
                };
                while rx.changed().await.is_ok() {
                    let r = *rx.borrow_and_update();
                    if (r.term, r.leader) != last {
                        last = (r.term, r.leader);
                        changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        (changes, tasks)
    }

    async fn shutdown(&mut self) {
        for m in &mut self.members {
            if let Some(n) = m.node.take() {
                match Arc::try_unwrap(n) {
                    Ok(n) => {
                        match tokio::time::timeout(Duration::from_secs(10), n.shutdown()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!(node = m.id, cause = %e, "shutdown"),
                            Err(_) => tracing::warn!(node = m.id, "shutdown timed out"),
                        }
                    }
                    Err(n) => drop(n),
                }
            }
        }
    }
}

/// One measuring run of `inflight` closed-loop proposers on the current leader.
async fn measure(
    g: &Group,
    inflight: usize,
    fsync: (f64, f64, f64),
) -> Result<RaftRun, BenchError> {
    let li = g.leader().await?;
    let leader = g.members[li]
        .node
        .clone()
        .ok_or_else(|| BenchError::Timeout("the leader vanished".to_owned()))?;
    let size = g.opts.size;
    let rec = Arc::new(Recorder::new());
    let progress = spawn_progress(
        format!("raft {} x{inflight}", flush_name(g.opts.flush)),
        rec.clone(),
        Arc::new(RssPeak::new(None)),
        g.opts.quiet,
    );
    let term_start = g.max_term();
    let (role_changes, watchers) = g.count_role_changes();
    let start = Instant::now();
    let deadline = start + g.opts.duration;
    let mut tasks = vec![];
    for i in 0..inflight {
        let msg = message(i as i32 % QUEUES, size)?;
        let (leader, rec) = (leader.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            let mut logged = 0u32;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match leader.proposer.send(msg.clone()).await {
                    Ok(_) => rec.ok(1, size as u64, micros(t0.elapsed())),
                    Err(e) => {
                        rec.error();
                        if logged < 3 {
                            logged += 1;
                            tracing::warn!(cause = %e, "proposal failed");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        if t.await.is_err() {
            rec.error();
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-6);
    progress.abort();
    for w in watchers {
        w.abort();
    }
    let term_end = g.max_term();
    let role_changes = role_changes.load(std::sync::atomic::Ordering::Relaxed);
    if term_end != term_start {
        tracing::warn!(
            term_start,
            term_end,
            role_changes,
            "elections during a measuring run (no member was killed)"
        );
    }
    let t = rec.total();
    let msgs_per_s = t.messages as f64 / elapsed;
    Ok(RaftRun {
        inflight,
        elapsed_s: elapsed,
        messages: t.messages,
        errors: t.errors,
        msgs_per_s,
        mb_per_s: t.bytes as f64 / elapsed / 1e6,
        latency: t.latency.latency(),
        vs_fsync: msgs_per_s / fsync.0.max(1e-9),
        vs_fsync_prealloc: msgs_per_s / fsync.1.max(1e-9),
        vs_msync: msgs_per_s / fsync.2.max(1e-9),
        term_start,
        term_end,
        role_changes,
    })
}

/// Kills the leader `kills` times; returns the kill-to-first-write times.
async fn failover(g: &mut Group, kills: usize) -> Result<FailoverSummary, BenchError> {
    let msg = message(0, g.opts.size)?;
    let mut times_ms = vec![];
    let (mut elected_ms, mut ready_ms) = (vec![], vec![]);
    let mut failed = 0;
    for k in 0..kills {
        g.caught_up().await?;
        let li = g.leader().await?;
        let old_term = g.max_term();
        let victim = g.members[li].node.take();
        let t0 = Instant::now();
        drop(victim);
        let deadline = t0 + WAIT;
        let mut done = None;
        let (mut elected, mut ready) = (None, None);
        while done.is_none() && Instant::now() < deadline {
            for m in g.members.iter().filter(|m| m.node.is_some()) {
                let Some(n) = &m.node else { continue };
                let r = n.group.current_role();
                if r.is_leader && r.term > old_term && elected.is_none() {
                    elected = Some(t0.elapsed());
                }
                if !(r.is_leader && r.ready) {
                    continue;
                }
                if r.term > old_term && ready.is_none() {
                    ready = Some(t0.elapsed());
                    elected.get_or_insert(t0.elapsed());
                }
                let send = n.proposer.send(msg.clone());
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), send).await {
                    done = Some(t0.elapsed());
                    break;
                }
            }
            if done.is_none() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        for (at, v) in [(elected, &mut elected_ms), (ready, &mut ready_ms)] {
            if let Some(d) = at {
                v.push(d.as_secs_f64() * 1000.0);
            }
        }
        match done {
            Some(d) => {
                times_ms.push(d.as_secs_f64() * 1000.0);
                if !g.opts.quiet {
                    eprintln!(
                        "failover {}/{kills}: killed n{}, elected after {:.0} ms, ready after {:.0} ms, first write after {:.0} ms",
                        k + 1,
                        g.members[li].id,
                        elected.unwrap_or_default().as_secs_f64() * 1000.0,
                        ready.unwrap_or_default().as_secs_f64() * 1000.0,
                        d.as_secs_f64() * 1000.0
                    );
                }
            }
            None => {
                failed += 1;
                tracing::warn!(kill = k + 1, "no write succeeded within 30 s of the kill");
            }
        }
        let (id, dir) = (g.members[li].id, g.members[li].dir.clone());
        let node = g.open(id, &dir, None, false).await?;
        g.members[li].node = Some(Arc::new(node));
    }
    g.caught_up().await?;
    let probe = g.opts.group_config(0, g.peers.clone());
    Ok(FailoverSummary {
        kills,
        failed,
        under_1s: times_ms.iter().filter(|t| **t < 1000.0).count(),
        min_ms: quantile(&times_ms, 0.0),
        p50_ms: quantile(&times_ms, 0.5),
        p90_ms: quantile(&times_ms, 0.9),
        max_ms: quantile(&times_ms, 1.0),
        mean_ms: times_ms.iter().sum::<f64>() / times_ms.len().max(1) as f64,
        elected_p50_ms: quantile(&elected_ms, 0.5),
        elected_max_ms: quantile(&elected_ms, 1.0),
        ready_p50_ms: quantile(&ready_ms, 0.5),
        ready_max_ms: quantile(&ready_ms, 1.0),
        times_ms,
        elected_ms,
        ready_ms,
        heartbeat_ms: probe.heartbeat_interval.as_millis() as u64,
        election_timeout_ms: (
            probe.election_timeout_min.as_millis() as u64,
            probe.election_timeout_max.as_millis() as u64,
        ),
    })
}

/// The nearest-rank `q` quantile of `v` (exact: a failover run has few samples); 0 if empty.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// `SYNC_FLUSH` / `ASYNC_FLUSH`.
pub fn flush_name(f: FlushMode) -> &'static str {
    match f {
        FlushMode::Sync => "SYNC_FLUSH",
        FlushMode::Async => "ASYNC_FLUSH",
    }
}

/// Runs the raft benchmark and returns its summary.
pub async fn run(opts: &RaftOptions) -> Result<RaftSummary, BenchError> {
    opts.validate()?;
    let parent = opts.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let root = parent.join(format!("raftmq-bench-raft-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|source| BenchError::Io {
        context: format!("creating {}", root.display()),
        source,
    })?;
    let _guard = DirGuard(root.clone());

    let probe_dir = root.clone();
    let (fsync, fsync_prealloc, msync) = tokio::task::spawn_blocking(move || {
        Ok::<_, std::io::Error>((
            fsync_rate(&probe_dir, FSYNC_PROBE, false)?,
            fsync_rate(&probe_dir, FSYNC_PROBE, true)?,
            msync_rate(&probe_dir, FSYNC_PROBE)?,
        ))
    })
    .await
    .map_err(|e| BenchError::Io {
        context: "fsync probe".to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?
    .map_err(|source| BenchError::Io {
        context: format!("measuring fdatasync in {}", root.display()),
        source,
    })?;
    if !opts.quiet {
        eprintln!(
            "raft: fdatasync after a 4 KiB append {fsync:.0} /s, after a 4 KiB overwrite \
             (preallocated) {fsync_prealloc:.0} /s, msync after 1 KiB into a mapping {msync:.0} /s"
        );
    }

    let mut group = Group::start(opts, &root).await?;
    let result = async {
        group.leader().await?;
        let mut runs = vec![];
        for k in &opts.inflight {
            runs.push(measure(&group, *k, (fsync, fsync_prealloc, msync)).await?);
        }
        let fo = if opts.failover > 0 {
            Some(failover(&mut group, opts.failover).await?)
        } else {
            None
        };
        Ok::<_, BenchError>((runs, fo))
    }
    .await;
    group.shutdown().await;
    let (runs, failover) = result?;
    // The disk's sync cost drifts on shared machines: measure the store's primitive again
    // after the runs, so a reader sees whether the limit moved while they ran.
    let probe_dir = root.clone();
    let msync_after = tokio::task::spawn_blocking(move || msync_rate(&probe_dir, FSYNC_PROBE))
        .await
        .map_err(|e| BenchError::Io {
            context: "msync probe".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| BenchError::Io {
            context: format!("measuring msync in {}", root.display()),
            source,
        })?;
    Ok(RaftSummary {
        nodes: opts.nodes,
        flush: flush_name(opts.flush).to_owned(),
        size: opts.size,
        data_dir: parent.display().to_string(),
        fsync_per_s: fsync,
        fsync_prealloc_per_s: fsync_prealloc,
        msync_per_s: msync,
        msync_after_per_s: msync_after,
        runs,
        failover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = RaftOptions::new(FlushMode::Sync);
        assert!(ok.validate().is_ok());
        assert!(RaftOptions {
            nodes: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(RaftOptions {
            nodes: 6,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(RaftOptions {
            inflight: vec![1, 0],
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(RaftOptions {
            nodes: 1,
            failover: 1,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(RaftOptions { size: 0, ..ok }.validate().is_err());
    }

    #[test]
    fn quantiles_are_exact_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn messages_encode_with_the_requested_body() {
        let m = message(2, 1024).unwrap();
        let v = raftmq_store::message::MessageView::parse(&m).unwrap();
        assert_eq!(v.body().len(), 1024);
        assert_eq!(v.queue_id(), 2);
        assert_eq!(v.topic(), TOPIC);
    }

    #[test]
    fn fsync_probe_reports_a_rate_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        for prealloc in [false, true] {
            let r = fsync_rate(dir.path(), Duration::from_millis(100), prealloc).unwrap();
            assert!(r > 0.0);
        }
        assert!(msync_rate(dir.path(), Duration::from_millis(100)).unwrap() > 0.0);
        assert!(!dir.path().join("msync-probe").exists());
        assert!(!dir.path().join("fsync-probe").exists());
    }
}
