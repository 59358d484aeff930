//! Replica divergence: compares the commitlog and consumequeue files of several replicas byte
//! for byte, with every node stopped.
//!
//! A segmented log is a directory of files named by their starting byte offset as a
//! zero-padded decimal (RocketMQ's `commitlog/00000000000000000000`, and each
//! `consumequeue/<topic>/<queueId>/`). Concatenated in name order they form one byte stream.
//! [`compare_streams`] reads the same range of each replica's stream and reports the first
//! byte where they differ, and which replicas end early (short is not divergence: a replica
//! may lag). Replicas are byte-identical up to the commit index by design, so the caller passes
//! the commit position of the replica with the lowest commit index as `upto`.
//!
//! [`check_group`] applies this to the stopped replicas of one broker group: it reads each
//! replica's commit index from its commitlog `meta` file, the commit position from the entry
//! index (`commitlog/entryindex/`, one 32-byte unit per Raft index), and each queue's
//! dispatched offset from the dispatch `checkpoint`, all through the store's own codecs
//! (`raftmq-store`). It then compares, up to the lowest commit index among the replicas, the
//! entry index (same entries, terms and positions) and the commitlog bytes, and every
//! consumequeue up to the lowest dispatched offset of that queue (and further over the units
//! every replica has written). The `meta`, `abort`, `lock` and checkpoint files are not part of
//! any stream. Finding the directories and stopping the nodes belongs to cluster control.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use raftmq_store::checkpoint::DispatchCheckpoint;
use raftmq_store::commitlog::Meta;
use raftmq_store::format::{IndexUnit, INDEX_UNIT_LEN};
use raftmq_store::io::StdFileSystem;
use serde::{Deserialize, Serialize};

/// Bytes read from each replica per comparison step.
const CHUNK: usize = 64 * 1024;
/// Size of one consumequeue unit (commitlog offset 8, size 4, tag hash 8).
pub const CQ_UNIT: u64 = 20;
/// A placeholder consumequeue unit: commitlog offset 0, size `i32::MAX`, tag hash 0.
const PLACEHOLDER_UNIT: [u8; CQ_UNIT as usize] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: segment file name is not a decimal start offset")]
    BadSegmentName { path: PathBuf },
    #[error("no replicas to compare")]
    NoReplicas,
    #[error("{path}: {reason}")]
    Store { path: PathBuf, reason: String },
}

/// Files a store keeps next to its segments that belong to no stream: the commitlog's meta
/// file, the store's `abort` and `lock` markers and the dispatch checkpoint (with the
/// temporary files of their atomic replacement).
const NOT_SEGMENTS: &[&str] = &[
    "meta",
    "meta.tmp",
    "abort",
    "lock",
    "checkpoint",
    "checkpoint.tmp",
];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReplicaError + '_ {
    move |source| ReplicaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One replica's store root (the directory holding `commitlog/` and `consumequeue/`).
#[derive(Debug, Clone)]
pub struct Replica {
    pub name: String,
    pub root: PathBuf,
}

/// A segment file and the stream range it covers.
#[derive(Debug, Clone)]
struct Segment {
    start: u64,
    len: u64,
    path: PathBuf,
}

/// A replica's log as a sequence of segments.
#[derive(Debug, Clone)]
pub struct SegmentedLog {
    segments: Vec<Segment>,
}

