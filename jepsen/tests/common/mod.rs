//! Synthetic histories for the checker tests: a scenario is a list of steps (sends, polls,
//! assigns, faults) rendered into a sequential history, one invocation and its completion per
//! step. Tests start from [`Scenario::valid`] and change one thing.

#![allow(dead_code)]

use raftmq_jepsen::checker::{check, CheckConfig, CheckResults};
use raftmq_jepsen::history::{History, NodeRole, Op, OpF, OpType, Phase, Process, Queue};

#[derive(Debug, Clone)]
pub struct Send {
    pub process: u64,
    pub value: String,
    pub queue: String,
    pub offset: u64,
    pub outcome: OpType,
}

#[derive(Debug, Clone)]
pub struct Poll {
    pub process: u64,
    pub from: Option<(String, u64)>,
    pub reads: Vec<(String, u64, String)>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Send(Send),
    Poll(Poll),
    Assign(u64),
    /// Consumer-offset commit by a process of group "g".
    Commit {
        process: u64,
        queue: String,
        offset: u64,
        outcome: OpType,
    },
    /// Fetch of group "g"'s committed offset, answered with `result`.
    Fetch {
        process: u64,
        queue: String,
        result: Option<u64>,
    },
    Fault {
        kind: String,
        phase: Phase,
        outcome: OpType,
    },
    /// A role observation: (node, role, term) per node.
    Roles(Vec<(String, String, u64)>),
}

#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub steps: Vec<Step>,
}

pub const CONSUMER: u64 = 100;

impl Scenario {
    /// `per_queue` sends to each of `queues` queues (q0, q1, ...), alternating two producers
    /// within a queue, all acknowledged at dense offsets; then consumer 100 polls every queue
    /// from offset 0 in batches of 10.
    pub fn valid(queues: u64, per_queue: u64) -> Self {
        let mut s = Scenario::default();
        for i in 0..queues * per_queue {
            let q = i % queues;
            s.steps.push(Step::Send(Send {
                process: (i / queues) % 2,
                value: format!("v{i}"),
                queue: format!("q{q}"),
                offset: i / queues,
                outcome: OpType::Ok,
            }));
        }
        for q in 0..queues {
            let queue = format!("q{q}");
            let mut from = 0;
            while from < per_queue {
                let reads = (from..(from + 10).min(per_queue))
                    .map(|o| (queue.clone(), o, format!("v{}", o * queues + q)))
                    .collect();
                s.steps.push(Step::Poll(Poll {
                    process: CONSUMER,
                    from: Some((queue.clone(), from)),
                    reads,
                }));
                from += 10;
            }
        }
        s
    }

    pub fn send_mut(&mut self, value: &str) -> &mut Send {
        self.steps
            .iter_mut()
            .find_map(|s| match s {
                Step::Send(x) if x.value == value => Some(x),
                _ => None,
            })
            .expect("no such send")
    }

    /// Removes every read of `value`; returns how many there were.
    pub fn drop_reads(&mut self, value: &str) -> usize {
        let mut n = 0;
        for s in &mut self.steps {
            if let Step::Poll(p) = s {
                let before = p.reads.len();
                p.reads.retain(|r| r.2 != value);
                n += before - p.reads.len();
            }
        }
        n
    }

    pub fn poll(&mut self, process: u64, from: Option<(&str, u64)>, reads: &[(&str, u64, &str)]) {
        self.steps.push(Step::Poll(Poll {
            process,
            from: from.map(|(q, o)| (q.to_owned(), o)),
            reads: reads
                .iter()
                .map(|(q, o, v)| ((*q).to_owned(), *o, (*v).to_owned()))
                .collect(),
        }));
    }

    pub fn fault(&mut self, kind: &str, phase: Phase, outcome: OpType) {
        self.steps.push(Step::Fault {
            kind: kind.to_owned(),
            phase,
            outcome,
        });
    }

