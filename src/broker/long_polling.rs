//! Long polling: a pull that finds nothing new is held until its queue advances or its hold
//! time ends.
//!
//! Each queue (`topic@queueId`) that someone waits on has a `watch` channel carrying the
//! queue's next offset. A held pull subscribes, re-checks the queue (so an advance between
//! its first look and the subscription is not missed), then sleeps on the channel with its
//! deadline: no polling loop. The dispatcher's queue-advanced hook (called when committed
//! entries are applied, on the leader and on followers alike) advances the channel, so a
//! held pull wakes as soon as its queue has a new committed message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::BrokerState;

/// topic → queue id → channel.
type Channels = HashMap<String, HashMap<i32, watch::Sender<i64>>>;

/// The per-queue wake-up channels.
#[derive(Default)]
pub struct LongPolling {
    queues: Mutex<Channels>,
}

impl LongPolling {
    fn lock(&self) -> MutexGuard<'_, Channels> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever `topic`/`queue_id` advances.
    pub fn subscribe(&self, topic: &str, queue_id: i32) -> watch::Receiver<i64> {
        let mut q = self.lock();
        q.entry(topic.to_string())
            .or_default()
            .entry(queue_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The queue now holds messages up to `next_offset` (exclusive): wake its held pulls.
    /// Cheap and non-blocking: it runs inside the dispatcher's apply.
    pub fn advanced(&self, topic: &str, queue_id: i32, next_offset: i64) {
        let q = self.lock();
        if let Some(tx) = q.get(topic).and_then(|t| t.get(&queue_id)) {
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

    /// Drop channels nobody waits on; returns how many remain.
    pub fn prune(&self) -> usize {
        let mut q = self.lock();
        for t in q.values_mut() {
            t.retain(|_, tx| tx.receiver_count() > 0);
        }
        q.retain(|_, t| !t.is_empty());
        q.values().map(HashMap::len).sum()
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

/// Housekeeping: every minute, drop the channels of queues nobody waits on any more.
pub async fn run_prune(state: Arc<BrokerState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.polls.prune();
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
        assert_eq!(lp.prune(), 1);
    }
}
