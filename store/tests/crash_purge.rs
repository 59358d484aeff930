//! Purge, then crash: the purged mark is durable before any file goes, and a deletion a
//! crash interrupted is finished at the next open.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use commitlog_util::*;
use raftmq_store::io::FaultyFileSystem;

#[test]
fn purge_survives_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..60 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let before = log.segments().len();
    log.purge(id(30, 1)).unwrap();
    assert!(log.segments().len() < before);
    let first_pos = log.state().first_pos;
    fs.crash();
    drop(log);
    fs.power_loss().unwrap();

    let (log, _) = open_with(dir.path(), fs.clone());
    let st = log.state();
    assert_eq!(st.purged, Some(id(30, 1)));
    assert_eq!(st.first_pos, first_pos);
    assert_eq!(log.entry(30).unwrap(), None);
    assert_entries(&log, 31, 60, |_| 1);
    assert_eq!(st.next_index, 60);
}

#[test]
fn purge_interrupted_before_deleting_files_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..60 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let segments_before = log.segments().len();
    // The mark is written, then the first file removal fails: the store is poisoned.
    fs.enable("commitlog::remove::err", Some(1));
    assert!(log.purge(id(40, 1)).is_err());
    assert!(log.is_poisoned());
    fs.crash();
    drop(log);
    fs.power_loss().unwrap();

    let (log, _) = open_with(dir.path(), fs.clone());
    let st = log.state();
    assert_eq!(st.purged, Some(id(40, 1)));
    assert!(
        log.segments().len() < segments_before,
        "stale segments removed at open"
    );
    assert!(log
        .segments()
        .iter()
        .all(|s| s.base + s.size > st.first_pos));
    assert_eq!(log.entry(40).unwrap(), None);
    assert_entries(&log, 41, 60, |_| 1);
}

#[test]
fn purge_past_the_last_entry_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..10 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let next_pos = log.state().next_pos;
    log.purge(id(20, 2)).unwrap();
    let st = log.state();
    assert_eq!(st.last, None);
    assert_eq!(st.purged, Some(id(20, 2)));
    assert_eq!(st.next_index, 21);
    assert_eq!(st.next_pos, next_pos);
    append_durable(&log, vec![entry(21, 2)]);
    drop(log);
    let (log, _) = open(dir.path());
    assert_entries(&log, 21, 22, |_| 2);
    assert_eq!(log.entry(9).unwrap(), None);
}
