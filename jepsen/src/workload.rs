//! The queue workload: producers send unique values (each its own key) to one topic through
//! the project's client, consumers pull every queue and commit offsets, and every operation is
//! recorded as invoke / ok / fail / info in the history.
//!
//! Producer `p` is process `p`; consumer `c` is process [`CONSUMER_BASE`]` + c` and owns the
//! queues `q` with `q % consumers == c`. A send ends `ok` with the queue and offset the broker
//! acknowledged, `fail` when the client knows nothing was stored, `info` when it cannot know
//! (timeout, connection lost). A poll records the messages returned, in order. After
//! [`WorkloadHandle::stop_sends`] and once every producer's last send has completed, the
//! consumers drain: they keep pulling until every queue answered "no new message" at an offset
//! past both the queue's maximum and the highest offset acknowledged to any producer, or the
//! drain deadline passes.
//!
//! The workload runs on its own threads; in namespace mode they live in the clients'
//! namespace (the hub). It knows the client API and the history format, nothing of faults.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftmq::client::consumer::PullStatus;
use raftmq::client::{ClientConfig, Message, Producer, ProducerConfig, PullConsumer};
use raftmq::remoting::body::MessageQueue;

use crate::history::Recorder;
use crate::history::{Op, OpF, OpType, Process, Queue, Read};

/// Process number of the first consumer.
pub const CONSUMER_BASE: u64 = 1000;

/// What the workload does.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Nameserver address list (`host:port;host:port`).
    pub namesrv: String,
    pub topic: String,
    /// Consumer group.
    pub group: String,
    pub producers: usize,
    pub consumers: usize,
    /// Total sends per second over all producers.
    pub rate: u32,
    /// The clients' own address (put in client ids).
    pub client_ip: IpAddr,
    /// Budget of one send, retries included.
    pub send_timeout: Duration,
    /// Wait for one pull answer.
    pub pull_timeout: Duration,
    /// Commit the consumer offset every this many successful polls of a queue.
    pub commit_every: u32,
}

/// Counts of what the workload did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorkloadStats {
    pub sends: u64,
    pub sends_ok: u64,
    pub sends_fail: u64,
    pub sends_info: u64,
    pub polls: u64,
    pub messages_read: u64,
    pub commits: u64,
    /// Whether every queue was drained before the deadline.
    pub drained: bool,
}

#[derive(Debug, Default)]
struct Counters {
    sends: AtomicU64,
    sends_ok: AtomicU64,
    sends_fail: AtomicU64,
    sends_info: AtomicU64,
    polls: AtomicU64,
    messages_read: AtomicU64,
    commits: AtomicU64,
    /// Set once every producer has stopped and its last send completed.
    producers_done: AtomicBool,
    /// Highest acknowledged offset per queue name: a queue is drained only past it.
    acked: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// A running workload.
#[derive(Debug)]
pub struct WorkloadHandle {
    stop_sends: Arc<AtomicBool>,
    drain_deadline: Arc<std::sync::Mutex<Option<Instant>>>,
    counters: Arc<Counters>,
    thread: std::thread::JoinHandle<Result<bool, String>>,
}

/// Errors starting or finishing the workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("starting the workload: {0}")]
    Start(String),
    #[error("workload: {0}")]
    Failed(String),
    #[error("workload thread panicked")]
    Panicked,
}

fn queue_name(q: &MessageQueue) -> Queue {
    Queue::new(format!("{}@{}:{}", q.topic, q.broker_name, q.queue_id))
}

impl WorkloadHandle {
    /// Sends so far.
    pub fn sends(&self) -> u64 {
        self.counters.sends.load(Ordering::Relaxed)
    }

    /// Acknowledged sends so far.
    pub fn sends_ok(&self) -> u64 {
        self.counters.sends_ok.load(Ordering::Relaxed)
    }

    /// Stops the producers; consumers start draining until `deadline`.
    pub fn stop_sends(&self, drain_until: Instant) {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(drain_until);
        self.stop_sends.store(true, Ordering::SeqCst);
    }

