//! One chaos run: bring up the nodes, run the nemesis on its seeded schedule for the given
//! time while recording every fault window to `history.jsonl`, stop everything, and describe
//! the run in `run.json`. Checking the history is the caller's next step.
//!
//! With a `raftmq` binary that has the `broker` command, the nodes are a nameserver and one
//! Raft broker group (`broker-a`, members `n0..`), or several (`broker-a` with `a0..`,
//! `broker-b` with `b0..`, each registered with the nameserver and holding the topic), and the
//! [`crate::workload`] runs from the clients' namespace during the faults and drains
//! afterwards. Each fault hits one group. After the drain every broker is stopped and each
//! group's replicas are compared ([`crate::checker::replicas`]). With an older binary the nodes
//! run `raftmq namesrv` as stand-ins and no workload is driven: the run exercises cluster
//! control and the nemeses for real, but its history holds only faults, so its verdict is
//! always "unknown". `run.json` and the printed progress say which happened.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checker::replicas::{self, Replica, ReplicasReport};
use crate::cluster::{self, Cluster, ClusterConfig, ClusterError, NetMode};
use crate::history::HistoryError;
use crate::history::Recorder;
use crate::nemesis::{DiskMode, FaultKind, FaultRecord, Nemesis, Target};
use crate::netns::{self, NetError};
use crate::workload::{self, WorkloadConfig, WorkloadStats};

/// Errors of a run (before or after the schedule; faults that fail are recorded instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid run configuration: {0}")]
    Config(String),
    #[error("creating the topic: {0}")]
    Topic(String),
    #[error(transparent)]
    Workload(#[from] workload::WorkloadError),
}

/// Name of the first broker group a run starts.
pub const GROUP: &str = "broker-a";
/// Most broker groups a run starts.
pub const MAX_GROUPS: usize = 4;

/// Name of broker group `g`: `broker-a`, `broker-b`, ...
pub fn group_name(g: usize) -> String {
    let letter = char::from(b'a' + u8::try_from(g % 26).unwrap_or(0));
    format!("broker-{letter}")
}

/// Name of node `i` of group `g`: `n0, n1, ...` with one group; `a0, a1, ..., b0, ...` with
/// several.
pub fn node_name(groups: usize, g: usize, i: usize) -> String {
    if groups <= 1 {
        format!("n{i}")
    } else {
        let letter = char::from(b'a' + u8::try_from(g % 26).unwrap_or(0));
        format!("{letter}{i}")
    }
}

/// Creates `topic` (4 read and write queues) on the leader of `group`, retrying until
/// `deadline` while the group elects or registers.
pub fn create_topic(
    cluster: &Cluster,
    ns: Option<&str>,
    namesrv: SocketAddr,
    group: &str,
    topic: &str,
    deadline: Instant,
) -> Result<(), RunError> {
    use raftmq::remoting::{RemotingClient, RemotingCommand, RequestCode};
    let mut last = String::from("no leader known");
    while Instant::now() < deadline {
        if let Some(l) = leader_from_namesrv(cluster, ns, namesrv, group) {
            let addr = cluster.node(l)?.addr().to_string();
            let ask = || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let client = RemotingClient::new(
                        addr.clone(),
                        raftmq::remoting::ClientConfig::default(),
                    );
                    let cmd = RemotingCommand::request(RequestCode::UpdateAndCreateTopic)
                        .with_ext("topic", topic)
                        .with_ext("defaultTopic", "TBW102")
                        .with_ext("readQueueNums", 4)
                        .with_ext("writeQueueNums", 4)
                        .with_ext("perm", 6)
                        .with_ext("topicFilterType", "SINGLE_TAG")
                        .with_ext("order", false);
                    let resp = client
                        .invoke(cmd, Duration::from_secs(3))
                        .await
                        .map_err(|e| e.to_string())?;
                    if resp.code == 0 {
                        Ok(())
                    } else {
                        Err(format!(
                            "code {}: {}",
                            resp.code,
                            resp.remark.unwrap_or_default()
                        ))
                    }
                })
            };
            let res = match ns {
                Some(ns) => netns::run_in_netns(ns, ask)?,
                None => ask(),
            };
            match res {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(RunError::Topic(format!("{topic} on {group}: {last}")))
}
/// Topic the workload uses.
pub const TOPIC: &str = "JepsenTopic";

