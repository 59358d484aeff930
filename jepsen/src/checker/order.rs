//! Ordering: offsets must follow the order of sends, and consumers must walk each queue
//! without gaps or steps back.
//!
//! RocketMQ queue offsets are dense (0, 1, 2, ... per queue) and assigned by the leader in log
//! order, so:
//! * `nonmonotonic_send`: a producer's later acknowledged send to a queue got an offset not
//!   above its earlier one (Jepsen's `nonmonotonic-send`);
//! * `realtime_send`: send B was invoked after send A to the same queue was acknowledged, yet B
//!   sits at a lower offset. A committed entry precedes every entry proposed after it, across
//!   any producers and any leader change;
//! * `poll_skip` / `nonmonotonic_poll`: between two polls of one consumer on one queue the next
//!   offset read (or asked for) is beyond the last one + 1, or not above it; a poll's answer
//!   starting elsewhere than the offset it asked for counts the same way;
//! * `int_poll_skip` / `int_nonmonotonic_poll`: the same inside a single poll's result.
//!
//! An `assign` operation resets a consumer's positions (all queues, or the one it names), so a
//! rebalance or a restart from a committed offset is not an anomaly. Every finding fails the
//! run.

use std::collections::HashMap;

use serde::Serialize;

use super::{CheckConfig, Index};
use crate::history::{OpF, OpType, Process};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    NonmonotonicSend,
    RealtimeSend,
    PollSkip,
    NonmonotonicPoll,
    IntPollSkip,
    IntNonmonotonicPoll,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderExample {
    pub kind: OrderKind,
    pub process: String,
    pub queue: String,
    /// The earlier offset (previous read, requested offset, or the earlier send's offset).
    pub before: u64,
    /// The offset that broke the order.
    pub after: u64,
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderReport {
    pub nonmonotonic_send: usize,
    pub realtime_send: usize,
    pub poll_skip: usize,
    pub nonmonotonic_poll: usize,
    pub int_poll_skip: usize,
    pub int_nonmonotonic_poll: usize,
    pub examples: Vec<OrderExample>,
}

impl OrderReport {
    pub fn holds(&self) -> bool {
        self.nonmonotonic_send == 0
            && self.realtime_send == 0
            && self.poll_skip == 0
            && self.nonmonotonic_poll == 0
            && self.int_poll_skip == 0
            && self.int_nonmonotonic_poll == 0
    }

    fn note(&mut self, cap: usize, ex: OrderExample) {
        match ex.kind {
            OrderKind::NonmonotonicSend => self.nonmonotonic_send += 1,
            OrderKind::RealtimeSend => self.realtime_send += 1,
            OrderKind::PollSkip => self.poll_skip += 1,
            OrderKind::NonmonotonicPoll => self.nonmonotonic_poll += 1,
            OrderKind::IntPollSkip => self.int_poll_skip += 1,
            OrderKind::IntNonmonotonicPoll => self.int_nonmonotonic_poll += 1,
        }
        let kind = ex.kind;
        let have = self.examples.iter().filter(|e| e.kind == kind).count();
        if have < cap {
            self.examples.push(ex);
        }
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> OrderReport {
    let mut rep = OrderReport::default();
    sends(ix, config, &mut rep);
    polls(ix, config, &mut rep);
    rep
}

/// Classifies the step from `before` to `after` as a skip, a step back, or fine.
fn step(before: u64, after: u64, skip: OrderKind, back: OrderKind) -> Option<OrderKind> {
    if after <= before {
        Some(back)
    } else if after > before.saturating_add(1) {
        Some(skip)
    } else {
        None
    }
}

fn sends(ix: &Index<'_>, config: &CheckConfig, rep: &mut OrderReport) {
    let cap = config.examples;
    // (producer, queue) -> last acknowledged offset.
    let mut last: HashMap<(&Process, u32), u64> = HashMap::new();
    // Per queue: acknowledged sends as (invoke, complete, offset, index).
    let mut per_queue: Vec<Vec<(u64, u64, u64, usize)>> = vec![Vec::new(); ix.queues.len()];
    for (i, s) in ix.sends.iter().enumerate() {
        if s.outcome != OpType::Ok {
            continue;
        }
        let (Some(q), Some(off), Some(done)) = (s.queue, s.offset, s.complete_ns) else {
            continue;
        };
        per_queue[q as usize].push((s.invoke_ns, done, off, i));
        if let Some(prev) = last.insert((s.process, q), off) {
            if off <= prev {
                rep.note(
                    cap,
                    OrderExample {
                        kind: OrderKind::NonmonotonicSend,
                        process: s.process.to_string(),
                        queue: ix.queues[q as usize].to_owned(),
                        before: prev,
                        after: off,
                        line: s.line,
                    },
                );
            }
        }
    }
    for (q, mut acked) in per_queue.into_iter().enumerate() {
        // Sweep sends by invocation time, folding in every send acknowledged strictly before.
        let mut by_done: Vec<(u64, u64)> = acked.iter().map(|a| (a.1, a.2)).collect();
        by_done.sort_unstable();
        acked.sort_unstable();
        let mut j = 0;
        let mut max_before: Option<u64> = None;
        for &(invoke, _, off, i) in &acked {
            while j < by_done.len() && by_done[j].0 < invoke {
                max_before = Some(max_before.map_or(by_done[j].1, |m| m.max(by_done[j].1)));
                j += 1;
            }
            if let Some(m) = max_before.filter(|&m| m > off) {
                let s = &ix.sends[i];
                rep.note(
                    cap,
                    OrderExample {
                        kind: OrderKind::RealtimeSend,
                        process: s.process.to_string(),
                        queue: ix.queues[q].to_owned(),
                        before: m,
                        after: off,
                        line: s.line,
                    },
                );
            }
        }
    }
}

fn polls(ix: &Index<'_>, config: &CheckConfig, rep: &mut OrderReport) {
    let cap = config.examples;
    let h = ix.history;
    let ops = h.ops();
    // consumer -> queue -> last offset read.
    let mut pos: HashMap<&Process, HashMap<u32, u64>> = HashMap::new();
    let mut in_poll: Vec<(u32, u64)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.kind != OpType::Ok {
            continue;
        }
        match op.f {
            OpF::Assign => match op.queue.as_ref().and_then(|q| ix.queue_id(q.as_str())) {
                Some(q) => {
                    pos.entry(&op.process).or_default().remove(&q);
                }
                None if op.queue.is_none() => {
                    pos.remove(&op.process);
                }
                None => {}
            },
            OpF::Poll => {
                let last = pos.entry(&op.process).or_default();
                let requested = h
                    .pair(i)
                    .map(|v| &ops[v])
                    .and_then(|inv| inv.queue.as_ref().zip(inv.offset))
                    .and_then(|(q, o)| ix.queue_id(q.as_str()).map(|q| (q, o)));
                let mut found: Vec<(OrderKind, u32, u64, u64)> = Vec::new();
                let mut note = |k: Option<OrderKind>, q: u32, before: u64, after: u64| {
                    if let Some(kind) = k {
                        found.push((kind, q, before, after));
                    }
                };
                in_poll.clear();
                for r in op.reads.iter().flatten() {
                    let Some(q) = ix.queue_id(r.queue.as_str()) else {
                        continue;
                    };
                    let o = r.offset;
                    if let Some(p) = in_poll.iter_mut().find(|p| p.0 == q) {
                        let k = step(
                            p.1,
                            o,
                            OrderKind::IntPollSkip,
                            OrderKind::IntNonmonotonicPoll,
                        );
                        note(k, q, p.1, o);
                        p.1 = o;
                    } else {
                        in_poll.push((q, o));
                        match requested.filter(|r| r.0 == q).map(|r| r.1) {
                            Some(req) => {
                                // last read -> requested offset -> first offset returned.
                                if let Some(&l) = last.get(&q) {
                                    let k = step(
                                        l,
                                        req,
                                        OrderKind::PollSkip,
                                        OrderKind::NonmonotonicPoll,
                                    );
                                    note(k, q, l, req);
                                }
                                let k = match o.cmp(&req) {
                                    std::cmp::Ordering::Greater => Some(OrderKind::PollSkip),
                                    std::cmp::Ordering::Less => Some(OrderKind::NonmonotonicPoll),
                                    std::cmp::Ordering::Equal => None,
                                };
                                note(k, q, req, o);
                            }
                            None => {
                                if let Some(&l) = last.get(&q) {
                                    let k = step(
                                        l,
                                        o,
                                        OrderKind::PollSkip,
                                        OrderKind::NonmonotonicPoll,
                                    );
                                    note(k, q, l, o);
                                }
                            }
                        }
                    }
                    last.insert(q, o);
                }
                for (kind, q, before, after) in found {
                    rep.note(
                        cap,
                        OrderExample {
                            kind,
                            process: op.process.to_string(),
                            queue: ix.queues[q as usize].to_owned(),
                            before,
                            after,
                            line: h.line(i),
                        },
                    );
                }
            }
            _ => {}
        }
    }
}
