//! A userspace packet scheduler: the harness's own netem for kernels built without the netem
//! qdisc. An iptables `NFQUEUE` rule hands a node's outgoing packets to a netlink queue; a
//! thread inside the node's namespace holds each packet for `delay ± jitter` (per packet,
//! seeded) and then accepts it, or drops it with probability `loss`. Verdicts are given in
//! release order, not arrival order, so jitter larger than the gap between packets reorders
//! them on the wire, and `reorder` sends that share of packets at once, ahead of the held ones,
//! as netem's `reorder` does. The rule carries `--queue-bypass` and the queue is fail-open: if
//! the scheduler is gone or its queue is full, packets pass instead of being lost, so a broken
//! scheduler can never cut a node off for good.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::nemesis::Rng;
use crate::netns::{self, NetError};

/// Packets held at once; beyond it the kernel lets packets pass (fail-open).
pub const MAX_HELD: u32 = 4096;

/// What the scheduler does to each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    pub delay: Duration,
    pub jitter: Duration,
    /// Percentage of packets sent at once, ahead of the held ones.
    pub reorder_pct: u8,
    /// Percentage of packets dropped.
    pub loss_pct: u8,
}

/// The fate of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Drop,
    /// Accept once this much time has passed since the packet arrived.
    After(Duration),
}

/// Seeded per-packet decisions: the same seed and shape give the same sequence.
#[derive(Debug, Clone)]
pub struct Scheduler {
    shape: Shape,
    rng: Rng,
}

impl Scheduler {
    pub fn new(shape: Shape, seed: u64) -> Self {
        Scheduler {
            shape,
            rng: Rng::new(seed),
        }
    }

    /// Decides the next packet's fate: dropped, sent at once (`reorder`), or held for
    /// `delay` plus a uniform offset in `[-jitter, +jitter]` (never below zero).
    pub fn decide(&mut self) -> Decision {
        let s = self.shape;
        if s.loss_pct > 0 && self.rng.below(100) < u64::from(s.loss_pct) {
            return Decision::Drop;
        }
        if s.reorder_pct > 0 && self.rng.below(100) < u64::from(s.reorder_pct) {
            return Decision::After(Duration::ZERO);
        }
        let jitter_us = u64::try_from(s.jitter.as_micros()).unwrap_or(u64::MAX / 4);
        let offset = self.rng.below(2 * jitter_us + 1);
        let base = s.delay + Duration::from_micros(offset);
        Decision::After(base.saturating_sub(Duration::from_micros(jitter_us)))
    }
}

/// Counts of what a scheduler did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    pub dropped: u64,
    pub sent_early: u64,
}

/// A running scheduler thread bound to one queue in one namespace.
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<Stats>>>,
}

