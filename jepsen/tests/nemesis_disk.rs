//! The `disk` nemesis end to end through `raftmq-jepsen run` (loopback: disk faults need no
//! namespaces): power cuts of every node with SYNC_FLUSH lose no acknowledged send; segment
//! damage ends in a recovery cut or a refusal naming the file and offset, after which the node
//! is replaced under a new id (or, if that fails, left down with the verdict never valid);
//! without a failpoints binary the fault is reported unavailable and the verdict is unknown.

#![allow(clippy::unwrap_used)]

mod nemesis_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use nemesis_support::raftmq_bin;
use serde_json::Value;

/// The failpoints binary and the plain one, built in that order once: both builds write
/// cargo's `raftmq`, and the failpoints one is kept under its own hard link first, so the
/// plain path is not replaced afterwards by a concurrent test's build.
fn bins() -> &'static (PathBuf, PathBuf) {
    static BINS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINS.get_or_init(|| {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fp = raftmq_jepsen::cluster::raftmq_failpoints_binary(&ws, false)
            .expect("building raftmq with failpoints");
        (fp, raftmq_bin())
    })
}

fn failpoints_bin() -> PathBuf {
    bins().0.clone()
}

fn plain_bin() -> PathBuf {
    bins().1.clone()
}

fn run(bin: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .args(["run", "--loopback", "--nemesis", "disk", "--bin"])
        .arg(bin)
        .arg("--out")
        .arg(out)
        .args(["--drain", "30s", "--rate", "100"])
        .args(extra)
        .output()
        .unwrap()
}

/// A JSON file the run wrote; a missing one fails with the run's own output.
fn json_of(path: &Path, o: &Output) -> Value {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).unwrap(),
        Err(e) => panic!("{}: {e}\n{}", path.display(), text(o)),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn power_cuts_of_every_node_lose_no_acknowledged_send() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let bin = failpoints_bin();
    assert!(raftmq_jepsen::cluster::has_failpoints(&bin));
    let o = run(
        &bin,
        &out,
        &[
            "--disk-modes",
            "power-cut,torn",
            "--targets",
            "all",
            "--time",
            "7s",
            "--seed",
            "11",
            "--gap-min",
            "500ms",
            "--gap-max",
            "1s",
            "--hold-min",
            "300ms",
            "--hold-max",
            "600ms",
        ],
    );
    let r = json_of(&out.join("run.json"), &o);
    let results = json_of(&out.join("results.json"), &o);
    assert_eq!(r["failpoints"], true);
    let faults = r["faults"].as_array().unwrap();
    assert!(faults.len() >= 2, "{r}");
    for f in faults {
        assert_eq!(f["kind"], "disk");
        assert!(f["start_error"].is_null(), "{f}");
        assert!(f["end_error"].is_null(), "{f}");
        assert_eq!(f["targets"].as_array().unwrap().len(), 3, "{f}");
        let d = f["detail"].as_str().unwrap();
        // Every node reported its cut, and each came back.
        assert_eq!(d.matches("power cut dropped").count(), 3, "{d}");
        assert_eq!(d.matches("restarted").count(), 3, "{d}");
    }
    // The history carries the same outcomes.
    let hist = std::fs::read_to_string(out.join("history.jsonl")).unwrap();
    assert!(
        hist.contains("\"detail\":\"power-cut: n0: power cut dropped")
            || hist.contains("\"detail\":\"torn: n0: power cut dropped")
    );
    assert_eq!(results["lost"]["lost"], 0, "{}", text(&o));
    assert!(results["lost"]["acknowledged"].as_u64().unwrap() >= 100);
    assert_eq!(results["verdict"], "valid", "{}", text(&o));
    assert_eq!(o.status.code(), Some(0));
    assert!(r["left_down"].as_array().unwrap().is_empty());
}

