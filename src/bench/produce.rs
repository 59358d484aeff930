//! `raftmq bench produce`: closed-loop producers.
//!
//! `threads` producers, each on a client instance of its own (its own connections), share
//! `inflight` sender tasks round-robin; each task sends one message, waits for the
//! acknowledgement, and sends the next, so exactly `inflight` sends are outstanding while the
//! run lasts. Latency is measured from the send call to its result (retries inside the client
//! included). The run stops at `duration` or after `messages` sends, whichever comes first;
//! sends already in flight then finish and are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::stats::{micros, Recorder};
use super::{client_summary, positive, spawn_progress, BenchError, ClientSummary, RssPeak, Shape};
use crate::client::{ClientConfig, Message, Producer, ProducerConfig};
use crate::remoting::SerializeType;

/// Largest body accepted (the broker's default `maxMessageSize`).
pub const MAX_SIZE: usize = 4 << 20;

/// Options of a produce run.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Nameserver list (`host:port;host:port`).
    pub namesrv: String,
    pub topic: String,
    /// Producer group. Default `raftmq_bench_producer`.
    pub group: String,
    /// Body size in bytes.
    pub size: usize,
    /// Producer client instances (each with its own connections).
    pub threads: usize,
    /// Sends in flight in total.
    pub inflight: usize,
    /// Measuring time.
    pub duration: Duration,
    /// Stop after this many sends (counted from the start of measuring).
    pub messages: Option<u64>,
    /// Client send timeout (retries included). Default 3 s.
    pub send_timeout: Duration,
    /// Broker process whose memory to sample once a second.
    pub broker_pid: Option<u32>,
    /// No progress lines.
    pub quiet: bool,
    /// Header encoding of the client's requests. Default JSON.
    pub serialize_type: SerializeType,
}

impl ProduceOptions {
    /// Defaults: 1 KiB, 1 thread, 64 in flight, 30 s.
    pub fn new(namesrv: impl Into<String>, topic: impl Into<String>) -> Self {
        ProduceOptions {
            namesrv: namesrv.into(),
            topic: topic.into(),
            group: "raftmq_bench_producer".to_owned(),
            size: 1024,
            threads: 1,
            inflight: 64,
            duration: Duration::from_secs(30),
            messages: None,
            send_timeout: Duration::from_secs(3),
            broker_pid: None,
            quiet: false,
            serialize_type: SerializeType::Json,
        }
    }

    fn validate(&self) -> Result<(), BenchError> {
        positive("--size", self.size)?;
        positive("--threads", self.threads)?;
        positive("--inflight", self.inflight)?;
        if self.size > MAX_SIZE {
            return Err(BenchError::Option {
                option: "--size",
                reason: format!("at most {MAX_SIZE} bytes"),
            });
        }
        if self.inflight > 100_000 {
            return Err(BenchError::Option {
                option: "--inflight",
                reason: "at most 100000".to_owned(),
            });
        }
        if self.threads > 256 {
            return Err(BenchError::Option {
                option: "--threads",
                reason: "at most 256".to_owned(),
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

/// A body of `size` printable bytes (a repeating alphabet, so nothing compresses it away by
/// accident and it is readable in a dump).
fn body(size: usize) -> Bytes {
    (0..size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Runs the produce benchmark and returns its summary.
pub async fn run(opts: &ProduceOptions) -> Result<ClientSummary, BenchError> {
    opts.validate()?;
    let body = body(opts.size);
    let mut producers = Vec::with_capacity(opts.threads);
    for i in 0..opts.threads {
        let mut cfg = ProducerConfig::new(opts.group.clone());
        cfg.send_timeout = opts.send_timeout;
        let p = Producer::start(
            ClientConfig {
                serialize_type: opts.serialize_type,
                ..ClientConfig::new(&opts.namesrv)
            },
            cfg,
        )
        .await
        .map_err(|source| BenchError::Client {
            context: format!("starting producer {i}"),
            source,
        })?;
        // Warm-up, not measured: route lookup (and auto-creation of the topic) and the
        // connection to the leader.
        let warm_deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match p.send(Message::new(&opts.topic, body.clone())).await {
                Ok(_) => break,
                Err(source) if Instant::now() > warm_deadline => {
                    return Err(BenchError::Client {
                        context: format!("warm-up send of producer {i} to {}", opts.topic),
                        source,
                    })
                }
                Err(e) => {
                    tracing::debug!(cause = %e, "warm-up send failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        producers.push(Arc::new(p));
    }

    let rec = Arc::new(Recorder::new());
    let rss = Arc::new(RssPeak::new(opts.broker_pid));
    rss.sample();
    let claimed = Arc::new(AtomicU64::new(0));
    let limit = opts.messages.unwrap_or(u64::MAX);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let progress = spawn_progress(
        format!("produce {}B x{}", opts.size, opts.inflight),
        rec.clone(),
        rss.clone(),
        opts.quiet,
    );
    let mut tasks = Vec::with_capacity(opts.inflight);
    for i in 0..opts.inflight {
        let producer = producers[i % producers.len()].clone();
        let (rec, claimed, body, topic) = (
            rec.clone(),
            claimed.clone(),
            body.clone(),
            opts.topic.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let size = body.len() as u64;
            let mut logged = 0u32;
            while Instant::now() < deadline && claimed.fetch_add(1, Ordering::Relaxed) < limit {
                let t0 = Instant::now();
                match producer.send(Message::new(&topic, body.clone())).await {
                    Ok(_) => rec.ok(1, size, micros(t0.elapsed())),
                    Err(e) => {
                        rec.error();
                        if logged < 3 {
                            logged += 1;
                            tracing::warn!(cause = %e, "send failed");
                        }
                        // A closed loop against a failing broker must not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::warn!(cause = %e, "sender task ended abnormally");
            rec.error();
        }
    }
    let elapsed = start.elapsed();
    progress.abort();
    rss.sample();
    let summary = client_summary(
        Shape {
            mode: "produce",
            topic: &opts.topic,
            size: opts.size,
            threads: opts.threads,
            inflight: opts.inflight,
        },
        elapsed,
        &rec,
        &rss,
    );
    for p in producers {
        if let Ok(p) = Arc::try_unwrap(p) {
            p.shutdown().await;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = ProduceOptions::new("127.0.0.1:9876", "T");
        assert!(ok.validate().is_ok());
        for bad in [
            ProduceOptions {
                size: 0,
                ..ok.clone()
            },
            ProduceOptions {
                size: MAX_SIZE + 1,
                ..ok.clone()
            },
            ProduceOptions {
                threads: 0,
                ..ok.clone()
            },
            ProduceOptions {
                inflight: 0,
                ..ok.clone()
            },
            ProduceOptions {
                messages: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(BenchError::Option { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn body_has_the_requested_size() {
        assert_eq!(body(1024).len(), 1024);
        assert_eq!(&body(3)[..], b"abc");
    }
}
