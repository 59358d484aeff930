//! Helpers shared by the commitlog integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftmq_store::commitlog::{
    CommitLog, CommitLogConfig, EntryId, EntryKind, NewEntry, RecoveryReport,
};
use raftmq_store::io::{FileSystem, StdFileSystem};

/// Small segments so tests roll over often.
pub fn small_cfg() -> CommitLogConfig {
    CommitLogConfig {
        segment_size: 8192,
        index_file_size: 32 * 128,
        ..Default::default()
    }
}

pub fn id(index: u64, term: u64) -> EntryId {
    EntryId {
        index,
        term,
        leader: 1,
    }
}

/// Deterministic payload of entry `index` written in `term`: length 20..=700, bytes derived
/// from both, so a stale record of another term never equals the new one.
pub fn payload(index: u64, term: u64) -> Bytes {
    let len = 20 + ((index * 7919 + term * 104729) % 681) as usize;
    let seed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term;
    Bytes::from(
        (0..len)
            .map(|i| (seed.wrapping_add(i as u64).wrapping_mul(31) >> 3) as u8)
            .collect::<Vec<u8>>(),
    )
}

pub fn entry(index: u64, term: u64) -> NewEntry {
    NewEntry {
        id: id(index, term),
        kind: EntryKind::Command,
        payload: payload(index, term),
    }
}

pub fn open_with(dir: &Path, fs: Arc<dyn FileSystem>) -> (CommitLog, RecoveryReport) {
    CommitLog::open(dir, small_cfg(), fs).unwrap()
}

pub fn open(dir: &Path) -> (CommitLog, RecoveryReport) {
    open_with(dir, Arc::new(StdFileSystem))
}

/// Appends and waits for durability.
pub fn append_durable(log: &CommitLog, entries: Vec<NewEntry>) -> Vec<u64> {
    let (tx, rx) = channel();
    let pos = log
        .append(
            entries,
            Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            }),
        )
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    pos
}

/// Asserts entries `[from, to)` are present with their expected payload for `term_of(i)`.
pub fn assert_entries(log: &CommitLog, from: u64, to: u64, term_of: impl Fn(u64) -> u64) {
    for i in from..to {
        let e = log
            .entry(i)
            .unwrap()
            .unwrap_or_else(|| panic!("entry {i} missing"));
        assert_eq!(e.id, id(i, term_of(i)), "entry {i}");
        assert_eq!(e.payload, payload(i, term_of(i)), "payload of entry {i}");
    }
}
