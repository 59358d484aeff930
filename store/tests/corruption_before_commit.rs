//! After an unclean stop, a flipped bit in a record *before* the committed entry (which is
//! itself intact) fails the open with the damaged file and offset, rather than being served
//! and replicated from; after a clean stop the same damage is left to the read-time CRC.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use commitlog_util::*;
use raftmq_store::commitlog::CommitLog;
use raftmq_store::format;
use raftmq_store::io::StdFileSystem;
use raftmq_store::StoreError;

/// Flips one bit inside the payload of the record at global `pos`; returns the segment path
/// and the record's offset inside it.
fn flip_payload(dir: &Path, pos: u64) -> (PathBuf, u64) {
    let seg = small_cfg().segment_size;
    let base = pos - pos % seg;
    let path = dir.join(format::file_name(base));
    let mut data = std::fs::read(&path).unwrap();
    data[(pos - base) as usize + format::HEADER_LEN + 3] ^= 0x10;
    std::fs::write(&path, data).unwrap();
    (path, pos - base)
}

/// 30 entries, 25 committed, entry `damaged` flipped; returns the file and record offset.
fn damaged_log(dir: &Path, damaged: u64) -> (PathBuf, u64) {
    let (log, _) = open(dir);
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    log.save_committed(id(25, 1)).unwrap();
    let pos = log.entry(damaged).unwrap().unwrap().pos;
    drop(log);
    flip_payload(dir, pos)
}

#[test]
fn damage_before_the_committed_entry_fails_an_unclean_open_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    // Entry 20 shares the committed entry's segment or the one before it (small segments).
    let (path, off) = damaged_log(dir.path(), 20);
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    match CommitLog::open(dir.path(), small_cfg(), Arc::new(StdFileSystem)) {
        Err(StoreError::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, path);
            assert_eq!(offset, off);
            assert!(
                reason.contains("entry 20 before the committed entry 25"),
                "{reason}"
            );
        }
        other => panic!(
            "expected corruption before the tail, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn a_clean_open_leaves_older_damage_to_the_read_time_crc() {
    let dir = tempfile::tempdir().unwrap();
    damaged_log(dir.path(), 20);
    let (log, report) = open(dir.path());
    assert!(report.clean);
    assert_eq!(log.state().next_index, 30);
    assert!(matches!(log.entry(20), Err(StoreError::Corruption { .. })));
}

#[test]
fn an_intact_log_opens_uncleanly_with_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    log.save_committed(id(25, 1)).unwrap();
    drop(log);
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    let (log, report) = open(dir.path());
    assert!(!report.clean);
    assert_eq!(log.state().next_index, 30);
    assert_entries(&log, 0, 30, |_| 1);
}