impl SegmentedLog {
    /// Lists `dir`'s segment files. A missing directory is an empty log. Subdirectories and
    /// the store's own non-segment files (`meta`, `abort`, `lock`, `checkpoint`) are skipped;
    /// any other file whose name is not all digits is an error, so a stray file is noticed.
    pub fn open(dir: &Path) -> Result<Self, ReplicaError> {
        let mut segments = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SegmentedLog { segments })
            }
            Err(e) => return Err(io_err(dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(io_err(&path))?;
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| NOT_SEGMENTS.contains(&n)) {
                continue;
            }
            let start = name
                .to_str()
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ReplicaError::BadSegmentName { path: path.clone() })?;
            segments.push(Segment {
                start,
                len: meta.len(),
                path,
            });
        }
        segments.sort_by_key(|s| s.start);
        Ok(SegmentedLog { segments })
    }

    /// First byte offset held (0 if empty).
    pub fn start(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.start)
    }

    /// End of the contiguous range starting at [`Self::start`] (a gap between segments ends it).
    pub fn end(&self) -> u64 {
        let mut end = self.start();
        for s in &self.segments {
            if s.start != end {
                break;
            }
            end = s.start + s.len;
        }
        end
    }

    /// The segment file holding byte `offset` and the offset inside it.
    pub fn locate(&self, offset: u64) -> Option<(&Path, u64)> {
        let i = self
            .segments
            .partition_point(|s| s.start <= offset)
            .checked_sub(1)?;
        let seg = &self.segments[i];
        (offset < seg.start + seg.len).then(|| (seg.path.as_path(), offset - seg.start))
    }

    /// Reads `buf.len()` bytes at `offset`; the range must lie within `start()..end()`.
    fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> Result<(), ReplicaError> {
        while !buf.is_empty() {
            let i = self.segments.partition_point(|s| s.start <= offset) - 1;
            let seg = &self.segments[i];
            let within = offset - seg.start;
            let n = ((seg.len - within) as usize).min(buf.len());
            let mut f = File::open(&seg.path).map_err(io_err(&seg.path))?;
            f.seek(SeekFrom::Start(within)).map_err(io_err(&seg.path))?;
            f.read_exact(&mut buf[..n]).map_err(io_err(&seg.path))?;
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Where a consumequeue's real units start: just past the placeholder units (commitlog
    /// offset 0, size `i32::MAX`) a queue that starts past offset 0 is front-filled with.
    pub fn placeholders_end(&self) -> Result<u64, ReplicaError> {
        let (mut at, end) = (self.start(), self.end());
        let mut unit = [0u8; CQ_UNIT as usize];
        while at + CQ_UNIT <= end {
            self.read_at(at, &mut unit)?;
            if unit != PLACEHOLDER_UNIT {
                break;
            }
            at += CQ_UNIT;
        }
        Ok(at)
    }

    /// End of the written part of a consumequeue: just after its last non-zero 20-byte unit
    /// (files are preallocated with zeros).
    pub fn written_units_end(&self) -> Result<u64, ReplicaError> {
        let (start, end) = (self.start(), self.end());
        let mut hi = end - (end - start) % CQ_UNIT;
        let mut buf = vec![0u8; CHUNK - CHUNK % CQ_UNIT as usize];
        while hi > start {
            let lo = hi.saturating_sub(buf.len() as u64).max(start);
            let chunk = &mut buf[..(hi - lo) as usize];
            self.read_at(lo, chunk)?;
            if let Some(p) = chunk.iter().rposition(|&b| b != 0) {
                let last = lo + p as u64;
                return Ok(last - (last - start) % CQ_UNIT + CQ_UNIT);
            }
            hi = lo;
        }
        Ok(start)
    }
}

/// A replica whose stream ends before the compared range does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Short {
    pub replica: String,
    pub end: u64,
}

/// One replica's view of a divergent byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DivergentBytes {
    pub replica: String,
    /// The segment file holding the byte, and the byte's offset inside it.
    pub file: PathBuf,
    pub file_offset: u64,
    /// Up to 16 bytes from the divergent one, in hex.
    pub hex: String,
}

/// The first byte where replicas disagree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Divergence {
    /// Offset in the stream (for the commitlog: the physical offset).
    pub offset: u64,
    /// Every replica's file, offset and bytes there.
    pub replicas: Vec<DivergentBytes>,
}

/// Result of comparing one stream across replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamComparison {
    /// The stream (for example `commitlog` or `consumequeue/T/0`).
    pub stream: String,
    /// Compared range `from..to`: from the latest start of any replica (purge may differ) to
    /// `upto`, cut at the earliest end.
    pub from: u64,
    pub to: u64,
    pub short: Vec<Short>,
    pub divergence: Option<Divergence>,
    /// Consumequeues compared without a length: replicas whose written units end before the
    /// longest replica's (dispatch lag, or missing units). Not a divergence by itself.
    pub lag: Vec<Short>,
}

impl StreamComparison {
    /// True when the compared bytes are identical and no replica ends early.
    pub fn identical(&self) -> bool {
        self.divergence.is_none() && self.short.is_empty()
    }
}

/// Compares `dirs` (replica name, directory) over `..upto` of their streams.
pub fn compare_streams(
    stream: &str,
    dirs: &[(String, PathBuf)],
    upto: u64,
) -> Result<StreamComparison, ReplicaError> {
    compare_streams_from(stream, dirs, 0, upto)
}

