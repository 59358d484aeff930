//! The `raftmq` command line. Thin on purpose: it parses flags, loads config files, installs
//! logging and signal handling, and calls into the library (`raftmq::namesrv`,
//! `raftmq::broker`), which is what the tests drive directly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use raftmq::broker::{Broker, BrokerConfig};
use raftmq::config::NamesrvConfig;
use raftmq::namesrv::Namesrv;

mod admin_cli;
/// mimalloc rather than the system allocator: every request allocates (header fields,
/// properties, the response), and on the produce path glibc's malloc/free took about a third
/// of the broker's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "raftmq",
    version,
    about = "A RocketMQ-compatible message broker whose commitlog is a Raft log"
)]
struct Cli {
    /// Threads of the async runtime that serves connections, Raft and the state machine.
    /// Default: half the CPUs, at least 1 (the TOKIO_WORKER_THREADS environment variable
    /// overrides the default). Storage I/O that may block runs on threads of its own.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

/// Half the CPUs, at least one. Each broker group's Raft core and state machine are one task
/// each, so more workers mostly add hand-offs between them; the other half stays free for the
/// commitlog's writer and flusher, fsyncs on the blocking pool, the kernel's network stack and
/// page-cache writeback. On 2 vCPUs one worker gave 1.4-1.6x the throughput of two at 256 in
/// flight, and half the 1-in-flight latency (docs/benchmarks.md, "Runtime workers").
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

fn runtime(cli: &Cli) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    match cli.worker_threads {
        Some(n) => {
            b.worker_threads(usize::from(n));
        }
        // The builder reads TOKIO_WORKER_THREADS itself when no count is given.
        None if std::env::var_os("TOKIO_WORKER_THREADS").is_some() => {}
        None => {
            b.worker_threads(default_worker_threads());
        }
    }
    b.build().context("cannot start the async runtime")
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a nameserver (like `mqnamesrv`). Brokers register with it; clients ask it for routes.
    Namesrv(NamesrvArgs),
    /// Run one broker node (like `mqbroker`): a member of a Raft broker group.
    Broker(BrokerArgs),
    /// Local development setup on loopback, in one process: a nameserver on 127.0.0.1 (port
    /// 9876 by default) and a 3-node broker group `broker-a` registered with it.
    Dev(DevArgs),
    /// Benchmarks: produce and consume against a nameserver, or a Raft group in-process.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Built with the `failpoints` feature (test builds): how `raftmq broker` simulates power
    /// cuts. Exits 0, so tools can tell such a build apart.
    #[cfg(feature = "failpoints")]
    Failpoints,
    /// Administer a broker group (like `mqadmin`): status, membership changes, leadership.
    #[command(subcommand)]
    Admin(admin_cli::AdminCommand),
}

#[derive(Debug, Args)]
struct NamesrvArgs {
    /// Config file in RocketMQ `key=value` format (see conf/namesrv.conf).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Port to listen on (overrides `listenPort`; default 9876; 0 picks a free port).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port: Option<u16>,
    /// Address to bind (overrides `bindAddress`; default 0.0.0.0, i.e. all interfaces, as
    /// RocketMQ does, because remote brokers must reach it; use 127.0.0.1 for local-only).
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Option<IpAddr>,
}

