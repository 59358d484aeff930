//! Unexpected reads: messages a consumer saw that the history cannot explain.
//!
//! * `unexpected`: a value read that no send ever carried (a phantom, corrupted or foreign
//!   message);
//! * `failed_read`: a value read whose send the broker answered with a definite failure
//!   (`fail` means it did not happen);
//! * `read_before_send`: a poll returned a value before that value's send was even invoked.
//!
//! Any of these fails the run. Reads of sends that ended `info` or never completed are allowed
//! and counted as `recovered` (Jepsen NATS); they are not duplicates, unlike openchaos.

use std::collections::HashSet;

use serde::Serialize;

use super::{sample, CheckConfig, Index, Loc};
use crate::history::OpType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnexpectedKind {
    NeverSent,
    SendFailed,
    ReadBeforeSend,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnexpectedExample {
    pub kind: UnexpectedKind,
    pub value: String,
    pub at: Loc,
    pub consumer: String,
    /// Line of the poll that returned it.
    pub line: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UnexpectedReport {
    /// Distinct values read that were never sent.
    pub unexpected: usize,
    /// Reads of those values (a phantom may be read many times).
    pub unexpected_reads: usize,
    /// Distinct values read whose send failed definitely.
    pub failed_read: usize,
    /// Reads that completed before their value's send was invoked.
    pub read_before_send: usize,
    /// Distinct values read whose send ended `info` or never completed (allowed).
    pub recovered: usize,
    pub examples: Vec<UnexpectedExample>,
}

impl UnexpectedReport {
    pub fn holds(&self) -> bool {
        self.unexpected == 0 && self.failed_read == 0 && self.read_before_send == 0
    }
}

pub fn check(ix: &Index<'_>, config: &CheckConfig) -> UnexpectedReport {
    let mut rep = UnexpectedReport::default();
    let mut phantoms: HashSet<&str> = HashSet::new();
    let mut seen = vec![false; ix.sends.len()];
    let mut ex: [Vec<UnexpectedExample>; 3] = Default::default();
    for r in &ix.reads {
        let example = |kind| UnexpectedExample {
            kind,
            value: r.value.to_owned(),
            at: ix.loc(r.queue, r.offset),
            consumer: r.process.to_string(),
            line: r.line,
        };
        let Some(s) = r.send else {
            rep.unexpected_reads += 1;
            if phantoms.insert(r.value) {
                rep.unexpected += 1;
                sample(&mut ex[0], config.examples, || {
                    example(UnexpectedKind::NeverSent)
                });
            }
            continue;
        };
        let send = &ix.sends[s as usize];
        if r.time_ns < send.invoke_ns {
            rep.read_before_send += 1;
            sample(&mut ex[2], config.examples, || {
                example(UnexpectedKind::ReadBeforeSend)
            });
        }
        if std::mem::replace(&mut seen[s as usize], true) {
            continue;
        }
        match send.outcome {
            OpType::Fail => {
                rep.failed_read += 1;
                sample(&mut ex[1], config.examples, || {
                    example(UnexpectedKind::SendFailed)
                });
            }
            OpType::Info | OpType::Invoke => rep.recovered += 1,
            OpType::Ok => {}
        }
    }
    rep.examples = ex.into_iter().flatten().collect();
    rep
}