/// Like [`compare_streams`], starting no earlier than `floor` (where the stream's content
/// starts on some replica although its first file starts earlier: a log reset to a snapshot
/// position, a consumequeue front-filled with placeholders).
pub fn compare_streams_from(
    stream: &str,
    dirs: &[(String, PathBuf)],
    floor: u64,
    upto: u64,
) -> Result<StreamComparison, ReplicaError> {
    if dirs.is_empty() {
        return Err(ReplicaError::NoReplicas);
    }
    let logs = dirs
        .iter()
        .map(|(_, d)| SegmentedLog::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let from = logs
        .iter()
        .map(SegmentedLog::start)
        .max()
        .unwrap_or(0)
        .max(floor);
    let mut short = Vec::new();
    let mut to = upto.max(from);
    for ((name, _), log) in dirs.iter().zip(&logs) {
        if log.end() < upto {
            short.push(Short {
                replica: name.clone(),
                end: log.end(),
            });
        }
        to = to.min(log.end().max(from));
    }
    let mut bufs = vec![vec![0u8; CHUNK]; logs.len()];
    let mut at = from;
    let mut divergence = None;
    while at < to && divergence.is_none() {
        let n = ((to - at) as usize).min(CHUNK);
        for (log, buf) in logs.iter().zip(bufs.iter_mut()) {
            log.read_at(at, &mut buf[..n])?;
        }
        let first = &bufs[0][..n];
        let diff = bufs[1..]
            .iter()
            .filter_map(|b| b[..n].iter().zip(first).position(|(x, y)| x != y))
            .min();
        if let Some(p) = diff {
            let offset = at + p as u64;
            let show = (n - p).min(16);
            let replicas = dirs
                .iter()
                .zip(&bufs)
                .zip(&logs)
                .map(|(((name, _), b), log)| {
                    let hex: String = b[p..p + show].iter().map(|x| format!("{x:02x}")).collect();
                    let (file, file_offset) = log
                        .locate(offset)
                        .map_or((PathBuf::new(), 0), |(f, o)| (f.to_owned(), o));
                    DivergentBytes {
                        replica: name.clone(),
                        file,
                        file_offset,
                        hex,
                    }
                })
                .collect();
            divergence = Some(Divergence { offset, replicas });
        }
        at += n as u64;
    }
    Ok(StreamComparison {
        stream: stream.to_owned(),
        from,
        to,
        short,
        divergence,
        lag: Vec::new(),
    })
}

/// Compares the replicas' `commitlog/` up to byte `upto` (the lowest commit position).
pub fn compare_commitlogs(
    replicas: &[Replica],
    upto: u64,
) -> Result<StreamComparison, ReplicaError> {
    let dirs: Vec<(String, PathBuf)> = replicas
        .iter()
        .map(|r| (r.name.clone(), r.root.join("commitlog")))
        .collect();
    compare_streams("commitlog", &dirs, upto)
}

/// Every `(topic, queueId directory)` with a consumequeue on any replica.
fn consume_queue_dirs(
    replicas: &[Replica],
) -> Result<std::collections::BTreeSet<(String, String)>, ReplicaError> {
    let mut queues = std::collections::BTreeSet::new();
    for r in replicas {
        let base = r.root.join("consumequeue");
        for topic in list_dirs(&base)? {
            for q in list_dirs(&base.join(&topic))? {
                queues.insert((topic.clone(), q));
            }
        }
    }
    Ok(queues)
}

/// Compares one consumequeue over `max(floor, shortest written length)`, listing replicas
/// written less far than the longest in `lag`.
fn compare_queue(
    replicas: &[Replica],
    topic: &str,
    q: &str,
    floor: u64,
) -> Result<StreamComparison, ReplicaError> {
    let dirs: Vec<(String, PathBuf)> = replicas
        .iter()
        .map(|r| {
            let d = r.root.join("consumequeue").join(topic).join(q);
            (r.name.clone(), d)
        })
        .collect();
    let stream = format!("consumequeue/{topic}/{q}");
    let mut written = Vec::with_capacity(dirs.len());
    let mut real_start = 0;
    for (name, d) in &dirs {
        let log = SegmentedLog::open(d)?;
        real_start = real_start.max(log.placeholders_end()?);
        written.push((name, log.written_units_end()?));
    }
    let shortest = written.iter().map(|w| w.1).min().unwrap_or(0);
    let longest = written.iter().map(|w| w.1).max().unwrap_or(0);
    let mut c = compare_streams_from(&stream, &dirs, real_start, shortest.max(floor))?;
    c.lag = written
        .into_iter()
        .filter(|w| w.1 < longest)
        .map(|(name, end)| Short {
            replica: name.clone(),
            end,
        })
        .collect();
    Ok(c)
}

/// Compares every `consumequeue/<topic>/<queueId>/` found on any replica. Each queue is
/// compared up to `upto` bytes if given (a replica ending earlier is short). Otherwise it is
/// compared up to the shortest written length among the replicas, and replicas written less
/// far than the longest are listed in `lag`.
pub fn compare_consume_queues(
    replicas: &[Replica],
    upto: Option<u64>,
) -> Result<Vec<StreamComparison>, ReplicaError> {
    if replicas.is_empty() {
        return Err(ReplicaError::NoReplicas);
    }
    let mut out = Vec::new();
    for (topic, q) in consume_queue_dirs(replicas)? {
        let Some(limit) = upto else {
            out.push(compare_queue(replicas, &topic, &q, 0)?);
            continue;
        };
        let dirs: Vec<(String, PathBuf)> = replicas
            .iter()
            .map(|r| {
                let d = r.root.join("consumequeue").join(&topic).join(&q);
                (r.name.clone(), d)
            })
            .collect();
        out.push(compare_streams(
            &format!("consumequeue/{topic}/{q}"),
            &dirs,
            limit,
        )?);
    }
    Ok(out)
}

/// What a stopped replica's store says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaState {
    pub name: String,
    pub root: PathBuf,
    /// Commit index in the commitlog's `meta` file (`None`: nothing committed yet).
    pub committed: Option<u64>,
    /// First Raft index the log holds.
    pub start_index: u64,
    /// Commitlog position where the log starts (past a snapshot install, mid-segment).
    #[serde(default)]
    pub start_pos: u64,
    /// Commitlog position just past the committed entry, from the entry index (`None` when
    /// nothing is committed or the entry's index unit is missing).
    pub commit_end: Option<u64>,
    /// Last entry the dispatch checkpoint covers.
    pub dispatched_index: Option<u64>,
    /// Whether no `abort` marker is left (the node stopped cleanly).
    pub clean: bool,
    /// Next queue offset per `topic/queueId` the dispatch checkpoint covers.
    #[serde(skip)]
    pub dispatched: BTreeMap<(String, i32), i64>,
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Store {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The entry-index unit of Raft index `index` in the entry-index files under `dir`.
fn index_unit(dir: &Path, index: u64) -> Result<Option<IndexUnit>, ReplicaError> {
    let log = SegmentedLog::open(dir)?;
    let unit = INDEX_UNIT_LEN as u64;
    let at = index.saturating_mul(unit);
    if at < log.start() || at.saturating_add(unit) > log.end() {
        return Ok(None);
    }
    let mut buf = [0u8; INDEX_UNIT_LEN];
    log.read_at(at, &mut buf)?;
    Ok(IndexUnit::decode(&buf))
}

/// Reads a stopped replica's meta file, entry index and dispatch checkpoint.
pub fn read_state(replica: &Replica) -> Result<ReplicaState, ReplicaError> {
    let commitlog = replica.root.join(COMMITLOG);
    let meta = Meta::load(&StdFileSystem, &commitlog).map_err(|e| store_err(&commitlog, e))?;
    let committed = meta.committed.map(|c| c.index);
    let commit_end = match committed {
        Some(i) => {
            index_unit(&commitlog.join(ENTRY_INDEX), i)?.map(|u| u.pos + u64::from(u.record_len))
        }
        None => None,
    };
    let ckpt = DispatchCheckpoint::load(&StdFileSystem, &replica.root)
        .map_err(|e| store_err(&replica.root, e))?;
    Ok(ReplicaState {
        name: replica.name.clone(),
        root: replica.root.clone(),
        committed,
        start_index: meta.start_index,
        start_pos: meta.start_pos,
        commit_end,
        dispatched_index: ckpt.as_ref().and_then(|c| c.applied).map(|a| a.index),
        clean: !commitlog.join("abort").exists() && !replica.root.join("abort").exists(),
        dispatched: ckpt.map(|c| c.queues).unwrap_or_default(),
    })
}

/// Directory of the commitlog inside a store root.
const COMMITLOG: &str = "commitlog";
/// Directory of the entry index inside the commitlog directory.
const ENTRY_INDEX: &str = "entryindex";

/// Replica comparison of one broker group (all of its members stopped).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupReplicas {
    pub group: String,
    pub replicas: Vec<ReplicaState>,
    /// Lowest commit index among the replicas: everything up to it is compared.
    pub lowest_committed: Option<u64>,
    /// Commitlog position just past that entry (0 when nothing is committed everywhere).
    pub commit_pos: u64,
    /// Problems that are not a byte difference (a committed entry without an index unit).
    pub problems: Vec<String>,
    /// Entry-index units `..=lowest_committed`: same index, term, leader, position, length.
    pub entry_index: StreamComparison,
    /// Commitlog bytes `..commit_pos`.
    pub commitlog: StreamComparison,
    /// Every queue up to its lowest dispatched offset (then over the units all have written).
    pub consume_queues: Vec<StreamComparison>,
}

impl GroupReplicas {
    /// Entry index and commitlog identical up to the lowest commit index on every replica,
    /// every consumequeue agreeing and present up to its lowest dispatched offset.
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
            && self.entry_index.identical()
            && self.commitlog.identical()
            && self
                .consume_queues
                .iter()
                .all(|c| c.divergence.is_none() && c.short.is_empty())
    }

    /// One line per finding (empty when [`Self::holds`]).
    pub fn findings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("{}: {p}", self.group))
            .collect();
        let streams = std::iter::once(&self.entry_index)
            .chain(std::iter::once(&self.commitlog))
            .chain(&self.consume_queues);
        for c in streams {
            if let Some(d) = &c.divergence {
                let at: Vec<String> = d
                    .replicas
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}@{}={}",
                            r.replica,
                            r.file.display(),
                            r.file_offset,
                            r.hex
                        )
                    })
                    .collect();
                out.push(format!(
                    "{}: {} diverges at byte {}: {}",
                    self.group,
                    c.stream,
                    d.offset,
                    at.join(", ")
                ));
            }
            for s in &c.short {
                out.push(format!(
                    "{}: {} of {} ends at {} before {}",
                    self.group, c.stream, s.replica, s.end, c.to
                ));
            }
        }
        out
    }
}

