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
//! This module is pure file comparison over directories; finding the directories and the
//! commit position belongs to cluster control. It knows nothing of the entry format.

use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Bytes read from each replica per comparison step.
const CHUNK: usize = 64 * 1024;
/// Size of one consumequeue unit (commitlog offset 8, size 4, tag hash 8).
pub const CQ_UNIT: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: segment file name is not a decimal start offset")]
    BadSegmentName { path: PathBuf },
    #[error("no replicas to compare")]
    NoReplicas,
}

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
    /// Lists `dir`'s segment files. A missing directory is an empty log. Files whose name is
    /// not all digits are an error, so a stray file is noticed rather than skipped.
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
#[derive(Debug, Clone, Serialize)]
pub struct Short {
    pub replica: String,
    pub end: u64,
}

/// The first byte where replicas disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub offset: u64,
    /// Up to 16 bytes from `offset`, in hex, per replica.
    pub bytes: Vec<(String, String)>,
}

/// Result of comparing one stream across replicas.
#[derive(Debug, Clone, Serialize)]
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
    if dirs.is_empty() {
        return Err(ReplicaError::NoReplicas);
    }
    let logs = dirs
        .iter()
        .map(|(_, d)| SegmentedLog::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let from = logs.iter().map(SegmentedLog::start).max().unwrap_or(0);
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
            let bytes = dirs
                .iter()
                .zip(&bufs)
                .map(|((name, _), b)| {
                    let hex: String = b[p..p + show].iter().map(|x| format!("{x:02x}")).collect();
                    (name.clone(), hex)
                })
                .collect();
            divergence = Some(Divergence { offset, bytes });
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
    let mut queues = std::collections::BTreeSet::new();
    for r in replicas {
        let base = r.root.join("consumequeue");
        for topic in list_dirs(&base)? {
            for q in list_dirs(&base.join(&topic))? {
                queues.insert((topic.clone(), q));
            }
        }
    }
    let mut out = Vec::new();
    for (topic, q) in queues {
        let dirs: Vec<(String, PathBuf)> = replicas
            .iter()
            .map(|r| {
                let d = r.root.join("consumequeue").join(&topic).join(&q);
                (r.name.clone(), d)
            })
            .collect();
        let stream = format!("consumequeue/{topic}/{q}");
        let Some(limit) = upto else {
            let mut written = Vec::with_capacity(dirs.len());
            for (name, d) in &dirs {
                written.push((name, SegmentedLog::open(d)?.written_units_end()?));
            }
            let shortest = written.iter().map(|w| w.1).min().unwrap_or(0);
            let longest = written.iter().map(|w| w.1).max().unwrap_or(0);
            let mut c = compare_streams(&stream, &dirs, shortest)?;
            c.lag = written
                .into_iter()
                .filter(|w| w.1 < longest)
                .map(|(name, end)| Short {
                    replica: name.clone(),
                    end,
                })
                .collect();
            out.push(c);
            continue;
        };
        out.push(compare_streams(&stream, &dirs, limit)?);
    }
    Ok(out)
}

/// Commitlog and consumequeue comparison of a set of stopped replicas.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    pub commitlog: StreamComparison,
    pub consume_queues: Vec<StreamComparison>,
}

impl ReplicaReport {
    /// The commitlogs are identical up to the commit position on every replica, and the
    /// consumequeues agree wherever more than one replica has written them.
    pub fn holds(&self) -> bool {
        self.commitlog.identical()
            && self
                .consume_queues
                .iter()
                .all(|c| c.divergence.is_none() && c.short.is_empty())
    }
}

/// Compares commitlogs up to `commit_pos` (the byte position of the lowest commit index among
/// the replicas) and every consumequeue over its common written prefix.
pub fn compare_replicas(
    replicas: &[Replica],
    commit_pos: u64,
) -> Result<ReplicaReport, ReplicaError> {
    Ok(ReplicaReport {
        commitlog: compare_commitlogs(replicas, commit_pos)?,
        consume_queues: compare_consume_queues(replicas, None)?,
    })
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
        assert!(d.bytes[1].1.starts_with("09"));
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
        let report = compare_replicas(&rs, 0).unwrap();
        assert!(!report.holds());
    }
}
