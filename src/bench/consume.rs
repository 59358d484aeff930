//! `raftmq bench consume`: pull consumers over every readable queue of a topic.
//!
//! One consumer of group `group` subscribes to the topic (`*`) and runs one task per queue:
//! pull up to `batch` messages with long polling (the broker holds an empty pull up to 1 s),
//! record each message's end-to-end latency (now minus its born timestamp; both are
//! milliseconds, so the resolution is 1 ms), continue from the next offset. The starting
//! offset of a queue is its minimum with `from_start`, else the group's committed offset, else
//! the queue's end (only new messages). With `drain`, a queue's task stops once it reaches the
//! queue's end as it was at the start, and the run ends when every queue has (a backlog
//! drain). Otherwise it stops at `duration` or after `messages`. Offsets reached are committed
//! at the end.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::stats::Recorder;
use super::{client_summary, positive, spawn_progress, BenchError, ClientSummary, RssPeak, Shape};
use crate::client::{ClientConfig, MessageQueue, PullConsumer, PullStatus};
use crate::remoting::SerializeType;

/// Options of a consume run.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub namesrv: String,
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Start every queue at its minimum offset instead of the committed offset.
    pub from_start: bool,
    /// Stop each queue at its end as seen at the start (drain a backlog).
    pub drain: bool,
    /// Upper bound of the run.
    pub duration: Duration,
    /// Stop after about this many messages (a pulled batch is counted whole).
    pub messages: Option<u64>,
    /// Messages per pull. Default 32 (RocketMQ's `pullBatchSize`).
    pub batch: usize,
    /// Broker process whose memory to sample once a second.
    pub broker_pid: Option<u32>,
    /// No progress lines.
    pub quiet: bool,
    /// Header encoding of the client's requests. Default JSON.
    pub serialize_type: SerializeType,
}

