//! The checker: one module per property, each turning a [`History`] into a typed report with
//! counts and a few examples, and the [`Verdict`] that combines them.
//!
//! Owns the shared [`Index`] (built in one pass over the history: interned queues, one record
//! per send, one record per message read, fault windows) that every property reads, so that a
//! million operations check in seconds. It knows nothing of clusters or files other than the
//! history; [`replicas`] compares store directories and is run separately on the stopped
//! cluster, its report folded into the verdict with [`CheckResults::with_replicas`].
//!
//! Properties and whether they can fail the run:
//!
//! | module | finds | fails the run |
//! |---|---|---|
//! | [`lost`] | acknowledged sends never read (prefix / middle / suffix of their queue) | yes |
//! | [`unexpected`] | reads of values never sent, of sends that failed, or before their send | yes |
//! | [`duplicate`] | a value at more than one (queue, offset); redeliveries | no (at-least-once) |
//! | [`inconsistent`] | one (queue, offset) holding two values (reads or acknowledgements) | yes |
//! | [`order`] | send order vs. offsets; consumer poll skips and backward polls | yes |
//! | [`offsets`] | committed consumer offsets fetched stale (rolled back) or never committed | yes |
//! | [`leaders`] | two leaders in one term; a node's term going down (role observations) | yes |
//! | [`availability`] | recovery time after each fault window; longest outage | only if never recovered |
//! | [`replicas`] | stopped replicas whose commitlog, entry index or consumequeues differ below the lowest commit index (added by [`CheckResults::with_replicas`]) | yes |
//!
//! The verdict is `invalid` as soon as one property fails; otherwise `unknown` if a fault
//! failed or never healed, or fewer sends were acknowledged than [`CheckConfig::min_acked`];
//! `valid` only when neither applies.

pub mod availability;
pub mod duplicate;
pub mod inconsistent;
pub mod leaders;
pub mod lost;
pub mod offsets;
pub mod order;
pub mod replicas;
pub mod unexpected;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{History, OpF, OpType, Phase, Process};

/// Knobs of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckConfig {
    /// Below this many acknowledged sends the verdict is at best `unknown`.
    pub min_acked: usize,
    /// Examples kept per kind of finding.
    pub examples: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            min_acked: 100,
            examples: 10,
        }
    }
}

/// Overall outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Valid,
    Invalid,
    Unknown,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Valid => "valid",
            Outcome::Invalid => "invalid",
            Outcome::Unknown => "unknown",
        })
    }
}

/// The outcome with the properties that failed and the reasons it is not conclusive.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    #[serde(rename = "verdict")]
    pub outcome: Outcome,
    /// Names of the properties that failed.
    pub failed: Vec<String>,
    /// Why the run cannot be called valid even though no property failed.
    pub unknown_reasons: Vec<String>,
}

/// A (queue, offset) position as it appears in examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loc {
    pub queue: String,
    pub offset: u64,
}

/// Facts about the history itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub operations: usize,
    pub sends: usize,
    pub sends_ok: usize,
    pub sends_fail: usize,
    pub sends_info: usize,
    pub polls: usize,
    pub polls_ok: usize,
    pub messages_read: usize,
    pub commits: usize,
    pub queues: usize,
    pub fault_windows: usize,
    pub failed_faults: usize,
    pub unhealed_faults: usize,
    pub duration_ns: u64,
}

/// Every property's report plus the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResults {
    /// Serialized flat: `verdict`, `failed`, `unknown_reasons` at the top level.
    #[serde(flatten)]
    pub verdict: Verdict,
    pub config: CheckConfig,
    pub stats: Stats,
    pub lost: lost::LostReport,
    pub unexpected: unexpected::UnexpectedReport,
    pub duplicate: duplicate::DuplicateReport,
    pub inconsistent: inconsistent::InconsistentReport,
    pub order: order::OrderReport,
    pub offsets: offsets::OffsetsReport,
    pub leaders: leaders::LeadersReport,
    pub availability: availability::AvailabilityReport,
    pub faults: Vec<FaultWindow>,
    pub failed_faults: Vec<FailedFault>,
    /// Replica comparison of the stopped cluster (`None`: not part of this check).
    pub replicas: Option<replicas::ReplicasReport>,
}

