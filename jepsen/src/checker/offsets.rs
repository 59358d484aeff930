//! Consumer offsets: a committed consumer-group offset must not be forgotten or rolled back.
//!
//! Every commit is a Raft entry, so the committed offset of a (group, queue) behaves as a
//! register. A `fetch` (the broker's answer to "what is this group's offset on this queue")
//! must return the value of some commit that could still be the latest:
//! * `stale`: the fetch returned the value of commit W although another acknowledged commit W2
//!   of a different offset started after W was acknowledged and was itself acknowledged before
//!   the fetch started. A failover that forgets commits shows up here (the "duplicate storm"
//!   bugs of RocketMQ);
//! * `phantom`: the fetch returned an offset no commit of that group and queue ever carried.
//!
//! "Nothing committed" and offset 0 both count as the initial value (RocketMQ answers 0 for an
//! unknown group on a queue that starts at 0). Commits that failed are ignored; commits of
//! unknown outcome may have taken effect at any later time. Both findings fail the run.

use std::collections::HashMap;

use serde::Serialize;

use super::{sample, CheckConfig, Index};
use crate::history::{OpF, OpType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetKind {
    Stale,
    Phantom,
}

#[derive(Debug, Clone, Serialize)]
pub struct OffsetExample {
    pub kind: OffsetKind,
    pub group: String,
    pub queue: String,
    /// What the fetch returned (0 also stands for "nothing committed").
    pub fetched: u64,
    /// For `stale`: the offset of the acknowledged commit that superseded it.
    pub superseded_by: Option<u64>,
    /// Line of the fetch's completion.
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OffsetsReport {
    pub commits_ok: usize,
    pub fetches_ok: usize,
    pub stale: usize,
    pub phantom: usize,
    pub examples: Vec<OffsetExample>,
}

impl OffsetsReport {
    pub fn holds(&self) -> bool {
        self.stale == 0 && self.phantom == 0
    }
}

#[derive(Clone, Copy)]
struct Commit {
    offset: u64,
    invoke: u64,
    /// `u64::MAX` when the outcome is unknown.
    complete: u64,
}

#[derive(Clone, Copy)]
struct Fetch {
    /// 0 for "nothing committed".
    value: u64,
    invoke: u64,
    complete: u64,
    line: usize,
}

#[derive(Default)]
struct Register {
    commits: Vec<Commit>,
    fetches: Vec<Fetch>,
}

/// Highest invocation time among a set of commits, tracked with a runner-up of another offset
/// so "the latest one whose offset is not v" can be answered for any v.
#[derive(Default)]
struct Latest {
    best: Option<(u64, u64)>,
    other: Option<(u64, u64)>,
}

impl Latest {
    fn add(&mut self, invoke: u64, offset: u64) {
        match self.best {
            Some((bi, bo)) if bo == offset => self.best = Some((bi.max(invoke), bo)),
            Some((bi, _)) if invoke > bi => {
                self.other = self.best;
                self.best = Some((invoke, offset));
            }
            Some(_) => {
                if self.other.is_none_or(|(oi, _)| invoke > oi) {
                    self.other = Some((invoke, offset));
                }
            }
            None => self.best = Some((invoke, offset)),
        }
    }

    /// (invoke, offset) of the latest-invoked commit whose offset differs from `v`.
    fn excluding(&self, v: u64) -> Option<(u64, u64)> {
        match self.best {
            Some((_, bo)) if bo == v => self.other,
            best => best,
        }
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> OffsetsReport {
    let h = ix.history;
    let ops = h.ops();
    let mut regs: HashMap<(&str, &str), Register> = HashMap::new();
    let mut rep = OffsetsReport::default();
    for (i, op) in ops.iter().enumerate() {
        if op.kind != OpType::Invoke || !matches!(op.f, OpF::Commit | OpF::Fetch) {
            continue;
        }
        let done = h.pair(i).map(|c| &ops[c]);
        let outcome = h.outcome(i);
        let key = (
            op.group.as_deref().unwrap_or_default(),
            op.queue.as_ref().map_or("", |q| q.as_str()),
        );
        let reg = regs.entry(key).or_default();
        match (op.f, outcome, done) {
            (OpF::Commit, OpType::Fail, _) => {}
            (OpF::Commit, _, _) => {
                let ok = outcome == OpType::Ok;
                rep.commits_ok += usize::from(ok);
                reg.commits.push(Commit {
                    offset: op.offset.unwrap_or_default(),
                    invoke: op.time_ns,
                    complete: done.filter(|_| ok).map_or(u64::MAX, |d| d.time_ns),
                });
            }
            (OpF::Fetch, OpType::Ok, Some(d)) => {
                rep.fetches_ok += 1;
                reg.fetches.push(Fetch {
                    value: d.offset.unwrap_or(0),
                    invoke: op.time_ns,
                    complete: d.time_ns,
                    line: h.line(h.pair(i).unwrap_or(i)),
                });
            }
            _ => {}
        }
    }
    let mut keys: Vec<_> = regs.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let mut reg = regs.remove(&key).unwrap_or_default();
        let mut by_done: Vec<Commit> = reg
            .commits
            .iter()
            .copied()
            .filter(|c| c.complete != u64::MAX)
            .collect();
        by_done.sort_unstable_by_key(|c| c.complete);
        let mut by_value: HashMap<u64, Vec<Commit>> = HashMap::new();
        for c in &reg.commits {
            by_value.entry(c.offset).or_default().push(*c);
        }
        reg.fetches.sort_unstable_by_key(|f| f.invoke);
        let mut latest = Latest::default();
        let mut j = 0;
        for f in &reg.fetches {
            while j < by_done.len() && by_done[j].complete < f.invoke {
                latest.add(by_done[j].invoke, by_done[j].offset);
                j += 1;
            }
            // When the freshest write of the fetched value completed (the initial 0 at time 0).
            let initial = (f.value == 0).then_some(0);
            let written_at = by_value
                .get(&f.value)
                .into_iter()
                .flatten()
                .filter(|c| c.invoke < f.complete)
                .map(|c| c.complete)
                .chain(initial)
                .max();
            let finding = match written_at {
                None => Some((OffsetKind::Phantom, None)),
                Some(w) => latest
                    .excluding(f.value)
                    .filter(|&(inv, _)| inv > w)
                    .map(|(_, off)| (OffsetKind::Stale, Some(off))),
            };
            let Some((kind, superseded_by)) = finding else {
                continue;
            };
            match kind {
                OffsetKind::Stale => rep.stale += 1,
                OffsetKind::Phantom => rep.phantom += 1,
            }
            sample(&mut rep.examples, config.examples, || OffsetExample {
                kind,
                group: key.0.to_owned(),
                queue: key.1.to_owned(),
                fetched: f.value,
                superseded_by,
                line: f.line,
            });
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, Op, Process, Queue};

    fn op(t: u64, p: u64, kind: OpType, f: OpF, offset: Option<u64>) -> Op {
        let mut op = Op::new(t, Process::Client(p), kind, f);
        op.group = Some("g".into());
        op.queue = Some(Queue::new("q"));
        op.offset = offset;
        op
    }

    fn run(ops: Vec<Op>) -> OffsetsReport {
        let h = History::from_ops(ops).unwrap();
        check(&Index::build(&h), &CheckConfig::default())
    }

    #[test]
    fn overlapping_commits_may_land_in_either_order() {
        // Commits of 5 and 8 overlap in time; 5's acknowledgement comes last. Either may be the
        // final value, so fetching 5 afterwards is fine.
        let r = run(vec![
            op(1, 0, OpType::Invoke, OpF::Commit, Some(5)),
            op(2, 1, OpType::Invoke, OpF::Commit, Some(8)),
            op(3, 1, OpType::Ok, OpF::Commit, None),
            op(4, 0, OpType::Ok, OpF::Commit, None),
            op(5, 2, OpType::Invoke, OpF::Fetch, None),
            op(6, 2, OpType::Ok, OpF::Fetch, Some(5)),
        ]);
        assert!(r.holds(), "{r:?}");
        // A commit of 9 started after both were acknowledged supersedes 5.
        let r = run(vec![
            op(1, 0, OpType::Invoke, OpF::Commit, Some(5)),
            op(2, 1, OpType::Invoke, OpF::Commit, Some(8)),
            op(3, 1, OpType::Ok, OpF::Commit, None),
            op(4, 0, OpType::Ok, OpF::Commit, None),
            op(5, 1, OpType::Invoke, OpF::Commit, Some(9)),
            op(6, 1, OpType::Ok, OpF::Commit, None),
            op(7, 2, OpType::Invoke, OpF::Fetch, None),
            op(8, 2, OpType::Ok, OpF::Fetch, Some(5)),
        ]);
        assert_eq!(r.stale, 1);
        assert_eq!(r.examples[0].superseded_by, Some(9));
    }

    #[test]
    fn a_fetch_concurrent_with_a_commit_may_see_the_old_value() {
        let r = run(vec![
            op(1, 0, OpType::Invoke, OpF::Commit, Some(5)),
            op(2, 0, OpType::Ok, OpF::Commit, None),
            op(3, 2, OpType::Invoke, OpF::Fetch, None),
            op(4, 0, OpType::Invoke, OpF::Commit, Some(9)),
            op(5, 0, OpType::Ok, OpF::Commit, None),
            op(6, 2, OpType::Ok, OpF::Fetch, Some(5)),
        ]);
        assert!(r.holds(), "{r:?}");
    }

    #[test]
    fn latest_tracks_a_runner_up_of_another_offset() {
        let mut l = Latest::default();
        l.add(1, 5);
        l.add(3, 8);
        l.add(2, 8);
        assert_eq!(l.excluding(8), Some((1, 5)));
        assert_eq!(l.excluding(5), Some((3, 8)));
        l.add(4, 5);
        assert_eq!(l.excluding(5), Some((3, 8)));
        assert_eq!(l.excluding(8), Some((4, 5)));
    }
}
