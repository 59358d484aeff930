//! Model check: random puts, truncations, purges and reopens of a consumequeue against a
//! plain vector.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use raftmq_store::consume_queue::{ConsumeQueue, CqUnit};
use raftmq_store::io::StdFileSystem;

#[derive(Clone, Debug)]
enum Op {
    Put(u8),
    TruncateBack(u8),
    Purge(u8),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..6).prop_map(Op::Put),
        1 => (0u8..8).prop_map(Op::TruncateBack),
        1 => (0u8..8).prop_map(Op::Purge),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

/// Unit `i` sits at phys 1000 + 10 * i with size 10.
fn unit(i: i64) -> CqUnit {
    CqUnit {
        phys_offset: 1000 + 10 * i,
        size: 10,
        tags_code: i * 7,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn consumequeue_matches_a_vector(ops in proptest::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        let open = || ConsumeQueue::open(StdFileSystem::arc(), &dir, "T", 0, 3).unwrap();
        let mut cq = open();
        // Model: units [min, max) exist.
        let (mut min, mut max) = (0i64, 0i64);
        for op in ops {
            match op {
                Op::Put(n) => {
                    for _ in 0..n {
                        cq.put(max, unit(max)).unwrap();
                        max += 1;
                    }
                }
                Op::TruncateBack(k) => {
                    let cut = (max - i64::from(k)).max(min);
                    cq.truncate_from_pos(unit(cut).phys_offset).unwrap();
                    max = cut;
                }
                Op::Purge(k) => {
                    // Purge below the unit `k` past min (never past max).
                    let to = (min + i64::from(k)).min(max);
                    cq.purge_below_pos(unit(to).phys_offset).unwrap();
                    min = to;
                }
                Op::Flush => cq.flush().unwrap(),
                Op::Reopen => {
                    cq.flush().unwrap();
                    drop(cq);
                    cq = open();
                    // Reopen cannot know a purge that left the first file partly used: it
                    // only knows whole files. The dispatcher re-applies the purge; do the same.
                    cq.purge_below_pos(unit(min).phys_offset).unwrap();
                }
            }
            prop_assert_eq!(cq.max_offset(), max);
            prop_assert_eq!(cq.min_offset(), min);
            for i in (min - 2).max(0)..max + 2 {
                let want = (i >= min && i < max).then(|| unit(i));
                prop_assert_eq!(cq.get(i).unwrap(), want, "offset {}", i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Damaged consumequeue files give errors or odd answers, never a panic.
    #[test]
    fn random_file_content_never_panics(
        files in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 60), 1..4),
        pos in any::<i64>(),
        off in any::<i64>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("q");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, content) in files.iter().enumerate() {
            std::fs::write(dir.join(format!("{:020}", i * 60)), content).unwrap();
        }
        if let Ok(mut cq) = ConsumeQueue::open(StdFileSystem::arc(), &dir, "T", 0, 3) {
            let reader = |p: i64, _s: i32| -> raftmq_store::Result<Option<i64>> { Ok(Some(p)) };
            let _ = cq.get(off);
            let _ = cq.search_offset_by_time(pos, &reader);
            let _ = cq.truncate_from_pos(pos);
            let _ = cq.purge_below_pos(pos);
            let _ = cq.put(cq.max_offset(), unit(1));
            let _ = cq.restore_end(off);
            let _ = cq.flush();
        }
    }
}