impl Running {
    /// Starts a scheduler on queue `queue` inside namespace `ns` and returns once the queue is
    /// bound (so a rule installed afterwards never sees an unbound queue), or the error.
    pub fn start(ns: &str, queue: u16, shape: Shape, seed: u64) -> Result<Running, NetError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let name = ns.to_owned();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("netq-{ns}"))
            .spawn(move || -> std::io::Result<Stats> {
                let bound = netns::enter_netns(&name)
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|()| bind(queue));
                match bound {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(q, queue, Scheduler::new(shape, seed), &flag)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        Err(e)
                    }
                }
            })
            .map_err(|e| NetError::Unsupported {
                what: "a packet scheduler thread".into(),
                detail: e.to_string(),
            })?;
        let failed = |detail: String| NetError::Unsupported {
            what: "an NFQUEUE packet queue (CONFIG_NETFILTER_NETLINK_QUEUE)".into(),
            detail,
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Running {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(failed(e))
            }
            Err(_) => {
                stop.store(true, Ordering::SeqCst);
                Err(failed(
                    "the scheduler did not bind its queue within 5 s".into(),
                ))
            }
        }
    }

    /// Stops the scheduler: every held packet is accepted at once, the queue is unbound.
    pub fn stop(mut self) -> std::io::Result<Stats> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> std::io::Result<Stats> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| std::io::Error::other("packet scheduler thread panicked"))?,
            None => Ok(Stats::default()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn bind(queue: u16) -> std::io::Result<nfq::Queue> {
    let mut q = nfq::Queue::open()?;
    q.bind(queue)?;
    // Only the metadata is needed: the verdict refers to the packet by id.
    q.set_copy_range(queue, 0)?;
    q.set_fail_open(queue, true)?;
    q.set_queue_max_len(queue, MAX_HELD)?;
    q.set_nonblocking(true);
    Ok(q)
}

fn serve(
    mut q: nfq::Queue,
    queue: u16,
    mut sched: Scheduler,
    stop: &AtomicBool,
) -> std::io::Result<Stats> {
    let mut stats = Stats::default();
    let mut seq = 0u64;
    // Min-heap on (release time, arrival order); the message carries the packet id.
    let mut held: BinaryHeap<Reverse<(Instant, u64, Held)>> = BinaryHeap::new();
    let result = loop {
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        let now = Instant::now();
        let mut idle = true;
        loop {
            match q.recv() {
                Ok(mut msg) => {
                    idle = false;
                    stats.packets += 1;
                    match sched.decide() {
                        Decision::Drop => {
                            stats.dropped += 1;
                            msg.set_verdict(nfq::Verdict::Drop);
                            q.verdict(msg)?;
                        }
                        Decision::After(d) if d.is_zero() => {
                            stats.sent_early += 1;
                            msg.set_verdict(nfq::Verdict::Accept);
                            q.verdict(msg)?;
                        }
                        Decision::After(d) => {
                            seq += 1;
                            held.push(Reverse((now + d, seq, Held(msg))));
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ENOBUFS: the kernel dropped notifications; the packets pass (fail-open).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
            if let Some(Reverse((_, _, Held(mut msg)))) = held.pop() {
                msg.set_verdict(nfq::Verdict::Accept);
                q.verdict(msg)?;
                idle = false;
            }
        }
        if idle {
            let next = held
                .peek()
                .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(1));
            std::thread::sleep(next.min(Duration::from_micros(200)));
        }
    };
    while let Some(Reverse((_, _, Held(mut msg)))) = held.pop() {
        msg.set_verdict(nfq::Verdict::Accept);
        q.verdict(msg)?;
    }
    let _ = q.unbind(queue);
    result.map(|()| stats)
}

/// A held packet; ordered only by the heap key before it.
struct Held(nfq::Message);

impl PartialEq for Held {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_shape_and_the_seed() {
        let shape = Shape {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(50),
            reorder_pct: 10,
            loss_pct: 5,
        };
        let run = |seed| {
            let mut s = Scheduler::new(shape, seed);
            (0..10_000).map(|_| s.decide()).collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same decisions");
        assert_ne!(a, run(2));
        let drops = a.iter().filter(|d| **d == Decision::Drop).count();
        let early = a
            .iter()
            .filter(|d| **d == Decision::After(Duration::ZERO))
            .count();
        assert!((300..700).contains(&drops), "~5% dropped, got {drops}");
        assert!(
            (700..1200).contains(&early),
            "~9.5% sent at once, got {early}"
        );
        let held: Vec<Duration> = a
            .iter()
            .filter_map(|d| match d {
                Decision::After(t) if !t.is_zero() => Some(*t),
                _ => None,
            })
            .collect();
        assert!(held
            .iter()
            .all(|t| *t >= Duration::from_millis(50) && *t <= Duration::from_millis(150)));
        let mean = held.iter().sum::<Duration>() / u32::try_from(held.len()).unwrap_or(1);
        assert!(
            mean > Duration::from_millis(95) && mean < Duration::from_millis(105),
            "mean delay {mean:?}"
        );
    }

    #[test]
    fn no_jitter_means_a_fixed_delay() {
        let mut s = Scheduler::new(
            Shape {
                delay: Duration::from_millis(20),
                ..Shape::default()
            },
            9,
        );
        for _ in 0..100 {
            assert_eq!(s.decide(), Decision::After(Duration::from_millis(20)));
        }
    }
}
