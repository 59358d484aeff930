//! `raftmq bench`: load generators that measure raftmq on the machine they run on.
//!
//! - [`produce`]: closed-loop producers over the project's client ([`crate::client`]) against
//!   any nameserver: a fixed number of sends in flight, latency from call to acknowledgement.
//! - [`consume`]: pull consumers over every queue of a topic: throughput and end-to-end
//!   latency from the producer's born timestamp.
//! - [`raft`]: a Raft group on loopback inside this process, proposing through the proposer
//!   (no RocketMQ protocol): throughput against the disk's own sync rate measured in the same
//!   run, and leader-failover times.
//! - [`stats`]: the latency histogram and the recorder bench tasks share.
//!
//! This module only drives public APIs (the client, `raftmq_raft::start_node`); it knows no
//! broker internals. Every run is bounded in time and in count. Progress goes to stderr once
//! a second; the final summary is returned to the caller (the binary prints it as text or
//! JSON).

pub mod consume;
pub mod produce;
pub mod raft;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

use stats::{fmt_us, LatencySummary, Recorder};

/// Why a bench could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },
    /// The client failed before any measurement could start.
    #[error("{context}: {source}")]
    Client {
        context: String,
        #[source]
        source: crate::client::ClientError,
    },
    /// The in-process Raft group failed.
    #[error("{context}: {source}")]
    Raft {
        context: String,
        #[source]
        source: raftmq_raft::RaftGroupError,
    },
    /// A file or socket operation of the bench itself failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A wait exceeded its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Parses `30s`, `500ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" | "min" => v * 60.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (ms, s or m)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{s:?} must be positive and at most 24 h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Resident memory of a process from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rss {
    /// `VmRSS`: everything resident.
    pub vm_rss_kib: u64,
    /// `RssAnon`: resident anonymous memory (heap, stacks): resident apart from file pages.
    pub rss_anon_kib: u64,
    /// `RssFile`: resident file-backed pages (mapped commitlog and queue files).
    pub rss_file_kib: u64,
}

impl Rss {
    /// Reads `/proc/<pid>/status`; `None` if the process is gone or the file has no RSS lines.
    pub fn read(pid: u32) -> Option<Rss> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Rss {
            vm_rss_kib: field("VmRSS:")?,
            rss_anon_kib: field("RssAnon:").unwrap_or(0),
            rss_file_kib: field("RssFile:").unwrap_or(0),
        })
    }

    fn max(self, o: Rss) -> Rss {
        Rss {
            vm_rss_kib: self.vm_rss_kib.max(o.vm_rss_kib),
            rss_anon_kib: self.rss_anon_kib.max(o.rss_anon_kib),
            rss_file_kib: self.rss_file_kib.max(o.rss_file_kib),
        }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (RssAnon {:.1} MiB, RssFile {:.1} MiB)",
            self.vm_rss_kib as f64 / 1024.0,
            self.rss_anon_kib as f64 / 1024.0,
            self.rss_file_kib as f64 / 1024.0
        )
    }
}

/// Peak of each RSS figure over the samples taken.
#[derive(Debug, Default)]
pub(crate) struct RssPeak {
    pid: Option<u32>,
    peak: std::sync::Mutex<Option<Rss>>,
}

impl RssPeak {
    pub(crate) fn new(pid: Option<u32>) -> RssPeak {
        RssPeak {
            pid,
            peak: std::sync::Mutex::new(None),
        }
    }

    /// Samples once; returns the sample.
    pub(crate) fn sample(&self) -> Option<Rss> {
        let now = Rss::read(self.pid?)?;
        let mut g = self.peak.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(g.map_or(now, |p| p.max(now)));
        Some(now)
    }

    pub(crate) fn peak(&self) -> Option<Rss> {
        *self.peak.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Prints one progress line a second to stderr (`label [  3s] msgs/s MB/s p99 errors`)
/// from the recorder's window, sampling the broker's memory when a pid was given. Abort
/// the handle to stop it.
pub(crate) fn spawn_progress(
    label: String,
    rec: Arc<Recorder>,
    rss: Arc<RssPeak>,
    quiet: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let w = rec.take_window();
            let secs = last.elapsed().as_secs_f64().max(1e-6);
            last = Instant::now();
            let mem = rss.sample();
            if quiet {
                continue;
            }
            let mem = mem.map(|r| format!("  {r}")).unwrap_or_default();
            eprintln!(
                "{label} [{:>4}s] {:>9.0} msgs/s {:>8.2} MB/s  p99 {:>10}  errors {}{mem}",
                start.elapsed().as_secs(),
                w.messages as f64 / secs,
                w.bytes as f64 / secs / 1e6,
                fmt_us(w.latency.quantile(0.99)),
                w.errors,
            );
        }
    })
}

/// Final figures of a produce or consume run.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSummary {
    /// `produce` or `consume`.
    pub mode: String,
    pub topic: String,
    /// Payload size of produced messages (0 for consume: measured from the bodies).
    pub size: usize,
    pub threads: usize,
    pub inflight: usize,
    pub elapsed_s: f64,
    pub messages: u64,
    /// Payload (body) bytes.
    pub bytes: u64,
    pub errors: u64,
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// produce: send call to acknowledgement. consume: born timestamp (ms) to receipt.
    pub latency: LatencySummary,
    /// Peak broker memory over the run (when `--broker-pid` was given).
    pub broker_rss: Option<Rss>,
}

impl std::fmt::Display for ClientSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} {}: {} messages in {:.2} s, {} errors",
            self.mode, self.topic, self.messages, self.elapsed_s, self.errors
        )?;
        writeln!(
            f,
            "  throughput: {:.0} msgs/s, {:.2} MB/s",
            self.msgs_per_s, self.mb_per_s
        )?;
        let what = if self.mode == "consume" {
            "end-to-end latency (born timestamp to receipt, ms resolution)"
        } else {
            "send latency"
        };
        write!(f, "  {what}: {}", self.latency)?;
        if let Some(r) = self.broker_rss {
            write!(f, "\n  broker peak memory: {r}")?;
        }
        Ok(())
    }
}

/// What a client run was (the first fields of its summary).
pub(crate) struct Shape<'a> {
    pub mode: &'a str,
    pub topic: &'a str,
    pub size: usize,
    pub threads: usize,
    pub inflight: usize,
}

/// Builds a summary from the recorder's totals.
pub(crate) fn client_summary(
    shape: Shape<'_>,
    elapsed: Duration,
    rec: &Recorder,
    rss: &RssPeak,
) -> ClientSummary {
    let t = rec.total();
    let secs = elapsed.as_secs_f64().max(1e-6);
    ClientSummary {
        mode: shape.mode.to_owned(),
        topic: shape.topic.to_owned(),
        size: shape.size,
        threads: shape.threads,
        inflight: shape.inflight,
        elapsed_s: secs,
        messages: t.messages,
        bytes: t.bytes,
        errors: t.errors,
        msgs_per_s: t.messages as f64 / secs,
        mb_per_s: t.bytes as f64 / secs / 1e6,
        latency: t.latency.latency(),
        broker_rss: rss.peak(),
    }
}

/// Validates a positive count option.
pub(crate) fn positive(option: &'static str, v: usize) -> Result<(), BenchError> {
    if v == 0 {
        return Err(BenchError::Option {
            option,
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn rss_of_this_process_is_read() {
        let r = Rss::read(std::process::id()).expect("own /proc status");
        assert!(r.vm_rss_kib > 0);
        assert!(r.rss_anon_kib + r.rss_file_kib <= r.vm_rss_kib + 4);
        assert!(Rss::read(u32::MAX).is_none());
    }
}
