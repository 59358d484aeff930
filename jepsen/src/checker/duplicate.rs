//! Duplicates: one value stored at more than one (queue, offset).
//!
//! A value is placed by its acknowledgement and by every read of it; two distinct positions
//! mean the broker stored the message twice (for example a retried send both of whose
//! attempts committed). RocketMQ promises at-least-once delivery, so this is reported but does
//! not fail the run. Redeliveries, the same (queue, offset) returned again to the same consumer,
//! are counted apart: they are the consumer's at-least-once, not a second copy in the log.
//! (Different consumers reading one position is normal and not counted.)

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{sample, CheckConfig, Index, Loc};
use crate::history::{OpType, Process};

#[derive(Debug, Clone, Serialize)]
pub struct DuplicateExample {
    pub value: String,
    /// Every distinct position the value was seen at (acknowledged first, if it was).
    pub at: Vec<Loc>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DuplicateReport {
    /// Distinct values at more than one position.
    pub duplicated: usize,
    /// Positions beyond the first, summed over duplicated values.
    pub extra_copies: usize,
    /// Reads of a (queue, offset) the same consumer had already read.
    pub redelivered: usize,
    pub examples: Vec<DuplicateExample>,
}

impl DuplicateReport {
    /// Always true: duplicates are allowed by at-least-once delivery, only reported.
    pub fn holds(&self) -> bool {
        true
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> DuplicateReport {
    let mut first: Vec<Option<(u32, u64)>> = vec![None; ix.sends.len()];
    for (s, send) in ix.sends.iter().enumerate() {
        if send.outcome == OpType::Ok {
            first[s] = send.queue.zip(send.offset);
        }
    }
    let mut extra: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    let mut consumers: HashMap<&Process, u32> = HashMap::new();
    let mut positions: HashSet<(u32, u32, u64)> = HashSet::with_capacity(ix.reads.len());
    let mut rep = DuplicateReport::default();
    for r in &ix.reads {
        let pos = (r.queue, r.offset);
        let next = consumers.len() as u32;
        let consumer = *consumers.entry(r.process).or_insert(next);
        if !positions.insert((consumer, r.queue, r.offset)) {
            rep.redelivered += 1;
        }
        let Some(s) = r.send else { continue };
        match first[s as usize] {
            None => first[s as usize] = Some(pos),
            Some(p) if p == pos => {}
            Some(_) => {
                let more = extra.entry(s).or_default();
                if !more.contains(&pos) {
                    more.push(pos);
                }
            }
        }
    }
    let mut dups: Vec<(u32, Vec<(u32, u64)>)> = extra.into_iter().collect();
    dups.sort_unstable_by_key(|(s, _)| *s);
    rep.duplicated = dups.len();
    for (s, more) in dups {
        rep.extra_copies += more.len();
        sample(&mut rep.examples, config.examples, || {
            let mut at = Vec::with_capacity(more.len() + 1);
            if let Some((q, o)) = first[s as usize] {
                at.push(ix.loc(q, o));
            }
            at.extend(more.iter().map(|&(q, o)| ix.loc(q, o)));
            DuplicateExample {
                value: ix.sends[s as usize].value.to_owned(),
                at,
            }
        });
    }
    rep
}
