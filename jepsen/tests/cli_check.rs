//! End to end: the `raftmq-jepsen check` binary on fixture histories, its exit code and the
//! files it writes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftmq-jepsen"))
        .args(args)
        .output()
        .unwrap()
}

fn check(name: &str, out: &Path, extra: &[&str]) -> (Output, Value) {
    let history = fixture(name);
    let mut args = vec![
        "check",
        history.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = run(&args);
    let text = std::fs::read_to_string(out.join("results.json")).unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (output, json)
}

#[test]
fn a_valid_history_exits_zero_and_writes_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = check("valid.jsonl", dir.path(), &["--min-acked", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verdict: valid"), "{stdout}");
    assert_eq!(json["verdict"], "valid");
    assert_eq!(json["stats"]["sends_ok"], 3);
    assert_eq!(json["stats"]["messages_read"], 3);
    assert_eq!(json["lost"]["lost"], 0);
    assert_eq!(json["lost"]["indeterminate_unread"], 1);
    let w = &json["availability"]["windows"][0];
    assert_eq!(w["kind"], "kill");
    // Window ends at 8.2 ms; the next acknowledgement completes at 9.5 ms.
    assert_eq!(w["recovery_ns"], 1_300_000);
    assert_eq!(json["leaders"]["observations"], 3);
    assert_eq!(json["leaders"]["leader_terms"], 2);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("roles (as observed)"));
    assert!(
        html.contains("<svg") && html.contains("kill"),
        "report has plots and the fault"
    );
    assert!(html.contains(">valid<"));
}

#[test]
fn a_lost_message_exits_one_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = check("lost.jsonl", dir.path(), &["--min-acked", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: invalid"));
    assert_eq!(json["verdict"], "invalid");
    assert_eq!(json["failed"], serde_json::json!(["lost"]));
    assert_eq!(json["lost"]["lost"], 1);
    assert_eq!(json["lost"]["lost_prefix"], 1);
    assert_eq!(json["lost"]["examples"][0]["value"], "0-1");
    assert_eq!(
        json["lost"]["examples"][0]["at"]["queue"],
        "TopicTest@broker-a:0"
    );
}

#[test]
fn too_few_operations_exit_three_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = check("valid.jsonl", dir.path(), &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json["verdict"], "unknown");
    assert!(json["unknown_reasons"][0]
        .as_str()
        .unwrap()
        .contains("only 3 acknowledged sends"));
}

#[test]
fn a_malformed_history_names_the_line_and_exits_four() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = check("bad.jsonl", dir.path(), &[]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(!dir.path().join("results.json").exists());
}

#[test]
fn help_documents_every_check_and_the_run_command() {
    let out = run(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for check in [
        "lost",
        "unexpected",
        "duplicate",
        "inconsistent",
        "order",
        "availability",
    ] {
        assert!(
            help.contains(&format!("\n  {check} ")),
            "help lacks {check}:\n{help}"
        );
    }
    assert!(help.contains("`run`"));
    let top = run(&["--help"]);
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("\n  run "), "run subcommand:\n{top}");
    let run_help = run(&["run", "--help"]);
    let run_help = String::from_utf8_lossy(&run_help.stdout);
    for nemesis in ["kill", "pause", "partition", "net"] {
        assert!(
            run_help.contains(&format!("\n  {nemesis} ")),
            "run help lacks {nemesis}:\n{run_help}"
        );
    }
    assert!(run_help.contains("always unknown"), "{run_help}");
}

/// A store root with entries `0..=n` of 200-byte payloads, all committed.
fn store(root: &Path, n: u64) {
    use raftmq_store::commitlog::{CommitLog, CommitLogConfig, EntryId, EntryKind, NewEntry};
    let cfg = CommitLogConfig {
        segment_size: 4096,
        index_file_size: 4096,
        ..CommitLogConfig::default()
    };
    let fs = std::sync::Arc::new(raftmq_store::io::StdFileSystem);
    let (log, _) = CommitLog::open(&root.join("commitlog"), cfg, fs).unwrap();
    let id = |index| EntryId {
        index,
        term: 1,
        leader: 0,
    };
    for i in log.state().next_index..=n {
        let e = NewEntry {
            id: id(i),
            kind: EntryKind::Command,
            payload: vec![i as u8; 200].into(),
        };
        log.append(vec![e], Box::new(|_| {})).unwrap();
    }
    log.save_committed(id(n)).unwrap();
    log.close().unwrap();
}

#[test]
fn check_folds_in_the_replica_comparison_a_run_recorded() {
    use raftmq_jepsen::checker::replicas::{check_group, Replica, ReplicasReport};
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let history = run_dir.join("history.jsonl");
    std::fs::copy(fixture("valid.jsonl"), &history).unwrap();
    let rs: Vec<Replica> = (0..3)
        .map(|i| Replica {
            name: format!("n{i}"),
            root: dir.path().join(format!("stores/n{i}")),
        })
        .collect();
    for r in &rs {
        store(&r.root, 40);
    }
    let write = |report: &ReplicasReport| {
        let text = serde_json::to_string(report).unwrap();
        std::fs::write(run_dir.join("replicas.json"), text).unwrap();
    };
    let args = ["check", history.to_str().unwrap(), "--min-acked", "3"];

    // Identical replicas: the property holds and the verdict stays valid.
    let same = ReplicasReport {
        groups: vec![check_group("broker-a", &rs).unwrap()],
        ..ReplicasReport::default()
    };
    write(&same);
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok   replicas"), "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["replicas"]["groups"][0]["lowest_committed"], 40);

    // One flipped committed byte on n2: invalid, and the report names the file and offset.
    let seg = rs[2].root.join("commitlog/00000000000000000000");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let diverged = ReplicasReport {
        groups: vec![check_group("broker-a", &rs).unwrap()],
        ..ReplicasReport::default()
    };
    write(&diverged);
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL replicas"), "{stdout}");
    assert!(stdout.contains("00000000000000000000@300"), "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "invalid");
    assert_eq!(json["failed"], serde_json::json!(["replicas"]));
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("Replicas (stopped cluster)"));

    // A comparison that could not be done makes a clean history unknown, never valid.
    write(&ReplicasReport {
        error: Some("broker-a: unreadable".into()),
        ..ReplicasReport::default()
    });
    let out = run(&args);
    assert_eq!(out.status.code(), Some(3));
}
