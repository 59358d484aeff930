//! Dispatcher: committed entries → consumequeue units and index entries; crash-style
//! reopen and idempotent re-dispatch; gaps; rollback; purge; bad input.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raftmq_store::commitlog::{EntryId, EntryKind, StoredEntry};
use raftmq_store::consume_queue::CqUnit;
use raftmq_store::dispatch::{DispatchConfig, Dispatcher};
use raftmq_store::format::HEADER_LEN;
use raftmq_store::index_file::IndexConfig;
use raftmq_store::message::{patch_physical_offsets, sysflag, tag_hash_code, StoredMessage};
use raftmq_store::{Result, StoreError};

fn cfg() -> DispatchConfig {
    DispatchConfig {
        cq_units_per_file: 4,
        index: IndexConfig {
            slots: 16,
            max_entries: 8,
        },
        ..DispatchConfig::default()
    }
}

fn msg(topic: &str, qid: i32, qoff: i64, ts: i64, key: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.into(),
        queue_id: qid,
        flag: 0,
        queue_offset: qoff,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: ts - 5,
        born_host: "127.0.0.1:40000".parse().unwrap(),
        store_timestamp: ts,
        store_host: "127.0.0.1:10911".parse().unwrap(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body: format!("body-{topic}-{qid}-{qoff}").into_bytes(),
        properties: vec![
            ("TAGS".into(), "TagA".into()),
            ("KEYS".into(), format!("{key} shared")),
            ("UNIQ_KEY".into(), format!("U-{topic}-{qid}-{qoff}")),
        ],
    }
}

/// Builds entries like the commitlog would store them: consecutive records, each message's
/// PHYSICALOFFSET patched to its real place.
struct LogBuilder {
    next_index: u64,
    next_pos: u64,
}

impl LogBuilder {
    fn new() -> Self {
        LogBuilder {
            next_index: 1,
            next_pos: 0,
        }
    }

    fn entry(&mut self, kind: EntryKind, msgs: &[StoredMessage]) -> StoredEntry {
        let mut payload = Vec::new();
        for m in msgs {
            payload.extend(m.encode().unwrap());
        }
        let pos = self.next_pos;
        patch_physical_offsets(&mut payload, pos + HEADER_LEN as u64).unwrap();
        let e = StoredEntry {
            id: EntryId {
                index: self.next_index,
                term: 1,
                leader: 0,
            },
            kind,
            pos,
            payload: Bytes::from(payload),
        };
        self.next_index += 1;
        self.next_pos = pos + HEADER_LEN as u64 + e.payload.len() as u64;
        e
    }

    fn messages(&mut self, msgs: &[StoredMessage]) -> StoredEntry {
        self.entry(EntryKind::Messages, msgs)
    }
}

/// 12 entries over two topics and three queues, with a blank entry in the middle.
fn workload() -> Vec<StoredEntry> {
    let mut log = LogBuilder::new();
    let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut out = Vec::new();
    for i in 0..12i64 {
        if i == 5 {
            out.push(log.entry(EntryKind::Blank, &[]));
            continue;
        }
        let mut batch = Vec::new();
        for j in 0..3i64 {
            let (topic, qid) = if (i + j) % 3 == 0 {
                ("A", 0)
            } else {
                ("B", (j % 2) as i32)
            };
            let n = next.entry((topic.to_owned(), qid)).or_insert(0);
            batch.push(msg(
                topic,
                qid,
                *n,
                1_700_000_000_000 + i * 1_000 + j,
                &format!("k{i}-{j}"),
            ));
            *n += 1;
        }
        out.push(log.messages(&batch));
    }
    out
}

fn cq_bytes(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let cq = root.join("consumequeue");
    for t in std::fs::read_dir(&cq).unwrap() {
        let t = t.unwrap().path();
        for q in std::fs::read_dir(&t).unwrap() {
            let q = q.unwrap().path();
            for f in std::fs::read_dir(&q).unwrap() {
                let f = f.unwrap().path();
                out.insert(
                    f.strip_prefix(&cq).unwrap().display().to_string(),
                    std::fs::read(&f).unwrap(),
                );
            }
        }
    }
    out
}

