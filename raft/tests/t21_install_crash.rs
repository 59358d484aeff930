//! A crash in the middle of a snapshot install: the state machine already holds the
//! snapshot but the commitlog was not restarted after it. Opening the storage finishes the
//! install (the log restarts at the snapshot's position, aligned with the leader's) instead
//! of taking the state machine for one ahead of a log that lost its tail.
#![allow(clippy::unwrap_used)]

mod common;

use raftmq_raft::state_machine::install_marker;
use raftmq_raft::storage::open_storage;
use raftmq_store::commitlog::EntryId;
use raftmq_store::dispatch::Dispatcher;

use common::cluster::{storage_config, TOPIC};

const SNAP: EntryId = EntryId {
    index: 50,
    term: 2,
    leader: 0,
};
/// Where the leader's log continues after the snapshot (inside a 64 KiB segment).
const NEXT_POS: u64 = 200_000;

/// A fresh node's storage (empty log), then the first steps of an install: the mark, the
/// dispatcher reset to the snapshot (when `dispatcher_done`), and a crash.
fn crashed_install(dispatcher_done: bool) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = storage_config();
    drop(open_storage(tmp.path(), &cfg, 1 << 20).unwrap());
    install_marker::write(&tmp.path().join("snapshots"), SNAP, NEXT_POS).unwrap();
    if dispatcher_done {
        let mut d = Dispatcher::open(tmp.path(), cfg.dispatch.clone()).unwrap();
        d.reset(Some(SNAP), NEXT_POS, &[(TOPIC.to_owned(), 1, 7)])
            .unwrap();
    }
    tmp
}

#[test]
fn an_install_cut_after_the_dispatcher_reset_is_finished_at_open() {
    let tmp = crashed_install(true);
    let s = open_storage(tmp.path(), &storage_config(), 1 << 20).unwrap();
    let st = s.commit_log.state();
    assert_eq!(st.purged, Some(SNAP));
    assert_eq!((st.next_index, st.next_pos), (SNAP.index + 1, NEXT_POS));
    s.state_machine.with_dispatcher(|d| {
        assert_eq!(d.applied(), Some(SNAP));
        assert_eq!((d.min_offset(TOPIC, 1), d.max_offset(TOPIC, 1)), (7, 7));
    });
    assert_eq!(
        install_marker::read(&tmp.path().join("snapshots")).unwrap(),
        None
    );
    drop(s);
    // And it stays that way.
    let s = open_storage(tmp.path(), &storage_config(), 1 << 20).unwrap();
    assert_eq!(s.commit_log.state().next_pos, NEXT_POS);
}

#[test]
fn an_install_cut_before_the_dispatcher_reset_leaves_the_old_state() {
    let tmp = crashed_install(false);
    let s = open_storage(tmp.path(), &storage_config(), 1 << 20).unwrap();
    let st = s.commit_log.state();
    assert_eq!((st.purged, st.last, st.next_pos), (None, None, 0));
    assert_eq!(s.state_machine.with_dispatcher(|d| d.applied()), None);
    assert_eq!(
        install_marker::read(&tmp.path().join("snapshots")).unwrap(),
        None
    );
}

#[test]
fn a_malformed_mark_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open_storage(tmp.path(), &storage_config(), 1 << 20).unwrap());
    let dir = tmp.path().join("snapshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("installing"), "50 2 x\n").unwrap();
    let err = open_storage(tmp.path(), &storage_config(), 1 << 20)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("installing"), "{err}");
}