    /// Waits for the consumers to drain (call [`Self::stop_sends`] first) and returns counts.
    pub fn finish(self) -> Result<WorkloadStats, WorkloadError> {
        let drained = self
            .thread
            .join()
            .map_err(|_| WorkloadError::Panicked)?
            .map_err(WorkloadError::Failed)?;
        let c = &self.counters;
        Ok(WorkloadStats {
            sends: c.sends.load(Ordering::Relaxed),
            sends_ok: c.sends_ok.load(Ordering::Relaxed),
            sends_fail: c.sends_fail.load(Ordering::Relaxed),
            sends_info: c.sends_info.load(Ordering::Relaxed),
            polls: c.polls.load(Ordering::Relaxed),
            messages_read: c.messages_read.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            drained,
        })
    }
}

/// Starts the workload on its own thread (inside network namespace `netns` if given).
pub fn spawn(
    config: WorkloadConfig,
    recorder: Arc<Recorder>,
    netns: Option<String>,
) -> Result<WorkloadHandle, WorkloadError> {
    // A phase may only send (no consumers) or only read and drain (no producers).
    if config.producers + config.consumers == 0 || (config.producers > 0 && config.rate == 0) {
        return Err(WorkloadError::Start(
            "needs producers or consumers, and a positive rate for producers".into(),
        ));
    }
    let stop_sends = Arc::new(AtomicBool::new(false));
    let drain_deadline = Arc::new(std::sync::Mutex::new(None));
    let counters = Arc::new(Counters::default());
    let (s, d, c) = (stop_sends.clone(), drain_deadline.clone(), counters.clone());
    let thread = std::thread::Builder::new()
        .name("workload".into())
        .spawn(move || {
            if let Some(ns) = &netns {
                crate::netns::enter_netns(ns).map_err(|e| e.to_string())?;
            }
            // Worker threads are created by this thread and so share its namespace.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(run(config, recorder, s, d, c))
        })
        .map_err(|e| WorkloadError::Start(e.to_string()))?;
    Ok(WorkloadHandle {
        stop_sends,
        drain_deadline,
        counters,
        thread,
    })
}

fn client_config(cfg: &WorkloadConfig, name: &str) -> ClientConfig {
    let mut cc = ClientConfig::new(&cfg.namesrv);
    cc.client_ip = cfg.client_ip;
    cc.instance_name = format!("{name}-{}", std::process::id());
    cc.route_refresh_interval = Duration::from_secs(2);
    cc.heartbeat_interval = Duration::from_secs(5);
    cc
}

async fn run(
    cfg: WorkloadConfig,
    rec: Arc<Recorder>,
    stop_sends: Arc<AtomicBool>,
    drain_deadline: Arc<std::sync::Mutex<Option<Instant>>>,
    counters: Arc<Counters>,
) -> Result<bool, String> {
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..cfg.producers {
        let mut pc = ProducerConfig::new(format!("{}-producers", cfg.group));
        pc.send_timeout = cfg.send_timeout;
        let producer = Producer::start(client_config(&cfg, &format!("p{p}")), pc)
            .await
            .map_err(|e| format!("producer {p}: {e}"))?;
        let (rec, stop, counters, cfg) = (
            rec.clone(),
            stop_sends.clone(),
            counters.clone(),
            cfg.clone(),
        );
        producers.spawn(async move {
            produce(p as u64, producer, &cfg, &rec, &stop, &counters).await;
        });
    }
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..cfg.consumers {
        let consumer =
            PullConsumer::start(client_config(&cfg, &format!("c{c}")), cfg.group.clone())
                .await
                .map_err(|e| format!("consumer {c}: {e}"))?;
        consumer
            .subscribe(&cfg.topic, "*")
            .map_err(|e| format!("consumer {c}: {e}"))?;
        let (rec, stop, dl, counters, cfg) = (
            rec.clone(),
            stop_sends.clone(),
            drain_deadline.clone(),
            counters.clone(),
            cfg.clone(),
        );
        consumers
            .spawn(async move { consume(c, consumer, &cfg, &rec, &stop, &dl, &counters).await });
    }
    while producers.join_next().await.is_some() {}
    counters.producers_done.store(true, Ordering::SeqCst);
    let mut drained = true;
    while let Some(r) = consumers.join_next().await {
        drained &= r.unwrap_or(false);
    }
    rec.flush().map_err(|e| e.to_string())?;
    Ok(drained)
}

