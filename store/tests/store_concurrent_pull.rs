//! A reader pulls while the state machine dispatches, woken by the queue-advanced hook the
//! way long polling is: it sees every message once, in order, and only after dispatch.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftmq_store::commitlog::{EntryId, EntryKind, NewEntry};
use raftmq_store::config::CommitLogConfig;
use raftmq_store::dispatch::DispatchConfig;
use raftmq_store::index_file::IndexConfig;
use raftmq_store::message::{MessageView, StoredMessage};
use raftmq_store::store::{Store, StoreConfig};

const ENTRIES: u64 = 40;
const PER_ENTRY: i64 = 5;

fn payload(first_offset: i64) -> Bytes {
    let mut out = Vec::new();
    for k in 0..PER_ENTRY {
        StoredMessage {
            topic: "Live".into(),
            queue_id: 0,
            flag: 0,
            queue_offset: first_offset + k,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp: 1_000 + first_offset + k,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: format!("m{}", first_offset + k).into_bytes(),
            properties: Vec::new(),
        }
        .encode_into(&mut out, 1 << 20)
        .unwrap();
    }
    Bytes::from(out)
}

#[test]
fn pulls_see_each_message_once_in_order_after_dispatch() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        commitlog: CommitLogConfig {
            segment_size: 16 * 1024,
            index_file_size: 32 * 256,
            ..CommitLogConfig::default()
        },
        dispatch: DispatchConfig {
            cq_units_per_file: 16,
            index: IndexConfig {
                slots: 16,
                max_entries: 64,
            },
            ..DispatchConfig::default()
        },
    };
    let (store, _) = Store::open(tmp.path(), cfg).unwrap();
    let store = Arc::new(store);
    let (wake_tx, wake_rx) = mpsc::channel::<i64>();
    store
        .dispatcher()
        .write()
        .unwrap()
        .set_queue_advanced_hook(Box::new(move |topic, qid, max| {
            if topic == "Live" && qid == 0 {
                let _ = wake_tx.send(max);
            }
        }));

    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0..ENTRIES {
                let (tx, rx) = mpsc::channel();
                let kind = if i == 0 {
                    EntryKind::Blank
                } else {
                    EntryKind::Messages
                };
                let data = if i == 0 {
                    Bytes::new()
                } else {
                    payload((i as i64 - 1) * PER_ENTRY)
                };
                store
                    .commitlog()
                    .append(
                        vec![NewEntry {
                            id: EntryId {
                                index: i,
                                term: 1,
                                leader: 0,
                            },
                            kind,
                            payload: data,
                        }],
                        Box::new(move |r| {
                            let _ = tx.send(r.is_ok());
                        }),
                    )
                    .unwrap();
                assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
                store.dispatch_committed(i).unwrap();
            }
        })
    };

    let total = (ENTRIES as i64 - 1) * PER_ENTRY;
    let mut next = 0i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while next < total {
        assert!(Instant::now() < deadline, "reader stuck at {next}");
        let got = store.pull("Live", 0, next, 7, 1 << 20, &|_| true).unwrap();
        assert!(got.max_offset >= next);
        for (off, bytes) in &got.messages {
            assert_eq!(*off, next, "no gap and no repeat");
            let v = MessageView::parse(bytes).unwrap();
            assert_eq!(v.queue_offset(), *off);
            assert_eq!(v.body(), format!("m{off}").as_bytes());
            next += 1;
        }
        if got.messages.is_empty() {
            // Long-poll: wait for the dispatcher to say the queue moved.
            let _ = wake_rx.recv_timeout(Duration::from_millis(500));
        }
    }
    writer.join().unwrap();
    assert_eq!(next, total);
    assert_eq!(
        store.dispatcher().read().unwrap().max_offset("Live", 0),
        total
    );
}