/// The group member the nameserver lists as master (brokerId 0), as a cluster index: asks
/// the nameserver at `namesrv` from namespace `ns`.
pub fn leader_from_namesrv(
    cluster: &Cluster,
    ns: Option<&str>,
    namesrv: SocketAddr,
    group: &str,
) -> Option<usize> {
    use raftmq::namesrv::client::NamesrvClient;
    let ask = || -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let client = NamesrvClient::new(
                &[namesrv.to_string()],
                raftmq::remoting::ClientConfig::default(),
                Duration::from_secs(1),
            );
            let info = client.cluster_info().await.ok()?;
            info.broker_addr_table
                .get(group)?
                .broker_addrs
                .get(&0)
                .cloned()
        })
    };
    let addr = match ns {
        Some(ns) => netns::run_in_netns(ns, ask).ok().flatten(),
        None => ask(),
    }?;
    cluster
        .nodes()
        .iter()
        .position(|n| n.addr().to_string() == addr)
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Nodes of each group (3 or 5).
    pub nodes: usize,
    /// Broker groups (`broker-a`, `broker-b`, ...), each its own Raft group of `nodes` nodes.
    pub groups: usize,
    #[serde(serialize_with = "ser_duration")]
    pub time: Duration,
    #[serde(serialize_with = "ser_kinds")]
    pub nemeses: Vec<FaultKind>,
    pub seed: u64,
    /// Run folder.
    pub out: PathBuf,
    pub binary: PathBuf,
    #[serde(serialize_with = "ser_mode")]
    pub mode: NetMode,
    /// Quiet time between faults, min and max.
    #[serde(serialize_with = "ser_range")]
    pub gap: (Duration, Duration),
    /// How long a fault is held, min and max.
    #[serde(serialize_with = "ser_range")]
    pub hold: (Duration, Duration),
    /// Targets kill, pause and net choose from.
    #[serde(serialize_with = "ser_targets")]
    pub targets: Vec<Target>,
    /// Sends per second over all producers.
    pub rate: u32,
    /// Longest time the consumers may take to drain after the faults.
    #[serde(serialize_with = "ser_duration")]
    pub drain: Duration,
    /// Disk faults the `disk` nemesis chooses from.
    #[serde(serialize_with = "ser_disk_modes")]
    pub disk_modes: Vec<DiskMode>,
}

fn ser_disk_modes<S: serde::Serializer>(m: &[DiskMode], s: S) -> Result<S::Ok, S::Error> {
    m.iter().map(|m| m.name()).collect::<Vec<_>>().serialize(s)
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_range<S: serde::Serializer>(d: &(Duration, Duration), s: S) -> Result<S::Ok, S::Error> {
    [d.0.as_secs_f64(), d.1.as_secs_f64()].serialize(s)
}

fn ser_kinds<S: serde::Serializer>(k: &[FaultKind], s: S) -> Result<S::Ok, S::Error> {
    k.iter().map(|k| k.name()).collect::<Vec<_>>().serialize(s)
}

fn ser_targets<S: serde::Serializer>(t: &[Target], s: S) -> Result<S::Ok, S::Error> {
    t.iter()
        .map(|t| format!("{t:?}").to_lowercase())
        .collect::<Vec<_>>()
        .serialize(s)
}

/// Parses `one,leader,minority,majority,all` target lists.
pub fn parse_targets(text: &str) -> Result<Vec<Target>, String> {
    text.split(',').map(str::parse).collect()
}

fn ser_mode<S: serde::Serializer>(m: &NetMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match m {
        NetMode::Namespaces => "namespaces",
        NetMode::Loopback => "loopback",
    })
}

/// A node as `run.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub addr: SocketAddr,
    pub netns: Option<String>,
    pub log: PathBuf,
    pub starts: u32,
}

/// A broker group as `run.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub members: Vec<String>,
}

/// A fault as `run.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultInfo {
    pub kind: &'static str,
    pub targets: Vec<String>,
    pub start_error: Option<String>,
    pub end_error: Option<String>,
    pub detail: Option<String>,
}

