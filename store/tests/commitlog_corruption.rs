//! A flipped bit inside a record is caught by the CRC: a typed error on read, a cut at
//! recovery when it is in the uncommitted tail, a fatal open when it hits committed data.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::path::{Path, PathBuf};

use commitlog_util::*;
use raftmq_store::format;
use raftmq_store::StoreError;

/// Flips one bit `delta` bytes after the record start of entry at global `pos`; returns the
/// segment path and the record's offset inside it.
fn flip(dir: &Path, pos: u64, delta: u64) -> (PathBuf, u64) {
    let seg = small_cfg().segment_size;
    let base = pos - pos % seg;
    let path = dir.join(format::file_name(base));
    let mut data = std::fs::read(&path).unwrap();
    data[(pos - base + delta) as usize] ^= 0x04;
    std::fs::write(&path, data).unwrap();
    (path, pos - base)
}

fn make_unclean(dir: &Path) {
    std::fs::write(dir.join("abort"), b"").unwrap();
}

#[test]
fn bit_flip_in_a_payload_is_a_typed_error_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let pos = log.entry(17).unwrap().unwrap().pos;
    drop(log);
    let (path, off) = flip(dir.path(), pos, format::HEADER_LEN as u64 + 5);
    let (log, report) = open(dir.path());
    assert!(report.clean);
    match log.entry(17) {
        Err(StoreError::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, off);
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(log.entries(10, 20, usize::MAX).is_err());
    assert_entries(&log, 18, 30, |_| 1);
}

#[test]
fn bit_flip_in_the_uncommitted_tail_is_cut_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let pos = log.entry(27).unwrap().unwrap().pos;
    drop(log);
    flip(dir.path(), pos, 10); // inside the header: the index field
    make_unclean(dir.path());
    let (log, report) = open(dir.path());
    assert!(!report.clean);
    assert!(report.cut_reason.is_some());
    assert_eq!(log.state().next_index, 27);
    assert_entries(&log, 0, 27, |_| 1);
}

#[test]
fn bit_flip_in_committed_data_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    log.save_committed(id(25, 1)).unwrap();
    // The committed entry itself is damaged: the scan cannot start after it, rescans from
    // the start of the log and meets the damage at or before the committed point.
    let pos = log.entry(25).unwrap().unwrap().pos;
    drop(log); // clean close writes the committed mark
    let (path, off) = flip(dir.path(), pos, format::HEADER_LEN as u64 + 1);
    make_unclean(dir.path());
    match raftmq_store::commitlog::CommitLog::open(
        dir.path(),
        small_cfg(),
        std::sync::Arc::new(raftmq_store::io::StdFileSystem),
    ) {
        Err(StoreError::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, off);
            assert!(reason.contains("committed"), "{reason}");
        }
        other => panic!("expected fatal corruption, got {:?}", other.map(|_| ())),
    }
}
