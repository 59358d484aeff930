//! Bad input gets an error, never a panic: random operation sequences (mostly malformed, some
//! well formed with absurd values) go through validation, every checker and the HTML report.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use raftmq_jepsen::checker::{check, CheckConfig};
use raftmq_jepsen::history::{
    parse_line, History, NodeRole, Op, OpF, OpType, Phase, Process, Queue, Read,
};
use raftmq_jepsen::report;

fn arb_op() -> impl Strategy<Value = (u64, Op)> {
    let kinds = prop_oneof![
        Just(OpType::Invoke),
        Just(OpType::Invoke),
        Just(OpType::Ok),
        Just(OpType::Fail),
        Just(OpType::Info)
    ];
    let fs = prop_oneof![
        Just(OpF::Send),
        Just(OpF::Poll),
        Just(OpF::Commit),
        Just(OpF::Fetch),
        Just(OpF::Assign),
        Just(OpF::Role),
        Just(OpF::Fault)
    ];
    let offsets =
        prop_oneof![1 => Just(None), 8 => (0u64..4).prop_map(Some), 1 => Just(Some(u64::MAX))];
    let reads = prop::collection::vec(
        (0u8..2, prop_oneof![0u64..4, Just(u64::MAX)], 0u8..30),
        0..4,
    );
    (
        0u64..3_000,
        0u64..3,
        kinds,
        fs,
        prop::option::weighted(0.9, 0u8..30),
        prop::option::weighted(0.8, 0u8..2),
        offsets,
        prop::option::weighted(0.9, reads),
        prop::option::weighted(0.9, any::<bool>()),
    )
        .prop_map(|(dt, p, kind, f, value, queue, offset, reads, phase)| {
            let mut op = Op::new(0, Process::Client(p), kind, f);
            op.value = value.map(|v| format!("v{v}"));
            op.queue = queue.map(|q| Queue::new(format!("q{q}")));
            op.offset = offset;
            op.group = Some("g".into());
            op.reads = reads.map(|rs| {
                rs.into_iter()
                    .map(|(q, o, v)| Read {
                        queue: Queue::new(format!("q{q}")),
                        offset: o,
                        value: format!("v{v}"),
                    })
                    .collect()
            });
            if f == OpF::Role {
                // Roles and terms drawn from the read offsets and values.
                op.nodes = op.reads.as_ref().map(|rs| {
                    rs.iter()
                        .map(|r| NodeRole {
                            node: r.queue.to_string(),
                            role: if r.offset % 2 == 0 { "leader" } else { "down" }.into(),
                            term: Some(r.offset),
                            group: None,
                        })
                        .collect()
                });
            }
            if f == OpF::Fault {
                op.process = Process::Named("nemesis".into());
                op.fault = Some("kill".into());
                op.phase = phase.map(|s| if s { Phase::Start } else { Phase::End });
            }
            (dt, op)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_operations_never_panic(
        ops in prop::collection::vec(arb_op(), 0..40),
        paired in any::<bool>(),
    ) {
        // Paired: each random operation becomes an invocation immediately followed by a
        // completion of the same f (its own type, ok if it was an invocation), so many
        // histories pass validation and reach the checkers.
        let ops: Vec<(u64, Op)> = if paired {
            ops.into_iter()
                .flat_map(|(dt, op)| {
                    let mut inv = op.clone();
                    inv.kind = OpType::Invoke;
                    let mut done = op;
                    if done.kind == OpType::Invoke {
                        done.kind = OpType::Ok;
                    }
                    [(dt, inv), (dt / 2, done)]
                })
                .collect()
        } else {
            ops
        };
        let mut t = 0u64;
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|(dt, mut op)| {
                t += dt;
                op.time_ns = t;
                op
            })
            .collect();
        let n = ops.len();
        if let Ok(h) = History::from_ops(ops) {
            prop_assert_eq!(h.len(), n);
            let r = check(&h, &CheckConfig { min_acked: 1, examples: 2 });
            let html = report::html(&h, &r, "x");
            prop_assert!(html.ends_with("</html>\n"));
            prop_assert!(serde_json::to_string(&report::results_doc(&r, "x")).is_ok());
        }
    }

    #[test]
    fn random_lines_parse_or_fail_cleanly(line in ".{0,200}") {
        let _ = parse_line(&line, 1);
    }
}

/// The paired generator really reaches the checkers: a fixed sample of it validates often.
#[test]
fn paired_generation_mostly_validates() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(arb_op(), 1..10);
    let mut valid = 0;
    for _ in 0..200 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut t = 0;
        let mut seq = Vec::new();
        for (dt, op) in ops {
            t += dt + 1;
            let mut inv = op.clone();
            inv.kind = OpType::Invoke;
            inv.time_ns = t;
            let mut done = op;
            done.kind = if done.kind == OpType::Invoke {
                OpType::Ok
            } else {
                done.kind
            };
            done.time_ns = t;
            seq.push(inv);
            seq.push(done);
        }
        valid += usize::from(History::from_ops(seq).is_ok());
    }
    assert!(
        valid >= 40,
        "only {valid} of 200 paired histories validated"
    );
}
