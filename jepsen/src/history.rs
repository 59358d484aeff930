//! The operation history: what clients and the nemesis did, one JSON object per line.
//!
//! Owns the record format ([`Op`]), reading and writing JSON-lines files with line-numbered
//! errors, the [`Recorder`] that appends operations while a run goes on, and [`History`],
//! which pairs every invocation with its completion and validates the whole record once so
//! the checkers can trust it. It knows nothing of brokers, sockets or
//! checks.
//!
//! # Format
//!
//! Every operation is an invocation followed, on the same `process`, by one completion:
//!
//! ```text
//! {"time_ns":1000,"process":0,"type":"invoke","f":"send","value":"0-1","key":"k1"}
//! {"time_ns":2000,"process":0,"type":"ok","f":"send","value":"0-1","key":"k1","queue":"q0","offset":0}
//! {"time_ns":3000,"process":5,"type":"invoke","f":"poll","queue":"q0","offset":0}
//! {"time_ns":4000,"process":5,"type":"ok","f":"poll","reads":[{"queue":"q0","offset":0,"value":"0-1"}]}
//! {"time_ns":5000,"process":5,"type":"invoke","f":"commit","group":"g","queue":"q0","offset":1}
//! {"time_ns":5100,"process":5,"type":"ok","f":"commit","group":"g","queue":"q0","offset":1}
//! {"time_ns":6000,"process":"nemesis","type":"invoke","f":"fault","fault":"kill","phase":"start","targets":["n1"]}
//! {"time_ns":6100,"process":"nemesis","type":"ok","f":"fault","fault":"kill","phase":"start","targets":["n1"]}
//! ```
//!
//! * `type`: `invoke`, then `ok` (it happened), `fail` (it certainly did not happen) or `info`
//!   (unknown, for example a timeout). An invocation left without a completion at the end of
//!   the file counts as `info`.
//! * `f = send`: the invocation carries the unique `value` (and optional `key`, `queue`); `ok`
//!   carries the `queue` and `offset` the broker acknowledged. Fields a completion omits are
//!   taken from its invocation.
//! * `f = poll`: the invocation may carry the `queue` and `offset` it pulls from; `ok` carries
//!   `reads`, the messages returned, in order.
//! * `f = commit`: a consumer-offset commit of `offset` for `group` on `queue`.
//! * `f = fetch`: the broker's committed offset for `group` on `queue`; `ok` carries it in
//!   `offset` (absent when nothing is committed).
//! * `f = assign`: the consumer's queues were (re)assigned; its read positions reset
//!   (all queues, or only `queue` if given).
//! * `f = role`: an observer asked every node for its Raft role; `ok` carries `nodes`, a list
//!   of `{"node", "role", "term"}` (`role` is `leader`, `follower`, `candidate`, `learner` or
//!   `down`).
//! * `f = fault`: a nemesis action; `phase` `start` opens a window of kind `fault` on
//!   `targets`, `phase` `end` closes the oldest open window of that kind. A fault completing
//!   with `fail` or `info` was not (surely) applied, so the run proves nothing.
//!
//! `queue` is a string (for example `"TopicTest@broker-a:3"`) or an integer. `time_ns` must
//! not decrease from one line to the next. Unknown fields are ignored.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize};

/// Lines between two progress callbacks while reading.
pub const PROGRESS_EVERY: usize = 100_000;

/// Errors reading, parsing or validating a history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid operation record.
    #[error("line {line}, column {column}: not a valid operation: {reason}")]
    Parse {
        line: usize,
        column: usize,
        reason: String,
    },
    /// A line parses but breaks a rule of the format.
    #[error("line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

impl HistoryError {
    fn invalid(line: usize, reason: impl Into<String>) -> Self {
        HistoryError::Invalid {
            line,
            reason: reason.into(),
        }
    }
}

/// Who performed an operation: a numbered client or a named actor such as `"nemesis"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(s) => f.write_str(s),
        }
    }
}

/// A queue name. Written as a string; an integer in the input is accepted and kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Queue(pub String);

impl Queue {
    pub fn new(name: impl Into<String>) -> Self {
        Queue(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Queue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(s) => Queue(s),
            Raw::Number(n) => Queue(n.to_string()),
        })
    }
}

/// Invocation or one of the three completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// What the operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpF {
    Send,
    Poll,
    Commit,
    Assign,
    Fetch,
    Fault,
    Role,
}

