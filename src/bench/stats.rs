//! Latency statistics for the benchmarks: a small log-bucketed histogram and the shared
//! recorder that bench tasks report into.
//!
//! [`Histogram`] keeps counts in buckets whose width grows with the value: values below 32
//! are exact, and above that every power-of-two range is split into 32 equal sub-buckets, so
//! a reported percentile is at most 1/32 (about 3 %) above the true value. It covers the
//! whole `u64` range in 1 920 counters (15 KiB), and recording is a few integer operations.
//! Units are the caller's (the benchmarks record microseconds).
//!
//! [`Recorder`] is what concurrent bench tasks share: totals since the start plus a window
//! that the once-a-second progress line takes and resets.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

/// A log-bucketed histogram of `u64` values (at most ~3 % relative error per value).
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((u64::from(shift) + 1) * SUB + sub) as usize
}

/// The largest value that falls into bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let sub = i % SUB;
    let low = (SUB + sub) << shift;
    low.saturating_add((1u64 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value, exact (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The arithmetic mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the upper edge of the bucket holding the
    /// `ceil(q * count)`-th smallest value, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max).max(self.min());
            }
        }
        self.max
    }

    /// p50, p99, p99.9 and max in one value (microsecond histograms).
    pub fn latency(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            mean_us: self.mean(),
            p50_us: self.quantile(0.50),
            p99_us: self.quantile(0.99),
            p999_us: self.quantile(0.999),
            max_us: self.max(),
        }
    }
}

/// Latency percentiles of a microsecond histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl std::fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {}  p99 {}  p999 {}  max {}",
            fmt_us(self.p50_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            fmt_us(self.max_us)
        )
    }
}

/// Microseconds as milliseconds with two decimals (`1.25 ms`).
pub fn fmt_us(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// Microseconds of a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Counts of one window or of the whole run.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub latency: Histogram,
}

impl Tally {
    fn add(&mut self, messages: u64, bytes: u64, latency_us: u64) {
        self.messages += messages;
        self.bytes += bytes;
        for _ in 0..messages {
            self.latency.record(latency_us);
        }
    }
}

/// Shared by the tasks of one bench run: totals and the current progress window.
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<(Tally, Tally)>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    fn lock(&self) -> MutexGuard<'_, (Tally, Tally)> {
        // Nothing panics while holding it, so a poisoned lock still holds consistent counts.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `messages` messages of `bytes` payload bytes in total completed, each with latency
    /// `latency_us`.
    pub fn ok(&self, messages: u64, bytes: u64, latency_us: u64) {
        let mut g = self.lock();
        g.0.add(messages, bytes, latency_us);
        g.1.add(messages, bytes, latency_us);
    }

    /// Messages with individual latencies (a pulled batch: one end-to-end latency each).
    pub fn ok_each(&self, bytes: u64, latencies_us: &[u64]) {
        let mut g = self.lock();
        let n = latencies_us.len() as u64;
        let (total, window) = &mut *g;
        for t in [total, window] {
            t.messages += n;
            t.bytes += bytes;
            for l in latencies_us {
                t.latency.record(*l);
            }
        }
    }

    /// One failed operation.
    pub fn error(&self) {
        let mut g = self.lock();
        g.0.errors += 1;
        g.1.errors += 1;
    }

    /// Everything since the start.
    pub fn total(&self) -> Tally {
        self.lock().0.clone()
    }

    /// Messages completed since the start.
    pub fn messages(&self) -> u64 {
        self.lock().0.messages
    }

    /// The window since the previous call, and a new empty window.
    pub fn take_window(&self) -> Tally {
        std::mem::take(&mut self.lock().1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact_and_buckets_are_contiguous() {
        for v in 0..SUB {
            assert_eq!(bucket_of(v), v as usize);
            assert_eq!(bucket_high(v as usize), v);
        }
        let mut prev = bucket_of(0);
        for v in 1..200_000u64 {
            let b = bucket_of(v);
            assert!(b == prev || b == prev + 1, "v {v}: {prev} -> {b}");
            assert!(bucket_high(b) >= v, "v {v} above its bucket {b}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "v {v} fits the previous bucket");
            }
            prev = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles_are_within_three_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                got >= want && got <= want * 1.032,
                "q {q}: got {got}, want about {want}"
            );
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.min(), 1);
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn empty_and_single_value() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.latency().max_us, 0);
        h.record(12_345);
        assert_eq!(h.quantile(0.0), 12_345);
        assert_eq!(h.quantile(0.5), 12_345);
        assert_eq!(h.quantile(1.0), 12_345);
    }

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(5);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), 5);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.quantile(0.5), 10);
    }

    #[test]
    fn recorder_windows_reset_but_totals_do_not() {
        let r = Recorder::new();
        r.ok(1, 1024, 100);
        r.ok_each(2048, &[200, 300]);
        r.error();
        let w = r.take_window();
        assert_eq!((w.messages, w.bytes, w.errors), (3, 3072, 1));
        assert_eq!(w.latency.count(), 3);
        r.ok(1, 10, 5);
        let w = r.take_window();
        assert_eq!((w.messages, w.errors), (1, 0));
        let t = r.total();
        assert_eq!((t.messages, t.bytes, t.errors), (4, 3082, 1));
        assert_eq!(t.latency.max(), 300);
    }
}