#[derive(Debug, Args)]
struct BrokerArgs {
    /// Config file in RocketMQ `broker.conf` format (see conf/broker.example.conf).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Nameserver list `host:port;host:port` (overrides `namesrvAddr`).
    #[arg(short = 'n', long = "namesrv", value_name = "ADDRS")]
    namesrv: Option<String>,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Directory for all local data: `<DIR>/namesrv` and one store per broker node
    /// (`<DIR>/broker-a-n0`, ...).
    #[arg(long = "data", value_name = "DIR", default_value = "./data")]
    data: PathBuf,
    /// Remoting port of the first broker node; the others use the next ports (10911, 10921,
    /// 10931 by default) and their Raft transports listen 30000 above (40911, ...).
    /// Default 10911, or free ports picked at start when the nameserver port is 0.
    #[arg(long = "broker-port", value_name = "PORT")]
    broker_port: Option<u16>,
    /// Nameserver port on 127.0.0.1.
    #[arg(
        short = 'p',
        long = "port",
        value_name = "PORT",
        default_value_t = 9876
    )]
    port: u16,
    /// `flushDiskType` of the three nodes: `sync` (SYNC_FLUSH) or `async` (ASYNC_FLUSH,
    /// RocketMQ's default).
    #[arg(long, value_enum, default_value = "async")]
    flush: FlushArg,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Closed-loop producers: K sends in flight, progress every second, final summary.
    Produce(BenchProduceArgs),
    /// Pull consumers over every queue of a topic: throughput and end-to-end latency.
    Consume(BenchConsumeArgs),
    /// A Raft group on loopback in this process, proposing through the proposer.
    Raft(BenchRaftArgs),
}

#[derive(Debug, Args)]
struct BenchCommon {
    /// Nameserver list `host:port;host:port`.
    #[arg(
        short = 'n',
        long = "namesrv",
        value_name = "ADDRS",
        default_value = "127.0.0.1:9876"
    )]
    namesrv: String,
    /// Topic.
    #[arg(short = 't', long = "topic", default_value = "BenchTopic")]
    topic: String,
    /// Upper bound of the run (`30s`, `500ms`, `2m`).
    #[arg(long, value_parser = raftmq::bench::parse_duration, default_value = "30s")]
    duration: std::time::Duration,
    /// Stop after this many messages.
    #[arg(long)]
    messages: Option<u64>,
    /// Broker process whose memory (/proc/PID/status) to sample every second.
    #[arg(long = "broker-pid", value_name = "PID")]
    broker_pid: Option<u32>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Request header encoding: json (what RocketMQ clients send by default) or rocketmq
    /// (the compact binary header, `rocketmq.serialize.type=ROCKETMQ` in Java).
    #[arg(long = "serialize-type", value_enum, default_value = "json")]
    serialize_type: SerializeArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SerializeArg {
    Json,
    Rocketmq,
}

impl From<SerializeArg> for raftmq::remoting::SerializeType {
    fn from(s: SerializeArg) -> Self {
        match s {
            SerializeArg::Json => raftmq::remoting::SerializeType::Json,
            SerializeArg::Rocketmq => raftmq::remoting::SerializeType::RocketMq,
        }
    }
}

#[derive(Debug, Args)]
struct BenchProduceArgs {
    #[command(flatten)]
    common: BenchCommon,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Producer client instances (each with its own connections).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Sends in flight in total (closed loop).
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// Producer group.
    #[arg(short = 'g', long, default_value = "raftmq_bench_producer")]
    group: String,
}