#[test]
fn segment_damage_is_cut_or_refused_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(
        &failpoints_bin(),
        &out,
        &[
            "--disk-modes",
            "corrupt",
            "--time",
            "10s",
            "--seed",
            "3",
            "--gap-min",
            "1s",
            "--gap-max",
            "2s",
            "--hold-min",
            "1s",
            "--hold-max",
            "2s",
        ],
    );
    let r = json_of(&out.join("run.json"), &o);
    let results = json_of(&out.join("results.json"), &o);
    let faults = r["faults"].as_array().unwrap();
    assert!(faults.len() >= 2, "{r}");
    let mut refused = Vec::new();
    let mut repaired = 0;
    let mut unhealed = 0;
    for f in faults {
        if let Some(e) = f["start_error"].as_str() {
            // Once a node is left down, the two still up have no minority to damage.
            assert!(!refused.is_empty() && e.contains("still up"), "{f}");
            continue;
        }
        let targets = f["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "a minority of 3: {f}");
        let node = targets[0].as_str().unwrap();
        let d = f["detail"].as_str().unwrap();
        let truncated = d.contains(&format!("{node}: truncated "));
        assert!(
            truncated || d.contains(&format!("{node}: flipped bit ")),
            "{d}"
        );
        // A refusal names the damaged file and an offset; a truncation is refused at the
        // file's new length.
        let check_refusal = |e: &str| {
            assert!(
                e.contains("corruption in ") && e.contains(" at offset "),
                "{e}"
            );
            assert!(e.contains("/commitlog/"), "{e}");
            if truncated {
                let len = d
                    .split(" to ")
                    .nth(1)
                    .and_then(|t| t.split(' ').next())
                    .unwrap();
                assert!(e.contains(&format!("at offset {len}:")), "{e}\n{d}");
            }
        };
        match f["end_error"].as_str() {
            None if d.contains("refused to start") => {
                // Refused, then repaired as an operator would: a new node under a new id.
                check_refusal(d);
                assert!(
                    d.contains("repaired: removed from the group, wiped, replaced by "),
                    "{d}"
                );
                repaired += 1;
            }
            None => {
                // Came back: a recovery cut is logged for tail damage.
                assert!(!truncated, "a truncated segment must not load: {d}");
                assert!(d.contains(&format!("{node}: restarted")), "{d}");
            }
            Some(e) if e.contains("refused to start") => {
                // The repair failed (it needs a leader): the node is left down.
                check_refusal(e);
                assert!(e.contains("repair failed"), "{e}");
                refused.push(node.to_owned());
                unhealed += 1;
            }
            Some(e) => {
                // Damage nobody noticed is recorded, never passed over.
                assert!(e.contains("damage not detected"), "{e}");
                unhealed += 1;
            }
        }
    }
    assert_eq!(
        r["left_down"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        refused
    );
    assert_eq!(results["stats"]["unhealed_faults"], unhealed);
    if unhealed > 0 {
        assert_ne!(results["verdict"], "valid", "{}", text(&o));
    }
    assert_eq!(results["lost"]["lost"], 0, "{}", text(&o));
    // This seed truncates a segment, which no node may load.
    assert!(repaired + refused.len() > 0, "{r}");
}

#[test]
fn without_failpoints_the_disk_fault_is_unavailable_and_never_valid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(
        &plain_bin(),
        &out,
        &[
            "--disk-modes",
            "power-cut",
            "--time",
            "2s",
            "--seed",
            "5",
            "--gap-min",
            "300ms",
            "--gap-max",
            "500ms",
            "--hold-min",
            "200ms",
            "--hold-max",
            "300ms",
        ],
    );
    let r = json_of(&out.join("run.json"), &o);
    let results = json_of(&out.join("results.json"), &o);
    assert_eq!(r["failpoints"], false);
    assert!(
        r["limitations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("disk fault unavailable")),
        "{r}"
    );
    let faults = r["faults"].as_array().unwrap();
    assert!(!faults.is_empty());
    for f in faults {
        assert!(
            f["start_error"].as_str().unwrap().contains("failpoints"),
            "{f}"
        );
    }
    assert_eq!(results["verdict"], "unknown", "{}", text(&o));
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn run_help_documents_the_disk_nemesis() {
    let o = Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "disk ",
        "--disk-modes",
        "power-cut",
        "torn",
        "corrupt",
        "SIGUSR1",
        "SIGUSR2",
        "failpoints",
        "left_down",
        "new Raft id",
    ] {
        assert!(
            help.contains(needle),
            "run --help lacks {needle:?}:\n{help}"
        );
    }
}
