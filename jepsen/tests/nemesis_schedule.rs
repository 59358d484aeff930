//! The nemesis driver on real processes: each fault's start and end lands in the history as
//! the checker reads it, failures are recorded as failed faults (never silently skipped), and
//! loopback mode offers kill and pause but refuses partitions.

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::time::{Duration, Instant};

use nemesis_support::{ask, namesrv_cluster};
use raftmq_jepsen::checker::{self, CheckConfig, Outcome};
use raftmq_jepsen::cluster::NetMode;
use raftmq_jepsen::history::Recorder;
use raftmq_jepsen::history::{History, OpF, OpType, Phase};
use raftmq_jepsen::nemesis::{partition, FaultKind, Nemesis, NemesisError, Rng, Target};

fn load(rec: &Recorder, path: &std::path::Path) -> History {
    rec.flush().unwrap();
    History::load(path, |_| {}).unwrap()
}

#[test]
fn fault_windows_are_recorded_and_undone() {
    let (dir, mut c) = namesrv_cluster(3, NetMode::Namespaces);
    let hpath = dir.path().join("history.jsonl");
    let rec = Recorder::create(&hpath).unwrap();
    let hub = c.client_netns().map(str::to_owned);
    let addrs: Vec<_> = c.nodes().iter().map(|n| n.addr()).collect();
    {
        let mut nem = Nemesis::new(&mut c, &rec, 1);
        let (active, targets) = nem.start_on(FaultKind::Kill, &[1]).unwrap();
        assert_eq!(targets, vec!["n1".to_string()]);
        assert!(!nem.cluster().node(1).unwrap().is_running());
        nem.end(FaultKind::Kill, &active, &targets).unwrap();
        assert!(nem.cluster().node(1).unwrap().is_running());

        let (active, targets) = nem.start_on(FaultKind::Pause, &[0, 2]).unwrap();
        assert!(ask(hub.as_deref(), addrs[0], Duration::from_millis(400)).is_err());
        nem.end(FaultKind::Pause, &active, &targets).unwrap();

        let (active, targets) = nem.start_partition(partition::isolate(3, 2)).unwrap();
        assert_eq!(targets[0], "n0 -/- n2");
        nem.end(FaultKind::Partition, &active, &targets).unwrap();
    }
    for a in &addrs {
        assert!(ask(hub.as_deref(), *a, Duration::from_secs(2)).is_ok());
    }
    let h = load(&rec, &hpath);
    let faults: Vec<_> = h.ops().iter().filter(|o| o.f == OpF::Fault).collect();
    assert_eq!(faults.len(), 12, "invoke+ok for start and end of 3 faults");
    assert!(faults
        .iter()
        .all(|o| o.kind == OpType::Invoke || o.kind == OpType::Ok));
    assert_eq!(faults[0].phase, Some(Phase::Start));
    assert_eq!(faults[0].fault.as_deref(), Some("kill"));
    assert_eq!(faults[3].phase, Some(Phase::End));

    let results = checker::check(&h, &CheckConfig::default());
    assert_eq!(results.stats.fault_windows, 3);
    assert_eq!(results.stats.failed_faults, 0);
    assert_eq!(results.stats.unhealed_faults, 0);
    // No workload ran: never a valid verdict.
    assert_eq!(results.verdict.outcome, Outcome::Unknown);
}

#[test]
fn a_fault_that_cannot_apply_is_recorded_failed_and_the_verdict_is_unknown() {
    let (dir, mut c) = namesrv_cluster(3, NetMode::Loopback);
    let hpath = dir.path().join("history.jsonl");
    let rec = Recorder::create(&hpath).unwrap();
    {
        let mut nem = Nemesis::new(&mut c, &rec, 2);
        // Loopback: no partitions.
        let (err, _) = nem.start_partition(partition::isolate(3, 0)).unwrap_err();
        assert!(matches!(err, NemesisError::Unsupported(_)), "{err}");
        // No leader probe: leader targets fail instead of hitting another node.
        let e = Target::Leader
            .resolve(3, None, &mut Rng::new(1))
            .unwrap_err();
        assert!(matches!(e, NemesisError::NoLeader));
        // Kill and pause work on loopback.
        let (active, t) = nem.start_on(FaultKind::Kill, &[0]).unwrap();
        nem.end(FaultKind::Kill, &active, &t).unwrap();
        let (active, t) = nem.start_on(FaultKind::Pause, &[1]).unwrap();
        nem.end(FaultKind::Pause, &active, &t).unwrap();
    }
    for n in c.nodes() {
        assert!(ask(None, n.addr(), Duration::from_secs(2)).is_ok());
    }
    let h = load(&rec, &hpath);
    let fails: Vec<_> = h
        .ops()
        .iter()
        .filter(|o| o.f == OpF::Fault && o.kind == OpType::Fail)
        .collect();
    assert_eq!(fails.len(), 1);
    assert!(fails[0].error.as_deref().unwrap().contains("namespaces"));
    let results = checker::check(&h, &CheckConfig::default());
    assert_eq!(results.stats.failed_faults, 1);
    assert_eq!(results.stats.fault_windows, 2);
    assert_eq!(results.verdict.outcome, Outcome::Unknown);
}

