//! Long polling: a pull that finds nothing new is held until its queue advances or its hold
//! time ends.
//!
//! Each queue (`topic@queueId`) that someone waits on has a `watch` channel carrying the
//! queue's next offset. A held pull subscribes, re-checks the queue (so an advance between
//! its first look and the subscription is not missed), then sleeps on the channel with its
//! deadline: no polling loop. The channel is advanced on this node when a send it sequenced
//! has been committed and dispatched (the proposer resolves only then), and by a sweep
//! every second that compares each watched queue with the dispatcher, which covers entries
//! applied by replication on a follower (RocketMQ's hold-service sweep).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::BrokerState;

type Key = (String, i32);

/// The per-queue wake-up channels.
#[derive(Default)]
pub struct LongPolling {
    queues: Mutex<HashMap<Key, watch::Sender<i64>>>,
}

impl LongPolling {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, watch::Sender<i64>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever `topic`/`queue_id` advances.
    pub fn subscribe(&self, topic: &str, queue_id: i32) -> watch::Receiver<i64> {
        let mut q = self.lock();
        q.entry((topic.to_string(), queue_id))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The queue now holds messages up to `next_offset` (exclusive): wake its held pulls.
    pub fn advanced(&self, topic: &str, queue_id: i32, next_offset: i64) {
        let q = self.lock();
        if let Some(tx) = q.get(&(topic.to_string(), queue_id)) {
            tx.send_if_modified(|cur| {
                if next_offset > *cur {
                    *cur = next_offset;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Drop channels nobody waits on; returns the watched queues.
    fn watched(&self) -> Vec<Key> {
        let mut q = self.lock();
        q.retain(|_, tx| tx.receiver_count() > 0);
        q.keys().cloned().collect()
    }
}

/// Wait until `rx` reports an offset beyond `offset`, or `deadline` passes, or the client
/// goes away. Returns true if the queue advanced.
pub async fn wait_beyond(
    rx: &mut watch::Receiver<i64>,
    offset: i64,
    deadline: tokio::time::Instant,
    closed: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(closed);
    loop {
        if *rx.borrow_and_update() > offset {
            return true;
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return false; },
            _ = tokio::time::sleep_until(deadline) => return false,
            _ = &mut closed => return false,
        }
    }
}

/// The sweep: once a second, push the dispatcher's next offset of every watched queue.
pub async fn run_sweep(state: Arc<BrokerState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (topic, q) in state.polls.watched() {
            let max = state.node.sm.with_dispatcher(|d| d.max_offset(&topic, q));
            state.polls.advanced(&topic, q, max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn advance_wakes_a_waiter_and_deadline_ends_it() {
        let lp = LongPolling::default();
        let mut rx = lp.subscribe("T", 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let waiter = async { wait_beyond(&mut rx, 0, deadline, std::future::pending()).await };
        let (woke, ()) = tokio::join!(waiter, async {
            tokio::task::yield_now().await;
            lp.advanced("T", 0, 1);
        });
        assert!(woke);
        let mut rx = lp.subscribe("T", 1);
        let start = tokio::time::Instant::now();
        let d = start + Duration::from_millis(50);
        assert!(!wait_beyond(&mut rx, 0, d, std::future::pending()).await);
        assert!(start.elapsed() >= Duration::from_millis(50));
        drop(rx);
        assert_eq!(lp.watched(), vec![("T".to_string(), 0)]);
    }
}
