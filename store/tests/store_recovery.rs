//! The store façade over real files: append → dispatch → pull / query / time search, clean
//! and unclean restarts, power loss, a log shorter than the checkpoint, the lock.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raftmq_store::commitlog::{CommitLog, EntryId, EntryKind, NewEntry};
use raftmq_store::config::CommitLogConfig;
use raftmq_store::dispatch::DispatchConfig;
use raftmq_store::index_file::IndexConfig;
use raftmq_store::io::{FaultyFileSystem, FileSystem};
use raftmq_store::message::{MessageView, StoredMessage};
use raftmq_store::store::{Store, StoreConfig};
use raftmq_store::StoreError;

fn cfg() -> StoreConfig {
    StoreConfig {
        commitlog: CommitLogConfig {
            segment_size: 8192,
            index_file_size: 32 * 256,
            ..CommitLogConfig::default()
        },
        dispatch: DispatchConfig {
            cq_units_per_file: 4,
            index: IndexConfig {
                slots: 16,
                max_entries: 16,
            },
            ..DispatchConfig::default()
        },
    }
}

const T0: i64 = 1_700_000_000_000;

/// Entry `i` (1-based) holds three messages; queue offsets as a leader would assign them.
fn entry_payload(i: u64, next: &mut BTreeMap<(String, i32), i64>) -> Bytes {
    let mut payload = Vec::new();
    for j in 0..3u64 {
        let (topic, qid) = if (i + j) % 2 == 0 {
            ("Orders", 0)
        } else {
            ("Orders", 1)
        };
        let n = next.entry((topic.to_owned(), qid)).or_insert(0);
        let m = StoredMessage {
            topic: topic.into(),
            queue_id: qid,
            flag: 0,
            queue_offset: *n,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: T0,
            born_host: "127.0.0.1:5000".parse().unwrap(),
            store_timestamp: T0 + (i * 10 + j) as i64 * 1000,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: vec![b'x'; 200],
            properties: vec![
                ("KEYS".into(), format!("order-{i}-{j}")),
                ("UNIQ_KEY".into(), format!("ID{i:04}{j:02}")),
                (
                    "TAGS".into(),
                    if j == 0 { "paid".into() } else { "new".into() },
                ),
            ],
        };
        *n += 1;
        payload.extend(m.encode().unwrap());
    }
    Bytes::from(payload)
}

/// Appends entries `from..=to` and waits until they are durable.
fn append(log: &CommitLog, from: u64, to: u64, next: &mut BTreeMap<(String, i32), i64>) {
    // A fresh log starts at index 0 (openraft's first entry); make it a blank one.
    let blank = (from == 1).then(|| NewEntry {
        id: EntryId {
            index: 0,
            term: 1,
            leader: 0,
        },
        kind: EntryKind::Blank,
        payload: Bytes::new(),
    });
    let entries: Vec<NewEntry> = blank
        .into_iter()
        .chain((from..=to).map(|i| NewEntry {
            id: EntryId {
                index: i,
                term: 1,
                leader: 0,
            },
            kind: EntryKind::Messages,
            payload: entry_payload(i, next),
        }))
        .collect();
    let (tx, rx) = mpsc::channel();
    log.append(
        entries,
        Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }),
    )
    .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
}