#[test]
fn a_seeded_schedule_runs_faults_and_ends_every_one() {
    let (dir, mut c) = namesrv_cluster(3, NetMode::Namespaces);
    let hpath = dir.path().join("history.jsonl");
    let rec = Recorder::create(&hpath).unwrap();
    let records = {
        let mut nem = Nemesis::new(&mut c, &rec, 42);
        let started = Instant::now();
        let r = nem.run_schedule(
            &[FaultKind::Kill, FaultKind::Pause, FaultKind::Partition],
            Instant::now() + Duration::from_secs(6),
            (Duration::from_millis(100), Duration::from_millis(300)),
            (Duration::from_millis(300), Duration::from_millis(600)),
            || false,
            |_| {},
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        r
    };
    assert!(records.len() >= 3, "{records:?}");
    // Leader targets fail without a leader probe; everything else applied and healed.
    for r in &records {
        if let Some(e) = &r.start_error {
            assert!(e.contains("leader"), "{r:?}");
        }
        assert!(r.end_error.is_none(), "{r:?}");
    }
    for i in 0..3 {
        let n = c.node(i).unwrap();
        assert!(n.is_running() && !n.is_paused(), "{} left broken", n.name);
        assert!(ask(c.client_netns(), n.addr(), Duration::from_secs(2)).is_ok());
    }
    let h = load(&rec, &hpath);
    let results = checker::check(&h, &CheckConfig::default());
    let applied = records.iter().filter(|r| r.start_error.is_none()).count();
    assert_eq!(results.stats.fault_windows, applied);
    assert_eq!(results.stats.unhealed_faults, 0);
}

#[test]
fn the_same_seed_gives_the_same_choices() {
    let pick = |seed| {
        let mut r = Rng::new(seed);
        (0..20)
            .map(|_| {
                (
                    Target::Minority.resolve(5, None, &mut r).unwrap(),
                    partition::bridge(5, &mut r),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(pick(9), pick(9));
    assert_ne!(pick(9), pick(10));
    let mut r = Rng::new(3);
    for _ in 0..100 {
        let m = Target::Majority.resolve(5, None, &mut r).unwrap();
        assert_eq!(m.len(), 3);
        let mut d = m.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 3);
    }
}

#[test]
fn the_net_fault_applies_delay_or_a_slow_link_or_loss_and_is_cleared() {
    let (dir, mut c) = namesrv_cluster(3, NetMode::Namespaces);
    let hpath = dir.path().join("history.jsonl");
    let rec = Recorder::create(&hpath).unwrap();
    let ns = c.node(0).unwrap().netns().unwrap().to_owned();
    let show = |ns: &str| {
        let tc = raftmq_jepsen::netns::run(
            std::process::Command::new("ip").args(["netns", "exec", ns, "tc", "qdisc", "show"]),
        )
        .unwrap();
        let nft = raftmq_jepsen::netns::run(
            std::process::Command::new("ip").args(["netns", "exec", ns, "nft", "list", "ruleset"]),
        )
        .unwrap();
        (tc, nft)
    };
    {
        let mut nem = Nemesis::new(&mut c, &rec, 3);
        let applied = nem.effective_net_fault();
        let (active, targets) = nem.start_on(FaultKind::Net, &[0]).unwrap();
        let (tc, nft) = show(&ns);
        if applied.nfqueue {
            // No netem: the same delay through the userspace scheduler (iptables-nft shows
            // its NFQUEUE rule in the nft ruleset).
            assert!(applied.delay_ms > 0);
            assert!(nft.contains("queue num"), "{nft}");
            assert!(!tc.contains("netem") && !tc.contains("tbf"), "{tc}");
        } else if applied.delay_ms > 0 {
            assert!(tc.contains("netem"), "{tc}");
        } else if applied.rate_kbit > 0 {
            // No netem: a slow link (tbf) with some loss.
            assert!(tc.contains("tbf"), "{tc}");
            assert!(applied.loss_pct >= 10);
            assert!(nft.contains("numgen random mod 100"), "{nft}");
        } else {
            assert!(applied.loss_pct >= 30);
            assert!(nft.contains("numgen random mod 100"), "{nft}");
        }
        nem.end(FaultKind::Net, &active, &targets).unwrap();
    }
    let (tc, nft) = show(&ns);
    assert!(
        !tc.contains("netem")
            && !tc.contains("tbf")
            && !nft.contains("numgen")
            && !nft.contains("queue num"),
        "{tc}\n{nft}"
    );
    let results = checker::check(&load(&rec, &hpath), &CheckConfig::default());
    assert_eq!(results.stats.fault_windows, 1);
    assert_eq!(results.stats.failed_faults, 0);
}