impl CheckResults {
    /// Folds the replica comparison into the verdict: `invalid` if replicas diverge,
    /// `unknown` (unless already invalid) if the comparison could not be done.
    pub fn with_replicas(mut self, report: replicas::ReplicasReport) -> Self {
        if !report.holds() {
            self.verdict.failed.push("replicas".into());
            self.verdict.outcome = Outcome::Invalid;
        }
        if let Some(e) = &report.error {
            self.verdict
                .unknown_reasons
                .push(format!("replica comparison not done: {e}"));
            if self.verdict.outcome == Outcome::Valid {
                self.verdict.outcome = Outcome::Unknown;
            }
        }
        self.replicas = Some(report);
        self
    }

    /// Marks the verdict not conclusive because a required replica comparison is missing.
    pub fn without_replicas(mut self, reason: &str) -> Self {
        self.verdict
            .unknown_reasons
            .push(format!("replica comparison not done: {reason}"));
        if self.verdict.outcome == Outcome::Valid {
            self.verdict.outcome = Outcome::Unknown;
        }
        self
    }
}

/// One send invocation and how it ended.
#[derive(Debug, Clone)]
pub struct SendRec<'h> {
    pub value: &'h str,
    pub process: &'h Process,
    pub outcome: OpType,
    /// Interned queue of the acknowledgement (or of the invocation, if it named one).
    pub queue: Option<u32>,
    /// Acknowledged offset (`ok` sends only).
    pub offset: Option<u64>,
    pub invoke_ns: u64,
    pub complete_ns: Option<u64>,
    /// Line of the completion, or of the invocation if none.
    pub line: usize,
}

/// One message returned by a successful poll.
#[derive(Debug, Clone)]
pub struct ReadRec<'h> {
    pub process: &'h Process,
    pub queue: u32,
    pub offset: u64,
    pub value: &'h str,
    /// Index into [`Index::sends`] of the send of this value, if it was ever sent.
    pub send: Option<u32>,
    /// Sequence number of the poll that returned it (counts successful polls from 0).
    pub poll: u32,
    pub invoke_ns: u64,
    pub time_ns: u64,
    pub line: usize,
}

/// A fault that was applied, from the completion of its start to the completion of its end.
#[derive(Debug, Clone, Serialize)]
pub struct FaultWindow {
    pub kind: String,
    pub targets: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// False if no successful end closed the window (it runs to the end of the history).
    pub healed: bool,
    pub start_line: usize,
}

/// A fault operation that failed or whose effect is unknown.
#[derive(Debug, Clone, Serialize)]
pub struct FailedFault {
    pub kind: String,
    pub phase: Phase,
    pub outcome: OpType,
    pub line: usize,
    pub error: Option<String>,
}

/// What every property reads, built in one pass.
#[derive(Debug)]
pub struct Index<'h> {
    pub history: &'h History,
    /// Queue names by interned id.
    pub queues: Vec<&'h str>,
    queue_ids: HashMap<&'h str, u32>,
    pub sends: Vec<SendRec<'h>>,
    pub send_by_value: HashMap<&'h str, u32>,
    pub reads: Vec<ReadRec<'h>>,
    pub faults: Vec<FaultWindow>,
    pub failed_faults: Vec<FailedFault>,
    pub stats: Stats,
}

