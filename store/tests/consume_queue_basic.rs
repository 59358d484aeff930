//! Consumequeue files: layout, lookup, time search, truncate, purge, reopen.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use raftmq_store::consume_queue::{ConsumeQueue, CqUnit, PLACEHOLDER_SIZE};
use raftmq_store::io::{FileSystem, StdFileSystem};
use raftmq_store::{Result, StoreError};

const UNITS: u64 = 4;

fn fs() -> Arc<dyn FileSystem> {
    StdFileSystem::arc()
}

fn unit(i: i64) -> CqUnit {
    CqUnit {
        phys_offset: 1000 + i * 100,
        size: 100,
        tags_code: i,
    }
}

fn open(dir: &Path) -> ConsumeQueue {
    ConsumeQueue::open(fs(), dir, "T", 0, UNITS).unwrap()
}

#[test]
fn units_are_twenty_bytes_big_endian_in_twenty_digit_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("T/0");
    let mut cq = open(&dir);
    for i in 0..6 {
        cq.put(i, unit(i)).unwrap();
    }
    cq.flush().unwrap();
    let names: Vec<_> = cq
        .file_paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["00000000000000000000", "00000000000000000080"]);
    let bytes = std::fs::read(dir.join("00000000000000000080")).unwrap();
    assert_eq!(bytes.len(), 80);
    // Unit 5 is the second unit of the second file.
    assert_eq!(&bytes[20..28], &1500i64.to_be_bytes());
    assert_eq!(&bytes[28..32], &100i32.to_be_bytes());
    assert_eq!(&bytes[32..40], &5i64.to_be_bytes());
    assert_eq!(cq.min_offset(), 0);
    assert_eq!(cq.max_offset(), 6);
    assert_eq!(cq.get(5).unwrap(), Some(unit(5)));
    assert_eq!(cq.get(6).unwrap(), None);
    assert_eq!(cq.get(-1).unwrap(), None);

    drop(cq);
    let cq = open(&dir);
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 6));
    assert_eq!(cq.get(3).unwrap(), Some(unit(3)));
}

#[test]
fn gaps_are_typed_errors_and_rewrites_are_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cq = open(&tmp.path().join("q"));
    cq.put(0, unit(0)).unwrap();
    match cq.put(2, unit(2)) {
        Err(StoreError::QueueOffsetGap {
            expected,
            got,
            queue_id,
            ..
        }) => assert_eq!((expected, got, queue_id), (1, 2, 0)),
        other => panic!("expected a gap, got {other:?}"),
    }
    cq.put(0, unit(0)).unwrap();
    assert_eq!(cq.max_offset(), 1);
    assert!(cq
        .put(
            1,
            CqUnit {
                phys_offset: 1,
                size: 0,
                tags_code: 0
            }
        )
        .is_err());
}

#[test]
fn search_by_time_is_a_lower_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cq = open(&tmp.path().join("q"));
    for i in 0..10 {
        cq.put(i, unit(i)).unwrap();
    }
    // Message i was stored at 10_000 + 10 * i.
    let reader = |phys: i64, _size: i32| -> Result<Option<i64>> {
        Ok(Some(10_000 + (phys - 1000) / 100 * 10))
    };
    assert_eq!(cq.search_offset_by_time(0, &reader).unwrap(), 0);
    assert_eq!(cq.search_offset_by_time(10_000, &reader).unwrap(), 0);
    assert_eq!(cq.search_offset_by_time(10_001, &reader).unwrap(), 1);
    assert_eq!(cq.search_offset_by_time(10_050, &reader).unwrap(), 5);
    assert_eq!(cq.search_offset_by_time(10_090, &reader).unwrap(), 9);
    assert_eq!(cq.search_offset_by_time(99_999, &reader).unwrap(), 10);
    let failing = |_: i64, _: i32| -> Result<Option<i64>> { Err(StoreError::Fatal("x".into())) };
    assert!(cq.search_offset_by_time(10_050, &failing).is_err());
}

#[test]
fn truncate_from_pos_zeroes_units_and_drops_later_files_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let mut cq = open(&dir);
    for i in 0..10 {
        cq.put(i, unit(i)).unwrap();
    }
    assert_eq!(cq.file_paths().len(), 3);
    // Unit 5 sits at phys 1500: cut there.
    cq.truncate_from_pos(1450).unwrap();
    assert_eq!(cq.max_offset(), 5);
    assert_eq!(cq.file_paths().len(), 2);
    assert_eq!(cq.get(5).unwrap(), None);
    drop(cq);
    let mut cq = open(&dir);
    assert_eq!(cq.max_offset(), 5);
    cq.put(5, unit(50)).unwrap();
    assert_eq!(cq.get(5).unwrap(), Some(unit(50)));

    // Cutting at a file boundary removes the now-empty file.
    cq.truncate_to_offset(4).unwrap();
    assert_eq!(cq.file_paths().len(), 1);
    assert_eq!(cq.max_offset(), 4);
    cq.truncate_from_pos(0).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (0, 0));
    drop(cq);
    assert_eq!(open(&dir).max_offset(), 0);
}

#[test]
fn purge_deletes_files_wholly_below_and_moves_min() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let mut cq = open(&dir);
    for i in 0..10 {
        cq.put(i, unit(i)).unwrap();
    }
    // Units 0..=5 end at or below 1600; file 0 (units 0-3) goes, unit 4,5 skipped by min.
    cq.purge_below_pos(1600).unwrap();
    assert_eq!(cq.file_paths().len(), 2);
    assert_eq!(cq.min_offset(), 6);
    assert_eq!(cq.get(5).unwrap(), None);
    assert_eq!(cq.get(6).unwrap(), Some(unit(6)));
    // Never deletes the file being written.
    cq.purge_below_pos(i64::MAX).unwrap();
    assert_eq!(cq.file_paths().len(), 1);
    assert_eq!(cq.min_offset(), 10);
    assert_eq!(cq.max_offset(), 10);
    cq.put(10, unit(10)).unwrap();
    drop(cq);
    let cq = open(&dir);
    assert_eq!(cq.max_offset(), 11);
    assert_eq!(cq.get(10).unwrap(), Some(unit(10)));
}

#[test]
fn start_at_front_fills_placeholders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    let mut cq = open(&dir);
    cq.start_at(6).unwrap();
    cq.put(6, unit(6)).unwrap();
    assert_eq!((cq.min_offset(), cq.max_offset()), (6, 7));
    let bytes = std::fs::read(dir.join("00000000000000000080")).unwrap();
    assert_eq!(&bytes[0..8], &0i64.to_be_bytes());
    assert_eq!(&bytes[8..12], &PLACEHOLDER_SIZE.to_be_bytes());
    drop(cq);
    let mut cq = open(&dir);
    assert_eq!((cq.min_offset(), cq.max_offset()), (6, 7));
    assert!(
        cq.start_at(100).is_err(),
        "a non-empty queue cannot restart"
    );
}

#[test]
fn bad_files_are_corruption_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("q");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("00000000000000000000"), [1u8; 13]).unwrap();
    assert!(matches!(
        ConsumeQueue::open(fs(), &dir, "T", 0, UNITS),
        Err(StoreError::Corruption { .. })
    ));
    let dir2 = tmp.path().join("q2");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::write(dir2.join("00000000000000000030"), [0u8; 80]).unwrap();
    assert!(ConsumeQueue::open(fs(), &dir2, "T", 0, UNITS).is_err());
    assert!(ConsumeQueue::open(fs(), &dir2, "T", 0, 0).is_err());
}
