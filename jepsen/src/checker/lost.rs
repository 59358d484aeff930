//! Lost messages: sends the broker acknowledged whose value no poll ever returned.
//!
//! Each lost send is placed in its queue's log by its acknowledged offset, as Jepsen's NATS and
//! Redpanda checkers do:
//! * `prefix`: something later in that queue was read, nothing earlier;
//! * `middle`: reads exist both before and after it. The damning kind: the consumer read past
//!   the hole, so the message is gone, not late (Jepsen's `lost-write`);
//! * `suffix`: nothing later in that queue was read (Jepsen's `unseen`; a long delay looks the
//!   same, which is why the workload drains at the end).
//!
//! Sends that ended `info` (timeout, unknown) and were never read are not lost: the broker may
//! never have stored them. They are counted as `indeterminate_unread`. A value read at another
//! position than its acknowledgement is not lost (see `inconsistent` and `duplicate`).

use serde::Serialize;

use super::{sample, CheckConfig, Index, Loc};
use crate::history::OpType;

/// Where in its queue's log a lost message sat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Prefix,
    Middle,
    Suffix,
}

/// One lost acknowledged send.
#[derive(Debug, Clone, Serialize)]
pub struct LostExample {
    pub value: String,
    pub process: String,
    pub at: Loc,
    pub position: Position,
    /// Line of the acknowledgement.
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LostReport {
    /// Sends acknowledged `ok`.
    pub acknowledged: usize,
    /// Acknowledged sends whose value was read at least once.
    pub acknowledged_read: usize,
    pub lost: usize,
    pub lost_prefix: usize,
    pub lost_middle: usize,
    pub lost_suffix: usize,
    /// `info` sends never read: not lost, we cannot know they were stored.
    pub indeterminate_unread: usize,
    /// A few examples of each position, prefix first.
    pub examples: Vec<LostExample>,
}

impl LostReport {
    /// True when no acknowledged send is lost.
    pub fn holds(&self) -> bool {
        self.lost == 0
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> LostReport {
    let mut read = vec![false; ix.sends.len()];
    // Lowest and highest offset read per queue.
    let mut bounds: Vec<Option<(u64, u64)>> = vec![None; ix.queues.len()];
    for r in &ix.reads {
        if let Some(s) = r.send {
            read[s as usize] = true;
        }
        let b = &mut bounds[r.queue as usize];
        *b = Some(match *b {
            None => (r.offset, r.offset),
            Some((lo, hi)) => (lo.min(r.offset), hi.max(r.offset)),
        });
    }
    let mut rep = LostReport::default();
    let mut by_pos: [Vec<LostExample>; 3] = Default::default();
    for (s, send) in ix.sends.iter().enumerate() {
        match send.outcome {
            OpType::Ok => rep.acknowledged += 1,
            OpType::Info | OpType::Invoke => {
                if !read[s] {
                    rep.indeterminate_unread += 1;
                }
                continue;
            }
            OpType::Fail => continue,
        }
        if read[s] {
            rep.acknowledged_read += 1;
            continue;
        }
        // History validation guarantees an ok send has both.
        let (Some(q), Some(off)) = (send.queue, send.offset) else {
            continue;
        };
        let position = match bounds[q as usize] {
            Some((lo, hi)) if off < hi && lo < off => Position::Middle,
            Some((_, hi)) if off < hi => Position::Prefix,
            _ => Position::Suffix,
        };
        rep.lost += 1;
        let slot = match position {
            Position::Prefix => {
                rep.lost_prefix += 1;
                0
            }
            Position::Middle => {
                rep.lost_middle += 1;
                1
            }
            Position::Suffix => {
                rep.lost_suffix += 1;
                2
            }
        };
        sample(&mut by_pos[slot], config.examples, || LostExample {
            value: send.value.to_owned(),
            process: send.process.to_string(),
            at: ix.loc(q, off),
            position,
            line: send.line,
        });
    }
    rep.examples = by_pos.into_iter().flatten().collect();
    rep
}
