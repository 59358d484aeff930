//! The proposer: group commit of sends into `PutMessages` entries, and the leader's
//! per-term queue-offset sequencer.
//!
//! Sends queue on a bounded channel. One task takes whatever is queued (without waiting for
//! more, so a lone send goes out at once), up to the batch limits, assigns each message its
//! QUEUEOFFSET and STORETIMESTAMP, and submits the batch as one entry. At most
//! `max_inflight_batches` entries are uncommitted at a time; while they are, new sends pile up
//! and form the next, larger batch (RocketMQ's group commit, driven by the disk and the
//! network rather than a timer). Batches are submitted to the Raft core from this one task,
//! in order, so the log order equals the sequencing order.
//!
//! Queue offsets are valid for one leader term only (DLedger's rule): the sequencer is
//! rebuilt whenever the term changes, after a failed write, and at start. A rebuild drains the
//! in-flight batches and then waits until this node has applied every entry of its log, so
//! the applied queue-offset table covers the whole log it inherited. Seeing the role watcher
//! report the leader `ready` is not enough on its own: a leader that restarts keeps its term
//! (openraft 0.9 restores a committed vote of its own as leadership), and its last applied
//! entry can then be of that term while entries after it still wait to be re-applied. A
//! queue seen for the first time in a term starts at the applied table's next offset. Prepared and rolled-back transactional messages get queue offset 0 and do not
//! advance their queue, as in RocketMQ.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use raftmq_store::message::{self, MessageView, TransactionType};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::command::{AppendedMessage, BrokerCommand};
use crate::config::RaftGroupConfig;
use crate::error::{RaftGroupError, Result};
use crate::group::{map_write_error, Role};
use crate::types::typ;

/// Where a new term's sequencer starts each queue: the applied (committed and dispatched)
/// next queue offset. Implemented by the state machine's shared offset table.
pub trait QueueOffsetSource: Send + Sync + 'static {
    fn next_queue_offset(&self, topic: &str, queue_id: i32) -> i64;
}

/// Limits of one batch and of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct ProposerLimits {
    pub max_batch_bytes: usize,
    pub max_batch_commands: usize,
    pub max_inflight_batches: usize,
    /// Bound of the send queue.
    pub queue_depth: usize,
    /// How long a reseed waits for the log to be applied before refusing the send.
    pub reseed_timeout: Duration,
}

impl ProposerLimits {
    pub fn from_group(cfg: &RaftGroupConfig) -> Self {
        ProposerLimits {
            max_batch_bytes: cfg.max_batch_bytes,
            max_batch_commands: cfg.max_batch_commands,
            max_inflight_batches: cfg.max_inflight_batches,
            queue_depth: cfg.max_batch_commands.saturating_mul(4).max(16),
            // At least 2 s: with short election timeouts a loaded node may need longer than
            // one timeout to apply the log it inherited, and a refusal costs the client a retry.
            reseed_timeout: cfg.election_timeout_max.max(Duration::from_secs(2)),
        }
    }
}

struct SendRequest {
    /// One or more concatenated stored messages (a RocketMQ batch send is several).
    bytes: BytesMut,
    resp: oneshot::Sender<Result<Vec<AppendedMessage>>>,
}

/// Handle of the proposer task; dropping it stops the task.
pub struct Proposer {
    tx: mpsc::Sender<SendRequest>,
    task: JoinHandle<()>,
}

impl Drop for Proposer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proposer {
    pub fn start(
        raft: typ::Raft,
        role: watch::Receiver<Role>,
        offsets: Arc<dyn QueueOffsetSource>,
        limits: ProposerLimits,
    ) -> Proposer {
        let (tx, rx) = mpsc::channel(limits.queue_depth);
        let task = tokio::spawn(run(rx, raft, role, offsets, limits));
        Proposer { tx, task }
    }

