//! Availability: how long sends kept failing around each fault, and the longest outage.
//!
//! For every fault window (from the completion of the fault's start to the completion of its
//! end) this reports the sends acknowledged and failed inside it and the recovery time: from
//! the window's end to the first send acknowledged after it (openchaos's RTO). Independently
//! of faults it reports the longest stretch without any acknowledged send while sends were
//! being attempted, and the longest one that overlaps no fault window (an outage nothing
//! explains).
//!
//! With several broker groups a producer whose send to a faulted group fails retries on
//! another group, so the first acknowledged send says little about the faulted group. When
//! role observations name each node's group (`group`), a window whose targets all belong to
//! one group also gets that group's recovery time: from the window's end to the first send
//! acknowledged on a queue of that group. A queue belongs to group `G` when its name has the
//! form `<topic>@G:<queueId>` (the workload's queue names).
//!
//! Availability is a liveness figure, not a safety property. The run fails only when a healed
//! window never recovered although sends were still attempted after it.

use std::collections::HashMap;

use serde::Serialize;

use super::{CheckConfig, Index};
use crate::history::{OpF, OpType};

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
    /// The broker group every target belongs to (runs with several groups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Time from the end of the window to the first send acknowledged on that group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_recovery_ns: Option<u64>,
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
    /// Longest recovery of the faulted group itself, over windows that hit one group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_group_recovery_ns: Option<u64>,
    pub unrecovered: usize,
    pub longest_unavailable: Option<Gap>,
    pub longest_unavailable_outside_faults: Option<Gap>,
}

impl AvailabilityReport {
    pub fn holds(&self) -> bool {
        self.unrecovered == 0
    }
}

/// The broker group of a queue named `<topic>@<group>:<queueId>`.
pub fn queue_group(queue: &str) -> Option<&str> {
    let (_, rest) = queue.rsplit_once('@')?;
    let (group, id) = rest.rsplit_once(':')?;
    (!group.is_empty() && id.parse::<i64>().is_ok()).then_some(group)
}

/// The one group all node names in `targets` belong to (names are the words of each target,
/// so partition descriptions such as `a0 -/- a1,a2` work too).
fn window_group<'a>(targets: &[String], node_group: &HashMap<&str, &'a str>) -> Option<&'a str> {
    let mut found: Option<&str> = None;
    for t in targets {
        for word in t.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            if let Some(&g) = node_group.get(word) {
                match found {
                    Some(f) if f != g => return None,
                    _ => found = Some(g),
                }
            }
        }
    }
    found
}

pub fn check(ix: &Index<'_>, _config: &CheckConfig) -> AvailabilityReport {
    // Node -> group from role observations; group -> acknowledgement times.
    let mut node_group: HashMap<&str, &str> = HashMap::new();
    for op in ix.history.ops() {
        if op.f == OpF::Role && op.kind == OpType::Ok {
            for n in op.nodes.iter().flatten() {
                if let Some(g) = n.group.as_deref() {
                    node_group.insert(n.node.as_str(), g);
                }
            }
        }
    }
    let mut ok_by_group: HashMap<&str, Vec<u64>> = HashMap::new();
    if !node_group.is_empty() {
        for s in &ix.sends {
            if let (OpType::Ok, Some(t), Some(q)) = (s.outcome, s.complete_ns, s.queue) {
                if let Some(g) = queue_group(ix.queues[q as usize]) {
                    ok_by_group.entry(g).or_default().push(t);
                }
            }
        }
        for v in ok_by_group.values_mut() {
            v.sort_unstable();
        }
    }
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
        let group = window_group(&w.targets, &node_group);
        let group_recovery_ns = group
            .filter(|_| w.healed)
            .and_then(|g| ok_by_group.get(g))
            .and_then(|v| v.get(v.partition_point(|&t| t < w.end_ns)))
            .map(|t| t - w.end_ns);
        if let Some(r) = group_recovery_ns {
            rep.max_group_recovery_ns = Some(rep.max_group_recovery_ns.unwrap_or(0).max(r));
        }
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
            group: group.map(str::to_owned),
            group_recovery_ns,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_carry_their_group() {
        assert_eq!(queue_group("JepsenTopic@broker-b:3"), Some("broker-b"));
        assert_eq!(queue_group("a@b@broker-a:0"), Some("broker-a"));
        assert_eq!(queue_group("q0"), None);
        assert_eq!(queue_group("T@broker-a:x"), None);
    }

    #[test]
    fn a_window_belongs_to_a_group_only_if_every_target_does() {
        let ng: HashMap<&str, &str> = [("a0", "A"), ("a1", "A"), ("b0", "B")].into();
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(window_group(&t(&["a0", "a1"]), &ng), Some("A"));
        assert_eq!(
            window_group(&t(&["a0 -/- a1", "a1 -/- a0"]), &ng),
            Some("A")
        );
        assert_eq!(window_group(&t(&["a0", "b0"]), &ng), None);
        assert_eq!(window_group(&t(&["n7"]), &ng), None);
    }
}