async fn produce(
    p: u64,
    producer: Producer,
    cfg: &WorkloadConfig,
    rec: &Recorder,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let period = Duration::from_secs_f64(cfg.producers as f64 / f64::from(cfg.rate));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let value = format!("{p}-{seq}");
        seq += 1;
        let inv = Op::send_invoke(0, p, &value, Some(&value));
        if rec.record(inv).is_err() {
            return;
        }
        counters.sends.fetch_add(1, Ordering::Relaxed);
        let msg =
            Message::new(cfg.topic.clone(), value.clone().into_bytes()).with_keys([value.as_str()]);
        let done = match producer.send(msg).await {
            Ok(r) => {
                counters.sends_ok.fetch_add(1, Ordering::Relaxed);
                let mut op = Op::new(0, Process::Client(p), OpType::Ok, OpF::Send);
                op.value = Some(value);
                op.queue = Some(queue_name(&r.queue));
                op.offset = u64::try_from(r.queue_offset).ok();
                if let Some(off) = op.offset {
                    let mut acked = counters.acked.lock().unwrap_or_else(|p| p.into_inner());
                    let top = acked.entry(queue_name(&r.queue).0).or_insert(off);
                    *top = (*top).max(off);
                }
                if op.offset.is_none() {
                    op.kind = OpType::Info;
                    op.queue = None;
                    op.error = Some(format!("negative queue offset {}", r.queue_offset));
                }
                op
            }
            Err(e) => {
                let kind = if e.is_indeterminate() {
                    counters.sends_info.fetch_add(1, Ordering::Relaxed);
                    OpType::Info
                } else {
                    counters.sends_fail.fetch_add(1, Ordering::Relaxed);
                    OpType::Fail
                };
                let mut op = Op::send_done(0, p, kind, &value);
                op.error = Some(e.to_string());
                op
            }
        };
        if rec.record(done).is_err() {
            return;
        }
    }
    producer.shutdown().await;
}

struct QueueState {
    mq: MessageQueue,
    next: i64,
    polls_since_commit: u32,
    /// Set once a drain-phase poll found nothing at or past the queue's maximum.
    drained: bool,
}