    /// Queue a send now and return a future resolving to its outcome (lets a caller release
    /// its locks before waiting).
    pub fn send_owned(
        &self,
        messages: BytesMut,
    ) -> impl std::future::Future<Output = Result<Vec<AppendedMessage>>> + Send + 'static {
        let tx = self.tx.clone();
        async move {
            let (resp, rx) = oneshot::channel();
            tx.send(SendRequest {
                bytes: messages,
                resp,
            })
            .await
            .map_err(|_| RaftGroupError::Shutdown)?;
            rx.await.map_err(|_| RaftGroupError::Shutdown)?
        }
    }

    /// Append stored messages (queue offsets are assigned here); resolves once they are
    /// committed and dispatched, with one [`AppendedMessage`] per message, in order.
    /// [`RaftGroupError::NotLeader`] means nothing was proposed; after the entry went to Raft a
    /// failure is [`RaftGroupError::Indeterminate`] (it may still commit).
    pub async fn send(&self, messages: BytesMut) -> Result<Vec<AppendedMessage>> {
        let (resp, rx) = oneshot::channel();
        self.tx
            .send(SendRequest {
                bytes: messages,
                resp,
            })
            .await
            .map_err(|_| RaftGroupError::Shutdown)?;
        rx.await.map_err(|_| RaftGroupError::Shutdown)?
    }
}

/// The per-term queue-offset sequencer.
#[derive(Default)]
struct Sequencer {
    term: u64,
    next: HashMap<(String, i32), i64>,
}

/// One parsed message of a request: where it is and what it needs.
struct Slot {
    start: usize,
    len: usize,
    topic: String,
    queue_id: i32,
    consumable: bool,
}