fn cq_bytes(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let cq = root.join("consumequeue");
    for t in std::fs::read_dir(&cq).unwrap() {
        for q in std::fs::read_dir(t.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(q.unwrap().path()).unwrap() {
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

#[test]
fn append_dispatch_pull_query_and_time_search() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(report.clean);
    let mut next = BTreeMap::new();
    append(store.commitlog(), 1, 6, &mut next);
    assert_eq!(store.dispatch_committed(6).unwrap(), 7);
    assert_eq!(store.dispatch_committed(6).unwrap(), 0);
    let d = store.dispatcher();
    let max0 = d.read().unwrap().max_offset("Orders", 0);
    let max1 = d.read().unwrap().max_offset("Orders", 1);
    assert_eq!(max0 + max1, 18);

    let pulled = store.pull("Orders", 0, 0, 100, 1 << 20, &|_| true).unwrap();
    assert_eq!(pulled.messages.len() as i64, max0);
    assert_eq!(pulled.next_offset, max0);
    for (off, bytes) in &pulled.messages {
        let v = MessageView::parse(bytes).unwrap();
        assert_eq!(v.queue_offset(), *off);
        assert_eq!(v.queue_id(), 0);
        assert!(v.body_crc_ok());
        let unit = d.read().unwrap().unit("Orders", 0, *off).unwrap().unwrap();
        assert_eq!(v.physical_offset(), unit.phys_offset);
    }
    // Tag filter by code and a small batch.
    let paid = raftmq_store::message::tag_hash_code("paid");
    let only_paid = store
        .pull("Orders", 1, 0, 100, 1 << 20, &|c| c == paid)
        .unwrap();
    assert!(only_paid
        .messages
        .iter()
        .all(|(_, b)| MessageView::parse(b).unwrap().tags() == Some("paid")));
    let two = store.pull("Orders", 1, 1, 2, 1 << 20, &|_| true).unwrap();
    assert_eq!(
        two.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(two.next_offset, 3);

    // Key query → position → stored message.
    let hits = d
        .read()
        .unwrap()
        .query_by_key("Orders", "order-4-2", 10, 0, i64::MAX)
        .unwrap();
    assert_eq!(hits.len(), 1);
    let m = store.message_at_pos(hits[0]).unwrap();
    let v = MessageView::parse(&m).unwrap();
    assert_eq!(v.physical_offset(), hits[0]);
    // Verified query: the same message, nothing for another topic or an absent key.
    let verified = store
        .query_messages_by_key("Orders", "order-4-2", 10, 0, i64::MAX)
        .unwrap();
    assert_eq!(verified, vec![m.clone()]);
    assert!(store
        .query_messages_by_key("Other", "order-4-2", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert!(store.message_at_pos(hits[0] + 1).is_err());
    assert!(store.message_at_pos(-5).is_err());
    assert_eq!(v.keys().collect::<Vec<_>>(), vec!["order-4-2"]);
    let by_id = d
        .read()
        .unwrap()
        .query_by_key("Orders", "ID000402", 10, 0, i64::MAX)
        .unwrap();
    assert_eq!(by_id, hits);

    // Store time of a queue's first message (GET_EARLIEST_MSG_STORETIME).
    let first = d.read().unwrap().unit("Orders", 0, 0).unwrap().unwrap();
    let first_ts = MessageView::parse(&store.message_at(first.phys_offset, first.size).unwrap())
        .unwrap()
        .store_timestamp();
    assert_eq!(store.store_time_at("Orders", 0, 0).unwrap(), Some(first_ts));
    assert_eq!(store.store_time_at("Orders", 0, max0).unwrap(), None);
    assert_eq!(store.store_time_at("Nope", 0, 0).unwrap(), None);

    // Time search reads store timestamps from the commitlog.
    for off in 0..max0 {
        let u = d.read().unwrap().unit("Orders", 0, off).unwrap().unwrap();
        let b = store.message_at(u.phys_offset, u.size).unwrap();
        let ts = MessageView::parse(&b).unwrap().store_timestamp();
        assert_eq!(
            d.read()
                .unwrap()
                .search_offset_by_time("Orders", 0, ts)
                .unwrap(),
            off
        );
        assert_eq!(
            d.read()
                .unwrap()
                .search_offset_by_time("Orders", 0, ts + 1)
                .unwrap(),
            off + 1
        );
    }
    drop(d);
    store.close().unwrap();

    let (store, report) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(report.clean);
    let d = store.dispatcher();
    assert_eq!(d.read().unwrap().applied_index(), Some(6));
    assert_eq!(d.read().unwrap().max_offset("Orders", 0), max0);
    assert_eq!(store.dispatch_committed(6).unwrap(), 0);
}

#[test]
fn unclean_stop_trims_and_redispatch_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut next = BTreeMap::new();
    let before;
    {
        let (store, _) = Store::open(tmp.path(), cfg()).unwrap();
        append(store.commitlog(), 1, 10, &mut next);
        store.dispatch_committed(4).unwrap();
        store.checkpoint().unwrap();
        store.dispatch_committed(10).unwrap();
        before = cq_bytes(tmp.path());
        // Dropped without close: the root's abort marker stays.
    }
    let (store, report) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(!report.clean);
    let d = store.dispatcher();
    assert_eq!(d.read().unwrap().applied_index(), Some(4));
    assert_eq!(store.dispatch_committed(10).unwrap(), 6);
    store.checkpoint().unwrap();
    assert_eq!(cq_bytes(tmp.path()), before);
    drop(d);
    store.close().unwrap();
}

#[test]
fn power_loss_loses_only_unflushed_derived_data() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let dynfs: Arc<dyn FileSystem> = fs.clone();
    let mut next = BTreeMap::new();
    let (before, results);
    {
        let (store, _) = Store::open_with_fs(tmp.path(), cfg(), Arc::clone(&dynfs)).unwrap();
        append(store.commitlog(), 1, 12, &mut next);
        store.dispatch_committed(5).unwrap();
        store.checkpoint().unwrap();
        store.dispatch_committed(12).unwrap();
        before = cq_bytes(tmp.path());
        let d = store.dispatcher();
        results = d
            .read()
            .unwrap()
            .query_by_key("Orders", "order-11-1", 10, 0, i64::MAX)
            .unwrap();
        assert_eq!(results.len(), 1);
        fs.crash();
    }
    fs.power_loss().unwrap();
    // What survived is the checkpointed prefix only.
    assert_ne!(cq_bytes(tmp.path()), before);
    let (store, report) = Store::open_with_fs(tmp.path(), cfg(), dynfs).unwrap();
    assert!(!report.clean);
    let d = store.dispatcher();
    assert_eq!(d.read().unwrap().applied_index(), Some(5));
    assert_eq!(store.dispatch_committed(12).unwrap(), 7);
    store.checkpoint().unwrap();
    assert_eq!(cq_bytes(tmp.path()), before);
    assert_eq!(
        d.read()
            .unwrap()
            .query_by_key("Orders", "order-11-1", 10, 0, i64::MAX)
            .unwrap(),
        results
    );
}

#[test]
fn log_shorter_than_checkpoint_rolls_derived_files_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut next = BTreeMap::new();
    {
        let (store, _) = Store::open(tmp.path(), cfg()).unwrap();
        append(store.commitlog(), 1, 5, &mut next);
        store.dispatch_committed(5).unwrap();
        store.close().unwrap();
    }
    {
        let fs: Arc<dyn FileSystem> = raftmq_store::io::StdFileSystem::arc();
        let (log, _) = CommitLog::open(&tmp.path().join("commitlog"), cfg().commitlog, fs).unwrap();
        log.truncate(3).unwrap();
        log.close().unwrap();
    }
    let (store, report) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(report.derived_rolled_back);
    let d = store.dispatcher();
    assert_eq!(d.read().unwrap().applied_index(), Some(2));
    let total: i64 = (0..2)
        .map(|q| d.read().unwrap().max_offset("Orders", q))
        .sum();
    assert_eq!(total, 6);
    assert!(d
        .read()
        .unwrap()
        .query_by_key("Orders", "order-3-0", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
    // The log continues from entry 3 with the same queue offsets as before the cut.
    let mut next2 = BTreeMap::new();
    for i in 1..=2 {
        entry_payload(i, &mut next2);
    }
    append(store.commitlog(), 3, 4, &mut next2);
    assert_eq!(store.dispatch_committed(4).unwrap(), 2);
}

#[test]
fn a_second_open_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(matches!(
        Store::open(tmp.path(), cfg()),
        Err(StoreError::Locked { .. })
    ));
    store.close().unwrap();
    let (_store, report) = Store::open(tmp.path(), cfg()).unwrap();
    assert!(report.clean);
}

#[test]
fn purge_moves_queue_minimums_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut next = BTreeMap::new();
    let mins;
    {
        let (store, _) = Store::open(tmp.path(), cfg()).unwrap();
        append(store.commitlog(), 1, 20, &mut next);
        store.dispatch_committed(20).unwrap();
        store.checkpoint().unwrap();
        let upto = store.commitlog().entry(12).unwrap().unwrap().id;
        store.commitlog().purge(upto).unwrap();
        let first = store.commitlog().state().first_pos;
        assert!(first > 0, "whole segments were deleted");
        store.purge_derived().unwrap();
        let d = store.dispatcher();
        let mut m = Vec::new();
        for q in 0..2 {
            let (min, max) = (
                d.read().unwrap().min_offset("Orders", q),
                d.read().unwrap().max_offset("Orders", q),
            );
            assert!(min > 0 && min <= max);
            let u = d.read().unwrap().unit("Orders", q, min).unwrap().unwrap();
            assert!(u.phys_offset as u64 >= first);
            assert_eq!(d.read().unwrap().unit("Orders", q, min - 1).unwrap(), None);
            // A pull from 0 starts at the minimum and reads real messages.
            let p = store.pull("Orders", q, 0, 4, 1 << 20, &|_| true).unwrap();
            assert_eq!(p.messages[0].0, min);
            assert_eq!(
                MessageView::parse(&p.messages[0].1).unwrap().queue_offset(),
                min
            );
            m.push(min);
        }
        mins = m;
        drop(d);
        store.close().unwrap();
    }
    let (store, _) = Store::open(tmp.path(), cfg()).unwrap();
    let d = store.dispatcher();
    for q in 0..2 {
        assert_eq!(d.read().unwrap().min_offset("Orders", q), mins[q as usize]);
    }
    assert_eq!(d.read().unwrap().applied_index(), Some(20));
}
