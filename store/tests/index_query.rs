//! Hash index files: layout, query by key and time range, roll-over, idempotence,
//! truncation and purge.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use raftmq_store::index_file::{build_key, index_key_hash, IndexConfig, IndexStore};
use raftmq_store::io::{FileSystem, StdFileSystem};

const CFG: IndexConfig = IndexConfig {
    slots: 8,
    max_entries: 6,
};

fn open(dir: &Path) -> IndexStore {
    let fs: Arc<dyn FileSystem> = StdFileSystem::arc();
    IndexStore::open(fs, dir, CFG).unwrap()
}

fn keys(topic: &str, ks: &[&str]) -> Vec<String> {
    ks.iter().map(|k| build_key(topic, k)).collect()
}

#[test]
fn header_slots_and_entries_follow_the_rocketmq_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = open(tmp.path());
    idx.add_message(4096, 1_700_000_000_000, &keys("T", &["k1"]))
        .unwrap();
    idx.add_message(8192, 1_700_000_005_500, &keys("T", &["k1"]))
        .unwrap();
    idx.flush().unwrap();
    let files = idx.files();
    assert_eq!(files.len(), 1);
    let name = files[0]
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(name.len(), 17);
    let b = std::fs::read(files[0].path()).unwrap();
    assert_eq!(b.len() as u64, CFG.file_size());
    assert_eq!(b.len(), 40 + 8 * 4 + 6 * 20);
    let i64_at = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let i32_at = |at: usize| i32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    assert_eq!(i64_at(0), 1_700_000_000_000); // beginTimestamp
    assert_eq!(i64_at(8), 1_700_000_005_500); // endTimestamp
    assert_eq!(i64_at(16), 4096); // beginPhyOffset
    assert_eq!(i64_at(24), 8192); // endPhyOffset
    assert_eq!(i32_at(32), 1); // hashSlotCount
    assert_eq!(i32_at(36), 3); // indexCount (starts at 1)
    let hash = index_key_hash("T#k1");
    let slot = 40 + (hash as usize % 8) * 4;
    assert_eq!(i32_at(slot), 2, "slot head is the newest entry");
    let e2 = 40 + 8 * 4 + 2 * 20;
    assert_eq!(i32_at(e2), hash);
    assert_eq!(i64_at(e2 + 4), 8192);
    assert_eq!(i32_at(e2 + 12), 5, "timeDiff in whole seconds");
    assert_eq!(i32_at(e2 + 16), 1, "prevIndex chains to entry 1");
}

#[test]
fn query_by_key_and_time_range_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = open(tmp.path());
    let t0 = 1_700_000_000_000;
    idx.add_message(100, t0, &keys("T", &["a", "b"])).unwrap();
    idx.add_message(200, t0 + 10_000, &keys("T", &["a"]))
        .unwrap();
    idx.add_message(300, t0 + 20_000, &keys("U", &["a"]))
        .unwrap();
    idx.add_message(400, t0 + 30_000, &keys("T", &["x", "y", "a"]))
        .unwrap();
    // Seven keys at five usable entries per file roll over into a second file.
    assert!(idx.files().len() >= 2);
    assert_eq!(
        idx.query("T", "a", 10, 0, i64::MAX).unwrap(),
        vec![400, 200, 100]
    );
    assert_eq!(idx.query("T", "a", 2, 0, i64::MAX).unwrap(), vec![400, 200]);
    assert_eq!(idx.query("T", "b", 10, 0, i64::MAX).unwrap(), vec![100]);
    assert_eq!(idx.query("U", "a", 10, 0, i64::MAX).unwrap(), vec![300]);
    assert_eq!(
        idx.query("T", "a", 10, t0 + 5_000, t0 + 25_000).unwrap(),
        vec![200]
    );
    assert!(idx.query("T", "zzz", 10, 0, i64::MAX).unwrap().is_empty());
    drop(idx);
    let idx = open(tmp.path());
    assert_eq!(
        idx.query("T", "a", 10, 0, i64::MAX).unwrap(),
        vec![400, 200, 100]
    );
}

#[test]
fn redispatch_below_end_phy_offset_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = open(tmp.path());
    idx.add_message(100, 1_000, &keys("T", &["a"])).unwrap();
    idx.add_message(200, 2_000, &keys("T", &["a"])).unwrap();
    let before = idx.files()[0].entries();
    idx.add_message(100, 1_000, &keys("T", &["a"])).unwrap();
    assert_eq!(idx.files()[0].entries(), before);
    // The newest message itself may be re-added (a half-indexed message), but queries
    // never return duplicates.
    idx.add_message(200, 2_000, &keys("T", &["a"])).unwrap();
    assert_eq!(
        idx.query("T", "a", 10, 0, i64::MAX).unwrap(),
        vec![200, 100]
    );
    assert_eq!(idx.end_phy_offset(), 200);
}

