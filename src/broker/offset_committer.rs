//! Consumer offset commits, replicated through the group in batches.
//!
//! UPDATE_CONSUMER_OFFSET requests and offsets piggybacked on pulls land in a pending table
//! (latest offset per group/topic/queue wins). One task takes the whole table whenever it is
//! non-empty and proposes it as one `CommitOffsets` entry, so a busy broker writes one entry
//! per round trip however many consumers commit, and an idle one commits at once. Callers
//! that need to know (a sync UPDATE_CONSUMER_OFFSET) wait for the batch holding their offset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use raftmq_raft::{BrokerCommand, OffsetCommit};
use tokio::sync::{oneshot, Notify};

use super::{BrokerError, BrokerState};

type Key = (String, String, i32);

#[derive(Default)]
struct Pending {
    offsets: HashMap<Key, i64>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
}

/// The pending offset table and its flusher's wake-up.
#[derive(Default)]
pub struct OffsetCommitter {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl OffsetCommitter {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a commit without waiting.
    pub fn submit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.lock()
            .offsets
            .insert((group.to_string(), topic.to_string(), queue_id), offset);
        self.wake.notify_one();
    }

    /// Queue a commit and wait until it is replicated (or failed).
    pub async fn commit(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.lock();
            p.offsets
                .insert((group.to_string(), topic.to_string(), queue_id), offset);
            p.waiters.push(tx);
        }
        self.wake.notify_one();
        rx.await
            .map_err(|_| "offset committer stopped".to_string())?
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }
}

/// The flusher task.
pub async fn run(state: Arc<BrokerState>) {
    loop {
        state.offsets.wake.notified().await;
        let batch = state.offsets.take();
        if batch.offsets.is_empty() && batch.waiters.is_empty() {
            continue;
        }
        let offsets: Vec<OffsetCommit> = batch
            .offsets
            .into_iter()
            .map(|((group, topic, queue_id), offset)| OffsetCommit {
                group,
                topic,
                queue_id,
                offset,
            })
            .collect();
        let n = offsets.len();
        let res = if offsets.is_empty() {
            Ok(())
        } else {
            state
                .node
                .write(BrokerCommand::CommitOffsets { offsets })
                .await
        };
        let res = res.map_err(|e| match e {
            BrokerError::NotLeader { .. } => format!("[NOT_LEADER] {e}"),
            other => other.to_string(),
        });
        if let Err(e) = &res {
            tracing::warn!(count = n, cause = %e, "consumer offset commit failed");
        }
        for w in batch.waiters {
            let _ = w.send(res.clone());
        }
    }
}