#[derive(Debug, Args)]
struct BenchConsumeArgs {
    #[command(flatten)]
    common: BenchCommon,
    /// Consumer group.
    #[arg(short = 'g', long, default_value = "raftmq_bench_consumer")]
    group: String,
    /// Start at each queue's minimum offset instead of the committed offset.
    #[arg(long = "from-start")]
    from_start: bool,
    /// Stop each queue at its end as seen at the start (drain a backlog).
    #[arg(long)]
    drain: bool,
    /// Messages per pull.
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FlushArg {
    Sync,
    Async,
}

impl From<FlushArg> for raftmq_store::config::FlushMode {
    fn from(f: FlushArg) -> Self {
        match f {
            FlushArg::Sync => raftmq_store::config::FlushMode::Sync,
            FlushArg::Async => raftmq_store::config::FlushMode::Async,
        }
    }
}

#[derive(Debug, Args)]
struct BenchRaftArgs {
    /// Group size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// `flushDiskType` of every member.
    #[arg(long, value_enum, default_value = "sync")]
    flush: FlushArg,
    /// Proposals in flight, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    inflight: Vec<usize>,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Length of each run (`10s`, `500ms`).
    #[arg(long, value_parser = raftmq::bench::parse_duration, default_value = "10s")]
    duration: std::time::Duration,
    /// Kill the leader this many times after the runs and time the failovers.
    #[arg(long, default_value_t = 0)]
    failover: usize,
    /// Parent directory of the temporary group data (default: the system temp dir).
    #[arg(long = "data", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Leader heartbeat period in ms (default: the group default, 50).
    #[arg(long = "heartbeat-ms")]
    heartbeat_ms: Option<u64>,
    /// Election timeout range `MIN,MAX` in ms (default: the group default, 200,300).
    #[arg(long = "election-ms", value_delimiter = ',')]
    election_ms: Option<Vec<u64>>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Prints a bench summary as text or as one JSON line.
fn print_summary<T: serde::Serialize + std::fmt::Display>(s: &T, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!("{s}");
    }
    Ok(())
}

async fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    use raftmq::bench::{consume, produce, raft};
    match cmd {
        BenchCommand::Produce(a) => {
            let c = a.common;
            let opts = produce::ProduceOptions {
                group: a.group,
                size: a.size,
                threads: a.threads,
                inflight: a.inflight,
                duration: c.duration,
                messages: c.messages,
                broker_pid: c.broker_pid,
                quiet: c.quiet,
                serialize_type: c.serialize_type.into(),
                ..produce::ProduceOptions::new(c.namesrv, c.topic)
            };
            print_summary(&produce::run(&opts).await?, c.json)
        }
        BenchCommand::Consume(a) => {
            let c = a.common;
            let opts = consume::ConsumeOptions {
                from_start: a.from_start,
                drain: a.drain,
                duration: c.duration,
                messages: c.messages,
                batch: a.batch,
                broker_pid: c.broker_pid,
                quiet: c.quiet,
                serialize_type: c.serialize_type.into(),
                ..consume::ConsumeOptions::new(c.namesrv, c.topic, a.group)
            };
            print_summary(&consume::run(&opts).await?, c.json)
        }
        BenchCommand::Raft(a) => {
            let election_timeout = match a.election_ms.as_deref() {
                None => None,
                Some([min, max]) if min < max => Some((
                    std::time::Duration::from_millis(*min),
                    std::time::Duration::from_millis(*max),
                )),
                Some(_) => anyhow::bail!("--election-ms wants MIN,MAX with MIN < MAX"),
            };
            let opts = raft::RaftOptions {
                nodes: a.nodes,
                inflight: a.inflight,
                size: a.size,
                duration: a.duration,
                failover: a.failover,
                data_dir: a.data,
                heartbeat: a.heartbeat_ms.map(std::time::Duration::from_millis),
                election_timeout,
                quiet: a.quiet,
                ..raft::RaftOptions::new(a.flush.into())
            };
            print_summary(&raft::run(&opts).await?, a.json)
        }
    }
}

fn namesrv_config(args: &NamesrvArgs) -> anyhow::Result<NamesrvConfig> {
    let mut cfg = match &args.config {
        Some(path) => NamesrvConfig::load(path)
            .with_context(|| format!("loading nameserver config {}", path.display()))?,
        None => NamesrvConfig::default(),
    };
    if let Some(port) = args.port {
        cfg.listen_port = port;
    }
    if let Some(addr) = args.listen {
        cfg.bind_address = addr;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn dev_config(args: &DevArgs) -> anyhow::Result<NamesrvConfig> {
    let mut cfg = NamesrvConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        listen_port: args.port,
        ..NamesrvConfig::default()
    };
    cfg.kv_config_path = Some(args.data.join("namesrv").join("kvConfig.json"));
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating data directory {}", args.data.display()))?;
    cfg.validate()?;
    Ok(cfg)
}

/// Installs the SIGTERM and SIGINT (Ctrl-C) handlers now, before anything is bound or
/// announced, so a signal sent right after start-up is never lost to the default action; the
/// returned future resolves when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, shutting down");
    })
}

