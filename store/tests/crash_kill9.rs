//! kill -9 of a real writer process mid-append, then recovery: every acknowledged entry is
//! present and intact.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commitlog_util::*;

const CHILD_ENV: &str = "RAFTMQ_KILL9_CHILD_DIR";
const MODE_ENV: &str = "RAFTMQ_KILL9_ASYNC";
const ACKS_BEFORE_KILL: u64 = 300;

/// The child: appends (pipelined, without waiting) until killed, printing `ACK <index>` when
/// each entry is durable. Does nothing when run as an ordinary test.
#[test]
fn kill9_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cfg = raftmq_store::commitlog::CommitLogConfig {
        flush: if std::env::var(MODE_ENV).is_ok() {
            raftmq_store::commitlog::FlushMode::Async
        } else {
            raftmq_store::commitlog::FlushMode::Sync
        },
        ..small_cfg()
    };
    let (log, _) = raftmq_store::commitlog::CommitLog::open(
        &PathBuf::from(dir),
        cfg,
        Arc::new(raftmq_store::io::StdFileSystem),
    )
    .unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..200_000u64 {
        if Instant::now() > deadline {
            break;
        }
        let acked_cb = acked.clone();
        log.append(
            vec![entry(i, 1)],
            Box::new(move |r| {
                if r.is_ok() {
                    acked_cb.fetch_max(i + 1, Ordering::SeqCst);
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ACK {i}");
                    let _ = out.flush();
                }
            }),
        )
        .unwrap();
        // Keep a bounded number in flight so the parent's kill lands mid-stream.
        while i >= acked.load(Ordering::SeqCst) + 64 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn kill9_mid_append_keeps_every_acknowledged_entry() {
    kill9_run(false);
}

/// Async acknowledges after the page-cache write; a killed process (unlike a power cut)
/// keeps the page cache, so every acknowledged entry must survive here too.
#[test]
fn kill9_mid_append_in_async_mode_keeps_every_acknowledged_entry() {
    kill9_run(true);
}

fn kill9_run(asynchronous: bool) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "kill9_child_writer",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir.path());
    if asynchronous {
        cmd.env(MODE_ENV, "1");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut max_acked: Option<u64> = None;
    let mut acks = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // The harness may print "test ... " on the same line as the first ack.
        if let Some(at) = line.find("ACK ") {
            let n: u64 = line[at + 4..].trim().parse().unwrap();
            max_acked = Some(max_acked.map_or(n, |m: u64| m.max(n)));
            acks += 1;
            if acks >= ACKS_BEFORE_KILL {
                break;
            }
        }
        assert!(Instant::now() < deadline, "child too slow");
    }
    // SIGKILL: no destructor, no clean shutdown, the abort marker stays.
    child.kill().unwrap();
    child.wait().unwrap();
    let max_acked = max_acked.expect("the child acknowledged something");

    let (log, report) = open(dir.path());
    assert!(!report.clean, "a killed writer leaves the abort marker");
    let st = log.state();
    assert!(
        st.next_index > max_acked,
        "acked up to {max_acked}, recovered only up to {}",
        st.next_index
    );
    // Every entry that survived (acked or not) is intact and in order.
    assert_entries(&log, 0, st.next_index, |_| 1);
    // The log continues where it stopped.
    append_durable(&log, vec![entry(st.next_index, 2)]);
    assert_entries(&log, st.next_index, st.next_index + 1, |_| 2);
    eprintln!(
        "kill -9 (async: {asynchronous}) after {acks} acks: max acked {max_acked}, recovered {} entries, scanned {}, cut {} bytes",
        st.next_index, report.records_scanned, report.bytes_cut
    );
}
