//! Truncate, then lose power: a truncated record never comes back.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use commitlog_util::*;
use raftmq_store::io::FaultyFileSystem;

fn power_cut(fs: &FaultyFileSystem, log: raftmq_store::commitlog::CommitLog) {
    fs.crash();
    drop(log);
    fs.power_loss().unwrap();
}

#[test]
fn truncated_suffix_does_not_resurrect_after_power_loss() {
    // Cut inside a segment, at a segment boundary area, and across several segments.
    for cut in [38u64, 30, 12, 1, 0] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFileSystem::new();
        let (log, _) = open_with(dir.path(), fs.clone());
        for i in 0..40 {
            append_durable(&log, vec![entry(i, 1)]);
        }
        assert!(log.segments().len() > 2);
        log.truncate(cut).unwrap();
        power_cut(&fs, log);

        let (log, report) = open_with(dir.path(), fs.clone());
        assert!(!report.clean);
        let st = log.state();
        assert_eq!(st.next_index, cut, "cut {cut}: {report:?}");
        assert_eq!(log.entry(cut).unwrap(), None);
        assert_entries(&log, 0, cut, |_| 1);
    }
}

#[test]
fn unflushed_replacement_after_truncate_shows_old_prefix_or_new_entry_never_the_old_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..20 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    log.truncate(15).unwrap();
    // New-term entries, written to the page cache but never flushed.
    fs.enable("commitlog::sync::err", None);
    fs.enable("entryindex::sync::err", None);
    let _ = log.append((15..18).map(|i| entry(i, 2)).collect(), Box::new(|_| {}));
    power_cut(&fs, log);

    let (log, _) = open_with(dir.path(), fs.clone());
    let st = log.state();
    assert!(st.next_index >= 15);
    assert_entries(&log, 0, 15, |_| 1);
    // Whatever survived beyond 15 is of the new term only.
    assert_entries(&log, 15, st.next_index, |_| 2);
}

#[test]
fn truncate_then_append_then_power_loss_keeps_the_new_durable_entries() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFileSystem::new();
    let (log, _) = open_with(dir.path(), fs.clone());
    for i in 0..30 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    log.truncate(10).unwrap();
    for i in 10..14 {
        append_durable(&log, vec![entry(i, 3)]);
    }
    power_cut(&fs, log);
    let (log, _) = open_with(dir.path(), fs.clone());
    assert_eq!(log.state().next_index, 14);
    assert_entries(&log, 0, 10, |_| 1);
    assert_entries(&log, 10, 14, |_| 3);
}
