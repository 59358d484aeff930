//! `raftmq-jepsen`: command line of the chaos harness: `check` a recorded history, `run` the
//! cluster under the nemesis and check what it recorded, `setup` the host's network tools.
//! It only parses arguments, prints progress and the summary, and maps the verdict to the exit
//! code. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use raftmq_jepsen::checker::replicas::ReplicasReport;
use raftmq_jepsen::checker::{self, CheckConfig, Outcome};
use raftmq_jepsen::cluster::NetMode;
use raftmq_jepsen::history::History;
use raftmq_jepsen::report;
use raftmq_jepsen::run::{self as chaos_run, RunConfig};

const CHECKS_HELP: &str = "\
CHECKS (each reports counts and a few examples):
  lost          acknowledged sends whose value was never read, placed in their queue's log:
                prefix (only later offsets read), middle (read on both sides: the consumer
                passed the hole) or suffix (nothing later read). Sends that ended info and
                were never read are not lost.                                  [fails the run]
  unexpected    values read that were never sent, sends that failed yet were read, reads
                completing before their send was invoked. Reads of info sends are counted
                as recovered (allowed).                                        [fails the run]
  duplicate     one value at more than one (queue, offset); redeliveries of a position to
                the same consumer.
                Allowed by at-least-once delivery: reported only.
  inconsistent  one (queue, offset) holding two values: two reads disagree, a read
                contradicts the acknowledged value, or two sends were acknowledged at the
                same position.                                                 [fails the run]
  order         a producer's later send to a queue not at a higher offset; a send invoked
                after another was acknowledged landing below it; a consumer skipping offsets
                or going back between polls or inside one poll (an assign resets it).
                                                                               [fails the run]
  offsets       committed consumer offsets as a register per (group, queue): a fetch must not
                return an offset superseded by a later acknowledged commit (rolled back), nor
                one never committed (0 and \"none\" are the initial value).    [fails the run]
  leaders       from role observations (f = role): two nodes leading the same term (split
                brain), or a node's term going down (a forgotten vote).        [fails the run]
  availability  per fault window: sends ok/failed during it and the time from its end to the
                first acknowledged send (with several groups, also to the first one on the
                faulted group's queues); the longest stretch without an acknowledged send,
                in and outside fault windows. Fails only if sends were attempted after a
                healed window and none was ever acknowledged.

VERDICT:
  valid    every property holds, every fault applied and healed, and at least --min-acked
           sends were acknowledged.
  invalid  a property failed (takes precedence).
  unknown  no property failed, but a fault failed or never healed, or too few sends were
           acknowledged. Never reported as valid.

EXIT CODES: 0 valid, 1 invalid, 3 unknown, 4 the history could not be read or checked
(2 is a usage error).

  replicas      run only: with every broker stopped (SIGTERM to all at once), each group's
                replicas must have identical entry-index units and commitlog bytes up to the
                lowest commit index among them (meta file, entry index), and every
                consumequeue must hold the same units up to the lowest offset the replicas'
                dispatch checkpoints cover. The run writes replicas.json; `check` folds it in
                when it lies next to the history.                             [fails the run]

`run` drives real processes, the nemesis and the workload, then checks what it recorded (see
`run --help`); a run whose replica comparison could not be done is at best unknown.";

const RUN_HELP: &str = "\
NEMESES (--nemesis, comma separated, or all = every one but disk, which needs a failpoints
build and is named on its own; one fault at a time, seeded by --seed;
--targets limits the targets kill, pause and net pick from):
  kill       kill -9 of one node, the leader, a minority, a majority or all nodes; restart
             with the same data directory and address at the end of the window.
  pause      SIGSTOP of the same targets (sockets stay open, nothing answers); SIGCONT.
  partition  real packet drops (nftables, or iptables) inside the nodes' namespaces: isolate
             one node (the leader when known), a minority/majority split, or a bridge (two
             halves that only one node joins). Healed at the end of the window.
  net        delay 100 ms +/- 50 ms per packet (so packets also arrive reordered) on one node
             or a minority's outgoing traffic: tc netem where the kernel has it; otherwise
             the harness's own packet scheduler (an iptables NFQUEUE rule with
             --queue-bypass, and a thread bound to the queue in the node's namespace that
             holds each packet for its seeded delay, then accepts it); without NFQUEUE
             either, a slow link (tc tbf: 2 Mbit/s out, queueing delay up to 150 ms, drops
             past it) with 10% packet loss (nftables), or 30% loss alone when tbf is missing
             too; said in the progress line and run.json.
  disk       storage faults (--disk-modes, default all):
             power-cut  the targets (one, the leader, a minority, a majority or all) lose
                        every write they had not fsynced: each node, built with raftmq's
                        failpoints feature, gets SIGUSR1, reverts its files to their last
                        fsynced content, appends a report to <store>/power-cut.jsonl and
                        SIGKILLs itself; restarted at the end of the window. With SYNC_FLUSH
                        no acknowledged send may be lost, even when every node is cut.
             torn       the same with SIGUSR2: the first half of each node's final
                        un-fsynced segment write stays on disk (recovery must cut it).
             corrupt    kill -9 of a minority, then one bit flipped or the file truncated
                        in its newest commitlog segment (half the time within the last 256
                        written bytes); restarted at the end of the window. Damage beyond a
                        node's commit point must be cut at recovery; damage at or before it
                        must make the node refuse to start naming the file and offset. Such
                        a node is then replaced as an operator would: removed from the group,
                        wiped, added back under a new Raft id. If that fails it is left down:
                        its window is recorded as not healed, so the verdict is unknown,
                        never valid, and run.json lists it in left_down.
             Bytes dropped, torn writes, damaged file@offset and how each node came back are
             recorded in the fault's `detail` (history.jsonl and run.json). Without --bin the
             harness builds raftmq with --features failpoints for runs that use disk
             ($RAFTMQ_FAILPOINTS_BIN overrides); with a binary lacking the feature, run.json
             says the disk fault is unavailable and power-cut/torn faults are recorded as
             failed (verdict unknown).
  membership either (a) leadership transfer from the leader to a random other member
             (raftmq admin transfer-leader), or (b) a random member (the leader too:
             leadership moves away first) removed from the group, killed and its data
             deleted; the group runs without it for the window; at the end a new node with a
             NEW Raft id (n3, n4, ...; its slot keeps the address) and an empty store joins
             as a learner, catches up and is promoted to voter. Works with --loopback.
             The replacement is Cluster::replace_node, usable on its own.