impl<'h> Index<'h> {
    pub fn build(history: &'h History) -> Self {
        let mut ix = Index {
            history,
            queues: Vec::new(),
            queue_ids: HashMap::new(),
            sends: Vec::new(),
            send_by_value: HashMap::new(),
            reads: Vec::new(),
            faults: Vec::new(),
            failed_faults: Vec::new(),
            stats: Stats::default(),
        };
        let ops = history.ops();
        let (first, last) = history.span_ns();
        ix.stats.operations = ops.len();
        ix.stats.duration_ns = last - first;
        let mut open: HashMap<&'h str, Vec<usize>> = HashMap::new();
        let mut polls = 0u32;
        for (i, op) in ops.iter().enumerate() {
            match (op.f, op.kind) {
                (OpF::Send, OpType::Invoke) => {
                    let done = history.pair(i).map(|c| &ops[c]);
                    let value = op.value.as_deref().unwrap_or_default();
                    let outcome = history.outcome(i);
                    let queue = done
                        .and_then(|d| d.queue.as_ref())
                        .or(op.queue.as_ref())
                        .map(|q| ix.intern(q.as_str()));
                    let id = ix.sends.len() as u32;
                    ix.sends.push(SendRec {
                        value,
                        process: &op.process,
                        outcome,
                        queue,
                        offset: done.filter(|d| d.kind == OpType::Ok).and_then(|d| d.offset),
                        invoke_ns: op.time_ns,
                        complete_ns: done.map(|d| d.time_ns),
                        line: history.line(history.pair(i).unwrap_or(i)),
                    });
                    ix.send_by_value.insert(value, id);
                    ix.stats.sends += 1;
                    match outcome {
                        OpType::Ok => ix.stats.sends_ok += 1,
                        OpType::Fail => ix.stats.sends_fail += 1,
                        _ => ix.stats.sends_info += 1,
                    }
                }
                (OpF::Poll, OpType::Invoke) => ix.stats.polls += 1,
                (OpF::Poll, OpType::Ok) => {
                    ix.stats.polls_ok += 1;
                    let invoke_ns = history.pair(i).map_or(op.time_ns, |v| ops[v].time_ns);
                    for r in op.reads.iter().flatten() {
                        let queue = ix.intern(r.queue.as_str());
                        ix.reads.push(ReadRec {
                            process: &op.process,
                            queue,
                            offset: r.offset,
                            value: &r.value,
                            send: None,
                            poll: polls,
                            invoke_ns,
                            time_ns: op.time_ns,
                            line: history.line(i),
                        });
                    }
                    polls += 1;
                }
                (OpF::Commit, OpType::Invoke) => ix.stats.commits += 1,
                (OpF::Fault, OpType::Invoke) => {}
                (OpF::Fault, kind) => {
                    let kind_name = op.fault.as_deref().unwrap_or_default();
                    let phase = op.phase.unwrap_or(Phase::Start);
                    if kind != OpType::Ok {
                        ix.failed_faults.push(FailedFault {
                            kind: kind_name.to_owned(),
                            phase,
                            outcome: kind,
                            line: history.line(i),
                            error: op.error.clone(),
                        });
                        continue;
                    }
                    match phase {
                        Phase::Start => {
                            open.entry(kind_name).or_default().push(ix.faults.len());
                            ix.faults.push(FaultWindow {
                                kind: kind_name.to_owned(),
                                targets: op.targets.clone().unwrap_or_default(),
                                start_ns: op.time_ns,
                                end_ns: last,
                                healed: false,
                                start_line: history.line(i),
                            });
                        }
                        Phase::End => {
                            // Close the oldest open window of this kind.
                            let slot = open.get_mut(kind_name).filter(|v| !v.is_empty());
                            if let Some(w) = slot.map(|v| v.remove(0)) {
                                ix.faults[w].end_ns = op.time_ns;
                                ix.faults[w].healed = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for r in &mut ix.reads {
            r.send = ix.send_by_value.get(r.value).copied();
        }
        // Never-completed fault invocations failed to take effect as far as we know.
        for (i, op) in ops.iter().enumerate() {
            if op.f == OpF::Fault && op.kind == OpType::Invoke && history.pair(i).is_none() {
                ix.failed_faults.push(FailedFault {
                    kind: op.fault.clone().unwrap_or_default(),
                    phase: op.phase.unwrap_or(Phase::Start),
                    outcome: OpType::Info,
                    line: history.line(i),
                    error: Some("never completed".into()),
                });
            }
        }
        ix.stats.messages_read = ix.reads.len();
        ix.stats.queues = ix.queues.len();
        ix.stats.fault_windows = ix.faults.len();
        ix.stats.failed_faults = ix.failed_faults.len();
        ix.stats.unhealed_faults = ix.faults.iter().filter(|w| !w.healed).count();
        ix
    }

    fn intern(&mut self, q: &'h str) -> u32 {
        if let Some(&id) = self.queue_ids.get(q) {
            return id;
        }
        let id = self.queues.len() as u32;
        self.queues.push(q);
        self.queue_ids.insert(q, id);
        id
    }

    /// Interned id of a queue name, if it occurs in the history.
    pub fn queue_id(&self, name: &str) -> Option<u32> {
        self.queue_ids.get(name).copied()
    }

    /// Example location for an interned queue.
    pub fn loc(&self, queue: u32, offset: u64) -> Loc {
        Loc {
            queue: self.queues[queue as usize].to_owned(),
            offset,
        }
    }
}

/// Pushes `x` unless `v` already holds `cap` examples.
pub(crate) fn sample<T>(v: &mut Vec<T>, cap: usize, x: impl FnOnce() -> T) {
    if v.len() < cap {
        v.push(x());
    }
}

/// Runs every property over `history`.
pub fn check(history: &History, config: &CheckConfig) -> CheckResults {
    check_with_progress(history, config, |_, _| {})
}

/// Like [`check`], calling `progress(step, elapsed)` after each step.
pub fn check_with_progress(
    history: &History,
    config: &CheckConfig,
    mut progress: impl FnMut(&str, Duration),
) -> CheckResults {
    let mut t = Instant::now();
    let mut step = |name: &str| {
        progress(name, t.elapsed());
        t = Instant::now();
    };
    let ix = Index::build(history);
    step("index");
    let lost = lost::check(&ix, config);
    step("lost");
    let unexpected = unexpected::check(&ix, config);
    step("unexpected");
    let duplicate = duplicate::check(&ix, config);
    step("duplicate");
    let inconsistent = inconsistent::check(&ix, config);
    step("inconsistent");
    let order = order::check(&ix, config);
    step("order");
    let offsets = offsets::check(&ix, config);
    step("offsets");
    let leaders = leaders::check(&ix, config);
    step("leaders");
    let availability = availability::check(&ix, config);
    step("availability");

    let mut failed = Vec::new();
    let props: [(&str, bool); 8] = [
        ("lost", lost.holds()),
        ("unexpected", unexpected.holds()),
        ("duplicate", duplicate.holds()),
        ("inconsistent", inconsistent.holds()),
        ("order", order.holds()),
        ("offsets", offsets.holds()),
        ("leaders", leaders.holds()),
        ("availability", availability.holds()),
    ];
    for (name, holds) in props {
        if !holds {
            failed.push(name.to_owned());
        }
    }
    let mut unknown_reasons = Vec::new();
    if !ix.failed_faults.is_empty() {
        unknown_reasons.push(format!(
            "{} fault operation(s) failed or have an unknown effect",
            ix.failed_faults.len()
        ));
    }
    if ix.stats.unhealed_faults > 0 {
        unknown_reasons.push(format!(
            "{} fault window(s) never healed",
            ix.stats.unhealed_faults
        ));
    }
    if ix.stats.sends_ok < config.min_acked {
        unknown_reasons.push(format!(
            "only {} acknowledged sends (at least {} needed)",
            ix.stats.sends_ok, config.min_acked
        ));
    }
    let outcome = if !failed.is_empty() {
        Outcome::Invalid
    } else if !unknown_reasons.is_empty() {
        Outcome::Unknown
    } else {
        Outcome::Valid
    };
    CheckResults {
        verdict: Verdict {
            outcome,
            failed,
            unknown_reasons,
        },
        config: config.clone(),
        stats: ix.stats.clone(),
        lost,
        unexpected,
        duplicate,
        inconsistent,
        order,
        offsets,
        leaders,
        availability,
        faults: ix.faults.clone(),
        failed_faults: ix.failed_faults.clone(),
        replicas: None,
    }
}
