//! Random valid histories: concurrent producers and consumers against a model broker that
//! assigns dense offsets between a send's invocation and its completion and serves polls from
//! its log. Every such history must be valid, and deleting the reads of one acknowledged
//! message must make `lost` fire.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use raftmq_jepsen::checker::{check, CheckConfig, Outcome};
use raftmq_jepsen::history::{History, Op, OpF, OpType};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct PendingSend {
    value: String,
    queue: usize,
    offset: Option<u64>,
    outcome: OpType,
    stored: bool,
}

/// Simulates `steps` events and a final drain; returns the operations.
fn simulate(seed: u64, queues: usize, producers: u64, consumers: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng(seed | 1);
    let mut t = 0u64;
    let mut tick = |rng: &mut Rng| {
        t += 1 + rng.below(1000);
        t
    };
    let mut log: Vec<Vec<String>> = vec![Vec::new(); queues];
    let mut sends: Vec<Option<PendingSend>> = (0..producers).map(|_| None).collect();
    let mut polls: Vec<Option<(usize, u64)>> = vec![None; consumers as usize];
    let mut pos = vec![vec![0u64; queues]; consumers as usize];
    let mut counter = 0u64;
    let mut ops = Vec::new();

    let complete_send = |p: u64, s: PendingSend, log: &mut Vec<Vec<String>>, t: u64| {
        let mut offset = s.offset;
        if s.stored && offset.is_none() {
            log[s.queue].push(s.value.clone());
            offset = Some(log[s.queue].len() as u64 - 1);
        }
        match s.outcome {
            OpType::Ok => Op::send_ok(t, p, &s.value, &format!("q{}", s.queue), offset.unwrap()),
            kind => Op::send_done(t, p, kind, &s.value),
        }
    };
    let poll = |c: usize, q: usize, from: u64, n: u64, log: &[Vec<String>], t: u64| {
        let end = (from + n).min(log[q].len() as u64);
        let queue = format!("q{q}");
        let reads: Vec<(&str, u64, &str)> = (from..end)
            .map(|o| (queue.as_str(), o, log[q][o as usize].as_str()))
            .collect();
        (Op::poll_ok(t, 1000 + c as u64, &reads), end)
    };

    for _ in 0..steps {
        let who = rng.below(producers + consumers);
        let now = tick(&mut rng);
        if who < producers {
            let p = who;
            match sends[p as usize].take() {
                None => {
                    counter += 1;
                    let value = format!("{p}-{counter}");
                    let queue = rng.below(queues as u64) as usize;
                    let (outcome, stored) = match rng.below(10) {
                        0 => (OpType::Fail, false),
                        1 => (OpType::Info, rng.below(2) == 0),
                        _ => (OpType::Ok, true),
                    };
                    let mut offset = None;
                    if stored && rng.below(2) == 0 {
                        log[queue].push(value.clone());
                        offset = Some(log[queue].len() as u64 - 1);
                    }
                    ops.push(Op::send_invoke(now, p, &value, Some("k")));
                    sends[p as usize] = Some(PendingSend {
                        value,
                        queue,
                        offset,
                        outcome,
                        stored,
                    });
                }
                Some(s) => ops.push(complete_send(p, s, &mut log, now)),
            }
        } else {
            let c = (who - producers) as usize;
            match polls[c].take() {
                None => {
                    let q = rng.below(queues as u64) as usize;
                    let from = pos[c][q];
                    ops.push(Op::poll_invoke(
                        now,
                        1000 + c as u64,
                        Some((&format!("q{q}"), from)),
                    ));
                    polls[c] = Some((q, from));
                }
                Some((q, from)) => {
                    let (op, end) = poll(c, q, from, 1 + rng.below(5), &log, now);
                    pos[c][q] = end;
                    ops.push(op);
                }
            }
        }
    }
    // Finish: producers complete (or stay unknown), consumers complete, consumer 0 drains.
    for p in 0..producers {
        if let Some(s) = sends[p as usize].take() {
            if rng.below(2) == 0 {
                let now = tick(&mut rng);
                ops.push(complete_send(p, s, &mut log, now));
            } else if s.stored && s.offset.is_none() {
                log[s.queue].push(s.value);
            }
        }
    }
    for c in 0..consumers as usize {
        if let Some((q, from)) = polls[c].take() {
            let now = tick(&mut rng);
            let (op, end) = poll(c, q, from, 1 + rng.below(5), &log, now);
            pos[c][q] = end;
            ops.push(op);
        }
    }
    for q in 0..queues {
        while pos[0][q] < log[q].len() as u64 {
            let from = pos[0][q];
            ops.push(Op::poll_invoke(
                tick(&mut rng),
                1000,
                Some((&format!("q{q}"), from)),
            ));
            let now = tick(&mut rng);
            let (op, end) = poll(0, q, from, 10, &log, now);
            pos[0][q] = end;
            ops.push(op);
        }
    }
    ops
}

fn config() -> CheckConfig {
    CheckConfig {
        min_acked: 0,
        examples: 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_valid_histories_are_valid_and_one_deleted_read_is_lost(
        seed in any::<u64>(),
        queues in 1usize..4,
        producers in 1u64..5,
        consumers in 1u64..4,
        steps in 1usize..600,
        pick in any::<u64>(),
    ) {
        let ops = simulate(seed, queues, producers, consumers, steps);
        let history = History::from_ops(ops.clone()).unwrap();
        let r = check(&history, &config());
        prop_assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
        prop_assert_eq!(r.lost.acknowledged, r.lost.acknowledged_read);
        prop_assert!(r.order.holds() && r.inconsistent.holds() && r.unexpected.holds());
        prop_assert_eq!(r.duplicate.duplicated, 0);

        // Delete every read of one acknowledged message.
        let acked: Vec<String> = ops
            .iter()
            .filter(|op| op.f == OpF::Send && op.kind == OpType::Ok)
            .filter_map(|op| op.value.clone())
            .collect();
        prop_assume!(!acked.is_empty());
        let victim = &acked[(pick % acked.len() as u64) as usize];
        let mut cut = ops;
        for op in &mut cut {
            if let Some(reads) = &mut op.reads {
                reads.retain(|rd| &rd.value != victim);
            }
        }
        let r = check(&History::from_ops(cut).unwrap(), &config());
        prop_assert_eq!(r.lost.lost, 1);
        prop_assert_eq!(&r.lost.examples[0].value, victim);
        prop_assert_eq!(r.verdict.outcome, Outcome::Invalid);
        prop_assert!(r.verdict.failed.contains(&"lost".to_string()));
    }
}
