//! Availability: how long sends kept failing around each fault, and the longest outage.
//!
//! For every fault window (from the completion of the fault's start to the completion of its
//! end) this reports the sends acknowledged and failed inside it and the recovery time: from
//! the window's end to the first send acknowledged after it (openchaos's RTO). Independently
//! of faults it reports the longest stretch without any acknowledged send while sends were
//! being attempted, and the longest one that overlaps no fault window (an outage nothing
//! explains).
//!
//! Availability is a liveness figure, not a safety property. The run fails only when a healed
//! window never recovered although sends were still attempted after it.

use serde::Serialize;

use super::{CheckConfig, Index};
use crate::history::OpType;

#[derive(Debug, Clone, Serialize)]
pub struct WindowAvailability {
    pub kind: String,
    pub targets: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub healed: bool,
    pub sends_ok_during: usize,
    pub sends_failed_during: usize,
    /// Time from the end of the window to the first acknowledged send completing after it.
    pub recovery_ns: Option<u64>,
    /// Sends were invoked after the window but none was acknowledged.
    pub unrecovered: bool,
}

/// A stretch of time without an acknowledged send.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub start_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    /// Kinds of the fault windows it overlaps.
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AvailabilityReport {
    pub windows: Vec<WindowAvailability>,
    pub max_recovery_ns: Option<u64>,
    pub mean_recovery_ns: Option<u64>,
    pub unrecovered: usize,
    pub longest_unavailable: Option<Gap>,
    pub longest_unavailable_outside_faults: Option<Gap>,
}

impl AvailabilityReport {
    pub fn holds(&self) -> bool {
        self.unrecovered == 0
    }
}

pub fn check(ix: &Index<'_>, _config: &CheckConfig) -> AvailabilityReport {
    let mut ok_done: Vec<u64> = Vec::new();
    let mut bad_done: Vec<u64> = Vec::new();
    let mut invoked: Vec<u64> = Vec::with_capacity(ix.sends.len());
    for s in &ix.sends {
        invoked.push(s.invoke_ns);
        match (s.outcome, s.complete_ns) {
            (OpType::Ok, Some(t)) => ok_done.push(t),
            (_, Some(t)) => bad_done.push(t),
            _ => {}
        }
    }
    ok_done.sort_unstable();
    bad_done.sort_unstable();
    invoked.sort_unstable();
    let count_in =
        |v: &[u64], a: u64, b: u64| v.partition_point(|&t| t <= b) - v.partition_point(|&t| t < a);

    let mut rep = AvailabilityReport::default();
    let mut recoveries = Vec::new();
    for w in &ix.faults {
        let first_ok = ok_done.get(ok_done.partition_point(|&t| t < w.end_ns));
        let recovery_ns = if w.healed {
            first_ok.map(|t| t - w.end_ns)
        } else {
            None
        };
        let attempted_after = invoked.partition_point(|&t| t < w.end_ns) < invoked.len();
        let unrecovered = w.healed && recovery_ns.is_none() && attempted_after;
        rep.unrecovered += usize::from(unrecovered);
        recoveries.extend(recovery_ns);
        rep.windows.push(WindowAvailability {
            kind: w.kind.clone(),
            targets: w.targets.clone(),
            start_ns: w.start_ns,
            end_ns: w.end_ns,
            healed: w.healed,
            sends_ok_during: count_in(&ok_done, w.start_ns, w.end_ns),
            sends_failed_during: count_in(&bad_done, w.start_ns, w.end_ns),
            recovery_ns,
            unrecovered,
        });
    }
    rep.max_recovery_ns = recoveries.iter().copied().max();
    if !recoveries.is_empty() {
        rep.mean_recovery_ns = Some(recoveries.iter().sum::<u64>() / recoveries.len() as u64);
    }

    // Gaps between acknowledgements, from the first send attempt to the last one (its
    // completion, or its invocation if it never completed): time without sends is not an
    // outage.
    let Some(&begin) = invoked.first() else {
        return rep;
    };
    let end = ix
        .sends
        .iter()
        .map(|s| s.complete_ns.unwrap_or(s.invoke_ns))
        .max()
        .unwrap_or(begin);
    let mut points = Vec::with_capacity(ok_done.len() + 2);
    points.push(begin);
    points.extend(ok_done.iter().copied().filter(|&t| t >= begin));
    points.push(end);
    let overlapping = |a: u64, b: u64| -> Vec<String> {
        let mut kinds: Vec<String> = ix
            .faults
            .iter()
            .filter(|w| w.start_ns < b && a < w.end_ns)
            .map(|w| w.kind.clone())
            .collect();
        kinds.dedup();
        kinds
    };
    let mut longest: Option<(u64, u64)> = None;
    let mut longest_free: Option<(u64, u64)> = None;
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if longest.is_none_or(|(x, y)| b - a > y - x) {
            longest = Some((a, b));
        }
        if longest_free.is_none_or(|(x, y)| b - a > y - x) && overlapping(a, b).is_empty() {
            longest_free = Some((a, b));
        }
    }
    let gap = |(a, b): (u64, u64)| Gap {
        start_ns: a,
        end_ns: b,
        duration_ns: b - a,
        faults: overlapping(a, b),
    };
    rep.longest_unavailable = longest.map(gap);
    rep.longest_unavailable_outside_faults = longest_free.map(gap);
    rep
}