impl fmt::Display for OpF {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpF::Send => "send",
            OpF::Poll => "poll",
            OpF::Commit => "commit",
            OpF::Assign => "assign",
            OpF::Fetch => "fetch",
            OpF::Role => "role",
            OpF::Fault => "fault",
        })
    }
}

/// Whether a fault operation opens or closes its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    End,
}

/// One node's role as a `role` observation saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRole {
    pub node: String,
    /// `leader`, `follower`, `candidate`, `learner`, or `down` when it did not answer.
    pub role: String,
    /// Raft term the node reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// Broker group of the node, when a run has several (terms are per group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One message returned by a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub queue: Queue,
    pub offset: u64,
    pub value: String,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Monotonic time since the start of the run, in nanoseconds.
    pub time_ns: u64,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: OpF,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<Queue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Messages a successful poll returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads: Option<Vec<Read>>,
    /// Consumer group of a commit or fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Fault kind (`kill`, `pause`, `partition`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Roles a successful `role` observation saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeRole>>,
    /// Error text of a `fail` or `info` completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a fault did when its kind alone does not say (a disk fault: the mode, bytes
    /// dropped, the torn write, the file and offset damaged, how the node came back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Op {
    /// A bare operation; the constructors below fill in the fields each `f` needs.
    pub fn new(time_ns: u64, process: Process, kind: OpType, f: OpF) -> Self {
        Op {
            time_ns,
            process,
            kind,
            f,
            queue: None,
            offset: None,
            value: None,
            key: None,
            reads: None,
            group: None,
            fault: None,
            phase: None,
            targets: None,
            nodes: None,
            error: None,
            detail: None,
        }
    }

    /// `invoke send` of `value`.
    pub fn send_invoke(time_ns: u64, process: u64, value: &str, key: Option<&str>) -> Self {
        let mut op = Op::new(time_ns, Process::Client(process), OpType::Invoke, OpF::Send);
        op.value = Some(value.to_owned());
        op.key = key.map(str::to_owned);
        op
    }

    /// `ok send` of `value`, acknowledged at (`queue`, `offset`).
    pub fn send_ok(time_ns: u64, process: u64, value: &str, queue: &str, offset: u64) -> Self {
        let mut op = Op::new(time_ns, Process::Client(process), OpType::Ok, OpF::Send);
        op.value = Some(value.to_owned());
        op.queue = Some(Queue::new(queue));
        op.offset = Some(offset);
        op
    }

    /// A `fail` or `info` completion of a send of `value`.
    pub fn send_done(time_ns: u64, process: u64, kind: OpType, value: &str) -> Self {
        let mut op = Op::new(time_ns, Process::Client(process), kind, OpF::Send);
        op.value = Some(value.to_owned());
        op
    }

    /// `invoke poll`, optionally from (`queue`, `offset`).
    pub fn poll_invoke(time_ns: u64, process: u64, from: Option<(&str, u64)>) -> Self {
        let mut op = Op::new(time_ns, Process::Client(process), OpType::Invoke, OpF::Poll);
        if let Some((q, o)) = from {
            op.queue = Some(Queue::new(q));
            op.offset = Some(o);
        }
        op
    }

    /// `ok poll` returning `reads` as (queue, offset, value).
    pub fn poll_ok(time_ns: u64, process: u64, reads: &[(&str, u64, &str)]) -> Self {
        let mut op = Op::new(time_ns, Process::Client(process), OpType::Ok, OpF::Poll);
        op.reads = Some(
            reads
                .iter()
                .map(|(q, o, v)| Read {
                    queue: Queue::new(*q),
                    offset: *o,
                    value: (*v).to_owned(),
                })
                .collect(),
        );
        op
    }

    /// A nemesis fault operation.
    pub fn fault(time_ns: u64, kind: OpType, fault: &str, phase: Phase, targets: &[&str]) -> Self {
        let mut op = Op::new(time_ns, Process::Named("nemesis".into()), kind, OpF::Fault);
        op.fault = Some(fault.to_owned());
        op.phase = Some(phase);
        op.targets = Some(targets.iter().map(|t| (*t).to_owned()).collect());
        op
    }

    /// Whether this line is a completion (`ok`, `fail` or `info`).
    pub fn is_completion(&self) -> bool {
        self.kind != OpType::Invoke
    }
}

