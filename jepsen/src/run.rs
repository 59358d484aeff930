//! One chaos run: bring up the nodes, run the nemesis on its seeded schedule for the given
//! time while recording every fault window to `history.jsonl`, stop everything, and describe
//! the run in `run.json`. Checking the history is the caller's next step.
//!
//! With a `raftmq` binary that has the `broker` command, the nodes are a nameserver and one
//! Raft broker group (`broker-a`, members `n0..`), and the [`crate::workload`] runs from the
//! clients' namespace during the faults and drains afterwards. With an older binary the nodes
//! run `raftmq namesrv` as stand-ins and no workload is driven: the run exercises cluster
//! control and the nemeses for real, but its history holds only faults, so its verdict is
//! always "unknown". `run.json` and the printed progress say which happened.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

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
    #[error(transparent)]
    Workload(#[from] workload::WorkloadError),
}

/// Name of the broker group a run starts.
pub const GROUP: &str = "broker-a";
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
    /// Nodes of the group (3 or 5).
    pub nodes: usize,
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
    pub faults: Vec<FaultInfo>,
    /// What the workload did (absent without a broker).
    pub workload: Option<WorkloadStats>,
    /// Whether the nodes ran a `raftmq` built with the `failpoints` feature (needed by the
    /// disk nemesis's power-cut and torn faults).
    pub failpoints: bool,
    /// Nodes left down at the end (they refused to start after disk damage and await
    /// replacement); the fault windows that left them down are recorded as not healed.
    pub left_down: Vec<String>,
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

    let mut names = vec!["namesrv".to_owned()];
    names.extend((0..config.nodes).map(|i| format!("n{i}")));
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
    let members: Vec<usize> = (1..=config.nodes).collect();
    let namesrv_addr = c.node(0)?.addr();
    let raft_ports: Vec<u16> = members
        .iter()
        .map(|_| match mode {
            NetMode::Namespaces => Ok(40911),
            NetMode::Loopback => cluster::free_port(),
        })
        .collect::<Result<_, _>>()?;
    let spec = cluster::BrokerGroupSpec {
        name: GROUP.into(),
        cluster: "JepsenCluster".into(),
        namesrv: namesrv_addr.to_string(),
        flush_disk_type: "SYNC_FLUSH".into(),
        // Small files: runs are short and the disk is shared.
        segment_bytes: 16 << 20,
        consume_queue_bytes: 20 * 6000,
        message_index: false,
    };
    for i in 0..c.len() {
        let args: Vec<OsString> = if i == 0 || !broker {
            cluster::namesrv_command(c.node(i)?)?
        } else {
            cluster::broker_command(&c, &members, &raft_ports, i - 1, &spec)?
        };
        c.set_command(i, args)?;
        c.start(i)?;
        let n = c.node(i)?;
        progress(&format!(
            "started {} on {} (pid {:?})",
            n.name,
            n.addr(),
            n.pid()
        ));
    }
    let client_ns = c.client_netns().map(str::to_owned);

    let history = config.out.join("history.jsonl");
    let rec = std::sync::Arc::new(Recorder::create(&history)?);
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
        let nodes = members
            .iter()
            .map(|&m| c.node(m).map(|n| (n.name.clone(), n.addr().to_string())))
            .collect::<Result<Vec<_>, _>>()?;
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
    let records: Vec<FaultRecord> = {
        let t0 = Instant::now();
        let probe_ns = client_ns.clone();
        let mut nem = Nemesis::new(&mut c, &rec, config.seed)
            .with_members(members.clone())
            .with_targets(config.targets.clone())
            .with_disk(config.disk_modes.clone(), failpoints)
            .with_leader(move |cl: &Cluster| {
                if !broker {
                    return None;
                }
                // Right after a fault the group may still be electing: ask for up to 10 s.
                let until = Instant::now() + Duration::from_secs(10);
                loop {
                    let l = leader_from_namesrv(cl, probe_ns.as_deref(), namesrv_addr, GROUP);
                    if l.is_some() || Instant::now() >= until {
                        return l;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        nem.run_schedule(
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
        )
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
    let left_down: Vec<String> = c
        .nodes()
        .iter()
        .skip(1)
        .filter(|n| !n.is_running())
        .map(|n| n.name.clone())
        .collect();
    if !left_down.is_empty() {
        progress(&format!(
            "left down (refused to start after disk damage; replace them): {}",
            left_down.join(", ")
        ));
    }
    progress("stopping the nodes");
    c.stop_all(Duration::from_secs(10))?;
    drop(c);

    let summary = RunSummary {
        config: config.clone(),
        limitations,
        history,
        nodes,
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
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    let path = config.out.join("run.json");
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
    std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
    Ok(summary)
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
        assert_eq!(parse_nemeses("all").unwrap().len(), 4);
        assert!(parse_nemeses("kill,flood").unwrap_err().contains("flood"));
    }
}