Each fault's start and end is recorded in history.jsonl (f=fault, phase=start|end); a fault
that fails is recorded as failed and makes the verdict unknown.

NETWORK: by default each node runs in its own network namespace (rj<pid>x...-n<i>) attached to
a bridge in a namespace of the harness (10.77.0.0/24 exists only there; the host's interfaces
and routes are never touched). Needs root; `setup` installs iproute2, iptables and nftables
with apt-get when missing. --loopback runs every node on 127.0.0.1 (kill, pause and membership only).

RUN FOLDER: history.jsonl, run.json (configuration, seed, nodes, faults), replicas.json (the
stopped replicas compared), results.json and report.html (from check), nodes/<name>/node.log
and nodes/<name>/data (a replaced node's data is deleted; its log stays under its old name).

WORKLOAD: with a raftmq binary that has the broker command, the nodes are a nameserver and
one Raft group broker-a (n0..; SYNC_FLUSH), or with --groups 2 the groups broker-a (a0..) and
broker-b (b0..), each of --nodes nodes and each holding JepsenTopic's 4 queues; 4 producers
send unique values (each its own key) at --rate over every queue, 2 consumers pull every queue
and commit offsets; after the faults the consumers drain (up to --drain). Every operation
goes to history.jsonl. Each fault picks one group, then its targets inside that group (the
leader is that group's, partitions split that group's members); leader and term checks are
per group.
Without the broker command the nodes run `raftmq namesrv` as stand-ins and no workload runs:
the verdict is always unknown (exit code 3), never valid.";

const HISTORY_HELP: &str = "\
HISTORY FORMAT: one JSON object per line, an invocation then its completion per process:
  {\"time_ns\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"send\",\"value\":\"0-1\",\"key\":\"k\"}
  {\"time_ns\":2,\"process\":0,\"type\":\"ok\",\"f\":\"send\",\"queue\":\"q0\",\"offset\":0}
  {\"time_ns\":3,\"process\":5,\"type\":\"invoke\",\"f\":\"poll\",\"queue\":\"q0\",\"offset\":0}
  {\"time_ns\":4,\"process\":5,\"type\":\"ok\",\"f\":\"poll\",\"reads\":[{\"queue\":\"q0\",\"offset\":0,\"value\":\"0-1\"}]}
  {\"time_ns\":5,\"process\":\"nemesis\",\"type\":\"invoke\",\"f\":\"fault\",\"fault\":\"kill\",\"phase\":\"start\",\"targets\":[\"n1\"]}
  {\"time_ns\":6,\"process\":\"nemesis\",\"type\":\"ok\",\"f\":\"fault\"}
type: invoke | ok | fail (did not happen) | info (unknown). f: send | poll | commit | fetch |
assign | role | fault. Values must be unique; time_ns must not decrease; errors name the line.";

#[derive(Parser)]
#[command(
    name = "raftmq-jepsen",
    version,
    about = "Jepsen-style chaos harness for raftmq broker groups",
    after_long_help = CHECKS_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a recorded history and write results.json and report.html.
    #[command(after_long_help = format!("{HISTORY_HELP}\n\n{CHECKS_HELP}"))]
    Check {
        /// History file, JSON lines.
        history: PathBuf,
        /// Directory for results.json and report.html (default: the history's directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fewest acknowledged sends for a conclusive verdict.
        #[arg(long, default_value_t = CheckConfig::default().min_acked)]
        min_acked: usize,
        /// Examples kept per kind of finding.
        #[arg(long, default_value_t = CheckConfig::default().examples)]
        examples: usize,
    },
    /// Start the nodes, run the nemesis on a seeded schedule, record fault windows, stop, check.
    #[command(after_long_help = RUN_HELP)]
    Run(RunArgs),
    /// Check for ip, tc, nft and iptables; install missing Debian packages when root; delete
    /// namespaces left by interrupted runs.
    Setup,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Nodes in each broker group.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Broker groups (broker-a, broker-b, ...), each a Raft group of --nodes nodes.
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// How long the nemesis runs (500ms, 30s, 2m, ...).
    #[arg(long, default_value = "60s", value_parser = chaos_run::parse_duration)]
    time: std::time::Duration,
    /// Faults to use: kill,pause,partition,net,membership,disk; all = every one but disk.
    #[arg(long, default_value = "kill,pause,partition", value_parser = chaos_run::parse_nemeses)]
    nemesis: std::vec::Vec<raftmq_jepsen::nemesis::FaultKind>,
    /// Seed of the fault schedule (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder (default store/run-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The raftmq binary (default $RAFTMQ_BIN, else built with cargo from the current
    /// directory's workspace).
    #[arg(long = "bin")]
    binary: Option<PathBuf>,
    /// All nodes on 127.0.0.1 without namespaces (kill and pause only; no root needed).
    #[arg(long)]
    loopback: bool,
    /// Shortest and longest quiet time between faults.
    #[arg(long, default_value = "2s", value_parser = chaos_run::parse_duration)]
    gap_min: std::time::Duration,
    #[arg(long, default_value = "6s", value_parser = chaos_run::parse_duration)]
    gap_max: std::time::Duration,
    /// Shortest and longest time a fault is held.
    #[arg(long, default_value = "3s", value_parser = chaos_run::parse_duration)]
    hold_min: std::time::Duration,
    #[arg(long, default_value = "10s", value_parser = chaos_run::parse_duration)]
    hold_max: std::time::Duration,
    /// Targets kill, pause and net choose from: one, leader, minority, majority, all.
    #[arg(long, default_value = "one,leader,minority,majority,all", value_parser = chaos_run::parse_targets)]
    targets: std::vec::Vec<raftmq_jepsen::nemesis::Target>,
    /// Sends per second over all producers.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Longest time consumers may take to drain after the faults.
    #[arg(long, default_value = "60s", value_parser = chaos_run::parse_duration)]
    drain: std::time::Duration,
    /// Disk faults the disk nemesis chooses from: power-cut, torn, corrupt or all.
    #[arg(long = "disk-modes", default_value = "all", value_parser = raftmq_jepsen::nemesis::disk::parse_modes)]
    disk_modes: std::vec::Vec<raftmq_jepsen::nemesis::DiskMode>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Valid) => ExitCode::SUCCESS,
        Ok(Outcome::Invalid) => ExitCode::from(1),
        Ok(Outcome::Unknown) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(4)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.cmd {
        Cmd::Check {
            history,
            out,
            min_acked,
            examples,
        } => check(history, out, min_acked, examples, Replicas::IfRecorded),
        Cmd::Run(args) => run_chaos(args),
        Cmd::Setup => {
            let installed = raftmq_jepsen::setup::ensure_tools()?;
            if installed.is_empty() {
                println!("ip, tc, nft and iptables are installed");
            } else {
                println!("installed {}", installed.join(" "));
            }
            let stale = raftmq_jepsen::netns::delete_stale()?;
            println!("deleted {} stale namespaces", stale.len());
            Ok(Outcome::Valid)
        }
    }
}

fn run_chaos(a: RunArgs) -> anyhow::Result<Outcome> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = a.seed.unwrap_or(now.as_nanos() as u64);
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("store/run-{}", now.as_secs())));
    let binary = match a.binary {
        Some(b) => b,
        None if a.nemesis.contains(&raftmq_jepsen::nemesis::FaultKind::Disk) => {
            eprintln!(
                "locating the raftmq binary with failpoints (RAFTMQ_FAILPOINTS_BIN or cargo build -p raftmq --features failpoints)"
            );
            raftmq_jepsen::cluster::raftmq_failpoints_binary(std::path::Path::new("."), false)?
        }
        None => {
            eprintln!("locating the raftmq binary (RAFTMQ_BIN or cargo build -p raftmq)");
            raftmq_jepsen::cluster::raftmq_binary(std::path::Path::new("."), false)?
        }
    };
    // Nodes run with their own data directory as working directory: every path they get
    // must be absolute.
    let binary = std::fs::canonicalize(&binary)
        .with_context(|| format!("the raftmq binary {}", binary.display()))?;
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating the run folder {}", out.display()))?;
    let out =
        std::fs::canonicalize(&out).with_context(|| format!("the run folder {}", out.display()))?;
    let config = RunConfig {
        nodes: a.nodes,
        groups: a.groups,
        time: a.time,
        nemeses: a.nemesis,
        seed,
        out: out.clone(),
        binary,
        mode: if a.loopback {
            NetMode::Loopback
        } else {
            NetMode::Namespaces
        },
        gap: (a.gap_min, a.gap_max.max(a.gap_min)),
        hold: (a.hold_min, a.hold_max.max(a.hold_min)),
        targets: a.targets,
        rate: a.rate,
        drain: a.drain,
        disk_modes: a.disk_modes,
    };
    eprintln!("run folder {} (seed {seed})", out.display());
    let summary = chaos_run::run(&config, |line| eprintln!("{line}"))?;
    eprintln!(
        "{} faults in {:.1} s; checking {}",
        summary.faults.len(),
        summary.elapsed_s,
        summary.history.display()
    );
    let defaults = CheckConfig::default();
    let replicas = match summary.replicas {
        Some(r) => Replicas::Required(r),
        // No broker, no workload: the verdict is unknown anyway.
        None => Replicas::IfRecorded,
    };
    check(
        summary.history,
        Some(out),
        defaults.min_acked,
        defaults.examples,
        replicas,
    )
}

/// Where the replica comparison of a check comes from.
enum Replicas {
    /// The run just compared the stopped replicas.
    Required(ReplicasReport),
    /// `replicas.json` next to the history, if a run wrote one.
    IfRecorded,
}

fn check(
    path: PathBuf,
    out: Option<PathBuf>,
    min_acked: usize,
    examples: usize,
    replicas: Replicas,
) -> anyhow::Result<Outcome> {
    let config = CheckConfig {
        min_acked,
        examples,
    };
    let started = Instant::now();
    eprintln!("reading {}", path.display());
    // Errors name the file or the line already.
    let history = History::load(&path, |n| eprintln!("  {n} lines read"))?;
    eprintln!(
        "  {} operations in {:.1?}",
        history.len(),
        started.elapsed()
    );
    let big = history.len() >= 100_000;
    let mut results = checker::check_with_progress(&history, &config, |step, took| {
        if big {
            eprintln!("  checked {step} in {took:.1?}");
        }
    });
    let recorded = path.with_file_name("replicas.json");
    match replicas {
        Replicas::Required(r) => results = results.with_replicas(r),
        Replicas::IfRecorded if recorded.is_file() => {
            let text = std::fs::read_to_string(&recorded)
                .with_context(|| format!("reading {}", recorded.display()))?;
            let r: ReplicasReport = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", recorded.display()))?;
            eprintln!("replica comparison from {}", recorded.display());
            results = results.with_replicas(r);
        }
        Replicas::IfRecorded => {}
    }
    let out_dir = out.unwrap_or_else(|| {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    });
    let shown = path.display().to_string();
    let (json, html) =
        report::write_reports(&out_dir, &history, &results, &shown).context("writing reports")?;
    print_summary(&results);
    println!("results: {}", json.display());
    println!("report:  {}", html.display());
    Ok(results.verdict.outcome)
}

fn print_summary(r: &checker::CheckResults) {
    let s = &r.stats;
    println!(
        "{} operations over {:.3} s: {} sends ({} ok, {} fail, {} info), {} polls ({} ok, {} messages), {} fault windows",
        s.operations,
        s.duration_ns as f64 / 1e9,
        s.sends,
        s.sends_ok,
        s.sends_fail,
        s.sends_info,
        s.polls,
        s.polls_ok,
        s.messages_read,
        s.fault_windows
    );
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let l = &r.lost;
    println!(
        "  {} lost          {} of {} acknowledged (prefix {}, middle {}, suffix {}); {} indeterminate unread",
        mark(l.holds()),
        l.lost,
        l.acknowledged,
        l.lost_prefix,
        l.lost_middle,
        l.lost_suffix,
        l.indeterminate_unread
    );
    let u = &r.unexpected;
    println!(
        "  {} unexpected    {} never sent, {} failed yet read, {} read before sent; {} recovered",
        mark(u.holds()),
        u.unexpected,
        u.failed_read,
        u.read_before_send,
        u.recovered
    );
    let d = &r.duplicate;
    println!(
        "  {} duplicate     {} values at several offsets ({} extra copies); {} redeliveries (allowed)",
        mark(d.holds()),
        d.duplicated,
        d.extra_copies,
        d.redelivered
    );
    let i = &r.inconsistent;
    println!(
        "  {} inconsistent  {} positions with several values ({} contradict an ack)",
        mark(i.holds()),
        i.inconsistent,
        i.contradicts_ack
    );
    let o = &r.order;
    println!(
        "  {} order         sends: {} nonmonotonic, {} against real time; polls: {} skips, {} backward, {}/{} inside one poll",
        mark(o.holds()),
        o.nonmonotonic_send,
        o.realtime_send,
        o.poll_skip,
        o.nonmonotonic_poll,
        o.int_poll_skip,
        o.int_nonmonotonic_poll
    );
    let c = &r.offsets;
    println!(
        "  {} offsets       {} commits, {} fetches: {} stale, {} never committed",
        mark(c.holds()),
        c.commits_ok,
        c.fetches_ok,
        c.stale,
        c.phantom
    );
    let e = &r.leaders;
    println!(
        "  {} leaders       {} role observations, {} terms with a leader: {} with two leaders, {} term regressions",
        mark(e.holds()),
        e.observations,
        e.leader_terms,
        e.split_brain,
        e.term_regressions
    );
    let a = &r.availability;
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |n| format!("{:.0} ms", n as f64 / 1e6));
    let group = a
        .max_group_recovery_ns
        .map(|n| format!(", max recovery of the faulted group {}", ms(Some(n))))
        .unwrap_or_default();
    println!(
        "  {} availability  max recovery {}, mean {}{group}, longest outage {}, {} windows never recovered",
        mark(a.holds()),
        ms(a.max_recovery_ns),
        ms(a.mean_recovery_ns),
        ms(a.longest_unavailable.as_ref().map(|g| g.duration_ns)),
        a.unrecovered
    );
    match &r.replicas {
        Some(rep) => {
            let groups: Vec<String> = rep
                .groups
                .iter()
                .map(|g| {
                    format!(
                        "{} up to index {} ({} consumequeues)",
                        g.group,
                        g.lowest_committed.map_or("-".into(), |i| i.to_string()),
                        g.consume_queues.len()
                    )
                })
                .collect();
            println!(
                "  {} replicas      stopped replicas compared: {}{}",
                mark(rep.holds()),
                groups.join("; "),
                rep.error
                    .as_deref()
                    .map(|e| format!("; NOT DONE: {e}"))
                    .unwrap_or_default()
            );
            for f in rep.findings().iter().take(10) {
                println!("       {f}");
            }
        }
        None => println!("  -    replicas      not compared (no replicas.json)"),
    }
    println!("verdict: {}", r.verdict.outcome);
    if !r.verdict.failed.is_empty() {
        println!("  failed: {}", r.verdict.failed.join(", "));
    }
    for reason in &r.verdict.unknown_reasons {
        println!("  not conclusive: {reason}");
    }
}
