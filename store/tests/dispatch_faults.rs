//! Dispatcher under injected I/O faults: a failed flush or checkpoint write poisons it, the
//! old checkpoint survives, and a reopen re-dispatches exactly; a torn checkpoint write
//! leaves the previous one.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use raftmq_store::commitlog::{EntryId, EntryKind, StoredEntry};
use raftmq_store::dispatch::{DispatchConfig, Dispatcher};
use raftmq_store::format::HEADER_LEN;
use raftmq_store::index_file::IndexConfig;
use raftmq_store::io::{FaultyFileSystem, FileSystem};
use raftmq_store::message::{patch_physical_offsets, StoredMessage};
use raftmq_store::StoreError;

fn cfg() -> DispatchConfig {
    DispatchConfig {
        cq_units_per_file: 4,
        index: IndexConfig {
            slots: 16,
            max_entries: 32,
        },
        ..DispatchConfig::default()
    }
}

/// `n` entries of two messages each on queue A/0, positions as a commitlog would give.
fn entries(n: u64) -> Vec<StoredEntry> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut qo = 0i64;
    for i in 0..n {
        let mut payload = Vec::new();
        for _ in 0..2 {
            let m = StoredMessage {
                topic: "A".into(),
                queue_id: 0,
                flag: 0,
                queue_offset: qo,
                physical_offset: 0,
                sys_flag: 0,
                born_timestamp: 1,
                born_host: "127.0.0.1:1".parse().unwrap(),
                store_timestamp: 1_000 + qo,
                store_host: "127.0.0.1:2".parse().unwrap(),
                reconsume_times: 0,
                prepared_transaction_offset: 0,
                body: vec![7u8; 50],
                properties: vec![("KEYS".into(), format!("k{qo}"))],
            };
            qo += 1;
            payload.extend(m.encode().unwrap());
        }
        patch_physical_offsets(&mut payload, pos + HEADER_LEN as u64).unwrap();
        let e = StoredEntry {
            id: EntryId {
                index: i,
                term: 1,
                leader: 0,
            },
            kind: EntryKind::Messages,
            pos,
            payload: Bytes::from(payload),
        };
        pos += HEADER_LEN as u64 + e.payload.len() as u64;
        out.push(e);
    }
    out
}

fn open(root: &std::path::Path, fs: &Arc<FaultyFileSystem>) -> Dispatcher {
    let dynfs: Arc<dyn FileSystem> = fs.clone();
    Dispatcher::open_with_fs(root, cfg(), dynfs).unwrap()
}

#[test]
fn failed_flush_poisons_and_reopen_redispatches() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let es = entries(8);
    let mut d = open(tmp.path(), &fs);
    for e in &es[..3] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    for e in &es[3..6] {
        d.dispatch(e).unwrap();
    }
    // Consumequeue files are 20-digit names: their msync fails.
    fs.enable("commitlog::sync::err", Some(1));
    assert!(matches!(d.checkpoint(), Err(StoreError::Fatal(_))));
    assert!(d.is_poisoned());
    assert!(matches!(d.dispatch(&es[6]), Err(StoreError::Fatal(_))));
    assert!(matches!(d.checkpoint(), Err(StoreError::Fatal(_))));
    drop(d);

    let mut d = open(tmp.path(), &fs);
    assert_eq!(d.applied_index(), Some(2));
    assert_eq!(d.max_offset("A", 0), 6);
    for e in &es[3..] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    assert_eq!(d.max_offset("A", 0), 16);
    assert_eq!(
        d.query_by_key("A", "k15", 10, 0, i64::MAX).unwrap().len(),
        1
    );
}

#[test]
fn failed_or_torn_checkpoint_write_keeps_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let es = entries(6);
    let mut d = open(tmp.path(), &fs);
    for e in &es[..2] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    d.dispatch(&es[2]).unwrap();
    fs.enable("fs::rename::err", Some(1));
    assert!(d.checkpoint().is_err());
    drop(d);
    let mut d = open(tmp.path(), &fs);
    assert_eq!(d.applied_index(), Some(1));
    d.dispatch(&es[2]).unwrap();
    d.dispatch(&es[3]).unwrap();
    // A torn write of the temp file, then a power cut.
    fs.enable("fs::write::torn", Some(1));
    assert!(d.checkpoint().is_err());
    drop(d);
    fs.power_loss().unwrap();
    let mut d = open(tmp.path(), &fs);
    assert_eq!(d.applied_index(), Some(1));
    assert_eq!(d.max_offset("A", 0), 4);
    for e in &es[2..] {
        d.dispatch(e).unwrap();
    }
    d.checkpoint().unwrap();
    drop(d);
    fs.power_loss().unwrap();
    let d = open(tmp.path(), &fs);
    assert_eq!(d.applied_index(), Some(5));
    assert_eq!(d.max_offset("A", 0), 12);
}
