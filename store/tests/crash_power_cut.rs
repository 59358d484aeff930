//! A power cut from inside a live writer process: the child appends, makes part of it durable,
//! writes more without syncing, and is then cut through `FaultyFileSystem::power_cut` and
//! SIGKILLs itself. Afterwards the files hold exactly their fsynced state (plus the torn
//! prefix of the final write when asked), and the log recovers to the durable entries.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use commitlog_util::*;
use raftmq_store::commitlog::{CommitLog, CommitLogConfig, FlushMode};
use raftmq_store::io::{FaultyFileSystem, StdFileSystem};

const CHILD_ENV: &str = "RAFTMQ_POWER_CUT_CHILD_DIR";
const UNSYNCED_ENV: &str = "RAFTMQ_POWER_CUT_UNSYNCED";
const SYNCED: u64 = 20;

/// Async mode with a flush interval far beyond the test: nothing is synced unless asked.
fn cfg() -> CommitLogConfig {
    CommitLogConfig {
        segment_size: 64 << 10,
        index_file_size: 32 * 256,
        flush: FlushMode::Async,
        flush_interval_ms: 60_000,
        ..Default::default()
    }
}

/// The child: `SYNCED` entries made durable, then `$UNSYNCED` more written (acknowledged
/// after the page-cache write only); then it waits for `cut` or `torn` on stdin, cuts the
/// power, prints the report and SIGKILLs itself. Does nothing as an ordinary test.
#[test]
fn power_cut_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let unsynced: u64 = std::env::var(UNSYNCED_ENV).unwrap().parse().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = CommitLog::open(&PathBuf::from(dir), cfg(), fs.clone()).unwrap();
    for i in 0..SYNCED {
        append_async(&log, i);
    }
    log.flush().unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "SYNCED {}", log.state().next_pos).unwrap();
    for i in SYNCED..SYNCED + unsynced {
        append_async(&log, i);
    }
    writeln!(out, "WRITTEN {}", log.state().next_pos).unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let report = fs.power_cut(line.trim() == "torn").unwrap();
    writeln!(out, "REPORT {}", serde_json::to_string(&report).unwrap()).unwrap();
    out.flush().unwrap();
    // SAFETY: kill(2) of our own pid with a valid signal.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL returned");
}

fn append_async(log: &CommitLog, i: u64) {
    let (tx, rx) = channel();
    log.append(
        vec![entry(i, 1)],
        Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }),
    )
    .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
}

struct Cut {
    synced_pos: usize,
    written_pos: usize,
    /// The segment as the page cache held it just before the cut.
    before: Vec<u8>,
    after: Vec<u8>,
    report: serde_json::Value,
}

fn cut_child(dir: &Path, unsynced: u64, torn: bool) -> Cut {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "power_cut_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(UNSYNCED_ENV, unsynced.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut value_after = |tag: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(at) = line.find(tag) {
                return line[at + tag.len()..].trim().to_owned();
            }
        }
        panic!("child ended before printing {tag}");
    };
    let synced_pos: usize = value_after("SYNCED ").parse().unwrap();
    let written_pos: usize = value_after("WRITTEN ").parse().unwrap();
    let seg = dir.join(raftmq_store::format::file_name(0));
    let before = std::fs::read(&seg).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", if torn { "torn" } else { "cut" }).unwrap();
    let report: serde_json::Value = serde_json::from_str(&value_after("REPORT ")).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let after = std::fs::read(&seg).unwrap();
    Cut {
        synced_pos,
        written_pos,
        before,
        after,
        report,
    }
}

#[test]
fn power_cut_leaves_exactly_the_fsynced_state_and_the_log_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let c = cut_child(dir.path(), 15, false);
    assert!(c.written_pos > c.synced_pos && c.synced_pos > 0);
    assert!(c.before[c.synced_pos..c.written_pos]
        .iter()
        .any(|b| *b != 0));
    assert_eq!(c.after.len(), c.before.len());
    assert_eq!(c.after[..c.synced_pos], c.before[..c.synced_pos]);
    assert!(
        c.after[c.synced_pos..].iter().all(|b| *b == 0),
        "un-fsynced bytes survived the power cut"
    );
    assert!(c.report["torn"].is_null());
    assert!(c.report["dropped_bytes"].as_u64().unwrap() > 0);
    let reverted: Vec<&str> = c.report["reverted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(reverted
        .iter()
        .any(|p| p.ends_with(&raftmq_store::format::file_name(0))));

    let (log, report) = CommitLog::open(dir.path(), cfg(), Arc::new(StdFileSystem)).unwrap();
    assert!(!report.clean);
    assert_eq!(log.state().next_index, SYNCED);
    assert_eq!(log.state().next_pos, c.synced_pos as u64);
    assert_entries(&log, 0, SYNCED, |_| 1);
    append_durable(&log, vec![entry(SYNCED, 2)]);
    assert_entries(&log, SYNCED, SYNCED + 1, |_| 2);
}

#[test]
fn torn_power_cut_keeps_half_the_final_write_and_recovery_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = cut_child(dir.path(), 1, true);
    let torn = &c.report["torn"];
    let off = torn["offset"].as_u64().unwrap() as usize;
    let kept = torn["kept"].as_u64().unwrap() as usize;
    let len = torn["len"].as_u64().unwrap() as usize;
    // The final write is the one record after the durable end.
    assert_eq!(off, c.synced_pos);
    assert_eq!(off + len, c.written_pos);
    assert_eq!(kept, len / 2);
    assert_eq!(c.after[..off + kept], c.before[..off + kept]);
    assert!(c.after[off + kept..].iter().all(|b| *b == 0));

    let (log, report) = CommitLog::open(dir.path(), cfg(), Arc::new(StdFileSystem)).unwrap();
    assert!(report.cut_reason.is_some(), "{report:?}");
    assert_eq!(log.state().next_index, SYNCED);
    assert_entries(&log, 0, SYNCED, |_| 1);
    append_durable(&log, vec![entry(SYNCED, 2)]);
    assert_entries(&log, SYNCED, SYNCED + 1, |_| 2);
}
