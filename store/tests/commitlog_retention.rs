//! Retention on a real log: expired sealed segments are purged oldest first, never past the
//! caller's bound and never the active segment.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::time::{Duration, SystemTime};

use commitlog_util::*;
use raftmq_store::config::RetentionConfig;
use raftmq_store::retention;

#[test]
fn expired_segments_are_purged_up_to_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..80 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let segs = log.segments();
    assert!(segs.len() >= 4);
    // Age every file by 100 hours (past the default 72).
    let old = SystemTime::now() - Duration::from_secs(100 * 3600);
    for s in &segs {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(raftmq_store::format::file_name(s.base)))
            .unwrap();
        f.set_modified(old).unwrap();
    }
    let cfg = RetentionConfig::default();
    // Bound inside the second segment: only the first may go.
    let bound = segs[1].first_index.unwrap() + 1;
    let purged = retention::run_once(&log, &cfg, bound, true)
        .unwrap()
        .unwrap();
    assert_eq!(purged.index, segs[0].last_index.unwrap());
    assert_eq!(log.segments()[0].base, segs[1].base);
    assert_eq!(log.entry(purged.index).unwrap(), None);
    assert_entries(&log, purged.index + 1, 80, |_| 1);
    // Unbounded: every sealed segment goes, the active one stays.
    let purged = retention::run_once(&log, &cfg, u64::MAX, true)
        .unwrap()
        .unwrap();
    let left = log.segments();
    assert_eq!(left.len(), 1);
    assert!(!left[0].sealed);
    assert_eq!(purged.index + 1, left[0].first_index.unwrap());
    assert_entries(&log, purged.index + 1, 80, |_| 1);
    // Nothing more to do.
    assert_eq!(
        retention::run_once(&log, &cfg, u64::MAX, true).unwrap(),
        None
    );
}