/// Parses one line. `line` is 1-based and used only for the error.
pub fn parse_line(text: &str, line: usize) -> Result<Op, HistoryError> {
    serde_json::from_str(text).map_err(|e| {
        // serde's message ends with its own " at line 1 column N"; report the file's line.
        let text = e.to_string();
        let reason = match text.rfind(" at line ") {
            Some(cut) => text[..cut].to_owned(),
            None => text,
        };
        HistoryError::Parse {
            line,
            column: e.column(),
            reason,
        }
    })
}

/// Reads a JSON-lines file into operations with their 1-based line numbers. Blank lines are
/// skipped. `progress` is called with the number of lines read every [`PROGRESS_EVERY`] lines.
pub fn read_jsonl(
    path: &Path,
    mut progress: impl FnMut(usize),
) -> Result<Vec<(usize, Op)>, HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let mut ops = Vec::new();
    let mut buf = String::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        if reader.read_line(&mut buf).map_err(io)? == 0 {
            break;
        }
        line += 1;
        if line % PROGRESS_EVERY == 0 {
            progress(line);
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        ops.push((line, parse_line(text, line)?));
    }
    Ok(ops)
}

/// Writes operations as JSON lines.
pub fn write_jsonl<'a>(
    path: &Path,
    ops: impl IntoIterator<Item = &'a Op>,
) -> Result<(), HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.to_owned(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    for op in ops {
        serde_json::to_writer(&mut w, op).map_err(|e| io(std::io::Error::other(e)))?;
        w.write_all(b"\n").map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Buffer of a [`Recorder`]: larger than any one line, so a line always goes into the buffer
/// whole and is never written half to the file.
const RECORDER_BUFFER: usize = 1 << 20;
/// How long a [`Recorder`] keeps retrying a write that fails (a disk that is full for a
/// moment) before it gives up.
const WRITE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `op` until it succeeds or `retry` has passed since the first failure.
fn retrying<T>(
    retry: std::time::Duration,
    mut op: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut deadline = None;
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let until = *deadline.get_or_insert_with(|| Instant::now() + retry);
                if Instant::now() >= until {
                    return Err(e);
                }
                tracing::warn!(error = %e, "history write failed; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// Appends operations to a history file as they happen, from any number of threads.
///
/// The time of each operation is taken under the same lock that writes its line, so `time_ns`
/// never decreases in the file, and the file is a valid history as long as every process
/// completes the operation it invoked. Each line is encoded in full before it is written and
/// goes into the buffer whole; a write that fails (a full disk) is retried for up to a minute,
/// blocking the recording threads, so a failure never leaves part of a line in the file.
pub struct Recorder {
    path: PathBuf,
    start: Instant,
    retry: std::time::Duration,
    inner: Mutex<BufWriter<File>>,
}

impl Recorder {
    /// Creates (truncates) `path`; times count from now.
    pub fn create(path: &Path) -> Result<Self, HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Recorder {
            path: path.to_owned(),
            start: Instant::now(),
            retry: WRITE_RETRY,
            inner: Mutex::new(BufWriter::with_capacity(RECORDER_BUFFER, file)),
        })
    }

    /// Sets how long a failing write is retried (default one minute).
    pub fn with_write_retry(mut self, retry: std::time::Duration) -> Self {
        self.retry = retry;
        self
    }

    /// Stamps `op` with the current time, writes it, and returns the stamped operation.
    pub fn record(&self, mut op: Op) -> Result<Op, HistoryError> {
        let io = |source| HistoryError::Io {
            path: self.path.clone(),
            source,
        };
        // A panic while holding the lock leaves at worst a partial line, which the reader
        // reports with its line number.
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        op.time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut line = serde_json::to_vec(&op).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        if line.len() >= RECORDER_BUFFER {
            return Err(io(std::io::Error::other(format!(
                "a {}-byte history line does not fit the buffer",
                line.len()
            ))));
        }
        // BufWriter adds the line only after making room for all of it; a failed flush keeps
        // the unwritten bytes buffered, so the retry picks up where it stopped.
        retrying(self.retry, || w.write_all(&line)).map_err(io)?;
        Ok(op)
    }

    /// Writes buffered lines to the file.
    pub fn flush(&self) -> Result<(), HistoryError> {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        retrying(self.retry, || w.flush()).map_err(|source| HistoryError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// A validated history: operations in time order, each invocation paired with its completion.
#[derive(Debug, Clone)]
pub struct History {
    ops: Vec<Op>,
    lines: Vec<usize>,
    /// For an invocation: index of its completion. For a completion: index of its invocation.
    pair: Vec<Option<usize>>,
}

impl History {
    /// Loads and validates a JSON-lines history file.
    pub fn load(path: &Path, progress: impl FnMut(usize)) -> Result<Self, HistoryError> {
        Self::from_numbered(read_jsonl(path, progress)?)
    }

    /// Validates operations given in order; line numbers are their 1-based positions.
    pub fn from_ops(ops: Vec<Op>) -> Result<Self, HistoryError> {
        Self::from_numbered(
            ops.into_iter()
                .enumerate()
                .map(|(i, op)| (i + 1, op))
                .collect(),
        )
    }

    /// Validates operations carrying their line numbers. Rules (each broken one is an error
    /// naming the line): time does not decrease; a process has at most one operation in flight
    /// and completes the `f` it invoked; a send names a value, and no value is sent twice; an
    /// `ok` send has a queue and an offset; an `ok` poll has `reads`; a fault has a kind and a
    /// phase. Fields a completion omits are copied from its invocation.
    pub fn from_numbered(numbered: Vec<(usize, Op)>) -> Result<Self, HistoryError> {
        let (lines, mut ops): (Vec<usize>, Vec<Op>) = numbered.into_iter().unzip();
        let mut pair = vec![None; ops.len()];
        let mut pending: HashMap<Process, usize> = HashMap::new();
        let mut sent: HashMap<String, usize> = HashMap::new();
        let mut last_time = 0u64;
        for i in 0..ops.len() {
            let line = lines[i];
            if ops[i].time_ns < last_time {
                return Err(HistoryError::invalid(
                    line,
                    format!(
                        "time_ns {} is earlier than the previous line's {}",
                        ops[i].time_ns, last_time
                    ),
                ));
            }
            last_time = ops[i].time_ns;
            if ops[i].kind == OpType::Invoke {
                if let Some(&prev) = pending.get(&ops[i].process) {
                    return Err(HistoryError::invalid(
                        line,
                        format!(
                            "process {} invokes while its {} from line {} has not completed",
                            ops[i].process, ops[prev].f, lines[prev]
                        ),
                    ));
                }
                pending.insert(ops[i].process.clone(), i);
            } else {
                let Some(inv) = pending.remove(&ops[i].process) else {
                    return Err(HistoryError::invalid(
                        line,
                        format!(
                            "completion of {} by process {} without a pending invocation",
                            ops[i].f, ops[i].process
                        ),
                    ));
                };
                if ops[inv].f != ops[i].f {
                    return Err(HistoryError::invalid(
                        line,
                        format!(
                            "completes {} but process {} invoked {} at line {}",
                            ops[i].f, ops[i].process, ops[inv].f, lines[inv]
                        ),
                    ));
                }
                pair[inv] = Some(i);
                pair[i] = Some(inv);
                let (before, after) = ops.split_at_mut(i);
                inherit(&mut after[0], &before[inv]);
            }
            validate_fields(&ops[i], line)?;
            if ops[i].f == OpF::Send && ops[i].kind == OpType::Invoke {
                let value = ops[i].value.clone().unwrap_or_default();
                if let Some(first) = sent.insert(value, i) {
                    return Err(HistoryError::invalid(
                        line,
                        format!(
                            "value {:?} was already sent at line {}; values must be unique",
                            ops[i].value.as_deref().unwrap_or_default(),
                            lines[first]
                        ),
                    ));
                }
            }
            if ops[i].is_completion() && ops[i].f == OpF::Send {
                let inv = pair[i].expect("invariant: completions are paired above");
                if ops[inv].value != ops[i].value {
                    return Err(HistoryError::invalid(
                        line,
                        format!(
                            "send completion value {:?} differs from the invoked {:?} (line {})",
                            ops[i].value, ops[inv].value, lines[inv]
                        ),
                    ));
                }
            }
        }
        Ok(History { ops, lines, pair })
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// 1-based line number of operation `i` in its source.
    pub fn line(&self, i: usize) -> usize {
        self.lines[i]
    }

    /// The completion of invocation `i` (None if it never completed), or the invocation of
    /// completion `i`.
    pub fn pair(&self, i: usize) -> Option<usize> {
        self.pair[i]
    }

    /// How invocation `i` ended: its completion's type, or `Info` if it never completed.
    pub fn outcome(&self, i: usize) -> OpType {
        match self.pair[i] {
            Some(c) => self.ops[c].kind,
            None => OpType::Info,
        }
    }

    /// Time of the first and last operation (0, 0 when empty).
    pub fn span_ns(&self) -> (u64, u64) {
        match (self.ops.first(), self.ops.last()) {
            (Some(a), Some(b)) => (a.time_ns, b.time_ns),
            _ => (0, 0),
        }
    }
}

/// Copies fields a completion left out from its invocation.
fn inherit(done: &mut Op, inv: &Op) {
    match done.f {
        OpF::Send => {
            if done.value.is_none() {
                done.value.clone_from(&inv.value);
            }
            if done.key.is_none() {
                done.key.clone_from(&inv.key);
            }
            if done.queue.is_none() {
                done.queue.clone_from(&inv.queue);
            }
        }
        OpF::Commit => {
            if done.group.is_none() {
                done.group.clone_from(&inv.group);
            }
            if done.queue.is_none() {
                done.queue.clone_from(&inv.queue);
            }
            if done.offset.is_none() {
                done.offset = inv.offset;
            }
        }
        OpF::Fetch => {
            if done.group.is_none() {
                done.group.clone_from(&inv.group);
            }
            if done.queue.is_none() {
                done.queue.clone_from(&inv.queue);
            }
        }
        OpF::Assign => {
            if done.queue.is_none() {
                done.queue.clone_from(&inv.queue);
            }
        }
        OpF::Fault => {
            if done.fault.is_none() {
                done.fault.clone_from(&inv.fault);
            }
            if done.phase.is_none() {
                done.phase = inv.phase;
            }
            if done.targets.is_none() {
                done.targets.clone_from(&inv.targets);
            }
        }
        OpF::Poll | OpF::Role => {}
    }
}

fn validate_fields(op: &Op, line: usize) -> Result<(), HistoryError> {
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(HistoryError::invalid(
                line,
                format!("{:?} {} needs {what}", op.kind, op.f).to_lowercase(),
            ))
        }
    };
    match (op.f, op.kind) {
        (OpF::Send, _) => {
            need(op.value.is_some(), "a \"value\"")?;
            if op.kind == OpType::Ok {
                need(op.queue.is_some(), "a \"queue\"")?;
                need(op.offset.is_some(), "an \"offset\"")?;
            }
        }
        (OpF::Poll, OpType::Ok) => need(op.reads.is_some(), "\"reads\"")?,
        (OpF::Poll, OpType::Invoke) => {
            need(
                op.queue.is_some() == op.offset.is_some(),
                "both \"queue\" and \"offset\" or neither",
            )?;
        }
        (OpF::Commit, OpType::Invoke | OpType::Ok) => {
            need(op.queue.is_some(), "a \"queue\"")?;
            need(op.offset.is_some(), "an \"offset\"")?;
        }
        (OpF::Fetch, OpType::Invoke) => need(op.queue.is_some(), "a \"queue\"")?,
        (OpF::Role, OpType::Ok) => need(op.nodes.is_some(), "\"nodes\"")?,
        (OpF::Fault, _) => {
            need(op.fault.is_some(), "a \"fault\" kind")?;
            need(op.phase.is_some(), "a \"phase\"")?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_write_is_retried_then_reported() {
        let mut fails = 2;
        let t = Instant::now();
        let r = retrying(std::time::Duration::from_secs(5), || {
            if fails > 0 {
                fails -= 1;
                Err(std::io::Error::other("full"))
            } else {
                Ok(7)
            }
        });
        assert_eq!(r.unwrap(), 7);
        assert!(t.elapsed() >= std::time::Duration::from_millis(400));
        // A disk that stays full: lines stay buffered whole, the flush fails after the retry.
        if Path::new("/dev/full").exists() {
            let rec = Recorder::create(Path::new("/dev/full"))
                .unwrap()
                .with_write_retry(std::time::Duration::from_millis(300));
            rec.record(Op::send_invoke(0, 0, "v", None)).unwrap();
            let err = rec.flush().unwrap_err();
            assert!(err.to_string().contains("/dev/full"), "{err}");
        }
    }

    #[test]
    fn completion_inherits_invocation_fields() {
        let mut ok = Op::new(2, Process::Client(0), OpType::Ok, OpF::Send);
        ok.queue = Some(Queue::new("q"));
        ok.offset = Some(7);
        let h = History::from_ops(vec![Op::send_invoke(1, 0, "v", Some("k")), ok]).unwrap();
        assert_eq!(h.ops()[1].value.as_deref(), Some("v"));
        assert_eq!(h.ops()[1].key.as_deref(), Some("k"));
        assert_eq!(h.pair(0), Some(1));
        assert_eq!(h.outcome(0), OpType::Ok);
    }

    #[test]
    fn unmatched_invocation_is_indeterminate() {
        let h = History::from_ops(vec![Op::send_invoke(1, 0, "v", None)]).unwrap();
        assert_eq!(h.outcome(0), OpType::Info);
    }

    #[test]
    fn bad_json_names_its_line() {
        let err = parse_line("{\"time_ns\": 1,", 42).unwrap_err();
        assert!(err.to_string().starts_with("line 42, column 14: "), "{err}");
    }

    #[test]
    fn queue_accepts_integers() {
        let op = parse_line(
            r#"{"time_ns":1,"process":3,"type":"ok","f":"send","value":"a","queue":2,"offset":9}"#,
            1,
        )
        .unwrap();
        assert_eq!(op.queue, Some(Queue::new("2")));
    }

    #[test]
    fn rule_violations_name_their_line() {
        let cases: Vec<(Vec<Op>, &str)> = vec![
            (
                vec![
                    Op::send_invoke(5, 0, "a", None),
                    Op::send_invoke(4, 1, "b", None),
                ],
                "line 2: time_ns 4",
            ),
            (
                vec![
                    Op::send_invoke(1, 0, "a", None),
                    Op::send_invoke(2, 0, "b", None),
                ],
                "line 2: process 0 invokes while",
            ),
            (
                vec![Op::send_ok(1, 0, "a", "q", 0)],
                "line 1: completion of send by process 0 without",
            ),
            (
                vec![
                    Op::send_invoke(1, 0, "a", None),
                    Op::send_done(2, 0, OpType::Fail, "a"),
                    Op::send_invoke(3, 0, "a", None),
                ],
                "line 3: value \"a\" was already sent at line 1",
            ),
            (
                vec![
                    Op::send_invoke(1, 0, "a", None),
                    Op::send_done(2, 0, OpType::Ok, "a"),
                ],
                "line 2: ok send needs a \"queue\"",
            ),
            (
                vec![Op::send_invoke(1, 0, "a", None), Op::poll_ok(2, 0, &[])],
                "line 2: completes poll but process 0 invoked send at line 1",
            ),
        ];
        for (ops, want) in cases {
            let err = History::from_ops(ops).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn concurrent_recording_gives_a_valid_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let rec = Recorder::create(&path).unwrap();
        std::thread::scope(|s| {
            for p in 0..4u64 {
                let rec = &rec;
                s.spawn(move || {
                    for i in 0..200u64 {
                        let v = format!("{p}-{i}");
                        rec.record(Op::send_invoke(0, p, &v, None)).unwrap();
                        rec.record(Op::send_ok(0, p, &v, "q", p * 1000 + i))
                            .unwrap();
                    }
                });
            }
        });
        rec.flush().unwrap();
        let h = History::load(&path, |_| {}).unwrap();
        assert_eq!(h.len(), 1600);
        assert!(h.ops().windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    }

    #[test]
    fn jsonl_round_trip_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let ops = vec![
            Op::send_invoke(1, 0, "a", Some("k")),
            Op::send_ok(2, 0, "a", "q", 0),
            Op::fault(3, OpType::Invoke, "kill", Phase::Start, &["n1"]),
        ];
        write_jsonl(&path, &ops).unwrap();
        let back: Vec<Op> = read_jsonl(&path, |_| {})
            .unwrap()
            .into_iter()
            .map(|(_, op)| op)
            .collect();
        assert_eq!(back, ops);

        std::fs::write(&path, "\n{\"time_ns\":1}\n").unwrap();
        let err = read_jsonl(&path, |_| {}).unwrap_err().to_string();
        assert!(
            err.starts_with("line 2, column 13: not a valid operation: missing field"),
            "{err}"
        );
    }
}