async fn serve_namesrv(cfg: NamesrvConfig, banner: &str) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let requested = SocketAddr::new(cfg.bind_address, cfg.listen_port);
    let server = Namesrv::bind(cfg)
        .await
        .with_context(|| format!("starting nameserver on {requested}"))?;
    let addr = server.local_addr();
    // One machine-readable line on stdout (scripts and tests read the port from it);
    // everything else goes to the log on stderr.
    println!("{banner} {addr}");
    server.serve(shutdown).await?;
    tracing::info!("nameserver stopped");
    Ok(())
}

fn broker_config(args: &BrokerArgs) -> anyhow::Result<BrokerConfig> {
    let mut cfg = match &args.config {
        Some(path) => BrokerConfig::load(path)
            .with_context(|| format!("loading broker config {}", path.display()))?,
        None => BrokerConfig::default(),
    };
    if let Some(n) = &args.namesrv {
        cfg.namesrv_addr = n
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn serve_broker(cfg: BrokerConfig) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    #[cfg(feature = "failpoints")]
    let broker = {
        let fs = raftmq::failpoints::install(&cfg.store_path_root_dir)
            .context("installing the power-cut signal handlers")?;
        tracing::warn!("failpoints build: the store runs on the fault-injecting file system; SIGUSR1/SIGUSR2 cut the power");
        Broker::start_with_fs(cfg, fs)
            .await
            .context("starting broker")?
    };
    #[cfg(not(feature = "failpoints"))]
    let broker = Broker::start(cfg).await.context("starting broker")?;
    println!("raftmq broker listening on {}", broker.local_addr());
    shutdown.await;
    broker.shutdown().await;
    tracing::info!("broker stopped");
    Ok(())
}

/// Free loopback ports: bound, then released (the nodes bind them right after).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("picking free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<Result<Vec<u16>, std::io::Error>>()
        .context("picking free ports")
}

/// The 3-node loopback group of `raftmq dev`.
fn dev_broker_configs(args: &DevArgs, namesrv: SocketAddr) -> anyhow::Result<Vec<BrokerConfig>> {
    let (ports, raft_ports): (Vec<u16>, Vec<u16>) = match args.broker_port {
        None if args.port == 0 => {
            let p = free_ports(6)?;
            (p[..3].to_vec(), p[3..].to_vec())
        }
        base => {
            let base = base.unwrap_or(10911);
            let ports: Vec<u16> = (0..3u16)
                .map(|i| base.checked_add(i * 10))
                .collect::<Option<_>>()
                .context("--broker-port too high")?;
            let raft: Vec<u16> = ports
                .iter()
                .map(|p| p.checked_add(30000))
                .collect::<Option<_>>()
                .context("--broker-port too high for the Raft ports (port + 30000)")?;
            (ports, raft)
        }
    };
    let peers: Vec<String> = raft_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
        .collect();
    let brokers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
        .collect();
    let mut out = vec![];
    for (i, port) in ports.iter().enumerate() {
        let mut cfg = BrokerConfig {
            broker_name: "broker-a".into(),
            listen_port: *port,
            namesrv_addr: vec![namesrv.to_string()],
            store_path_root_dir: args.data.join(format!("broker-a-n{i}")),
            dleger_group: "broker-a".into(),
            dleger_peers: peers.join(";"),
            dleger_self_id: format!("n{i}"),
            peer_broker_addrs: brokers.join(";"),
            maped_file_size_commit_log: 64 << 20,
            flush_disk_type: args.flush.into(),
            // Retention by age only: a dev group on a shared, nearly full disk keeps its
            // unexpired segments (a benchmark backlog) instead of deleting them forcibly.
            disk_space_clean_forcibly_ratio: 100,
            ..BrokerConfig::default()
        };
        cfg.broker_ip1 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        cfg.validate()?;
        out.push(cfg);
    }
    Ok(out)
}