#[test]
fn truncate_rolls_entries_and_slots_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = open(tmp.path());
    for (i, pos) in [100i64, 200, 300, 400, 500, 600, 700, 800]
        .iter()
        .enumerate()
    {
        idx.add_message(*pos, 1_000 * (i as i64 + 1), &keys("T", &["a"]))
            .unwrap();
    }
    let files_before = idx.files().len();
    assert_eq!(files_before, 2);
    idx.truncate_from_pos(350).unwrap();
    assert_eq!(idx.files().len(), 1);
    assert_eq!(idx.end_phy_offset(), 300);
    assert_eq!(
        idx.query("T", "a", 10, 0, i64::MAX).unwrap(),
        vec![300, 200, 100]
    );
    // New entries after a truncation chain onto the kept ones.
    idx.add_message(360, 9_000, &keys("T", &["a"])).unwrap();
    drop(idx);
    let mut idx = open(tmp.path());
    assert_eq!(
        idx.query("T", "a", 10, 0, i64::MAX).unwrap(),
        vec![360, 300, 200, 100]
    );
    idx.truncate_from_pos(0).unwrap();
    assert!(idx.query("T", "a", 10, 0, i64::MAX).unwrap().is_empty());
    assert_eq!(idx.end_phy_offset(), -1);
}

#[test]
fn purge_removes_old_files_but_never_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let mut idx = open(tmp.path());
    for i in 0..12i64 {
        idx.add_message(100 * (i + 1), 1_000 * i, &keys("T", &["k"]))
            .unwrap();
    }
    let n = idx.files().len();
    assert!(n >= 3);
    idx.purge_below_pos(600).unwrap();
    assert_eq!(idx.files().len(), n - 1);
    assert!(!idx
        .query("T", "k", 100, 0, i64::MAX)
        .unwrap()
        .contains(&100));
    idx.purge_below_pos(i64::MAX).unwrap();
    assert_eq!(idx.files().len(), 1);
}

#[test]
fn damaged_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("20240101000000000"), [0u8; 5]).unwrap();
    let fs: Arc<dyn FileSystem> = StdFileSystem::arc();
    assert!(IndexStore::open(fs.clone(), tmp.path(), CFG).is_err());
    let tmp2 = tempfile::tempdir().unwrap();
    let mut bad = vec![0u8; CFG.file_size() as usize];
    bad[36..40].copy_from_slice(&1000i32.to_be_bytes());
    std::fs::write(tmp2.path().join("20240101000000000"), bad).unwrap();
    assert!(IndexStore::open(fs.clone(), tmp2.path(), CFG).is_err());
    assert!(IndexStore::open(
        fs,
        tmp2.path(),
        IndexConfig {
            slots: 0,
            max_entries: 5
        }
    )
    .is_err());
}

mod garbage {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// A damaged index file gives errors or odd answers, never a panic or an endless walk.
        #[test]
        fn random_file_content_never_panics(bytes in proptest::collection::vec(any::<u8>(), 1..200), pos in any::<i64>()) {
            let tmp = tempfile::tempdir().unwrap();
            let mut content = vec![0u8; CFG.file_size() as usize];
            for (i, b) in bytes.iter().enumerate() {
                let at = (i * 7919) % content.len();
                content[at] = *b;
            }
            // Keep indexCount plausible so the damaged slots and entries are walked.
            let count = 1 + i32::from(bytes[0] % 15);
            content[36..40].copy_from_slice(&count.to_be_bytes());
            std::fs::write(tmp.path().join("20240101000000000"), &content).unwrap();
            let fs: Arc<dyn FileSystem> = StdFileSystem::arc();
            if let Ok(mut idx) = IndexStore::open(fs, tmp.path(), CFG) {
                let _ = idx.query("T", "a", 10, i64::MIN, i64::MAX);
                let _ = idx.add_message(pos, pos, &keys("T", &["a"]));
                let _ = idx.truncate_from_pos(pos);
                let _ = idx.purge_below_pos(pos);
                let _ = idx.query("T", "a", 10, i64::MIN, i64::MAX);
            }
        }
    }
}