impl ConsumeOptions {
    /// Defaults: committed offsets, 30 s, batches of 32.
    pub fn new(
        namesrv: impl Into<String>,
        topic: impl Into<String>,
        group: impl Into<String>,
    ) -> Self {
        ConsumeOptions {
            namesrv: namesrv.into(),
            topic: topic.into(),
            group: group.into(),
            from_start: false,
            drain: false,
            duration: Duration::from_secs(30),
            messages: None,
            batch: 32,
            broker_pid: None,
            quiet: false,
            serialize_type: SerializeType::Json,
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        positive("--batch", self.batch)?;
        if self.batch > 1024 {
            return Err(BenchError::Option {
                option: "--batch",
                reason: "at most 1024".to_owned(),
            });
        }
        if self.messages == Some(0) {
            return Err(BenchError::Option {
                option: "--messages",
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a queue's task starts and (with `drain`) stops.
async fn bounds(
    consumer: &PullConsumer,
    queue: &MessageQueue,
    opts: &ConsumeOptions,
) -> Result<(i64, i64), BenchError> {
    let ctx = |what: &str| format!("{what} of {}:{}", queue.broker_name, queue.queue_id);
    let max = consumer
        .max_offset(queue)
        .await
        .map_err(|source| BenchError::Client {
            context: ctx("max offset"),
            source,
        })?;
    let start = if opts.from_start {
        consumer
            .min_offset(queue)
            .await
            .map_err(|source| BenchError::Client {
                context: ctx("min offset"),
                source,
            })?
    } else {
        match consumer.fetch_offset(queue).await {
            Ok(Some(o)) if o >= 0 => o,
            Ok(_) => max,
            Err(source) => {
                return Err(BenchError::Client {
                    context: ctx("committed offset"),
                    source,
                })
            }
        }
    };
    Ok((start, max))
}

/// Runs the consume benchmark and returns its summary.
pub async fn run(opts: &ConsumeOptions) -> Result<ClientSummary, BenchError> {
    opts.validate()?;
    let consumer = PullConsumer::start(
        ClientConfig {
            serialize_type: opts.serialize_type,
            ..ClientConfig::new(&opts.namesrv)
        },
        opts.group.clone(),
    )
    .await
    .map_err(|source| BenchError::Client {
        context: "starting the consumer".to_owned(),
        source,
    })?;
    consumer
        .subscribe(&opts.topic, "*")
        .map_err(|source| BenchError::Client {
            context: format!("subscribing to {}", opts.topic),
            source,
        })?;
    let queues = consumer
        .fetch_subscribe_queues(&opts.topic)
        .await
        .map_err(|source| BenchError::Client {
            context: format!("route of {}", opts.topic),
            source,
        })?;
    if queues.is_empty() {
        return Err(BenchError::Option {
            option: "--topic",
            reason: format!("{} has no readable queue", opts.topic),
        });
    }
    let mut plan = Vec::with_capacity(queues.len());
    for q in queues {
        let (from, end) = bounds(&consumer, &q, opts).await?;
        plan.push((q, from, end));
    }
    let backlog: i64 = plan.iter().map(|(_, f, e)| (e - f).max(0)).sum();
    if !opts.quiet {
        eprintln!(
            "consume {}: {} queues, backlog {backlog} messages",
            opts.topic,
            plan.len()
        );
    }

    let consumer = Arc::new(consumer);
    let rec = Arc::new(Recorder::new());
    let rss = Arc::new(RssPeak::new(opts.broker_pid));
    rss.sample();
    let limit = opts.messages.unwrap_or(u64::MAX);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let progress = spawn_progress(
        format!("consume {}", opts.topic),
        rec.clone(),
        rss.clone(),
        opts.quiet,
    );
    let batch = i32::try_from(opts.batch).unwrap_or(32);
    let drain = opts.drain;
    let mut tasks = Vec::with_capacity(plan.len());
    for (queue, from, end) in plan {
        let (consumer, rec) = (consumer.clone(), rec.clone());
        tasks.push(tokio::spawn(async move {
            let mut offset = from;
            let mut logged = 0u32;
            loop {
                let now = Instant::now();
                if now >= deadline || rec.messages() >= limit || (drain && offset >= end) {
                    break;
                }
                let hold = (deadline - now).min(Duration::from_secs(1));
                match consumer.pull_blocking(&queue, offset, batch, hold).await {
                    Ok(r) => {
                        if r.status == PullStatus::Found {
                            let t = now_ms();
                            let lat: Vec<u64> = r
                                .messages
                                .iter()
                                .map(|m| (t - m.born_timestamp).max(0) as u64 * 1000)
                                .collect();
                            let bytes: u64 = r.messages.iter().map(|m| m.body.len() as u64).sum();
                            rec.ok_each(bytes, &lat);
                        }
                        offset = r.next_begin_offset.max(offset);
                    }
                    Err(e) => {
                        rec.error();
                        if logged < 3 {
                            logged += 1;
                            tracing::warn!(queue = queue.queue_id, cause = %e, "pull failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (queue, offset)
        }));
    }
    let mut reached = Vec::new();
    for t in tasks {
        match t.await {
            Ok(q) => reached.push(q),
            Err(e) => {
                tracing::warn!(cause = %e, "consumer task ended abnormally");
                rec.error();
            }
        }
    }
    let elapsed = start.elapsed();
    progress.abort();
    rss.sample();
    for (q, offset) in &reached {
        if let Err(e) = consumer.commit_offset(q, *offset).await {
            tracing::warn!(queue = q.queue_id, cause = %e, "offset commit failed");
        }
    }
    let summary = client_summary(
        Shape {
            mode: "consume",
            topic: &opts.topic,
            size: 0,
            threads: 1,
            inflight: reached.len(),
        },
        elapsed,
        &rec,
        &rss,
    );
    if let Ok(c) = Arc::try_unwrap(consumer) {
        c.shutdown().await;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = ConsumeOptions::new("127.0.0.1:9876", "T", "G");
        assert!(ok.validate().is_ok());
        assert!(ConsumeOptions {
            batch: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ConsumeOptions {
            batch: 5000,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(ConsumeOptions {
            messages: Some(0),
            ..ok
        }
        .validate()
        .is_err());
    }
}
