//! Each checker fed a synthetic history with exactly one anomaly of its kind: the anomaly is
//! found, the other properties stay clean, and the verdict follows.

#![allow(clippy::unwrap_used)]

mod common;

use common::{commit, fetch, roles, send, Scenario, Step, CONSUMER};
use raftmq_jepsen::checker::lost::Position;
use raftmq_jepsen::checker::offsets::OffsetKind;
use raftmq_jepsen::checker::order::OrderKind;
use raftmq_jepsen::checker::{CheckResults, Outcome};
use raftmq_jepsen::history::{OpType, Phase};

/// Names of the properties with any finding at all (including allowed ones).
fn dirty(r: &CheckResults) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.lost.lost > 0 || r.lost.indeterminate_unread > 0 {
        out.push("lost");
    }
    let u = &r.unexpected;
    if u.unexpected + u.failed_read + u.read_before_send + u.recovered > 0 {
        out.push("unexpected");
    }
    if r.duplicate.duplicated + r.duplicate.redelivered > 0 {
        out.push("duplicate");
    }
    if r.inconsistent.inconsistent > 0 {
        out.push("inconsistent");
    }
    if !r.order.holds() {
        out.push("order");
    }
    if !r.offsets.holds() {
        out.push("offsets");
    }
    if !r.leaders.holds() {
        out.push("leaders");
    }
    if !r.availability.holds() {
        out.push("availability");
    }
    out
}

fn valid() -> Scenario {
    Scenario::valid(2, 30)
}

#[test]
fn a_valid_history_is_valid() {
    let r = valid().check();
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
    assert!(dirty(&r).is_empty(), "{:?}", dirty(&r));
    assert_eq!(r.stats.sends_ok, 60);
    assert_eq!(r.lost.acknowledged, 60);
    assert_eq!(r.lost.acknowledged_read, 60);
    assert_eq!(r.stats.messages_read, 60);
    assert_eq!(r.stats.queues, 2);
}