async fn consume(
    c: usize,
    consumer: PullConsumer,
    cfg: &WorkloadConfig,
    rec: &Recorder,
    stop_sends: &AtomicBool,
    drain_deadline: &std::sync::Mutex<Option<Instant>>,
    counters: &Counters,
) -> bool {
    let process = CONSUMER_BASE + c as u64;
    // Wait for the topic's queues (the first send creates the topic).
    let mut queues: BTreeMap<(String, i32), QueueState> = BTreeMap::new();
    while !add_queues(&consumer, cfg, c, process, rec, &mut queues).await {
        if drain_over(stop_sends, drain_deadline) {
            consumer.shutdown().await;
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut refreshed = Instant::now();
    loop {
        // Drain only once no send can still land: every producer has finished.
        let draining = counters.producers_done.load(Ordering::SeqCst);
        // Pick up queues the topic gained (a route that grew after the first look).
        if refreshed.elapsed() >= Duration::from_secs(2) {
            refreshed = Instant::now();
            add_queues(&consumer, cfg, c, process, rec, &mut queues).await;
        }
        if draining && queues.values().all(|q| q.drained) {
            break;
        }
        if drain_over(stop_sends, drain_deadline) {
            consumer.shutdown().await;
            return false;
        }
        let mut idle = true;
        for q in queues.values_mut() {
            if draining && q.drained {
                continue;
            }
            let Some(offset) = u64::try_from(q.next).ok() else {
                continue;
            };
            let qn = queue_name(&q.mq);
            let mut inv = Op::new(0, Process::Client(process), OpType::Invoke, OpF::Poll);
            inv.queue = Some(qn.clone());
            inv.offset = Some(offset);
            if rec.record(inv).is_err() {
                return false;
            }
            counters.polls.fetch_add(1, Ordering::Relaxed);
            let res = consumer.pull(&q.mq, q.next, 32, cfg.pull_timeout).await;
            let op = match res {
                Ok(r) => {
                    let reads: Vec<Read> = r
                        .messages
                        .iter()
                        .filter_map(|m| {
                            Some(Read {
                                queue: qn.clone(),
                                offset: u64::try_from(m.queue_offset).ok()?,
                                value: String::from_utf8_lossy(&m.body).into_owned(),
                            })
                        })
                        .collect();
                    counters
                        .messages_read
                        .fetch_add(reads.len() as u64, Ordering::Relaxed);
                    if !reads.is_empty() {
                        idle = false;
                    }
                    q.next = r.next_begin_offset.max(q.next);
                    // Drained: nothing new, and past every acknowledged offset of the queue
                    // (a stale leader answering "nothing new" does not end the drain early).
                    let past_acked = counters
                        .acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(qn.as_str())
                        .is_none_or(|&top| u64::try_from(q.next).is_ok_and(|n| n > top));
                    if draining
                        && matches!(r.status, PullStatus::NoNewMsg)
                        && q.next >= r.max_offset
                        && past_acked
                    {
                        q.drained = true;
                    }
                    q.polls_since_commit += 1;
                    let mut op = Op::new(0, Process::Client(process), OpType::Ok, OpF::Poll);
                    op.reads = Some(reads);
                    op
                }
                Err(e) => {
                    let kind = if e.is_indeterminate() {
                        OpType::Info
                    } else {
                        OpType::Fail
                    };
                    let mut op = Op::new(0, Process::Client(process), kind, OpF::Poll);
                    op.error = Some(e.to_string());
                    op
                }
            };
            if rec.record(op).is_err() {
                return false;
            }
            if q.polls_since_commit >= cfg.commit_every {
                q.polls_since_commit = 0;
                commit(&consumer, q, &qn, process, &cfg.group, rec, counters).await;
            }
        }
        if idle {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for q in queues.values_mut() {
        let qn = queue_name(&q.mq);
        commit(&consumer, q, &qn, process, &cfg.group, rec, counters).await;
    }
    consumer.shutdown().await;
    true
}

/// Adds the topic's queues this consumer owns that it does not poll yet, recording an
/// `assign` of each. Returns whether it polls any queue now.
async fn add_queues(
    consumer: &PullConsumer,
    cfg: &WorkloadConfig,
    c: usize,
    process: u64,
    rec: &Recorder,
    queues: &mut BTreeMap<(String, i32), QueueState>,
) -> bool {
    if let Ok(qs) = consumer.fetch_subscribe_queues(&cfg.topic).await {
        for mq in qs {
            let mine = usize::try_from(mq.queue_id).unwrap_or(0) % cfg.consumers == c;
            let key = (mq.broker_name.clone(), mq.queue_id);
            if !mine || queues.contains_key(&key) {
                continue;
            }
            let mut inv = Op::new(0, Process::Client(process), OpType::Invoke, OpF::Assign);
            inv.queue = Some(queue_name(&mq));
            let _ = rec.record(inv.clone());
            inv.kind = OpType::Ok;
            let _ = rec.record(inv);
            queues.insert(
                key,
                QueueState {
                    mq,
                    next: 0,
                    polls_since_commit: 0,
                    drained: false,
                },
            );
        }
    }
    !queues.is_empty()
}

async fn commit(
    consumer: &PullConsumer,
    q: &QueueState,
    qn: &Queue,
    process: u64,
    group: &str,
    rec: &Recorder,
    counters: &Counters,
) {
    let Ok(offset) = u64::try_from(q.next) else {
        return;
    };
    let mut inv = Op::new(0, Process::Client(process), OpType::Invoke, OpF::Commit);
    inv.group = Some(group.to_owned());
    inv.queue = Some(qn.clone());
    inv.offset = Some(offset);
    if rec.record(inv).is_err() {
        return;
    }
    counters.commits.fetch_add(1, Ordering::Relaxed);
    let kind = match consumer.commit_offset(&q.mq, q.next).await {
        Ok(()) => (OpType::Ok, None),
        Err(e) if e.is_indeterminate() => (OpType::Info, Some(e.to_string())),
        Err(e) => (OpType::Fail, Some(e.to_string())),
    };
    let mut op = Op::new(0, Process::Client(process), kind.0, OpF::Commit);
    op.error = kind.1;
    let _ = rec.record(op);
}

fn drain_over(stop_sends: &AtomicBool, deadline: &std::sync::Mutex<Option<Instant>>) -> bool {
    stop_sends.load(Ordering::SeqCst)
        && deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|d| Instant::now() >= d)
}
