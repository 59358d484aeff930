//! Many concurrent appenders: completions fire exactly once each, in log order.
#![allow(clippy::unwrap_used)]

mod commitlog_util;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commitlog_util::*;

#[test]
fn completions_fire_once_each_in_fifo_order_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let next = Arc::new(Mutex::new(0u64));
    let fired = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (log, next, fired) = (log.clone(), next.clone(), fired.clone());
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let (tx, rx) = channel();
                    {
                        // Index assignment and enqueue happen together, as on a leader.
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        let fired = fired.clone();
                        log.append(
                            vec![entry(i, 1)],
                            Box::new(move |r| {
                                assert!(r.is_ok());
                                fired.lock().unwrap().push(i);
                                tx.send(()).unwrap();
                            }),
                        )
                        .unwrap();
                        *n += 1;
                    }
                    rx.recv_timeout(Duration::from_secs(10)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let fired = fired.lock().unwrap().clone();
    assert_eq!(fired, (0..320).collect::<Vec<u64>>(), "FIFO, exactly once");
    assert_entries(&log, 0, 320, |_| 1);
    let flushes = log.flush_count();
    assert!((1..=320).contains(&flushes));
    eprintln!("320 appends in {flushes} flushes");
}

#[test]
fn readers_never_see_torn_or_mixed_entries_during_truncate_and_append() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    for i in 0..50 {
        append_durable(&log, vec![entry(i, 1)]);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut i = r as u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && seen < 1_000_000 {
                    i = (i * 7 + 3) % 60;
                    if let Some(e) = log.entry(i).unwrap() {
                        // Whatever term it carries, header and payload belong together.
                        assert_eq!(e.id.index, i);
                        assert_eq!(e.payload, payload(i, e.id.term));
                    }
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    // Rewrite the tail again and again with ever higher terms.
    for term in 2..40u64 {
        log.truncate(40).unwrap();
        append_durable(&log, (40..55).map(|i| entry(i, term)).collect());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_entries(&log, 0, 40, |_| 1);
    assert_entries(&log, 40, 55, |_| 39);
}

#[test]
fn appends_apply_in_order_and_a_gap_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let (tx, rx) = channel();
    let mut ok = Vec::new();
    for i in 0..20u64 {
        let tx = tx.clone();
        // Index 10 is appended twice: the second copy no longer continues the log.
        let index = if i == 11 {
            10
        } else {
            i.min(10) + i.saturating_sub(11)
        };
        let res = log.append(
            vec![entry(index, 1)],
            Box::new(move |r| tx.send((index, r.is_ok())).unwrap()),
        );
        match res {
            Ok(pos) => {
                assert_eq!(pos.len(), 1);
                ok.push(index);
            }
            Err(e) => assert!(
                matches!(
                    e,
                    raftmq_store::StoreError::IndexGap {
                        expected: 11,
                        got: 10
                    }
                ),
                "{e}"
            ),
        }
    }
    assert_eq!(ok, (0..19).collect::<Vec<u64>>());
    let fired: Vec<u64> = (0..19)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .map(|(i, good)| {
            assert!(good);
            i
        })
        .collect();
    assert_eq!(
        fired, ok,
        "completions in log order; the refused one never fires"
    );
    assert_entries(&log, 0, 19, |_| 1);
}