fn all_key_results(d: &Dispatcher) -> Vec<Vec<i64>> {
    let mut v = Vec::new();
    for i in 0..12 {
        for j in 0..3 {
            for t in ["A", "B"] {
                v.push(
                    d.query_by_key(t, &format!("k{i}-{j}"), 10, 0, i64::MAX)
                        .unwrap(),
                );
            }
        }
    }
    v.push(d.query_by_key("A", "shared", 100, 0, i64::MAX).unwrap());
    v.push(d.query_by_key("B", "shared", 100, 0, i64::MAX).unwrap());
    v
}

#[test]
fn dispatch_builds_units_index_and_reports_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    d.set_queue_advanced_hook(Box::new(move |t, q, max| {
        s2.lock().unwrap().push((t.to_owned(), q, max));
    }));
    let mut log = LogBuilder::new();
    let e = log.messages(&[
        msg("A", 0, 0, 1_000_000, "x"),
        msg("A", 0, 1, 1_000_001, "y"),
        msg("B", 2, 0, 1_000_002, "x"),
    ]);
    let out = d.dispatch(&e).unwrap();
    assert_eq!(out.len(), 3);
    let base = e.pos as i64 + HEADER_LEN as i64;
    assert_eq!(out[0].phys_offset, base);
    assert_eq!(out[1].phys_offset, base + out[0].size as i64);
    assert_eq!(out[1].queue_offset, 1);
    assert_eq!(out[2].tags_code, tag_hash_code("TagA"));
    assert_eq!(out[0].uniq_key.as_deref(), Some("U-A-0-0"));
    assert!(out.iter().all(|m| m.consumable));
    assert_eq!(d.applied_index(), Some(1));
    assert_eq!(d.max_offset("A", 0), 2);
    assert_eq!(d.max_offset("B", 2), 1);
    assert_eq!(d.max_offset("C", 0), 0);
    assert_eq!(
        d.unit("A", 0, 1).unwrap(),
        Some(CqUnit {
            phys_offset: out[1].phys_offset,
            size: out[1].size,
            tags_code: tag_hash_code("TagA"),
        })
    );
    assert_eq!(d.units("A", 0, 0, 10).unwrap().len(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![("A".to_owned(), 0, 2), ("B".to_owned(), 2, 1)]
    );
    assert_eq!(
        d.query_by_key("A", "x", 10, 0, i64::MAX).unwrap(),
        vec![out[0].phys_offset]
    );
    assert_eq!(
        d.query_by_key("A", "U-A-0-1", 10, 0, i64::MAX).unwrap(),
        vec![out[1].phys_offset]
    );
    assert_eq!(
        d.query_by_key("A", "shared", 10, 0, i64::MAX).unwrap(),
        vec![out[1].phys_offset, out[0].phys_offset]
    );
    // Non-message entries only move the applied id.
    let b = log.entry(EntryKind::Membership, &[]);
    assert!(d.dispatch(&b).unwrap().is_empty());
    assert_eq!(d.applied_index(), Some(2));
    assert_eq!(d.next_pos(), log.next_pos);
}

#[test]
fn crash_without_checkpoint_then_redispatch_gives_identical_files() {
    let entries = workload();
    // Reference: everything in one go.
    let ref_dir = tempfile::tempdir().unwrap();
    let mut r = Dispatcher::open(ref_dir.path(), cfg()).unwrap();
    for e in &entries {
        r.dispatch(e).unwrap();
    }
    r.checkpoint().unwrap();
    let ref_results = all_key_results(&r);
    let ref_table = r.queue_table();
    drop(r);

    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    for e in &entries[..4] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    for e in &entries[4..9] {
        d.dispatch(e).unwrap();
    }
    // Crash: no checkpoint, files hold units past it.
    drop(d);
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied_index(), Some(4));
    assert_eq!(d.next_pos(), entries[4].pos);
    // The index lost what came after the checkpoint.
    assert!(d.index().end_phy_offset() < entries[4].pos as i64);
    for e in &entries[4..] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    assert_eq!(d.queue_table(), ref_table);
    assert_eq!(all_key_results(&d), ref_results);
    drop(d);
    assert_eq!(cq_bytes(tmp.path()), cq_bytes(ref_dir.path()));

    // A clean reopen needs no re-dispatch and re-applying old entries writes nothing.
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied_index(), Some(entries.len() as u64));
    let again = d.dispatch(&entries[2]).unwrap();
    assert_eq!(again.len(), 3);
    drop(d);
    assert_eq!(cq_bytes(tmp.path()), cq_bytes(ref_dir.path()));
}

