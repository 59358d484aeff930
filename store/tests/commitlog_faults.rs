//! Failing fsync poisons the store; vote ordering; limits; the directory lock; the
//! PHYSICALOFFSET patch of message payloads.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::sync::mpsc::channel;
use std::time::Duration;

use bytes::Bytes;
use commitlog_util::*;
use raftmq_store::commitlog::{EntryKind, NewEntry};
use raftmq_store::format::HEADER_LEN;
use raftmq_store::io::FaultyFileSystem;
use raftmq_store::StoreError;

#[test]
fn failed_fsync_is_fatal_for_pending_and_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    append_durable(&log, vec![entry(0, 1)]);
    fs.enable("commitlog::sync::err", Some(1));
    let (tx, rx) = channel();
    // The first flush fails; appends racing with it are either refused as Fatal or accepted
    // and then completed with the error.
    let mut accepted = 0;
    for i in 1..4 {
        let tx = tx.clone();
        match log.append(vec![entry(i, 1)], Box::new(move |r| tx.send(r).unwrap())) {
            Ok(_) => accepted += 1,
            Err(e) => assert!(e.is_fatal(), "{e}"),
        }
    }
    assert!(accepted >= 1);
    for _ in 0..accepted {
        let r = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let e = r.unwrap_err();
        assert!(e.to_string().contains("injected fault"), "{e}");
    }
    assert!(log.is_poisoned());
    // The failpoint is spent, yet nothing is written again: never retry an fsync.
    let err = log.append(vec![entry(4, 1)], Box::new(|_| {})).unwrap_err();
    assert!(
        matches!(&err, StoreError::Fatal(m) if m.contains("injected fault")),
        "{err}"
    );
    assert!(matches!(
        log.save_vote(b"v".to_vec()),
        Err(StoreError::Fatal(_))
    ));
    assert!(matches!(log.truncate(1), Err(StoreError::Fatal(_))));
    assert!(matches!(log.flush(), Err(StoreError::Fatal(_))));
}

#[test]
fn save_vote_is_ordered_after_earlier_appends() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    // Not waited for: only save_vote's barrier makes these durable.
    log.append((0..5).map(|i| entry(i, 1)).collect(), Box::new(|_| {}))
        .unwrap();
    log.save_vote(b"term-1-voted-2".to_vec()).unwrap();
    fs.crash();
    drop(log);
    fs.power_loss().unwrap();
    let (log, _) = open_with(dir.path(), fs.clone());
    assert_eq!(log.vote(), Some(b"term-1-voted-2".to_vec()));
    assert_entries(&log, 0, 5, |_| 1);
}

#[test]
fn failed_vote_write_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    fs.enable("meta::sync::err", Some(1));
    assert!(log.save_vote(b"v".to_vec()).is_err());
    assert_eq!(log.vote(), None);
    assert!(log.is_poisoned());
}

#[test]
fn record_longer_than_a_segment_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let seg = small_cfg().segment_size as usize;
    let big = NewEntry {
        id: id(0, 1),
        kind: EntryKind::Command,
        payload: Bytes::from(vec![0u8; seg]),
    };
    let err = log.append(vec![big], Box::new(|_| {})).unwrap_err();
    assert!(matches!(err, StoreError::RecordTooLarge { .. }), "{err}");
    // The largest record that fits is accepted and fills a segment exactly.
    let max = NewEntry {
        id: id(0, 1),
        kind: EntryKind::Command,
        payload: Bytes::from(vec![1u8; seg - HEADER_LEN - 8]),
    };
    append_durable(&log, vec![max]);
    append_durable(&log, vec![entry(1, 1)]);
    assert_eq!(log.entry(1).unwrap().unwrap().pos, seg as u64);
}

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let err = raftmq_store::commitlog::CommitLog::open(
        dir.path(),
        small_cfg(),
        std::sync::Arc::new(raftmq_store::io::StdFileSystem),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(log);
    open(dir.path());
}

/// A minimal stored message of `size` bytes (TOTALSIZE and MAGICCODE V1 set).
fn message(size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    v[0..4].copy_from_slice(&(size as i32).to_be_bytes());
    v[4..8].copy_from_slice(&raftmq_store::message::MAGIC_V1.to_be_bytes());
    v
}

#[test]
fn message_payloads_get_their_physical_offsets_before_the_crc() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    append_durable(&log, vec![entry(0, 1)]);
    let mut batch = message(120);
    batch.extend(message(100));
    let e = NewEntry {
        id: id(1, 1),
        kind: EntryKind::Messages,
        payload: Bytes::from(batch),
    };
    let pos = append_durable(&log, vec![e])[0];
    let stored = log.entry(1).unwrap().unwrap();
    let phys = |at: usize| i64::from_be_bytes(stored.payload[at + 28..at + 36].try_into().unwrap());
    assert_eq!(phys(0) as u64, pos + HEADER_LEN as u64);
    assert_eq!(phys(120) as u64, pos + HEADER_LEN as u64 + 120);
    // The pull path reads the same bytes straight from the segment.
    let raw = log.read_at(pos + HEADER_LEN as u64, 220).unwrap();
    assert_eq!(raw, stored.payload);
    // A malformed batch is refused and nothing is written.
    let bad = NewEntry {
        id: id(3, 1),
        kind: EntryKind::Messages,
        payload: Bytes::from(vec![0u8; 50]),
    };
    let err = log
        .append(vec![entry(2, 1), bad], Box::new(|_| {}))
        .unwrap_err();
    assert!(matches!(err, StoreError::Codec(_)), "{err}");
    assert_eq!(log.state().next_index, 2);
}

#[test]
fn failed_segment_write_or_index_sync_is_fatal_too() {
    // A write into the mapping fails: the append is refused and the store poisoned.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    append_durable(&log, vec![entry(0, 1)]);
    fs.enable("commitlog::write::err", Some(1));
    let err = log.append(vec![entry(1, 1)], Box::new(|_| {})).unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(log.is_poisoned());
    drop(log);
    // Nothing half-written survives: the next open sees entry 0 only.
    let (log, _) = open_with(dir.path(), fs.clone());
    assert_eq!(log.state().next_index, 1);
    drop(log);

    // The entry-index sync fails at a barrier (a vote): fatal as well.
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    log.append(vec![entry(0, 1)], Box::new(|_| {})).unwrap();
    fs.enable("entryindex::sync::err", None);
    assert!(matches!(
        log.save_vote(b"v".to_vec()),
        Err(StoreError::Fatal(_))
    ));
    assert!(log.is_poisoned());
    assert_eq!(log.vote(), None);
}