/// What a run did (`run.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub config: RunConfig,
    /// Why the verdict of this run cannot be valid, if so.
    pub limitations: Vec<String>,
    pub history: PathBuf,
    pub nodes: Vec<NodeInfo>,
    /// Broker groups and their members' node names.
    pub groups: Vec<GroupInfo>,
    pub faults: Vec<FaultInfo>,
    /// What the workload did (absent without a broker).
    pub workload: Option<WorkloadStats>,
    /// Whether the nodes ran a `raftmq` built with the `failpoints` feature (needed by the
    /// disk nemesis's power-cut and torn faults).
    pub failpoints: bool,
    /// Nodes left down at the end (they refused to start after disk damage and await
    /// replacement); the fault windows that left them down are recorded as not healed.
    pub left_down: Vec<String>,
    /// Replica comparison of the stopped groups (absent without a broker); also written to
    /// `replicas.json`.
    #[serde(skip)]
    pub replicas: Option<ReplicasReport>,
    pub elapsed_s: f64,
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 500ms, 30s, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=30.0 * 86_400.0).contains(&secs) {
        return Err(format!("{text:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `kill,pause,partition,net` (`all` for every kind).
pub fn parse_nemeses(text: &str) -> Result<Vec<FaultKind>, String> {
    if text.trim() == "all" {
        return Ok(vec![
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Partition,
            FaultKind::Net,
            FaultKind::Membership,
        ]);
    }
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',').map(str::parse).collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Runs the cluster and the nemesis schedule; `progress` gets one line per event.
pub fn run(config: &RunConfig, mut progress: impl FnMut(&str)) -> Result<RunSummary, RunError> {
    if !(1..=9).contains(&config.nodes) {
        return Err(RunError::Config(format!(
            "--nodes {} (1 to 9)",
            config.nodes
        )));
    }
    if !(1..=MAX_GROUPS).contains(&config.groups) {
        return Err(RunError::Config(format!(
            "--groups {} (1 to {MAX_GROUPS})",
            config.groups
        )));
    }
    if config.mode == NetMode::Loopback {
        if let Some(k) = config.nemeses.iter().find(|k| k.needs_namespaces()) {
            return Err(RunError::Config(format!(
                "the {k} nemesis needs network namespaces; drop --loopback or that nemesis"
            )));
        }
    } else {
        crate::setup::ensure_tools()?;
        let stale = netns::delete_stale()?;
        if !stale.is_empty() {
            progress(&format!(
                "deleted {} namespaces left by interrupted runs",
                stale.len()
            ));
        }
    }
    std::fs::create_dir_all(&config.out).map_err(io_err(&config.out))?;
    if let Some(free) = free_bytes(&config.out) {
        let gib = free as f64 / f64::from(1u32 << 30);
        progress(&format!("{gib:.1} GiB free under {}", config.out.display()));
        if gib < 2.0 {
            progress("NOTE: little free disk space; the history and the nodes' stores may not fit");
        }
    }
    let started = Instant::now();
    let broker = cluster::has_broker_command(&config.binary);
    let mut limitations = if broker {
        Vec::new()
    } else {
        vec![
            "the raftmq binary has no broker command: nodes run `raftmq namesrv` as stand-ins"
                .to_owned(),
            "no workload: the history holds only fault windows, so the verdict is unknown"
                .to_owned(),
        ]
    };
    let failpoints = cluster::has_failpoints(&config.binary);
    if config.nemeses.contains(&FaultKind::Disk)
        && !failpoints
        && config.disk_modes.iter().any(|m| m.needs_failpoints())
    {
        limitations.push(
            "disk fault unavailable: the raftmq binary was built without the failpoints \
             feature, so power-cut and torn faults are recorded as failed and the verdict \
             cannot be valid"
                .to_owned(),
        );
    }
    for l in &limitations {
        progress(&format!("NOTE: {l}"));
    }

    let group_names: Vec<String> = (0..config.groups).map(group_name).collect();
    let mut names = vec!["namesrv".to_owned()];
    for g in 0..config.groups {
        names.extend((0..config.nodes).map(|i| node_name(config.groups, g, i)));
    }
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let cc = ClusterConfig {
        binary: config.binary.clone(),
        dir: config.out.clone(),
        mode: config.mode,
        prefix: netns::unique_prefix(),
        start_timeout: Duration::from_secs(30),
    };
    let mode = config.mode;
    let mut c = Cluster::create(cc, &name_refs, |i| match mode {
        NetMode::Namespaces if i == 0 => Ok(9876),
        NetMode::Namespaces => Ok(10911),
        NetMode::Loopback => cluster::free_port(),
    })?;
    // Group g's members are cluster nodes 1 + g*nodes ..; node 0 is the nameserver.
    let groups: Vec<(String, Vec<usize>)> = group_names
        .iter()
        .enumerate()
        .map(|(g, name)| {
            let first = 1 + g * config.nodes;
            (name.clone(), (first..first + config.nodes).collect())
        })
        .collect();
    let namesrv_addr = c.node(0)?.addr();
    c.set_command(0, cluster::namesrv_command(c.node(0)?)?)?;
    c.start(0)?;
    progress(&format!(
        "started namesrv on {} (pid {:?})",
        namesrv_addr,
        c.node(0)?.pid()
    ));
    for (name, members) in &groups {
        let raft_ports: Vec<u16> = members
            .iter()
            .map(|_| match mode {
                NetMode::Namespaces => Ok(40911),
                NetMode::Loopback => cluster::free_port(),
            })
            .collect::<Result<_, _>>()?;
        let spec = cluster::BrokerGroupSpec {
            name: name.clone(),
            cluster: "JepsenCluster".into(),
            namesrv: namesrv_addr.to_string(),
            flush_disk_type: "SYNC_FLUSH".into(),
            // Small files: runs are short and the disk is shared.
            segment_bytes: 16 << 20,
            consume_queue_bytes: 20 * 6000,
            message_index: false,
        };
        if broker {
            c.set_group(crate::membership::GroupLayout::new(
                spec.clone(),
                members,
                &raft_ports,
            ));
        }
        for (pos, &i) in members.iter().enumerate() {
            let args: Vec<OsString> = if broker {
                cluster::broker_command(&c, members, &raft_ports, pos, &spec)?
            } else {
                cluster::namesrv_command(c.node(i)?)?
            };
            c.set_command(i, args)?;
            c.start(i)?;
            let n = c.node(i)?;
            progress(&format!(
                "started {} ({name}) on {} (pid {:?})",
                n.name,
                n.addr(),
                n.pid()
            ));
        }
    }
    let client_ns = c.client_netns().map(str::to_owned);

    let history = config.out.join("history.jsonl");
    let rec = std::sync::Arc::new(Recorder::create(&history)?);
    if broker && config.groups > 1 {
        // Auto-creation would put the topic on whichever group the first send reaches; every
        // group gets it explicitly so the workload spreads over all of them.
        for (name, _) in &groups {
            create_topic(
                &c,
                client_ns.as_deref(),
                namesrv_addr,
                name,
                TOPIC,
                Instant::now() + Duration::from_secs(60),
            )?;
            progress(&format!("created {TOPIC} on {name} (4 queues)"));
        }
    }
    let load = if broker {
        let wc = WorkloadConfig {
            namesrv: namesrv_addr.to_string(),
            topic: TOPIC.into(),
            group: "JepsenConsumers".into(),
            producers: 4,
            consumers: 2,
            rate: config.rate,
            client_ip: match mode {
                NetMode::Namespaces => std::net::IpAddr::V4(netns::HUB_ADDR),
                NetMode::Loopback => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            },
            send_timeout: Duration::from_secs(3),
            pull_timeout: Duration::from_secs(3),
            commit_every: 10,
        };
        let h = workload::spawn(wc, rec.clone(), client_ns.clone())?;
        // Faults start once the group takes writes (or after 60 s regardless).
        let warm = Instant::now() + Duration::from_secs(60);
        while h.sends_ok() == 0 && Instant::now() < warm {
            std::thread::sleep(Duration::from_millis(100));
        }
        progress(&format!(
            "workload running: {} sends, {} acknowledged",
            h.sends(),
            h.sends_ok()
        ));
        Some(h)
    } else {
        None
    };
    let observer = if broker {
        let several = groups.len() > 1;
        let mut nodes = Vec::new();
        for (name, members) in &groups {
            for &m in members {
                let n = c.node(m)?;
                let group = several.then(|| name.clone());
                nodes.push((n.name.clone(), n.addr().to_string(), group));
            }
        }
        let o = crate::observer::RoleObserver::spawn(
            nodes,
            Duration::from_millis(500),
            rec.clone(),
            client_ns.clone(),
        )
        .map_err(io_err(&config.out))?;
        Some(o)
    } else {
        None
    };
    progress(&format!(
        "nemesis {:?} for {:.0?} (seed {})",
        config.nemeses.iter().map(|k| k.name()).collect::<Vec<_>>(),
        config.time,
        config.seed
    ));
    let (records, left_down): (Vec<FaultRecord>, Vec<String>) = {
        let t0 = Instant::now();
        let probe_ns = client_ns.clone();
        let probe_groups = group_names.clone();
        let mut nem = Nemesis::new(&mut c, &rec, config.seed)
            .with_groups(groups.iter().map(|g| g.1.clone()).collect())
            .with_targets(config.targets.clone())
            .with_disk(config.disk_modes.clone(), failpoints)
            .with_group_leader(move |cl: &Cluster, g: usize| {
                if !broker {
                    return None;
                }
                let group = probe_groups.get(g)?;
                // Right after a fault the group may still be electing: ask for up to 10 s.
                let until = Instant::now() + Duration::from_secs(10);
                loop {
                    let l = leader_from_namesrv(cl, probe_ns.as_deref(), namesrv_addr, group);
                    if l.is_some() || Instant::now() >= until {
                        return l;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        let records = nem.run_schedule(
            &config.nemeses,
            Instant::now() + config.time,
            config.gap,
            config.hold,
            || false,
            |r| {
                let status = match (&r.start_error, &r.end_error) {
                    (None, None) => "applied and healed".to_owned(),
                    (Some(e), _) => format!("FAILED to apply: {e}"),
                    (None, Some(e)) => format!("FAILED to heal: {e}"),
                };
                let detail = r
                    .detail
                    .as_deref()
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default();
                progress(&format!(
                    "[{:>6.1}s] {}{detail} {}: {status}",
                    t0.elapsed().as_secs_f64(),
                    r.kind,
                    r.targets.join("; ")
                ));
            },
        );
        let left_down = nem.left_down();
        (records, left_down)
    };
    let stats = match load {
        Some(h) => {
            progress(&format!(
                "faults over; draining (up to {:.0?})",
                config.drain
            ));
            // Keep sending after the last heal until the group acknowledges again (at least
            // 2 s, at most the drain time), so recovery after the last fault is measured.
            let healed_ok = h.sends_ok();
            let t = Instant::now();
            while t.elapsed() < config.drain
                && (t.elapsed() < Duration::from_secs(2) || h.sends_ok() <= healed_ok)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            progress(&format!(
                "{} sends acknowledged in {:.1?} after the last heal",
                h.sends_ok() - healed_ok,
                t.elapsed()
            ));
            h.stop_sends(Instant::now() + config.drain);
            let st = h.finish()?;
            progress(&format!(
                "workload: {} sends ({} ok, {} fail, {} info), {} polls, {} messages read, drained: {}",
                st.sends, st.sends_ok, st.sends_fail, st.sends_info, st.polls, st.messages_read, st.drained
            ));
            Some(st)
        }
        None => None,
    };
    if let Some(o) = observer {
        o.stop();
    }
    rec.flush()?;
    let nodes: Vec<NodeInfo> = c
        .nodes()
        .iter()
        .map(|n| NodeInfo {
            name: n.name.clone(),
            addr: n.addr(),
            netns: n.netns().map(str::to_owned),
            log: n.log_path.clone(),
            starts: n.starts(),
        })
        .collect();
    if !left_down.is_empty() {
        progress(&format!(
            "left down (refused to start after disk damage; replace them): {}",
            left_down.join(", ")
        ));
    }
    // The replica check is about what is on disk, so every broker gets SIGTERM at the same
    // moment and is left to finish its clean stop (flush, committed index and dispatch
    // checkpoint persisted), then the stores are compared. A kill -9 would leave the same
    // segment bytes but an older committed index and checkpoint, so less would be compared;
    // crash states are what the kill nemesis and its restarts exercise.
    let brokers: Vec<usize> = groups.iter().flat_map(|g| g.1.iter().copied()).collect();
    let group_infos: Vec<GroupInfo> = groups
        .iter()
        .map(|(name, members)| GroupInfo {
            name: name.clone(),
            members: members
                .iter()
                .filter_map(|&m| c.node(m).ok().map(|n| n.name.clone()))
                .collect(),
        })
        .collect();
    progress("stopping the nodes (SIGTERM to every broker at once)");
    let killed = c.stop_together(&brokers, STOP_GRACE)?;
    if !killed.is_empty() {
        progress(&format!(
            "killed {} after {STOP_GRACE:?} without a clean stop",
            killed.join(", ")
        ));
    }
    c.stop_all(Duration::from_secs(10))?;
    let replicas = if broker {
        let r = compare_groups(&c, &groups, killed, &left_down);
        if !left_down.is_empty() {
            progress(&format!(
                "replica check leaves out {} (left down after disk damage)",
                left_down.join(", ")
            ));
        }
        report_replicas(&r, &mut progress);
        let path = config.out.join("replicas.json");
        let text = serde_json::to_string_pretty(&r)
            .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
        Some(r)
    } else {
        None
    };
    drop(c);

    let summary = RunSummary {
        config: config.clone(),
        limitations,
        history,
        nodes,
        groups: group_infos,
        faults: records
            .into_iter()
            .map(|r| FaultInfo {
                kind: r.kind.name(),
                targets: r.targets,
                start_error: r.start_error,
                end_error: r.end_error,
                detail: r.detail,
            })
            .collect(),
        workload: stats,
        failpoints,
        left_down,
        replicas,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let path = config.out.join("run.json");
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
    std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
    Ok(summary)
}

/// Bytes available to unprivileged users on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail.saturating_mul(st.f_frsize))
}

/// How long a broker may take to stop cleanly after SIGTERM at the end of a run.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Compares the stopped replicas of every group (`name`, member indices); an error reading a
/// group is kept in the report (the verdict is then unknown), not returned.
pub fn compare_groups(
    c: &Cluster,
    groups: &[(String, Vec<usize>)],
    killed_at_stop: Vec<String>,
    left_down: &[String],
) -> ReplicasReport {
    let mut report = ReplicasReport {
        killed_at_stop,
        excluded: left_down.to_vec(),
        ..ReplicasReport::default()
    };
    for (name, members) in groups {
        let rs: Result<Vec<Replica>, ClusterError> = members
            .iter()
            .filter(|&&m| c.node(m).map_or(true, |n| !left_down.contains(&n.name)))
            .map(|&m| {
                c.node(m).map(|n| Replica {
                    name: n.name.clone(),
                    root: n.data_dir.join("store"),
                })
            })
            .collect();
        let res = rs
            .map_err(|e| e.to_string())
            .and_then(|rs| replicas::check_group(name, &rs).map_err(|e| e.to_string()));
        match res {
            Ok(g) => report.groups.push(g),
            Err(e) => {
                let e = format!("{name}: {e}");
                report.error = Some(match report.error.take() {
                    Some(prev) => format!("{prev}; {e}"),
                    None => e,
                });
            }
        }
    }
    report
}

fn report_replicas(r: &ReplicasReport, progress: &mut impl FnMut(&str)) {
    for g in &r.groups {
        if g.holds() {
            progress(&format!(
                "replicas of {}: identical up to index {} (commitlog byte {}), {} consumequeues agree",
                g.group,
                g.lowest_committed.map_or("-".into(), |i| i.to_string()),
                g.commit_pos,
                g.consume_queues.len()
            ));
        }
        for f in g.findings() {
            progress(&format!("REPLICAS DIVERGE: {f}"));
        }
    }
    if let Some(e) = &r.error {
        progress(&format!("replica comparison failed: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_nemesis_lists_parse() {
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_nemeses("kill,partition").unwrap(),
            vec![FaultKind::Kill, FaultKind::Partition]
        );
        assert_eq!(parse_nemeses("all").unwrap().len(), 5);
        assert_eq!(
            parse_nemeses("membership").unwrap(),
            vec![FaultKind::Membership]
        );
        assert!(parse_nemeses("kill,flood").unwrap_err().contains("flood"));
    }
}
