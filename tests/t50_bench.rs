//! `raftmq bench` smoke test: each mode runs for about 2 s against a real `raftmq dev` process
//! (produce, then consume draining what was produced) or in-process (raft, with one leader
//! kill), and its `--json` summary parses with messages counted and no errors.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Three remoting ports 10 apart whose Raft ports (+30000) are free too.
fn free_base() -> u16 {
    for attempt in 0..200u32 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            .wrapping_add(std::process::id().wrapping_mul(7919))
            .wrapping_add(attempt * 977);
        let base = 21000 + (seed % 8000) as u16;
        let ports: Vec<u16> = (0..3)
            .flat_map(|i| [base + i * 10, base + i * 10 + 30000])
            .collect();
        if ports
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free port range");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `raftmq dev` on `data`; returns the process and the nameserver address once it
/// says it is ready.
fn start_dev(data: &Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .args(["dev", "-p", "0", "--flush", "async", "--broker-port"])
        .arg(free_base().to_string())
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(data.join("dev.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut namesrv = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "raftmq dev not ready ({e}); log:\n{}",
                    std::fs::read_to_string(data.join("dev.log")).unwrap_or_default()
                )
            });
        if let Some(a) = line.strip_prefix("raftmq dev: nameserver listening on ") {
            namesrv = a.to_string();
        }
        if line.starts_with("raftmq dev: ready") {
            break;
        }
    }
    assert!(!namesrv.is_empty());
    (dev, namesrv)
}

/// Runs `raftmq bench <args> --json -q` (killed after `limit`) and parses its summary.
fn bench(args: &[&str], limit: Duration) -> Value {
    let child = Command::new(env!("CARGO_BIN_EXE_raftmq"))
        .arg("bench")
        .args(args)
        .args(["--json", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Bounded: a watchdog kills a bench that overstays its limit.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary {line:?}: {e}"))
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn produce_and_consume_against_dev_report_counts_without_errors() {
    let data = tempfile::tempdir().unwrap();
    let (dev, namesrv) = start_dev(data.path());
    let pid = dev.0.id().to_string();

    let p = bench(
        &[
            "produce",
            "-n",
            &namesrv,
            "-t",
            "SmokeTopic",
            "--size",
            "256",
            "--threads",
            "2",
            "--inflight",
            "8",
            "--duration",
            "2s",
            "--broker-pid",
            &pid,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(p["mode"], "produce");
    let produced = count(&p, "messages");
    assert!(produced > 0, "{p}");
    assert_eq!(count(&p, "errors"), 0, "{p}");
    assert_eq!(count(&p, "bytes"), produced * 256, "{p}");
    assert!(p["msgs_per_s"].as_f64().unwrap() > 0.0);
    let lat = &p["latency"];
    assert_eq!(count(lat, "count"), produced);
    assert!(count(lat, "p50_us") <= count(lat, "p99_us"));
    assert!(count(lat, "p99_us") <= count(lat, "max_us"));
    assert!(count(&p["broker_rss"], "vm_rss_kib") > 0, "{p}");

    // Drain everything from the start: the measured sends plus one warm-up send per producer;
    // with the binary request header this time.
    let c = bench(
        &[
            "consume",
            "-n",
            &namesrv,
            "-t",
            "SmokeTopic",
            "-g",
            "SmokeGroup",
            "--from-start",
            "--drain",
            "--duration",
            "20s",
            "--serialize-type",
            "rocketmq",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(c["mode"], "consume");
    assert_eq!(count(&c, "errors"), 0, "{c}");
    assert_eq!(count(&c, "messages"), produced + 2, "{c}");
    assert_eq!(count(&c, "bytes"), (produced + 2) * 256, "{c}");

    // The drained offsets were committed: a second run from the committed offsets finds
    // nothing left.
    let again = bench(
        &[
            "consume",
            "-n",
            &namesrv,
            "-t",
            "SmokeTopic",
            "-g",
            "SmokeGroup",
            "--drain",
            "--duration",
            "5s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(count(&again, "messages"), 0, "{again}");
    assert_eq!(count(&again, "errors"), 0, "{again}");
    drop(dev);
}

#[test]
fn raft_runs_in_process_and_survives_a_leader_kill() {
    let data = tempfile::tempdir().unwrap();
    let r = bench(
        &[
            "raft",
            "--nodes",
            "3",
            "--flush",
            "async",
            "--inflight",
            "1,8",
            "--size",
            "512",
            "--duration",
            "1s",
            "--failover",
            "1",
            "--data",
            data.path().to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(r["flush"], "ASYNC_FLUSH");
    assert!(r["fsync_per_s"].as_f64().unwrap() > 0.0, "{r}");
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (run, k) in runs.iter().zip([1, 8]) {
        assert_eq!(count(run, "inflight"), k);
        assert!(count(run, "messages") > 0, "{run}");
        assert_eq!(count(run, "errors"), 0, "{run}");
    }
    let fo = &r["failover"];
    assert_eq!(count(fo, "kills"), 1);
    assert_eq!(count(fo, "failed"), 0, "{fo}");
    assert_eq!(fo["times_ms"].as_array().unwrap().len(), 1);
    // The group directory is removed afterwards.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}