    /// One invocation at t and its completion at t + 500 µs per step, steps 1 ms apart.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let t = 1_000_000 * (i as u64 + 1);
            let done = t + 500_000;
            match step {
                Step::Send(s) => {
                    ops.push(Op::send_invoke(t, s.process, &s.value, Some("k")));
                    ops.push(match s.outcome {
                        OpType::Ok => Op::send_ok(done, s.process, &s.value, &s.queue, s.offset),
                        kind => Op::send_done(done, s.process, kind, &s.value),
                    });
                }
                Step::Poll(p) => {
                    let from = p.from.as_ref().map(|(q, o)| (q.as_str(), *o));
                    ops.push(Op::poll_invoke(t, p.process, from));
                    let reads: Vec<(&str, u64, &str)> = p
                        .reads
                        .iter()
                        .map(|(q, o, v)| (q.as_str(), *o, v.as_str()))
                        .collect();
                    ops.push(Op::poll_ok(done, p.process, &reads));
                }
                Step::Assign(p) => {
                    ops.push(Op::new(t, Process::Client(*p), OpType::Invoke, OpF::Assign));
                    ops.push(Op::new(done, Process::Client(*p), OpType::Ok, OpF::Assign));
                }
                Step::Commit {
                    process,
                    queue,
                    offset,
                    outcome,
                } => {
                    let mut inv =
                        Op::new(t, Process::Client(*process), OpType::Invoke, OpF::Commit);
                    inv.group = Some("g".into());
                    inv.queue = Some(Queue::new(queue.as_str()));
                    inv.offset = Some(*offset);
                    ops.push(inv);
                    ops.push(Op::new(
                        done,
                        Process::Client(*process),
                        *outcome,
                        OpF::Commit,
                    ));
                }
                Step::Fetch {
                    process,
                    queue,
                    result,
                } => {
                    let mut inv = Op::new(t, Process::Client(*process), OpType::Invoke, OpF::Fetch);
                    inv.group = Some("g".into());
                    inv.queue = Some(Queue::new(queue.as_str()));
                    ops.push(inv);
                    let mut ok = Op::new(done, Process::Client(*process), OpType::Ok, OpF::Fetch);
                    ok.offset = *result;
                    ops.push(ok);
                }
                Step::Roles(nodes) => {
                    let monitor = Process::Named("monitor".into());
                    ops.push(Op::new(t, monitor.clone(), OpType::Invoke, OpF::Role));
                    let mut ok = Op::new(done, monitor, OpType::Ok, OpF::Role);
                    ok.nodes = Some(
                        nodes
                            .iter()
                            .map(|(node, role, term)| NodeRole {
                                node: node.clone(),
                                role: role.clone(),
                                term: Some(*term),
                                group: None,
                            })
                            .collect(),
                    );
                    ops.push(ok);
                }
                Step::Fault {
                    kind,
                    phase,
                    outcome,
                } => {
                    ops.push(Op::fault(t, OpType::Invoke, kind, *phase, &["n1"]));
                    ops.push(Op::fault(done, *outcome, kind, *phase, &["n1"]));
                }
            }
        }
        ops
    }

    pub fn history(&self) -> History {
        History::from_ops(self.ops()).expect("scenario renders a well-formed history")
    }

    /// Checks with `min_acked` 10.
    pub fn check(&self) -> CheckResults {
        check(
            &self.history(),
            &CheckConfig {
                min_acked: 10,
                examples: 5,
            },
        )
    }
}

/// A send acknowledged at (queue, offset), as a one-off step.
pub fn send(process: u64, value: &str, queue: &str, offset: u64, outcome: OpType) -> Step {
    Step::Send(Send {
        process,
        value: value.to_owned(),
        queue: queue.to_owned(),
        offset,
        outcome,
    })
}

pub fn commit(process: u64, offset: u64, outcome: OpType) -> Step {
    Step::Commit {
        process,
        queue: "q0".into(),
        offset,
        outcome,
    }
}

pub fn fetch(process: u64, result: Option<u64>) -> Step {
    Step::Fetch {
        process,
        queue: "q0".into(),
        result,
    }
}

/// A role observation of n1..n3 given as (role, term) each.
pub fn roles(of: [(&str, u64); 3]) -> Step {
    Step::Roles(
        of.iter()
            .enumerate()
            .map(|(i, (role, term))| (format!("n{}", i + 1), (*role).to_owned(), *term))
            .collect(),
    )
}

pub fn queue(name: &str) -> Queue {
    Queue::new(name)
}