/// Start the three nodes into `brokers` and wait until clients can use the group.
async fn start_dev_group(
    args: &DevArgs,
    ns_addr: SocketAddr,
    brokers: &mut Vec<Broker>,
) -> anyhow::Result<()> {
    for cfg in dev_broker_configs(args, ns_addr)? {
        let name = format!("{}-{}", cfg.broker_name, cfg.dleger_self_id);
        let b = Broker::start(cfg)
            .await
            .with_context(|| format!("starting broker node {name}"))?;
        println!("raftmq dev: broker {name} listening on {}", b.local_addr());
        brokers.push(b);
    }
    if let Some(b) = brokers.first() {
        match b
            .wait_for_ready_leader(std::time::Duration::from_secs(30))
            .await
        {
            Ok(role) => {
                // Ready for clients once the leader's route (with TBW102) is on the nameserver.
                let ns = raftmq::remoting::RemotingClient::new(
                    ns_addr.to_string(),
                    raftmq::remoting::ClientConfig::default(),
                );
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
                loop {
                    let req = raftmq::remoting::RemotingCommand::request(
                        raftmq::remoting::RequestCode::GetRouteinfoByTopic,
                    )
                    .with_ext("topic", "TBW102");
                    let routed = matches!(
                        ns.invoke(req, std::time::Duration::from_secs(3)).await,
                        Ok(resp) if resp.code == 0
                    );
                    if routed || tokio::time::Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                println!(
                    "raftmq dev: ready (leader n{}, term {}); clients use -n {ns_addr}",
                    role.leader.unwrap_or_default(),
                    role.term
                );
            }
            Err(e) => tracing::warn!(cause = %e, "no leader elected yet"),
        }
    }
    Ok(())
}

async fn serve_dev(args: DevArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    tokio::pin!(shutdown);
    let ns_cfg = dev_config(&args)?;
    let requested = SocketAddr::new(ns_cfg.bind_address, ns_cfg.listen_port);
    let ns = Namesrv::bind(ns_cfg)
        .await
        .with_context(|| format!("starting nameserver on {requested}"))?;
    let ns_addr = ns.local_addr();
    println!("raftmq dev: nameserver listening on {ns_addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ns_task = tokio::spawn(ns.serve(async {
        let _ = stop_rx.await;
    }));
    let mut brokers = vec![];
    // Start-up stops early (cleanly) when a signal arrives meanwhile.
    let started = tokio::select! {
        r = start_dev_group(&args, ns_addr, &mut brokers) => Some(r),
        _ = &mut shutdown => None,
    };
    match started {
        Some(Ok(())) => shutdown.await,
        Some(Err(e)) => {
            let _ = stop_tx.send(());
            return Err(e);
        }
        None => {}
    }
    for b in brokers {
        b.shutdown().await;
    }
    let _ = stop_tx.send(());
    if let Ok(Err(e)) = ns_task.await {
        tracing::warn!(cause = %e, "nameserver stopped with an error");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime(&cli)?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::Bench(_) | Command::Admin(_))
        && std::env::var("RUST_LOG").map_or(true, |s| s.trim().is_empty())
    {
        // Benchmarks kill leaders on purpose; only warnings of our own code are shown unless
        // RUST_LOG says otherwise.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,openraft=off,raftmq_raft=error,raftmq_store=error",
            ))
            .with_writer(std::io::stderr)
            .try_init();
    }
    raftmq::telemetry::init();
    match cli.command {
        Command::Namesrv(args) => {
            let cfg = namesrv_config(&args)?;
            serve_namesrv(cfg, "raftmq namesrv listening on").await
        }
        Command::Broker(args) => serve_broker(broker_config(&args)?).await,
        Command::Dev(args) => serve_dev(args).await,
        Command::Bench(cmd) => run_bench(cmd).await,
        #[cfg(feature = "failpoints")]
        Command::Failpoints => {
            println!(
                "failpoints build: `raftmq broker` keeps its store on the fault-injecting file \
                 system.\nSIGUSR1: power cut (every write not fsynced is dropped), then SIGKILL.\n\
                 SIGUSR2: the same, keeping the first half of the final un-fsynced segment write.\n\
                 Each cut appends a JSON report line to <storePathRootDir>/{}.",
                raftmq::failpoints::REPORT_FILE
            );
            Ok(())
        }
        Command::Admin(cmd) => admin_cli::run(cmd).await,
    }
}
