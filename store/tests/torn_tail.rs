//! A record torn by a crash mid-write is cut at recovery; the log continues at the same
//! position, and `AbsoluteConsistency` refuses the same tail.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::sync::Arc;

use commitlog_util::*;
use raftmq_store::commitlog::{CommitLog, RecoveryMode};
use raftmq_store::io::{FaultyFileSystem, StdFileSystem};
use raftmq_store::StoreError;

/// Writes 0..n durably, then tears the next record; returns (dir, torn record position).
fn torn_log(n: u64) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..n {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let next_pos = log.state().next_pos;
    fs.enable("commitlog::write::torn", Some(1));
    let err = log.append(vec![entry(n, 1)], Box::new(|_| {})).unwrap_err();
    assert!(err.is_fatal(), "a failed write poisons: {err}");
    assert!(log.is_poisoned());
    drop(log); // shutdown fails on the crashed fs: the abort marker stays
    (dir, next_pos)
}

#[test]
fn torn_last_record_is_cut_and_the_log_continues_in_place() {
    let (dir, torn_pos) = torn_log(25);
    let (log, report) = open(dir.path());
    assert!(!report.clean);
    assert!(report.cut_reason.is_some(), "{report:?}");
    assert!(report.bytes_cut > 0);
    let st = log.state();
    assert_eq!(st.next_index, 25);
    assert_eq!(st.last, Some(id(24, 1)));
    assert_entries(&log, 0, 25, |_| 1);
    let p = append_durable(&log, vec![entry(25, 2)]);
    // Same rule, same place: the replacement sits where the torn record was (or, if it is
    // larger and no longer fits, at the next segment).
    assert!(p[0] == torn_pos || p[0] % small_cfg().segment_size == 0);
    drop(log);
    let (log, report) = open(dir.path());
    assert!(report.clean);
    assert_entries(&log, 25, 26, |_| 2);
}

#[test]
fn absolute_consistency_refuses_a_torn_tail() {
    let (dir, _) = torn_log(10);
    let cfg = raftmq_store::commitlog::CommitLogConfig {
        recovery: RecoveryMode::AbsoluteConsistency,
        ..small_cfg()
    };
    let err = CommitLog::open(dir.path(), cfg, Arc::new(StdFileSystem)).unwrap_err();
    assert!(matches!(err, StoreError::Corruption { .. }), "{err}");
    // The tolerant mode still opens it.
    let (log, _) = open(dir.path());
    assert_eq!(log.state().next_index, 10);
}

#[test]
fn crash_after_n_bytes_cuts_inside_a_record() {
    for budget in [1u64, 20, 47, 48, 200] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFileSystem::new();
        let (log, _) = open_with(dir.path(), fs.clone());
        for i in 0..5 {
            append_durable(&log, vec![entry(i, 1)]);
        }
        fs.crash_after_bytes(budget);
        assert!(log.append(vec![entry(5, 1)], Box::new(|_| {})).is_err());
        drop(log);
        fs.restart();
        let (log, report) = open_with(dir.path(), fs.clone());
        assert!(!report.clean);
        assert_eq!(log.state().next_index, 5, "budget {budget}");
        assert_entries(&log, 0, 5, |_| 1);
    }
}

#[test]
fn torn_first_record_after_a_roll_puts_the_end_back_before_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..5 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let seg = small_cfg().segment_size;
    let p = log.state().next_pos;
    let remaining = seg - p % seg;
    // One byte too large for what is left: an end marker goes at `p`, the record to the next
    // segment. The marker is written whole, the record only partly.
    let big = raftmq_store::commitlog::NewEntry {
        id: id(5, 1),
        kind: raftmq_store::commitlog::EntryKind::Command,
        payload: bytes::Bytes::from(vec![9u8; (remaining - 48 - 8 + 1) as usize]),
    };
    fs.crash_after_bytes(8 + 30);
    assert!(log.append(vec![big], Box::new(|_| {})).is_err());
    drop(log);
    fs.restart();

    let (log, report) = open_with(dir.path(), fs.clone());
    assert!(report.cut_reason.is_some());
    let st = log.state();
    assert_eq!(st.next_index, 5);
    assert_eq!(st.next_pos, p, "the end is where the marker was");
    assert_eq!(log.segments().len(), 1, "the torn next segment is gone");
    // A smaller entry 5 (say, from a new leader) fits where the marker was, as it does on
    // every other replica.
    let pos = append_durable(&log, vec![entry(5, 2)]);
    assert_eq!(pos[0], p);
    drop(log);
    let (log, report) = open(dir.path());
    assert!(report.clean);
    assert_entries(&log, 0, 5, |_| 1);
    assert_entries(&log, 5, 6, |_| 2);
}

#[test]
fn absolute_consistency_accepts_a_clean_end_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..12 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    fs.crash();
    drop(log);
    fs.restart();
    let cfg = raftmq_store::commitlog::CommitLogConfig {
        recovery: RecoveryMode::AbsoluteConsistency,
        ..small_cfg()
    };
    let (log, report) = CommitLog::open(dir.path(), cfg, fs).unwrap();
    assert!(!report.clean);
    assert_eq!(report.cut_reason, None);
    assert_entries(&log, 0, 12, |_| 1);
}
