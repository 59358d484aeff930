//! End to end: the harness faces real data loss and must say so. A 3-node group of real
//! `raftmq` processes (loopback) takes acknowledged sends; then the group is stopped, the
//! data of a majority (n0, which bootstraps a pristine group, and n1) is wiped and the intact
//! n2 stays down, so the wiped pair forms a fresh group without the acknowledged messages.
//! Consumers then drain it. `raftmq-jepsen check` must call the history invalid and report
//! every acknowledged send as lost.

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nemesis_support::{eventually, raftmq_bin};
use raftmq_jepsen::cluster::{self, BrokerGroupSpec, Cluster, ClusterConfig, NetMode};
use raftmq_jepsen::history::Recorder;
use raftmq_jepsen::netns;
use raftmq_jepsen::run::leader_from_namesrv;
use raftmq_jepsen::workload::{self, WorkloadConfig};
use serde_json::Value;

const ACKED_BEFORE_WIPE: u64 = 60;

#[test]
fn wiping_a_majority_between_phases_is_reported_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        binary: raftmq_bin(),
        dir: dir.path().to_owned(),
        mode: NetMode::Loopback,
        prefix: netns::unique_prefix(),
        start_timeout: Duration::from_secs(30),
    };
    let mut c = Cluster::create(config, &["namesrv", "n0", "n1", "n2"], |_| {
        cluster::free_port()
    })
    .unwrap();
    let members = [1, 2, 3];
    let namesrv = c.node(0).unwrap().addr();
    let raft_ports: Vec<u16> = (0..3).map(|_| cluster::free_port().unwrap()).collect();
    let spec = BrokerGroupSpec {
        name: "broker-a".into(),
        cluster: "JepsenCluster".into(),
        namesrv: namesrv.to_string(),
        flush_disk_type: "SYNC_FLUSH".into(),
        segment_bytes: 1 << 20,
        consume_queue_bytes: 20 * 6000,
        message_index: false,
    };
    for i in 0..c.len() {
        let args = if i == 0 {
            cluster::namesrv_command(c.node(0).unwrap()).unwrap()
        } else {
            cluster::broker_command(&c, &members, &raft_ports, i - 1, &spec).unwrap()
        };
        c.set_command(i, args).unwrap();
        c.start(i).unwrap();
    }
    let history = dir.path().join("history.jsonl");
    let rec = Arc::new(Recorder::create(&history).unwrap());
    let wc = WorkloadConfig {
        namesrv: namesrv.to_string(),
        topic: "JepsenTopic".into(),
        group: "JepsenConsumers".into(),
        producers: 2,
        consumers: 0,
        rate: 100,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        send_timeout: Duration::from_secs(3),
        pull_timeout: Duration::from_secs(3),
        commit_every: 10,
    };

    // Phase 1: acknowledged sends, nothing read yet.
    let h = workload::spawn(wc.clone(), rec.clone(), None).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || h.sends_ok()
            >= ACKED_BEFORE_WIPE),
        "the group acknowledged only {} sends",
        h.sends_ok()
    );
    h.stop_sends(Instant::now());
    let phase1 = h.finish().unwrap();
    assert!(phase1.sends_ok >= ACKED_BEFORE_WIPE);

    // Stop the group, wipe a majority, leave the intact minority down.
    for i in members {
        c.stop(i, Duration::from_secs(10)).unwrap();
    }
    for i in [1, 2] {
        let store = c.node(i).unwrap().data_dir.join("store");
        std::fs::remove_dir_all(&store).unwrap();
    }
    c.start(1).unwrap();
    c.start(2).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || {
            leader_from_namesrv(&c, None, namesrv, "broker-a").is_some()
        }),
        "the wiped majority never elected a leader"
    );

    // Phase 2: consumers drain what the group now holds.
    let h = workload::spawn(
        WorkloadConfig {
            producers: 0,
            consumers: 2,
            ..wc
        },
        rec.clone(),
        None,
    )
    .unwrap();
    h.stop_sends(Instant::now() + Duration::from_secs(5));
    let phase2 = h.finish().unwrap();
    assert_eq!(phase2.messages_read, 0, "wiped data came back");
    rec.flush().unwrap();
    c.stop_all(Duration::from_secs(10)).unwrap();
    drop(c);

    // The harness's verdict on it.
    let out = Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .arg("check")
        .arg(&history)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("verdict: invalid"), "{stdout}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["verdict"], "invalid");
    assert!(
        results["failed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "lost"),
        "{}",
        results["failed"]
    );
    let lost = &results["lost"];
    assert_eq!(lost["acknowledged"].as_u64(), Some(phase1.sends_ok));
    assert_eq!(lost["lost"].as_u64(), Some(phase1.sends_ok), "{lost}");
    // The examples name acknowledged values, at the queue and offset they were acked at.
    let acked: HashSet<(String, String, u64)> = std::fs::read_to_string(&history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["f"] == "send" && o["type"] == "ok")
        .map(|o| {
            (
                o["value"].as_str().unwrap().to_owned(),
                o["queue"].as_str().unwrap().to_owned(),
                o["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(acked.len() as u64, phase1.sends_ok);
    let examples = lost["examples"].as_array().unwrap();
    assert!(!examples.is_empty());
    for e in examples {
        let key = (
            e["value"].as_str().unwrap().to_owned(),
            e["at"]["queue"].as_str().unwrap().to_owned(),
            e["at"]["offset"].as_u64().unwrap(),
        );
        assert!(acked.contains(&key), "{e}");
    }
}