fn parse_request(bytes: &[u8]) -> std::result::Result<Vec<Slot>, String> {
    if bytes.is_empty() {
        return Err("empty send".into());
    }
    let mut slots = vec![];
    for item in message::iter_batch(bytes) {
        let (start, view): (usize, MessageView<'_>) = item.map_err(|e| e.to_string())?;
        slots.push(Slot {
            start,
            len: view.total_size(),
            topic: view.topic().to_string(),
            queue_id: view.queue_id(),
            consumable: TransactionType::from_sys_flag(view.sys_flag()).is_consumable(),
        });
    }
    Ok(slots)
}

impl Sequencer {
    fn reset(&mut self, term: u64) {
        self.term = term;
        self.next.clear();
    }

    /// Stamp every message of one request; all or nothing (the request was parsed first).
    fn assign(
        &mut self,
        bytes: &mut [u8],
        slots: &[Slot],
        offsets: &dyn QueueOffsetSource,
        now_ms: i64,
    ) -> std::result::Result<(), String> {
        let mut staged: Vec<(usize, usize, i64)> = Vec::with_capacity(slots.len());
        let mut local: HashMap<(String, i32), i64> = HashMap::new();
        for s in slots {
            let qo = if s.consumable {
                let key = (s.topic.clone(), s.queue_id);
                let cur = match local.get(&key) {
                    Some(v) => *v,
                    None => match self.next.get(&key) {
                        Some(v) => *v,
                        None => offsets.next_queue_offset(&s.topic, s.queue_id),
                    },
                };
                local.insert(key, cur + 1);
                cur
            } else {
                0
            };
            staged.push((s.start, s.len, qo));
        }
        for (start, len, qo) in staged {
            let msg = &mut bytes[start..start + len];
            message::set_queue_offset(msg, qo).map_err(|e| e.to_string())?;
            message::set_store_timestamp(msg, now_ms).map_err(|e| e.to_string())?;
        }
        self.next.extend(local);
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Waiter {
    count: usize,
    resp: oneshot::Sender<Result<Vec<AppendedMessage>>>,
}

async fn run(
    mut rx: mpsc::Receiver<SendRequest>,
    raft: typ::Raft,
    role: watch::Receiver<Role>,
    offsets: Arc<dyn QueueOffsetSource>,
    limits: ProposerLimits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_inflight_batches));
    let write_failed = Arc::new(AtomicBool::new(false));
    let mut seq = Sequencer::default();
    let mut carry: Option<SendRequest> = None;
    loop {
        let first = match carry.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        if first.bytes.len() > limits.max_batch_bytes {
            let reason = format!(
                "send of {} bytes exceeds the batch limit of {}",
                first.bytes.len(),
                limits.max_batch_bytes
            );
            let _ = first.resp.send(Err(RaftGroupError::InvalidCommand(reason)));
            continue;
        }

        let failed_before = write_failed.swap(false, Ordering::SeqCst);
        let term_now = role.borrow().term;
        if failed_before || seq.term != term_now {
            // Drain every in-flight batch, then wait until the whole log is applied, so the
            // applied table is the truth again before anything is sequenced for this term.
            let all = permits
                .acquire_many(limits.max_inflight_batches as u32)
                .await;
            seq.reset(0);
            let caught_up = wait_applied_all(&raft, limits.reseed_timeout).await;
            drop(all);
            let r = *role.borrow();
            if !caught_up || !r.ready || r.term != term_now {
                let _ = first.resp.send(Err(RaftGroupError::NotLeader {
                    leader: r.leader.filter(|_| !r.is_leader),
                    leader_node: None,
                }));
                // Not sequenced for any term yet: the next send tries again.
                continue;
            }
            seq.reset(term_now);
        }

        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes.len();
        while batch.len() < limits.max_batch_commands {
            match rx.try_recv() {
                Ok(r) => {
                    if bytes + r.bytes.len() > limits.max_batch_bytes
                        || r.bytes.len() > limits.max_batch_bytes
                    {
                        carry = Some(r);
                        break;
                    }
                    bytes += r.bytes.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }

        let r = *role.borrow();
        if !r.ready {
            for req in batch {
                let _ = req.resp.send(Err(RaftGroupError::NotLeader {
                    leader: r.leader.filter(|_| !r.is_leader),
                    leader_node: None,
                }));
            }
            continue;
        }
        if seq.term != r.term {
            // The term moved while this batch was being collected: nothing was sequenced
            // for the new term yet, so refuse and rebuild before the next send.
            for req in batch {
                let _ = req.resp.send(Err(RaftGroupError::NotLeader {
                    leader: r.leader.filter(|_| !r.is_leader),
                    leader_node: None,
                }));
            }
            continue;
        }

        let now = now_ms();
        let mut buf = BytesMut::with_capacity(bytes);
        let mut waiters = Vec::with_capacity(batch.len());
        for mut req in batch {
            let res = parse_request(&req.bytes).and_then(|slots| {
                seq.assign(&mut req.bytes, &slots, offsets.as_ref(), now)
                    .map(|_| slots.len())
            });
            match res {
                Ok(count) => {
                    buf.extend_from_slice(&req.bytes);
                    waiters.push(Waiter {
                        count,
                        resp: req.resp,
                    });
                }
                Err(reason) => {
                    let _ = req.resp.send(Err(RaftGroupError::InvalidCommand(reason)));
                }
            }
        }
        if waiters.is_empty() {
            continue;
        }
        let cmd = BrokerCommand::PutMessages {
            bytes: buf.freeze(),
        };
        // Offsets were sequenced for `seq.term`: submit only while the core still leads in
        // that term (the core may have moved on before the role watcher noticed).
        let still_leading = {
            let m = raft.metrics();
            let m = m.borrow();
            m.current_term == seq.term && m.state == openraft::ServerState::Leader
        };
        if !still_leading {
            for w in waiters {
                let _ = w.resp.send(Err(RaftGroupError::NotLeader {
                    leader: None,
                    leader_node: None,
                }));
            }
            write_failed.store(true, Ordering::SeqCst);
            continue;
        }
        let pending = match raft.client_write_ff(cmd).await {
            Ok(p) => p,
            Err(fatal) => {
                for w in waiters {
                    let _ = w.resp.send(Err(RaftGroupError::Fatal(fatal.to_string())));
                }
                write_failed.store(true, Ordering::SeqCst);
                continue;
            }
        };
        let failed = write_failed.clone();
        tokio::spawn(async move {
            // The entry is in Raft's hands now: a failure from here on is not a refusal. A
            // leader that steps down answers its pending writes with ForwardToLeader, yet the
            // entry may still commit under the next leader.
            let outcome = match pending.await {
                Err(_) => Err(RaftGroupError::Indeterminate(
                    "the raft core stopped before the entry was known committed".into(),
                )),
                Ok(Err(e)) => Err(RaftGroupError::Indeterminate(format!(
                    "{} before the entry was known committed",
                    map_write_error(openraft::error::RaftError::APIError(e))
                ))),
                Ok(Ok(resp)) => Ok(resp.data.messages),
            };
            drop(permit);
            match outcome {
                Ok(messages) => {
                    let total: usize = waiters.iter().map(|w| w.count).sum();
                    if messages.len() != total {
                        let reason = format!(
                            "apply returned {} results for {total} messages",
                            messages.len()
                        );
                        tracing::error!(%reason, "proposer result mismatch");
                        for w in waiters {
                            let _ = w.resp.send(Err(RaftGroupError::Fatal(reason.clone())));
                        }
                        return;
                    }
                    let mut it = messages.into_iter();
                    for w in waiters {
                        let part: Vec<_> = it.by_ref().take(w.count).collect();
                        let _ = w.resp.send(Ok(part));
                    }
                }
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    for w in waiters {
                        let _ = w.resp.send(Err(e.duplicate()));
                    }
                }
            }
        });
    }
}

/// Wait until this node has applied its whole log (bounded by `timeout`).
async fn wait_applied_all(raft: &typ::Raft, timeout: Duration) -> bool {
    let mut m = raft.metrics();
    let fut = async {
        loop {
            {
                let cur = m.borrow_and_update();
                let applied = cur.last_applied.map(|l| l.index);
                if applied.is_some() && applied >= cur.last_log_index {
                    return true;
                }
            }
            if m.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use raftmq_store::message::{sysflag, StoredMessage};

    use super::*;

    struct Applied(HashMap<(String, i32), i64>);

    impl QueueOffsetSource for Applied {
        fn next_queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
            self.0
                .get(&(topic.to_string(), queue_id))
                .copied()
                .unwrap_or(0)
        }
    }

    fn msg(topic: &str, queue_id: i32, sys_flag: i32) -> Vec<u8> {
        let host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        StoredMessage {
            topic: topic.into(),
            queue_id,
            flag: 0,
            queue_offset: -1,
            physical_offset: 0,
            sys_flag,
            born_timestamp: 1,
            born_host: host,
            store_timestamp: 0,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"b".to_vec(),
            properties: vec![],
        }
        .encode()
        .unwrap()
    }

    fn offsets(bytes: &[u8]) -> Vec<(String, i32, i64, i64)> {
        message::iter_batch(bytes)
            .map(|r| {
                let (_, v) = r.unwrap();
                (
                    v.topic().to_string(),
                    v.queue_id(),
                    v.queue_offset(),
                    v.store_timestamp(),
                )
            })
            .collect()
    }

    #[test]
    fn sequencer_continues_the_applied_table_and_skips_half_messages() {
        let applied = Applied([(("T".to_string(), 1), 41)].into_iter().collect());
        let mut seq = Sequencer::default();
        seq.reset(3);
        let mut batch = [
            msg("T", 1, 0),
            msg("T", 1, sysflag::TRANSACTION_PREPARED),
            msg("T", 2, 0),
            msg("T", 1, sysflag::TRANSACTION_COMMIT),
        ]
        .concat();
        let slots = parse_request(&batch).unwrap();
        seq.assign(&mut batch, &slots, &applied, 777).unwrap();
        let got = offsets(&batch);
        assert_eq!(
            got,
            vec![
                ("T".into(), 1, 41, 777),
                ("T".into(), 1, 0, 777),
                ("T".into(), 2, 0, 777),
                ("T".into(), 1, 42, 777),
            ]
        );
        // The next request continues from the sequencer, not from the (stale) applied table.
        let mut next = msg("T", 1, 0);
        let slots = parse_request(&next).unwrap();
        seq.assign(&mut next, &slots, &applied, 778).unwrap();
        assert_eq!(offsets(&next)[0].2, 43);
        // A new term starts over from the applied table.
        seq.reset(4);
        let mut again = msg("T", 1, 0);
        let slots = parse_request(&again).unwrap();
        seq.assign(&mut again, &slots, &applied, 779).unwrap();
        assert_eq!(offsets(&again)[0].2, 41);
    }

    #[test]
    fn malformed_requests_are_refused_whole() {
        assert!(parse_request(&[]).is_err());
        let mut bad = msg("T", 0, 0);
        bad.extend_from_slice(b"trailing garbage");
        assert!(parse_request(&bad).is_err());
    }
}