#[test]
fn lost_suffix_is_found() {
    let mut s = valid();
    assert_eq!(s.drop_reads("v59"), 1); // q1 offset 29, the last of its queue
    let r = s.check();
    assert_eq!(r.lost.lost, 1);
    assert_eq!(r.lost.lost_suffix, 1);
    assert_eq!(r.lost.examples[0].value, "v59");
    assert_eq!(r.lost.examples[0].at.queue, "q1");
    assert_eq!(r.lost.examples[0].at.offset, 29);
    assert_eq!(r.lost.examples[0].position, Position::Suffix);
    assert_eq!(dirty(&r), ["lost"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
    assert_eq!(r.verdict.failed, ["lost"]);
}

#[test]
fn lost_prefix_is_found() {
    let mut s = valid();
    // The consumer starts q0 at offset 1: nothing before it is ever read.
    assert_eq!(s.drop_reads("v0"), 1);
    if let Step::Poll(p) = &mut s.steps[60] {
        p.from = Some(("q0".into(), 1));
    }
    let r = s.check();
    assert_eq!((r.lost.lost, r.lost.lost_prefix), (1, 1));
    assert_eq!(dirty(&r), ["lost"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
}

#[test]
fn lost_middle_is_found_and_the_consumer_saw_the_hole() {
    let mut s = valid();
    assert_eq!(s.drop_reads("v10"), 1); // q0 offset 5, read around it
    let r = s.check();
    assert_eq!((r.lost.lost, r.lost.lost_middle), (1, 1));
    assert_eq!(r.lost.examples[0].position, Position::Middle);
    // The same hole seen from the consumer: one skip inside a poll.
    assert_eq!(r.order.int_poll_skip, 1);
    assert_eq!(dirty(&r), ["lost", "order"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
}

#[test]
fn indeterminate_sends_never_read_are_not_lost() {
    let mut s = valid();
    s.steps.push(send(0, "maybe", "q0", 0, OpType::Info));
    s.steps.push(send(1, "failed", "q1", 0, OpType::Fail));
    let r = s.check();
    assert_eq!(r.lost.lost, 0);
    assert_eq!(r.lost.indeterminate_unread, 1);
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
}

#[test]
fn indeterminate_sends_that_were_read_are_recovered() {
    let mut s = valid();
    s.steps.push(send(0, "maybe", "q0", 0, OpType::Info));
    s.poll(CONSUMER, None, &[("q0", 30, "maybe")]);
    let r = s.check();
    assert_eq!(r.unexpected.recovered, 1);
    assert!(r.unexpected.holds());
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
}

#[test]
fn a_value_never_sent_is_unexpected() {
    let mut s = valid();
    s.poll(CONSUMER, None, &[("q0", 30, "phantom")]);
    let r = s.check();
    assert_eq!(
        (r.unexpected.unexpected, r.unexpected.unexpected_reads),
        (1, 1)
    );
    assert_eq!(r.unexpected.examples[0].value, "phantom");
    assert_eq!(dirty(&r), ["unexpected"]);
    assert_eq!(r.verdict.failed, ["unexpected"]);
}

#[test]
fn a_failed_send_that_is_read_is_unexpected() {
    let mut s = valid();
    s.steps.push(send(0, "nope", "q0", 0, OpType::Fail));
    s.poll(CONSUMER, None, &[("q0", 30, "nope")]);
    let r = s.check();
    assert_eq!(r.unexpected.failed_read, 1);
    assert_eq!(dirty(&r), ["unexpected"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
}

#[test]
fn a_read_before_its_send_is_unexpected() {
    let mut s = valid();
    s.poll(CONSUMER, None, &[("q0", 30, "early")]);
    s.steps.push(send(0, "early", "q0", 30, OpType::Ok));
    let r = s.check();
    assert_eq!(r.unexpected.read_before_send, 1);
    assert_eq!(r.unexpected.unexpected, 0);
    assert_eq!(dirty(&r), ["unexpected"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
}

#[test]
fn a_value_at_two_offsets_is_a_duplicate_but_allowed() {
    let mut s = valid();
    // v4 (acknowledged at q0 offset 2) is stored once more at the end of q0.
    s.poll(CONSUMER, None, &[("q0", 30, "v4")]);
    let r = s.check();
    assert_eq!((r.duplicate.duplicated, r.duplicate.extra_copies), (1, 1));
    let ex = &r.duplicate.examples[0];
    assert_eq!(ex.value, "v4");
    assert_eq!((ex.at[0].offset, ex.at[1].offset), (2, 30));
    assert_eq!(dirty(&r), ["duplicate"]);
    assert!(r.duplicate.holds());
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
}

#[test]
fn redelivery_after_a_reassign_is_counted_not_failed() {
    let mut s = valid();
    s.steps.push(Step::Assign(CONSUMER));
    s.poll(
        CONSUMER,
        Some(("q0", 0)),
        &[("q0", 0, "v0"), ("q0", 1, "v2")],
    );
    let r = s.check();
    assert_eq!(r.duplicate.redelivered, 2);
    assert_eq!(r.duplicate.duplicated, 0);
    assert_eq!(dirty(&r), ["duplicate"]);
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
}

#[test]
fn two_values_at_one_offset_are_inconsistent() {
    let mut s = valid();
    // A send of unknown outcome shows up, for another consumer, at q0 offset 3, which was
    // acknowledged to v6 and read as v6 by consumer 100.
    s.steps.push(send(0, "maybe", "q0", 0, OpType::Info));
    s.poll(7, None, &[("q0", 3, "maybe")]);
    let r = s.check();
    assert_eq!(r.inconsistent.inconsistent, 1);
    assert_eq!(r.inconsistent.contradicts_ack, 1);
    let ex = &r.inconsistent.examples[0];
    assert_eq!((ex.at.queue.as_str(), ex.at.offset), ("q0", 3));
    let values: Vec<&str> = ex.claims.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["v6", "maybe"]);
    // Reading an indeterminate send is allowed (recovered); nothing else fires.
    assert_eq!(dirty(&r), ["unexpected", "inconsistent"]);
    assert!(r.unexpected.holds());
    assert_eq!(r.verdict.failed, ["inconsistent"]);
}

#[test]
fn two_acknowledgements_at_one_offset_are_inconsistent() {
    let mut s = valid();
    s.steps.push(send(1, "twin", "q1", 7, OpType::Ok));
    let r = s.check();
    assert_eq!(r.inconsistent.inconsistent, 1);
    assert_eq!(r.inconsistent.double_ack, 1);
    assert!(r.verdict.failed.contains(&"inconsistent".to_string()));
}

#[test]
fn a_send_below_an_earlier_acknowledged_one_breaks_real_time_order() {
    let mut s = valid();
    // q0 offsets 3 and 4 belong to v6 (producer 1) and v8 (producer 0); swap them.
    s.send_mut("v6").offset = 4;
    s.send_mut("v8").offset = 3;
    if let Step::Poll(p) = &mut s.steps[60] {
        p.reads[3].2 = "v8".into();
        p.reads[4].2 = "v6".into();
    }
    let r = s.check();
    assert_eq!(r.order.realtime_send, 1);
    assert_eq!(r.order.nonmonotonic_send, 0);
    let ex = &r.order.examples[0];
    assert_eq!(ex.kind, OrderKind::RealtimeSend);
    assert_eq!((ex.before, ex.after), (4, 3));
    assert_eq!(dirty(&r), ["order"]);
    assert_eq!(r.verdict.failed, ["order"]);
}

#[test]
fn a_producers_later_send_at_a_lower_offset_is_nonmonotonic() {
    let mut s = valid();
    // v0 and v4 are producer 0's first two sends to q0 (offsets 0 and 2).
    s.send_mut("v0").offset = 2;
    s.send_mut("v4").offset = 0;
    if let Step::Poll(p) = &mut s.steps[60] {
        p.reads[0].2 = "v4".into();
        p.reads[2].2 = "v0".into();
    }
    let r = s.check();
    assert_eq!(r.order.nonmonotonic_send, 1);
    assert_eq!(dirty(&r), ["order"]);
}

#[test]
fn a_consumer_skipping_ahead_is_a_poll_skip() {
    let mut s = valid();
    // Consumer 100's second q0 poll asks for offset 11 instead of 10; consumer 8 alone
    // reads offset 10, so nothing is lost.
    if let Step::Poll(p) = &mut s.steps[61] {
        p.from = Some(("q0".into(), 11));
        p.reads.remove(0);
    }
    s.poll(8, Some(("q0", 10)), &[("q0", 10, "v20")]);
    let r = s.check();
    assert_eq!(r.order.poll_skip, 1);
    assert_eq!(r.order.examples[0].kind, OrderKind::PollSkip);
    assert_eq!(
        (r.order.examples[0].before, r.order.examples[0].after),
        (9, 11)
    );
    assert_eq!(dirty(&r), ["order"]);
    assert_eq!(r.verdict.failed, ["order"]);
}

#[test]
fn a_poll_answered_from_another_offset_than_asked_is_a_skip() {
    let mut s = valid();
    // The broker answers a poll for offset 10 with offsets 11.. (10 read by another consumer).
    if let Step::Poll(p) = &mut s.steps[61] {
        p.reads.remove(0);
    }
    s.poll(8, Some(("q0", 10)), &[("q0", 10, "v20")]);
    let r = s.check();
    assert_eq!(r.order.poll_skip, 1);
    assert_eq!(dirty(&r), ["order"]);
}

#[test]
fn a_consumer_going_back_without_an_assign_is_nonmonotonic() {
    let mut s = valid();
    s.poll(CONSUMER, Some(("q0", 0)), &[("q0", 0, "v0")]);
    let r = s.check();
    assert_eq!(r.order.nonmonotonic_poll, 1);
    assert_eq!(r.order.examples[0].kind, OrderKind::NonmonotonicPoll);
    assert_eq!(r.verdict.failed, ["order"]);
}

#[test]
fn skips_and_steps_back_inside_one_poll() {
    let mut s = valid();
    if let Step::Poll(p) = &mut s.steps[60] {
        p.reads.swap(5, 6); // offsets 0..4, 6, 5, 7..: skip, step back, skip
    }
    let r = s.check();
    assert_eq!(r.order.int_poll_skip, 2);
    assert_eq!(r.order.int_nonmonotonic_poll, 1);
    assert_eq!(dirty(&r), ["order"]);
}

#[test]
fn recovery_time_after_a_fault_window() {
    let mut s = Scenario::default();
    let mut base = valid();
    // Sends 0..20, a kill with two failed sends inside, then the rest.
    s.steps.extend(base.steps.drain(..20));
    s.fault("kill", Phase::Start, OpType::Ok);
    s.steps.push(send(0, "x1", "q0", 0, OpType::Fail));
    s.steps.push(send(0, "x2", "q0", 0, OpType::Fail));
    s.fault("kill", Phase::End, OpType::Ok);
    s.steps.push(send(0, "x3", "q0", 0, OpType::Fail));
    s.steps.extend(base.steps);
    let r = s.check();
    assert_eq!(r.verdict.outcome, Outcome::Valid, "{:?}", r.verdict);
    let w = &r.availability.windows[0];
    assert_eq!(w.kind, "kill");
    assert!(w.healed);
    assert_eq!((w.sends_ok_during, w.sends_failed_during), (0, 2));
    // Steps are 1 ms apart and complete 0.5 ms in: the end completes at step 24 + 0.5 ms,
    // x3 fails at step 25, the next send completes at step 26 + 0.5 ms.
    assert_eq!(w.recovery_ns, Some(2_000_000));
    assert_eq!(r.availability.max_recovery_ns, Some(2_000_000));
    let gap = r.availability.longest_unavailable.as_ref().unwrap();
    assert_eq!(gap.duration_ns, 6_000_000);
    assert_eq!(gap.faults, ["kill"]);
    // Outside the fault, acknowledgements come every step; the polls after the last send
    // are not an outage.
    let quiet = r
        .availability
        .longest_unavailable_outside_faults
        .as_ref()
        .unwrap();
    assert_eq!(quiet.duration_ns, 1_000_000);
    assert!(quiet.faults.is_empty());
}

#[test]
fn a_window_after_which_no_send_succeeds_fails_availability() {
    let mut s = valid();
    s.fault("partition", Phase::Start, OpType::Ok);
    s.fault("partition", Phase::End, OpType::Ok);
    s.steps.push(send(0, "after", "q0", 0, OpType::Fail));
    let r = s.check();
    assert_eq!(r.availability.unrecovered, 1);
    assert_eq!(r.verdict.failed, ["availability"]);
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
}

#[test]
fn a_failed_fault_makes_the_run_unknown() {
    let mut s = valid();
    s.fault("pause", Phase::Start, OpType::Fail);
    let r = s.check();
    assert!(dirty(&r).is_empty());
    assert_eq!(r.verdict.outcome, Outcome::Unknown);
    assert_eq!(r.failed_faults.len(), 1);
    assert!(
        r.verdict.unknown_reasons[0].contains("fault"),
        "{:?}",
        r.verdict
    );
}

#[test]
fn an_unhealed_fault_makes_the_run_unknown() {
    let mut s = valid();
    s.fault("pause", Phase::Start, OpType::Ok);
    let r = s.check();
    assert_eq!(r.verdict.outcome, Outcome::Unknown);
    assert!(
        r.verdict.unknown_reasons[0].contains("never healed"),
        "{:?}",
        r.verdict
    );
}

#[test]
fn too_few_acknowledged_sends_is_unknown() {
    let r = Scenario::valid(1, 5).check();
    assert!(dirty(&r).is_empty());
    assert_eq!(r.verdict.outcome, Outcome::Unknown);
    assert!(r.verdict.unknown_reasons[0].contains("only 5 acknowledged"));
}

#[test]
fn an_anomaly_makes_an_inconclusive_run_invalid() {
    let mut s = Scenario::valid(1, 5);
    s.drop_reads("v4");
    s.fault("kill", Phase::Start, OpType::Fail);
    let r = s.check();
    assert_eq!(r.verdict.outcome, Outcome::Invalid);
    assert_eq!(r.verdict.unknown_reasons.len(), 2);
}

#[test]
fn fetching_the_latest_committed_offset_is_fine() {
    let mut s = valid();
    s.steps.push(fetch(CONSUMER, None));
    s.steps.push(commit(CONSUMER, 10, OpType::Ok));
    s.steps.push(commit(CONSUMER, 20, OpType::Ok));
    s.steps.push(fetch(CONSUMER, Some(20)));
    // A commit that failed does not count; one of unknown outcome may land later.
    s.steps.push(commit(CONSUMER, 25, OpType::Fail));
    s.steps.push(commit(CONSUMER, 30, OpType::Info));
    s.steps.push(fetch(7, Some(20)));
    s.steps.push(fetch(7, Some(30)));
    let r = s.check();
    assert_eq!((r.offsets.commits_ok, r.offsets.fetches_ok), (2, 4));
    assert!(dirty(&r).is_empty(), "{:?}", r.offsets);
    assert_eq!(r.verdict.outcome, Outcome::Valid);
}

#[test]
fn a_rolled_back_committed_offset_is_stale() {
    let mut s = valid();
    s.steps.push(commit(CONSUMER, 10, OpType::Ok));
    s.steps.push(commit(CONSUMER, 20, OpType::Ok));
    s.steps.push(fetch(7, Some(10)));
    let r = s.check();
    assert_eq!(r.offsets.stale, 1);
    let ex = &r.offsets.examples[0];
    assert_eq!(ex.kind, OffsetKind::Stale);
    assert_eq!((ex.fetched, ex.superseded_by), (10, Some(20)));
    assert_eq!(dirty(&r), ["offsets"]);
    assert_eq!(r.verdict.failed, ["offsets"]);
}

#[test]
fn a_forgotten_commit_is_stale() {
    let mut s = valid();
    s.steps.push(commit(CONSUMER, 10, OpType::Ok));
    s.steps.push(fetch(7, None));
    let r = s.check();
    assert_eq!(r.offsets.stale, 1);
    assert_eq!(r.offsets.examples[0].fetched, 0);
    assert_eq!(dirty(&r), ["offsets"]);
}

#[test]
fn an_offset_never_committed_is_a_phantom() {
    let mut s = valid();
    s.steps.push(commit(CONSUMER, 10, OpType::Ok));
    s.steps.push(fetch(7, Some(11)));
    let r = s.check();
    assert_eq!(r.offsets.phantom, 1);
    assert_eq!(r.offsets.examples[0].kind, OffsetKind::Phantom);
    assert_eq!(dirty(&r), ["offsets"]);
}

#[test]
fn leader_changes_across_terms_are_fine() {
    let mut s = valid();
    s.steps
        .push(roles([("leader", 1), ("follower", 1), ("follower", 1)]));
    s.steps
        .push(roles([("leader", 1), ("candidate", 2), ("follower", 1)]));
    s.steps
        .push(roles([("follower", 2), ("leader", 2), ("follower", 2)]));
    let r = s.check();
    assert_eq!((r.leaders.observations, r.leaders.leader_terms), (3, 2));
    assert!(dirty(&r).is_empty());
    assert_eq!(r.verdict.outcome, Outcome::Valid);
}

#[test]
fn two_leaders_in_one_term_are_split_brain() {
    let mut s = valid();
    s.steps
        .push(roles([("leader", 3), ("follower", 3), ("follower", 3)]));
    s.steps
        .push(roles([("leader", 3), ("leader", 3), ("follower", 3)]));
    let r = s.check();
    assert_eq!(r.leaders.split_brain, 1);
    let ex = &r.leaders.split_brain_examples[0];
    assert_eq!(ex.term, 3);
    assert_eq!(
        (ex.leaders[0].0.as_str(), ex.leaders[1].0.as_str()),
        ("n1", "n2")
    );
    assert_eq!(dirty(&r), ["leaders"]);
    assert_eq!(r.verdict.failed, ["leaders"]);
}

#[test]
fn a_term_going_down_is_a_forgotten_vote() {
    let mut s = valid();
    s.steps
        .push(roles([("leader", 5), ("follower", 5), ("follower", 5)]));
    s.steps
        .push(roles([("leader", 5), ("follower", 4), ("follower", 5)]));
    let r = s.check();
    assert_eq!(r.leaders.term_regressions, 1);
    let ex = &r.leaders.term_regression_examples[0];
    assert_eq!((ex.node.as_str(), ex.before, ex.after), ("n2", 5, 4));
    assert_eq!(dirty(&r), ["leaders"]);
}

#[test]
fn terms_are_per_broker_group() {
    use raftmq_jepsen::history::{History, NodeRole, Op, OpF, OpType, Process};
    let s = valid();
    let mut ops = s.ops();
    let mut t = ops.last().map_or(0, |o| o.time_ns);
    let node = |name: &str, role: &str, term: u64, group: &str| NodeRole {
        node: name.into(),
        role: role.into(),
        term: Some(term),
        group: Some(group.into()),
    };
    let mut observe = |ops: &mut Vec<Op>, nodes: Vec<NodeRole>| {
        t += 10;
        let p = Process::Named("observer".into());
        ops.push(Op::new(t, p.clone(), OpType::Invoke, OpF::Role));
        let mut ok = Op::new(t + 1, p, OpType::Ok, OpF::Role);
        ok.nodes = Some(nodes);
        ops.push(ok);
    };
    // Each group has its own leader of term 2: no split brain.
    observe(
        &mut ops,
        vec![
            node("a0", "leader", 2, "broker-a"),
            node("a1", "follower", 2, "broker-a"),
            node("b0", "follower", 2, "broker-b"),
            node("b1", "leader", 2, "broker-b"),
        ],
    );
    let cfg = raftmq_jepsen::checker::CheckConfig {
        min_acked: 10,
        examples: 5,
    };
    let r = raftmq_jepsen::checker::check(&History::from_ops(ops.clone()).unwrap(), &cfg);
    assert_eq!(r.leaders.split_brain, 0, "{:?}", r.leaders);
    assert_eq!(r.leaders.leader_terms, 2);
    // Two leaders of term 2 inside broker-b are.
    observe(&mut ops, vec![node("b0", "leader", 2, "broker-b")]);
    let r = raftmq_jepsen::checker::check(&History::from_ops(ops).unwrap(), &cfg);
    assert_eq!(r.leaders.split_brain, 1);
    let ex = &r.leaders.split_brain_examples[0];
    assert_eq!(ex.group.as_deref(), Some("broker-b"));
    assert_eq!(
        (ex.leaders[0].0.as_str(), ex.leaders[1].0.as_str()),
        ("b1", "b0")
    );
}

#[test]
fn with_two_groups_recovery_is_also_measured_on_the_faulted_group() {
    use raftmq_jepsen::history::{History, NodeRole, Op, OpF, Phase, Process, Queue};
    let ms = 1_000_000u64;
    let mut ops = Vec::new();
    let obs = Process::Named("observer".into());
    ops.push(Op::new(0, obs.clone(), OpType::Invoke, OpF::Role));
    let mut roles = Op::new(ms / 2, obs, OpType::Ok, OpF::Role);
    roles.nodes = Some(
        [("a0", "broker-a"), ("b0", "broker-b")]
            .iter()
            .map(|(n, g)| NodeRole {
                node: (*n).into(),
                role: "leader".into(),
                term: Some(1),
                group: Some((*g).into()),
            })
            .collect(),
    );
    ops.push(roles);
    let send = |ops: &mut Vec<Op>, t: u64, p: u64, v: &str, q: &str, off: u64| {
        ops.push(Op::send_invoke(t, p, v, Some(v)));
        let mut ok = Op::send_done(t + ms / 2, p, OpType::Ok, v);
        ok.queue = Some(Queue::new(q));
        ok.offset = Some(off);
        ops.push(ok);
    };
    send(&mut ops, ms, 0, "a-0", "T@broker-a:0", 0);
    send(&mut ops, 2 * ms, 1, "b-0", "T@broker-b:0", 0);
    let fault = |t: u64, kind: OpType, phase: Phase| {
        let mut op = Op::new(t, Process::Named("nemesis".into()), kind, OpF::Fault);
        op.fault = Some("kill".into());
        op.phase = Some(phase);
        op.targets = Some(vec!["b0".into()]);
        op
    };
    ops.push(fault(3 * ms, OpType::Invoke, Phase::Start));
    ops.push(fault(3 * ms, OpType::Ok, Phase::Start));
    ops.push(fault(10 * ms, OpType::Invoke, Phase::End));
    ops.push(fault(10 * ms, OpType::Ok, Phase::End));
    // broker-a acknowledges 1 ms after the heal, broker-b only 5 ms after.
    send(&mut ops, 10 * ms + ms / 2, 0, "a-1", "T@broker-a:0", 1);
    send(&mut ops, 14 * ms + ms / 2, 1, "b-1", "T@broker-b:0", 1);
    let cfg = raftmq_jepsen::checker::CheckConfig {
        min_acked: 1,
        examples: 5,
    };
    let r = raftmq_jepsen::checker::check(&History::from_ops(ops).unwrap(), &cfg);
    let w = &r.availability.windows[0];
    assert_eq!(w.recovery_ns, Some(ms));
    assert_eq!(w.group.as_deref(), Some("broker-b"));
    assert_eq!(w.group_recovery_ns, Some(5 * ms));
    assert_eq!(r.availability.max_group_recovery_ns, Some(5 * ms));
}
