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
