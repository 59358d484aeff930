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