#[test]
fn redispatch_over_units_that_survived_the_crash_is_exact() {
    // Units written past the checkpoint survive in the page cache; reopen trims them and
    // re-dispatch writes the same bytes again.
    let entries = workload();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    d.checkpoint().unwrap();
    for e in &entries {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    let full = cq_bytes(tmp.path());
    let results = all_key_results(&d);
    drop(d);
    // Roll the checkpoint back to "nothing applied" as a crash right after the first one.
    let fs = raftmq_store::io::StdFileSystem::arc();
    raftmq_store::checkpoint::DispatchCheckpoint {
        index_end_phy: -1,
        ..Default::default()
    }
    .store(fs.as_ref(), tmp.path())
    .unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied_index(), None);
    assert_eq!(d.max_offset("A", 0), 0);
    for e in &entries {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    assert_eq!(all_key_results(&d), results);
    drop(d);
    assert_eq!(cq_bytes(tmp.path()), full);
}

#[test]
fn queue_offset_gap_is_rejected_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut log = LogBuilder::new();
    d.dispatch(&log.messages(&[msg("A", 0, 0, 1, "a")]))
        .unwrap();
    let bad = log.messages(&[msg("A", 0, 1, 2, "b"), msg("A", 0, 3, 3, "c")]);
    match d.dispatch(&bad) {
        Err(StoreError::QueueOffsetGap {
            topic,
            queue_id,
            expected,
            got,
        }) => assert_eq!((topic.as_str(), queue_id, expected, got), ("A", 0, 2, 3)),
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(
        d.max_offset("A", 0),
        1,
        "the valid first message was not written"
    );
    assert_eq!(d.applied_index(), Some(1));
    assert!(d
        .query_by_key("A", "b", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    // A new queue must start at 0.
    let mut log2 = LogBuilder {
        next_index: 2,
        next_pos: log.next_pos,
    };
    assert!(matches!(
        d.dispatch(&log2.messages(&[msg("N", 0, 5, 1, "n")])),
        Err(StoreError::QueueOffsetGap {
            expected: 0,
            got: 5,
            ..
        })
    ));
    // Entries must come in index order.
    let mut log3 = LogBuilder {
        next_index: 7,
        next_pos: log.next_pos,
    };
    assert!(matches!(
        d.dispatch(&log3.messages(&[msg("A", 0, 1, 1, "n")])),
        Err(StoreError::IndexGap {
            expected: 2,
            got: 7
        })
    ));
}

#[test]
fn bad_payloads_are_corruption_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut log = LogBuilder::new();
    let good = log.messages(&[msg("A", 0, 0, 1, "a")]);
    // Wrong PHYSICALOFFSET (not patched for this position).
    let moved = StoredEntry {
        pos: good.pos + 8,
        ..good.clone()
    };
    assert!(matches!(
        d.dispatch(&moved),
        Err(StoreError::Corruption { .. })
    ));
    // Garbage.
    let garbage = StoredEntry {
        payload: Bytes::from_static(&[0, 0, 0, 200, 1, 2, 3]),
        ..good.clone()
    };
    assert!(matches!(
        d.dispatch(&garbage),
        Err(StoreError::Corruption { .. })
    ));
    // A topic that would escape the consumequeue directory.
    let mut evil = LogBuilder::new();
    let e = evil.messages(&[msg("../x", 0, 0, 1, "a")]);
    assert!(d.dispatch(&e).is_err());
    assert!(!tmp.path().join("x").exists());
    assert_eq!(d.applied_index(), None);
    d.dispatch(&good).unwrap();
    assert_eq!(d.max_offset("A", 0), 1);
}

#[test]
fn transactions_and_delayed_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut log = LogBuilder::new();
    let mut prepared = msg("T", 0, 0, 10, "p");
    prepared.sys_flag = sysflag::TRANSACTION_PREPARED;
    let mut rollback = msg("T", 0, 0, 11, "r");
    rollback.sys_flag = sysflag::TRANSACTION_ROLLBACK;
    let mut commit = msg("T", 0, 0, 12, "c");
    commit.sys_flag = sysflag::TRANSACTION_COMMIT;
    let mut delayed = msg("SCHEDULE_TOPIC_XXXX", 2, 0, 100_000, "d");
    delayed.properties.push(("DELAY".into(), "3".into()));
    let out = d
        .dispatch(&log.messages(&[prepared, rollback, commit, delayed]))
        .unwrap();
    assert_eq!(
        out.iter().map(|m| m.consumable).collect::<Vec<_>>(),
        vec![false, false, true, true]
    );
    assert_eq!(d.max_offset("T", 0), 1);
    assert_eq!(
        d.unit("T", 0, 0).unwrap().unwrap().phys_offset,
        out[2].phys_offset
    );
    assert_eq!(
        d.query_by_key("T", "p", 10, 0, i64::MAX).unwrap(),
        vec![out[0].phys_offset]
    );
    assert!(d
        .query_by_key("T", "r", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    // Level 3 = 10 s after the store time.
    assert_eq!(
        d.unit("SCHEDULE_TOPIC_XXXX", 2, 0)
            .unwrap()
            .unwrap()
            .tags_code,
        110_000
    );
}

#[test]
fn truncate_rolls_back_units_and_index_together() {
    let entries = workload();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    for e in &entries {
        d.dispatch(e).unwrap();
    }
    let cut = entries[7].pos;
    d.truncate_from_pos(cut).unwrap();
    d.reset_applied(Some(entries[6].id), cut);
    for (topic, qid, _) in d.queue_table() {
        let max = d.max_offset(&topic, qid);
        if max > 0 {
            let u = d.unit(&topic, qid, max - 1).unwrap().unwrap();
            assert!((u.phys_offset as u64) < cut);
        }
    }
    assert!(d.index().end_phy_offset() < cut as i64);
    assert!(d
        .query_by_key("A", "k7-0", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(
        !d.query_by_key("A", "k6-0", 10, 0, i64::MAX)
            .unwrap()
            .is_empty()
            || !d
                .query_by_key("B", "k6-0", 10, 0, i64::MAX)
                .unwrap()
                .is_empty()
    );
    // The same entries apply again on top.
    for e in &entries[7..] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    let ref_dir = tempfile::tempdir().unwrap();
    let mut r = Dispatcher::open(ref_dir.path(), cfg()).unwrap();
    for e in &entries {
        r.dispatch(e).unwrap();
    }
    r.checkpoint().unwrap();
    assert_eq!(all_key_results(&d), all_key_results(&r));
    drop((d, r));
    assert_eq!(cq_bytes(tmp.path()), cq_bytes(ref_dir.path()));
}

#[test]
fn purge_drops_old_files_and_moves_min_offsets() {
    let entries = workload();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    for e in &entries {
        d.dispatch(e).unwrap();
    }
    let files_before = d.queue_files("B", 1).len();
    let index_files_before = d.index().files().len();
    let cut = entries[8].pos;
    d.purge_below_pos(cut).unwrap();
    for (topic, qid, max) in d.queue_table() {
        let min = d.min_offset(&topic, qid);
        assert!(min <= max);
        if min < max {
            assert!(d.unit(&topic, qid, min).unwrap().unwrap().phys_offset as u64 >= cut);
        }
        if min > 0 {
            assert_eq!(d.unit(&topic, qid, min - 1).unwrap(), None);
        }
    }
    assert!(d.queue_files("B", 1).len() < files_before);
    assert!(d.index().files().len() < index_files_before);
    assert!(d
        .query_by_key("A", "k0-0", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    d.checkpoint().unwrap();
    drop(d);
    let d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied_index(), Some(entries.len() as u64));
}

#[test]
fn search_by_time_uses_the_installed_reader() {
    let entries = workload();
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut times = BTreeMap::new();
    for e in &entries {
        for m in d.dispatch(e).unwrap() {
            times.insert(m.phys_offset, m.store_timestamp);
        }
    }
    assert!(d.search_offset_by_time("A", 0, 0).is_err(), "no reader yet");
    let times = Arc::new(times);
    let t2 = Arc::clone(&times);
    d.set_phys_reader(Arc::new(
        move |phys: i64, _size: i32| -> Result<Option<i64>> { Ok(t2.get(&phys).copied()) },
    ));
    let max = d.max_offset("A", 0);
    assert_eq!(d.search_offset_by_time("A", 0, 0).unwrap(), 0);
    assert_eq!(d.search_offset_by_time("A", 0, i64::MAX).unwrap(), max);
    for off in 0..max {
        let u = d.unit("A", 0, off).unwrap().unwrap();
        let ts = times[&u.phys_offset];
        assert_eq!(d.search_offset_by_time("A", 0, ts).unwrap(), off);
    }
    assert_eq!(d.search_offset_by_time("Nope", 0, 5).unwrap(), 0);
}

#[test]
fn reset_restarts_queues_at_snapshot_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut log = LogBuilder::new();
    d.dispatch(&log.messages(&[msg("A", 0, 0, 1, "a")]))
        .unwrap();
    let id = EntryId {
        index: 40,
        term: 3,
        leader: 1,
    };
    d.reset(Some(id), 9_000, &[("A".into(), 0, 7), ("B".into(), 1, 0)])
        .unwrap();
    assert_eq!((d.min_offset("A", 0), d.max_offset("A", 0)), (7, 7));
    assert!(d
        .query_by_key("A", "a", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    drop(d);
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied(), Some(id));
    assert_eq!(d.max_offset("A", 0), 7);
    let mut log = LogBuilder {
        next_index: 41,
        next_pos: 9_000,
    };
    d.dispatch(&log.messages(&[msg("A", 0, 7, 1, "z")]))
        .unwrap();
    assert_eq!(d.max_offset("A", 0), 8);
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Any payload (including mutated valid batches) gives a typed error or a dispatch,
        /// never a panic.
        #[test]
        fn random_payloads_never_panic(flip in any::<usize>(), byte in any::<u8>(), pos in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 0..300)) {
            let tmp = tempfile::tempdir().unwrap();
            let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
            let mut log = LogBuilder::new();
            let good = log.messages(&[msg("A", 0, 0, 1, "a"), msg("A", 0, 1, 2, "b")]);
            let mut bytes = good.payload.to_vec();
            let i = flip % bytes.len();
            bytes[i] = byte;
            let mutated = StoredEntry { payload: Bytes::from(bytes), ..good.clone() };
            let _ = d.dispatch(&mutated);
            let junk = StoredEntry { payload: Bytes::from(junk), pos, ..good.clone() };
            let _ = d.dispatch(&junk);
        }
    }
}

#[test]
fn rocketmq_file_size_maps_to_whole_units() {
    assert_eq!(DispatchConfig::cq_units_for_file_size(6_000_000), 300_000);
    assert_eq!(DispatchConfig::cq_units_for_file_size(6_000_001), 300_001);
    assert_eq!(DispatchConfig::cq_units_for_file_size(0), 1);
}

/// A with 6 units on queue 0 (two files of 4) and 2 on queue 1, B with 1; then the entry
/// that deletes A, dispatched and marked, with the checkpoint that records the marks.
fn deleted_topic_setup(root: &Path) -> (Dispatcher, LogBuilder) {
    let mut d = Dispatcher::open(root, cfg()).unwrap();
    let mut log = LogBuilder::new();
    for i in 0..6 {
        d.dispatch(&log.messages(&[msg("A", 0, i, 1, "a")]))
            .unwrap();
    }
    d.dispatch(&log.messages(&[
        msg("A", 1, 0, 1, "a"),
        msg("A", 1, 1, 1, "a"),
        msg("B", 0, 0, 1, "b"),
    ]))
    .unwrap();
    d.dispatch(&log.entry(EntryKind::Command, &[])).unwrap();
    assert_eq!(d.mark_topic_deleted("A"), 2);
    d.checkpoint().unwrap();
    (d, log)
}

fn assert_a_emptied(d: &Dispatcher, root: &Path) {
    for (qid, next) in [(0, 6), (1, 2)] {
        assert_eq!(
            (d.min_offset("A", qid), d.max_offset("A", qid)),
            (next, next)
        );
        for off in 0..next {
            assert_eq!(d.unit("A", qid, off).unwrap(), None);
        }
    }
    // Only the file that will hold offset 6 is left of queue 0 (units 4..8).
    let files: Vec<_> = std::fs::read_dir(root.join("consumequeue/A/0"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!((d.min_offset("B", 0), d.max_offset("B", 0)), (0, 1));
    assert!(d.unit("B", 0, 0).unwrap().is_some());
}

#[test]
fn deleting_a_topic_empties_its_queues_and_keeps_their_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut d, mut log) = deleted_topic_setup(tmp.path());
    d.clear_marked().unwrap();
    assert_a_emptied(&d, tmp.path());
    // Offsets go on where they were: a recreated topic never reuses an old offset.
    d.dispatch(&log.messages(&[msg("A", 0, 6, 1, "new")]))
        .unwrap();
    assert!(d.unit("A", 0, 6).unwrap().is_some());
    d.checkpoint().unwrap();
    drop(d);
    let d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!((d.min_offset("A", 0), d.max_offset("A", 0)), (6, 7));
    assert!(d.unit("A", 0, 6).unwrap().is_some());
    assert_eq!(d.unit("A", 0, 5).unwrap(), None);
}

#[test]
fn a_crash_between_the_checkpoint_and_the_clear_is_finished_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, mut log) = deleted_topic_setup(tmp.path());
    drop(d); // crash: the checkpoint names the queues, their files are all still there
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_a_emptied(&d, tmp.path());
    d.dispatch(&log.messages(&[msg("A", 1, 2, 1, "new")]))
        .unwrap();
    assert_eq!((d.min_offset("A", 1), d.max_offset("A", 1)), (2, 3));
    // A second crash before any newer checkpoint: the same clear again, then re-dispatch.
    drop(d);
    let d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_a_emptied(&d, tmp.path());
}

#[test]
fn a_crash_while_a_reset_replaces_the_files_is_finished_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    let mut log = LogBuilder::new();
    for i in 0..6 {
        d.dispatch(&log.messages(&[msg("A", 0, i, 1, "a"), msg("B", 1, i, 1, "b")]))
            .unwrap();
    }
    d.checkpoint().unwrap();
    drop(d);
    // `reset` first makes its target durable; a crash then leaves the old files with it.
    let id = EntryId {
        index: 40,
        term: 3,
        leader: 1,
    };
    let target = raftmq_store::checkpoint::DispatchCheckpoint {
        applied: Some(id),
        next_pos: 9_000,
        queues: [(("A".to_owned(), 0), 7), (("C".to_owned(), 2), 3)]
            .into_iter()
            .collect(),
        index_end_phy: -1,
        extra: b"m".to_vec(),
        resets: [("A".to_owned(), 0), ("C".to_owned(), 2)]
            .into_iter()
            .collect(),
    };
    target
        .store(&raftmq_store::io::StdFileSystem, tmp.path())
        .unwrap();
    let d = Dispatcher::open(tmp.path(), cfg()).unwrap();
    assert_eq!(d.applied(), Some(id));
    assert_eq!((d.min_offset("A", 0), d.max_offset("A", 0)), (7, 7));
    assert_eq!((d.min_offset("C", 2), d.max_offset("C", 2)), (3, 3));
    assert_eq!(
        d.max_offset("B", 1),
        0,
        "a queue the target does not list is gone"
    );
    assert!(d
        .query_by_key("A", "a", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(d
        .query_by_key("B", "b", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(d.extra(), b"m");
}