/// Compares the stopped replicas of one group: the entry index and the commitlog up to the
/// lowest commit index among them, and every consumequeue up to the lowest offset the
/// replicas' dispatch checkpoints cover (further over units every replica has written).
pub fn check_group(group: &str, replicas: &[Replica]) -> Result<GroupReplicas, ReplicaError> {
    if replicas.is_empty() {
        return Err(ReplicaError::NoReplicas);
    }
    let states = replicas
        .iter()
        .map(read_state)
        .collect::<Result<Vec<_>, _>>()?;
    let mut problems = Vec::new();
    // A replica that never committed anything bounds the comparison at nothing.
    let lowest = states.iter().map(|s| s.committed).min().flatten();
    let commit_pos = match lowest {
        Some(l) => {
            let holder = states
                .iter()
                .find(|s| s.committed == Some(l))
                .expect("invariant: the minimum comes from a replica");
            match holder.commit_end {
                Some(p) => p,
                None => {
                    problems.push(format!(
                        "{} committed index {l} but its entry index has no unit for it",
                        holder.name
                    ));
                    0
                }
            }
        }
        None => 0,
    };
    let dirs = |sub: &Path| -> Vec<(String, PathBuf)> {
        replicas
            .iter()
            .map(|r| (r.name.clone(), r.root.join(sub)))
            .collect()
    };
    let unit = INDEX_UNIT_LEN as u64;
    let index_upto = lowest.map_or(0, |l| (l + 1) * unit);
    // A replica whose log was reset to a snapshot position holds nothing before its start.
    let start_index = states.iter().map(|s| s.start_index).max().unwrap_or(0);
    let start_pos = states.iter().map(|s| s.start_pos).max().unwrap_or(0);
    let entry_index = compare_streams_from(
        "commitlog/entryindex",
        &dirs(&Path::new(COMMITLOG).join(ENTRY_INDEX)),
        start_index.saturating_mul(unit),
        index_upto,
    )?;
    let commitlog = compare_streams_from(
        "commitlog",
        &dirs(Path::new(COMMITLOG)),
        start_pos,
        commit_pos,
    )?;
    let mut consume_queues = Vec::new();
    for (topic, q) in consume_queue_dirs(replicas)? {
        let qid: Option<i32> = q.parse().ok();
        let floor = states
            .iter()
            .map(|s| {
                qid.and_then(|id| s.dispatched.get(&(topic.clone(), id)).copied())
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0);
        let mut c = compare_queue(replicas, &topic, &q, floor * CQ_UNIT)?;
        // Below the lowest dispatched offset every replica must hold the units: a replica
        // whose written units end there is short, not lagging.
        for l in &c.lag {
            if l.end < floor * CQ_UNIT {
                c.short.push(l.clone());
            }
        }
        consume_queues.push(c);
    }
    Ok(GroupReplicas {
        group: group.to_owned(),
        replicas: states,
        lowest_committed: lowest,
        commit_pos,
        problems,
        entry_index,
        commitlog,
        consume_queues,
    })
}

/// The replica-divergence property of a run: one comparison per broker group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplicasReport {
    pub groups: Vec<GroupReplicas>,
    /// Why the comparison could not be done (then the property is not established).
    pub error: Option<String>,
    /// Nodes that did not stop on SIGTERM within the grace time and were killed.
    pub killed_at_stop: Vec<String>,
    /// Nodes left out of the comparison: left down after disk damage made them refuse to
    /// start (their stores are known damaged and await replacement; the fault windows that
    /// left them down are unhealed, so the verdict is not valid anyway).
    #[serde(default)]
    pub excluded: Vec<String>,
}

