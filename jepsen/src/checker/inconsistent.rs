//! Inconsistent offsets: one (queue, offset) holding more than one value.
//!
//! Every acknowledgement and every read claims "this value is at this position". Two claims
//! with different values for one position mean replicas (or one replica over time) disagree
//! about the log: two reads returned different messages, a read returned something other than
//! the acknowledged message, or two sends were acknowledged at the same position. Jepsen found
//! this in Redpanda (`inconsistent-offsets`). Any such position fails the run.

use std::collections::HashMap;

use serde::Serialize;

use super::{sample, CheckConfig, Index, Loc};
use crate::history::OpType;

/// Who claimed a value at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A send's acknowledgement.
    Ack,
    /// A poll.
    Read,
}

#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub value: String,
    pub source: Source,
    pub line: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct InconsistentExample {
    pub at: Loc,
    /// The first claim and each differing one after it.
    pub claims: Vec<Claim>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InconsistentReport {
    /// Positions with more than one value.
    pub inconsistent: usize,
    /// Of those, positions where an acknowledged value was contradicted (by a read or
    /// another acknowledgement).
    pub contradicts_ack: usize,
    /// Positions two acknowledgements share.
    pub double_ack: usize,
    pub examples: Vec<InconsistentExample>,
}

impl InconsistentReport {
    pub fn holds(&self) -> bool {
        self.inconsistent == 0
    }
}

#[derive(Clone, Copy)]
struct Slot<'h> {
    value: &'h str,
    source: Source,
    line: usize,
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> InconsistentReport {
    let mut at: HashMap<(u32, u64), Slot<'_>> =
        HashMap::with_capacity(ix.sends.len().max(ix.reads.len()));
    // Position -> differing claims after the first (kept in order of discovery).
    let mut conflicts: HashMap<(u32, u64), Vec<Slot<'_>>> = HashMap::new();
    let mut order: Vec<(u32, u64)> = Vec::new();
    let claims = ix
        .sends
        .iter()
        .filter(|s| s.outcome == OpType::Ok)
        .filter_map(|s| {
            let pos = s.queue.zip(s.offset)?;
            Some((
                pos,
                Slot {
                    value: s.value,
                    source: Source::Ack,
                    line: s.line,
                },
            ))
        })
        .chain(ix.reads.iter().map(|r| {
            let slot = Slot {
                value: r.value,
                source: Source::Read,
                line: r.line,
            };
            ((r.queue, r.offset), slot)
        }));
    for (pos, claim) in claims {
        let first = *at.entry(pos).or_insert(claim);
        if first.value == claim.value {
            continue;
        }
        let list = conflicts.entry(pos).or_insert_with(|| {
            order.push(pos);
            Vec::new()
        });
        if !list.iter().any(|c| c.value == claim.value) {
            list.push(claim);
        }
    }
    let mut rep = InconsistentReport {
        inconsistent: conflicts.len(),
        ..Default::default()
    };
    for pos in order {
        let first = at[&pos];
        let others = &conflicts[&pos];
        if first.source == Source::Ack || others.iter().any(|c| c.source == Source::Ack) {
            rep.contradicts_ack += 1;
        }
        if first.source == Source::Ack && others.iter().any(|c| c.source == Source::Ack) {
            rep.double_ack += 1;
        }
        sample(&mut rep.examples, config.examples, || InconsistentExample {
            at: ix.loc(pos.0, pos.1),
            claims: std::iter::once(&first)
                .chain(others)
                .map(|c| Claim {
                    value: c.value.to_owned(),
                    source: c.source,
                    line: c.line,
                })
                .collect(),
        });
    }
    rep
}
