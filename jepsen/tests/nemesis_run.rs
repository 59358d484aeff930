//! End to end: `raftmq-jepsen run` brings up real processes, runs the seeded nemesis, records
//! the fault windows, tears everything down and checks the history. With a binary lacking the
//! broker command there is no workload and the verdict must be unknown (exit 3), never valid.
//! With the broker the workload runs; faults a 3-node group must survive (one node, the
//! leader or a minority killed, paused or partitioned) must give a valid verdict, and so must
//! membership changes (leadership transfers, a node replaced by a new id).

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::path::Path;
use std::process::{Command, Output};

use nemesis_support::{namespaces_with, raftmq_bin, require_namespaces};
use serde_json::Value;

fn run(out: &Path, extra: &[&str]) -> (Output, u32) {
    let bin = raftmq_bin();
    let child = Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .args(["run", "--bin", bin.to_str().unwrap(), "--out"])
        .arg(out)
        .args([
            "--gap-min",
            "200ms",
            "--gap-max",
            "400ms",
            "--hold-min",
            "300ms",
            "--hold-max",
            "600ms",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A run against a real broker group in namespaces that must end valid (exit 0); returns its
/// `results.json` and `run.json`.
fn valid_broker_run(out: &Path, extra: &[&str]) -> (Value, Value) {
    require_namespaces();
    assert!(
        raftmq_jepsen::cluster::has_broker_command(&raftmq_bin()),
        "the raftmq binary has no broker command"
    );
    let (o, _) = run(out, extra);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let results = json(&out.join("results.json"));
    assert_eq!(results["verdict"], "valid", "{stdout}\n{stderr}");
    assert_eq!(o.status.code(), Some(0));
    (results, json(&out.join("run.json")))
}

/// The seeded choices of a run: each fault's kind and how many nodes it hit. Which nodes
/// those were can differ between runs of one seed: "the leader" is whoever leads then.
fn fault_choices(run_json: &Value) -> Vec<(String, usize)> {
    run_json["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let kind = f["kind"].as_str().unwrap().to_owned();
            (kind, f["targets"].as_array().map_or(0, Vec::len))
        })
        .collect()
}

#[test]
fn a_run_with_every_nemesis_cleans_up_and_exits_with_its_verdict() {
    require_namespaces();
    let broker = raftmq_jepsen::cluster::has_broker_command(&raftmq_bin());
    let dir = tempfile::tempdir().unwrap();
    let mut choices = Vec::new();
    for round in 0..2 {
        let out = dir.path().join(format!("run{round}"));
        let (o, pid) = run(
            &out,
            // 6 s: a membership replacement alone can take seconds on a loaded machine, and
            // at least three faults must fit.
            &[
                "--time",
                "6s",
                "--seed",
                "7",
                "--nemesis",
                "all",
                "--nodes",
                "3",
            ],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let results = json(&out.join("results.json"));
        let r = json(&out.join("run.json"));
        // The exit code is the verdict's; a run with a broker ran a real workload.
        let want_code = match results["verdict"].as_str().unwrap() {
            "valid" => 0,
            "invalid" => 1,
            _ => 3,
        };
        assert_eq!(o.status.code(), Some(want_code), "{stdout}\n{stderr}");
        if broker {
            assert!(r["workload"]["sends_ok"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(results["stats"]["sends_ok"], r["workload"]["sends_ok"]);
        } else {
            assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
            assert!(stderr.contains("no workload"), "{stderr}");
            assert!(!r["limitations"].as_array().unwrap().is_empty());
        }
        assert_eq!(r["config"]["seed"], 7);
        let faults = r["faults"].as_array().unwrap();
        assert!(faults.len() >= 3, "{r}");
        for f in faults {
            assert!(f["end_error"].is_null(), "{f}");
            if !f["start_error"].is_null() {
                assert!(f["start_error"].as_str().unwrap().contains("leader"), "{f}");
            }
        }
        // Every failed fault start made the verdict unknown, unless a property failed.
        if faults.iter().any(|f| !f["start_error"].is_null()) {
            assert_ne!(results["verdict"], "valid");
        }
        let applied = faults.iter().filter(|f| f["start_error"].is_null()).count();
        assert_eq!(results["stats"]["fault_windows"], applied);
        assert_eq!(results["stats"]["unhealed_faults"], 0);
        // Every node has a log; nothing is left running or configured.
        for n in r["nodes"].as_array().unwrap() {
            assert!(Path::new(n["log"].as_str().unwrap()).is_file(), "{n}");
        }
        assert!(namespaces_with(&format!("rj{pid}x")).is_empty());
        choices.push(fault_choices(&r));
    }
    // The same seed makes the same choices (timing decides only how many fit in the time).
    let k = choices[0].len().min(choices[1].len());
    assert_eq!(choices[0][..k], choices[1][..k]);
}

#[test]
fn loopback_runs_kill_and_pause_and_refuses_partitions() {
    let broker = raftmq_jepsen::cluster::has_broker_command(&raftmq_bin());
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = run(
        &dir.path().join("a"),
        &[
            // 5 s: at least 100 sends must be acknowledged for a valid verdict, and sends
            // are slower on a loaded machine (97 in a 3 s run once).
            "--loopback",
            "--time",
            "5s",
            "--seed",
            "1",
            "--nemesis",
            "kill,pause",
            "--targets",
            "one,minority",
            "--drain",
            "10s",
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(if broker { 0 } else { 3 }),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = json(&dir.path().join("a/run.json"));
    assert!(!r["faults"].as_array().unwrap().is_empty());

    let (o, _) = run(
        &dir.path().join("b"),
        &["--loopback", "--time", "3s", "--nemesis", "partition"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("needs network namespaces"), "{stderr}");
}

#[test]
fn a_broker_group_survives_minority_faults_with_a_valid_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (results, r) = valid_broker_run(
        &out,
        &[
            "--time",
            "8s",
            "--seed",
            "5",
            "--nemesis",
            "kill,pause,partition",
            "--targets",
            "one,leader,minority",
            "--drain",
            "30s",
        ],
    );
    assert!(r["workload"]["sends_ok"].as_u64().unwrap() >= 100, "{r}");
    assert_eq!(r["workload"]["drained"], true, "{r}");
    assert!(r["faults"].as_array().unwrap().len() >= 2, "{r}");
    // The role observer saw the nodes every half second.
    assert!(
        results["leaders"]["observations"].as_u64().unwrap() >= 10,
        "{}",
        results["leaders"]
    );
    assert!(results["leaders"]["leader_terms"].as_u64().unwrap() >= 1);
    // Leader targets found the leader through the nameserver.
    for f in r["faults"].as_array().unwrap() {
        assert!(f["start_error"].is_null(), "{f}");
    }
}

#[test]
fn a_broker_group_survives_membership_changes_with_a_valid_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // Seed 3 starts with a replacement, then a leadership transfer.
    let (results, r) = valid_broker_run(
        &out,
        &[
            "--time",
            "8s",
            "--seed",
            "3",
            "--nemesis",
            "membership",
            "--drain",
            "30s",
        ],
    );
    assert_eq!(r["workload"]["drained"], true, "{r}");
    let faults = r["faults"].as_array().unwrap();
    for f in faults {
        assert_eq!(f["kind"], "membership", "{f}");
        assert!(
            f["start_error"].is_null() && f["end_error"].is_null(),
            "{f}"
        );
    }
    let details: Vec<&str> = faults
        .iter()
        .map(|f| f["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("replaced by n3")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("leadership transferred")),
        "{details:?}"
    );
    // The replaced slot runs under its new name; the old data is gone, its log kept.
    let names: Vec<&str> = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"n3"), "{names:?}");
    let old = details[0].split_whitespace().next().unwrap();
    assert!(!names.contains(&old), "{names:?}");
    assert!(!out.join("nodes").join(old).join("data").exists());
    assert!(out.join("nodes").join(old).join("node.log").is_file());
    // The stopped replicas compared include the new node, byte-identical to the others.
    let reps = json(&out.join("replicas.json"));
    let g = &reps["groups"][0];
    assert_eq!(g["problems"].as_array().unwrap().len(), 0, "{reps}");
    let rep_names: Vec<&str> = g["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(rep_names.contains(&"n3"), "{rep_names:?}");
    assert!(!rep_names.contains(&old), "{rep_names:?}");
    // The observer recorded the new node under its own name.
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(history.contains("\"node\":\"n3\""), "n3 never observed");
    assert!(
        results["leaders"]["observations"].as_u64().unwrap() >= 10,
        "{}",
        results["leaders"]
    );
}

#[test]
fn nodes_die_with_a_killed_harness() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let bin = raftmq_bin();
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .args(["run", "--loopback", "--bin", bin.to_str().unwrap(), "--out"])
        .arg(dir.path().join("run"))
        .args([
            "--time",
            "60s",
            "--nemesis",
            "kill",
            "--gap-min",
            "50s",
            "--gap-max",
            "50s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut pids = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("(pid Some(").nth(1) {
            pids.push(rest.trim_end_matches("))").parse::<u32>().unwrap());
        }
        if line.starts_with("nemesis ") {
            break;
        }
    }
    assert_eq!(pids.len(), 4, "namesrv and three nodes");
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = nemesis_support::eventually(std::time::Duration::from_secs(10), || {
        pids.iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
    assert!(gone, "nodes outlived the harness: {pids:?}");
}

#[test]
fn two_groups_of_three_give_a_valid_verdict_with_both_groups_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (results, r) = valid_broker_run(
        &out,
        &[
            "--groups",
            "2",
            "--time",
            "6s",
            "--seed",
            "11",
            "--nemesis",
            "kill,pause,partition",
            "--targets",
            "one,leader,minority",
            "--drain",
            "30s",
        ],
    );
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{r}");
    assert_eq!(groups[0]["name"], "broker-a");
    assert_eq!(groups[1]["members"], serde_json::json!(["b0", "b1", "b2"]));
    // The workload used both groups' queues.
    assert_eq!(results["stats"]["queues"], 8, "{}", results["stats"]);
    let history = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    for g in ["broker-a", "broker-b"] {
        assert!(
            history.contains(&format!("@{g}:")),
            "no operation on a queue of {g}"
        );
    }
    // Every fault hit nodes of one group only.
    let faults = r["faults"].as_array().unwrap();
    assert!(faults.len() >= 2, "{r}");
    for f in faults {
        assert!(f["start_error"].is_null(), "{f}");
        let text = f["targets"].to_string();
        assert!(
            text.contains('a') != text.contains('b'),
            "fault across groups: {f}"
        );
    }
    // Every window is attributed to its group, with that group's own recovery time.
    for w in results["availability"]["windows"].as_array().unwrap() {
        let g = w["group"].as_str().unwrap_or_default();
        assert!(g == "broker-a" || g == "broker-b", "{w}");
        assert!(w["group_recovery_ns"].as_u64().is_some(), "{w}");
    }
    // Roles were observed per group, and both groups' replicas were compared.
    assert!(history.contains("\"group\":\"broker-b\""));
    assert!(results["leaders"]["leader_terms"].as_u64().unwrap() >= 2);
    let reps = &results["replicas"]["groups"];
    assert_eq!(reps.as_array().unwrap().len(), 2, "{}", results["replicas"]);
    for g in reps.as_array().unwrap() {
        assert!(g["lowest_committed"].as_u64().unwrap() > 0, "{g}");
        assert_eq!(g["consume_queues"].as_array().unwrap().len(), 4, "{g}");
    }
    assert!(out.join("replicas.json").is_file());
}