impl ReplicasReport {
    /// Every group's replicas agree (an error is no failure; it makes the verdict unknown).
    pub fn holds(&self) -> bool {
        self.groups.iter().all(GroupReplicas::holds)
    }

    /// One line per finding over every group.
    pub fn findings(&self) -> Vec<String> {
        self.groups
            .iter()
            .flat_map(GroupReplicas::findings)
            .collect()
    }
}

fn list_dirs(dir: &Path) -> Result<Vec<String>, ReplicaError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(dir: &Path, start: u64, bytes: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{start:020}")), bytes).unwrap();
    }

    fn replicas(root: &Path, n: usize) -> Vec<Replica> {
        (0..n)
            .map(|i| Replica {
                name: format!("n{i}"),
                root: root.join(format!("n{i}")),
            })
            .collect()
    }

    #[test]
    fn identical_commitlogs_across_segments() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 3);
        for r in &rs {
            seg(&r.root.join("commitlog"), 0, &[1; 100]);
            seg(&r.root.join("commitlog"), 100, &[2; 100]);
        }
        let c = compare_commitlogs(&rs, 150).unwrap();
        assert!(c.identical(), "{c:?}");
        assert_eq!((c.from, c.to), (0, 150));
    }

    #[test]
    fn finds_the_first_differing_byte_in_a_later_segment() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 3);
        for r in &rs {
            seg(&r.root.join("commitlog"), 0, &[1; 100]);
        }
        let mut odd = vec![2u8; 100];
        odd[37] = 9;
        seg(&rs[0].root.join("commitlog"), 100, &[2; 100]);
        seg(&rs[1].root.join("commitlog"), 100, &odd);
        seg(&rs[2].root.join("commitlog"), 100, &[2; 100]);
        let c = compare_commitlogs(&rs, 200).unwrap();
        let d = c.divergence.expect("divergence");
        assert_eq!(d.offset, 137);
        assert!(d.replicas[1].hex.starts_with("09"), "{d:?}");
        assert_eq!(d.replicas[1].replica, "n1");
        assert!(
            d.replicas[1].file.ends_with("00000000000000000100"),
            "{d:?}"
        );
        assert_eq!(d.replicas[1].file_offset, 37);
        // Comparing only below the difference finds nothing.
        assert!(compare_commitlogs(&rs, 137).unwrap().identical());
    }

    #[test]
    fn a_lagging_replica_is_short_not_divergent() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 2);
        seg(&rs[0].root.join("commitlog"), 0, &[1; 100]);
        seg(&rs[1].root.join("commitlog"), 0, &[1; 60]);
        let c = compare_commitlogs(&rs, 100).unwrap();
        assert!(c.divergence.is_none());
        assert_eq!(c.short.len(), 1);
        assert_eq!((c.short[0].replica.as_str(), c.short[0].end), ("n1", 60));
        assert_eq!(c.to, 60);
    }

    #[test]
    fn purged_prefixes_compare_from_the_latest_start() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 2);
        seg(&rs[0].root.join("commitlog"), 0, &[1; 100]);
        seg(&rs[0].root.join("commitlog"), 100, &[2; 100]);
        seg(&rs[1].root.join("commitlog"), 100, &[2; 100]);
        let c = compare_commitlogs(&rs, 200).unwrap();
        assert!(c.identical(), "{c:?}");
        assert_eq!(c.from, 100);
    }

    #[test]
    fn stray_files_are_an_error() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 1);
        seg(&rs[0].root.join("commitlog"), 0, &[1; 10]);
        std::fs::write(rs[0].root.join("commitlog/notes.txt"), b"x").unwrap();
        let err = compare_commitlogs(&rs, 10).unwrap_err();
        assert!(matches!(err, ReplicaError::BadSegmentName { .. }), "{err}");
    }

    #[test]
    fn consume_queues_compare_written_units() {
        let t = tempfile::tempdir().unwrap();
        let rs = replicas(t.path(), 2);
        let mut full = vec![0u8; 200];
        full[..60].fill(7); // three units written, the rest preallocated zeros
        let mut lag = vec![0u8; 200];
        lag[..40].fill(7);
        seg(&rs[0].root.join("consumequeue/T/0"), 0, &full);
        seg(&rs[1].root.join("consumequeue/T/0"), 0, &lag);
        seg(&rs[0].root.join("consumequeue/T/1"), 0, &full);
        seg(&rs[1].root.join("consumequeue/T/1"), 0, &full);
        let log = SegmentedLog::open(&rs[0].root.join("consumequeue/T/0")).unwrap();
        assert_eq!(log.written_units_end().unwrap(), 60);
        let cs = compare_consume_queues(&rs, None).unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].stream, "consumequeue/T/0");
        // Without a length: the common written prefix agrees and n1 lags by one unit.
        assert!(cs[0].identical(), "{:?}", cs[0]);
        assert_eq!(cs[0].to, 40);
        assert_eq!(
            (cs[0].lag[0].replica.as_str(), cs[0].lag[0].end),
            ("n1", 40)
        );
        assert!(cs[1].identical() && cs[1].lag.is_empty());
        // Told both hold 60 bytes, n1's zeros where n0 has unit 3 are a divergence at 40.
        let cs = compare_consume_queues(&rs, Some(60)).unwrap();
        assert_eq!(cs[0].divergence.as_ref().map(|d| d.offset), Some(40));
        // A unit that differs inside the common prefix is a divergence either way.
        let mut bad = full.clone();
        bad[25] = 1;
        seg(&rs[1].root.join("consumequeue/T/1"), 0, &bad);
        let cs = compare_consume_queues(&rs, None).unwrap();
        assert_eq!(cs[1].divergence.as_ref().map(|d| d.offset), Some(25));
    }

    mod stores {
        //! Replicas written through the store's own commitlog, meta and checkpoint code.
        use super::super::*;
        use raftmq_store::commitlog::{CommitLog, CommitLogConfig, EntryId, EntryKind, NewEntry};
        use std::sync::Arc;

        const SEGMENT: u64 = 4096;

        fn id(index: u64, term: u64) -> EntryId {
            EntryId {
                index,
                term,
                leader: 1,
            }
        }

        /// Writes a store root with entries `0..=n` (term 1 up to `same`, then `tail_term`),
        /// 300-byte payloads depending on index and term, committed up to `committed`.
        fn write_replica(root: &Path, n: u64, same: u64, tail_term: u64, committed: u64) {
            let cfg = CommitLogConfig {
                segment_size: SEGMENT,
                index_file_size: 4096,
                ..CommitLogConfig::default()
            };
            let fs = Arc::new(StdFileSystem);
            let (log, _) = CommitLog::open(&root.join("commitlog"), cfg, fs).unwrap();
            let mut next = log.state().next_index;
            while next <= n {
                let term = if next <= same { 1 } else { tail_term };
                let payload = vec![(next * 7 + term) as u8; 300];
                let e = NewEntry {
                    id: id(next, term),
                    kind: EntryKind::Command,
                    payload: payload.into(),
                };
                log.append(vec![e], Box::new(|_| {})).unwrap();
                next += 1;
            }
            log.save_committed(id(committed, 1)).unwrap();
            log.close().unwrap();
        }

        fn three(t: &Path) -> Vec<Replica> {
            (0..3)
                .map(|i| Replica {
                    name: format!("n{i}"),
                    root: t.join(format!("n{i}")),
                })
                .collect()
        }

        #[test]
        fn identical_replicas_hold_up_to_the_lowest_commit_index() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            write_replica(&rs[0].root, 30, 30, 1, 30);
            write_replica(&rs[1].root, 30, 30, 1, 22);
            write_replica(&rs[2].root, 28, 28, 1, 25);
            let g = check_group("broker-a", &rs).unwrap();
            assert!(g.holds(), "{:?}", g.findings());
            assert!(g.findings().is_empty());
            assert_eq!(g.lowest_committed, Some(22));
            // Records are 348 bytes, 11 per 4096-byte segment, from index 0: entry 22 is the
            // first of the third segment.
            assert_eq!(g.commit_pos, 2 * SEGMENT + 348, "{g:?}");
            assert_eq!((g.commitlog.from, g.commitlog.to), (0, g.commit_pos));
            assert_eq!(g.entry_index.to, 23 * 32);
            assert!(g.replicas.iter().all(|r| r.clean && r.commit_end.is_some()));
        }

        #[test]
        fn a_flipped_byte_in_the_committed_region_is_reported_with_file_and_offset() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            for r in &rs {
                write_replica(&r.root, 30, 30, 1, 30);
            }
            let clean = check_group("broker-a", &rs).unwrap();
            assert!(clean.holds(), "{:?}", clean.findings());
            // Flip one payload byte in the second segment of n1, below the commit position.
            let seg = rs[1].root.join("commitlog/00000000000000004096");
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes[1000] ^= 0x40;
            std::fs::write(&seg, &bytes).unwrap();
            let g = check_group("broker-a", &rs).unwrap();
            assert!(!g.holds());
            let d = g.commitlog.divergence.as_ref().expect("divergence");
            assert_eq!(d.offset, SEGMENT + 1000);
            let n1 = d.replicas.iter().find(|r| r.replica == "n1").unwrap();
            assert_eq!(n1.file, seg);
            assert_eq!(n1.file_offset, 1000);
            assert_ne!(n1.hex[..2], d.replicas[0].hex[..2]);
            let f = g.findings();
            assert_eq!(f.len(), 1, "{f:?}");
            assert!(f[0].contains("00000000000000004096@1000"), "{f:?}");
            // The entry index still agrees: only the bytes differ.
            assert!(g.entry_index.identical());
        }

        #[test]
        fn an_uncommitted_tail_difference_is_allowed() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            // n2 kept five entries of a deposed leader (term 2) past the common commit point.
            write_replica(&rs[0].root, 30, 30, 1, 25);
            write_replica(&rs[1].root, 27, 27, 1, 25);
            write_replica(&rs[2].root, 30, 25, 2, 25);
            let g = check_group("broker-a", &rs).unwrap();
            assert!(g.holds(), "{:?}", g.findings());
            // Past the commit position the tails differ, in bytes and in the entry index.
            let past = compare_commitlogs(&rs, g.commit_pos + 400).unwrap();
            assert!(past.divergence.is_some(), "{past:?}");
            // A committed entry that differs is found, here through its entry-index unit too.
            let t2 = tempfile::tempdir().unwrap();
            let rs2 = three(t2.path());
            write_replica(&rs2[0].root, 30, 30, 1, 28);
            write_replica(&rs2[1].root, 30, 30, 1, 28);
            write_replica(&rs2[2].root, 30, 25, 2, 28);
            let g = check_group("broker-a", &rs2).unwrap();
            assert!(!g.holds());
            assert_eq!(
                g.entry_index.divergence.as_ref().map(|d| d.offset / 32),
                Some(26),
                "{:?}",
                g.findings()
            );
            assert!(g.commitlog.divergence.is_some());
        }

        #[test]
        fn a_replica_reset_to_a_snapshot_position_is_compared_from_there() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            write_replica(&rs[0].root, 30, 30, 1, 30);
            write_replica(&rs[1].root, 30, 30, 1, 30);
            // n2 installed a snapshot up to entry 15: its log restarts just past that entry,
            // in the middle of a segment whose earlier bytes it never had.
            let unit = index_unit(&rs[0].root.join("commitlog/entryindex"), 15)
                .unwrap()
                .unwrap();
            let reset_pos = unit.pos + u64::from(unit.record_len);
            assert_ne!(reset_pos % SEGMENT, 0);
            let cfg = CommitLogConfig {
                segment_size: SEGMENT,
                index_file_size: 4096,
                ..CommitLogConfig::default()
            };
            let (log, _) =
                CommitLog::open(&rs[2].root.join("commitlog"), cfg, Arc::new(StdFileSystem))
                    .unwrap();
            log.reset(id(15, 1), reset_pos).unwrap();
            log.close().unwrap();
            write_replica(&rs[2].root, 30, 30, 1, 28);
            let g = check_group("broker-a", &rs).unwrap();
            assert!(g.holds(), "{:?}", g.findings());
            assert_eq!(g.commitlog.from, reset_pos);
            assert_eq!(g.entry_index.from, 16 * 32);
            assert_eq!(g.lowest_committed, Some(28));
            // Past its start the reset replica is still compared byte for byte.
            let seg = rs[2].root.join("commitlog/00000000000000008192");
            let mut bytes = std::fs::read(&seg).unwrap();
            bytes[100] ^= 1;
            std::fs::write(&seg, &bytes).unwrap();
            assert!(!check_group("broker-a", &rs).unwrap().holds());
        }

        #[test]
        fn placeholder_units_in_front_of_a_queue_are_not_compared() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            let u = |b: u8| [b; 20];
            for r in &rs {
                write_replica(&r.root, 5, 5, 1, 5);
                checkpoint(&r.root, 4);
            }
            cq(&rs[0].root, 0, &[u(1), u(2), u(3), u(4)]);
            cq(&rs[1].root, 0, &[u(1), u(2), u(3), u(4)]);
            // n2's queue was started at offset 2 after a snapshot: two placeholders first.
            cq(
                &rs[2].root,
                0,
                &[PLACEHOLDER_UNIT, PLACEHOLDER_UNIT, u(3), u(4)],
            );
            let g = check_group("broker-a", &rs).unwrap();
            assert!(g.holds(), "{:?}", g.findings());
            assert_eq!((g.consume_queues[0].from, g.consume_queues[0].to), (40, 80));
            cq(
                &rs[2].root,
                0,
                &[PLACEHOLDER_UNIT, PLACEHOLDER_UNIT, u(3), u(5)],
            );
            let g = check_group("broker-a", &rs).unwrap();
            let d = g.consume_queues[0].divergence.as_ref().expect("divergence");
            assert_eq!(d.offset, 60);
        }

        fn cq(root: &Path, queue: u32, units: &[[u8; 20]]) {
            let dir = root.join(format!("consumequeue/T/{queue}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut bytes = vec![0u8; 200];
            for (i, u) in units.iter().enumerate() {
                bytes[i * 20..i * 20 + 20].copy_from_slice(u);
            }
            std::fs::write(dir.join("00000000000000000000"), bytes).unwrap();
        }

        fn checkpoint(root: &Path, dispatched: i64) {
            let mut c = DispatchCheckpoint::default();
            c.queues.insert(("T".to_owned(), 0), dispatched);
            c.store(&StdFileSystem, root).unwrap();
        }

        #[test]
        fn consume_queues_must_agree_up_to_the_lowest_dispatched_offset() {
            let t = tempfile::tempdir().unwrap();
            let rs = three(t.path());
            let u = |b: u8| [b; 20];
            for (i, r) in rs.iter().enumerate() {
                write_replica(&r.root, 5, 5, 1, 5);
                checkpoint(&r.root, if i == 2 { 2 } else { 3 });
            }
            // n2 dispatched two units and has written a third that the others lack: lag only.
            cq(&rs[0].root, 0, &[u(1), u(2), u(3)]);
            cq(&rs[1].root, 0, &[u(1), u(2), u(3)]);
            cq(&rs[2].root, 0, &[u(1), u(2), u(3), u(4)]);
            let g = check_group("broker-a", &rs).unwrap();
            assert!(g.holds(), "{:?}", g.findings());
            assert_eq!(g.consume_queues[0].to, 60);
            // A unit missing below the lowest dispatched offset is a failure, not lag.
            cq(&rs[1].root, 0, &[u(1)]);
            let g = check_group("broker-a", &rs).unwrap();
            assert!(!g.holds());
            let f = g.findings();
            assert!(f.iter().any(|l| l.contains("consumequeue/T/0")), "{f:?}");
            // A unit that differs inside the dispatched range is a divergence.
            cq(&rs[1].root, 0, &[u(1), u(9), u(3)]);
            let g = check_group("broker-a", &rs).unwrap();
            let d = g.consume_queues[0].divergence.as_ref().expect("divergence");
            assert_eq!(d.offset, 20);
        }
    }
}
