//! `disk`: storage faults of broker nodes.
//!
//! * `power-cut`: SIGUSR1 to a node built with raftmq's `failpoints` feature, which drops
//!   every write it had not fsynced (its files revert to their last-fsynced content), appends
//!   a report line to `<store>/power-cut.jsonl` and SIGKILLs itself; restarted at the end of
//!   the window.
//! * `torn`: the same with SIGUSR2: the first half of the node's final un-fsynced segment
//!   write stays on disk.
//! * `corrupt`: `kill -9` of the node, then one bit flipped, or the file truncated, at an
//!   offset of its newest commitlog segment (half the time within the last 256 written bytes,
//!   else anywhere in the written part); restarted at the end of the window. Damage beyond
//!   the node's commit point must be cut by recovery; damage at or before it must make the
//!   node refuse to start with an error naming the file and offset. A node that refuses is
//!   then repaired the way an operator would: removed from the group, wiped and added back
//!   under a new Raft id ([`Cluster::remove_member`], [`Cluster::add_replacement`]). Only if
//!   that repair fails is it left down, and the fault's end recorded as not healed.
//!
//! Every action's outcome (bytes dropped, torn write, file/offset damaged, how the node came
//! back) is returned as text for the history and `run.json`. This module knows the node
//! table and the store's directory layout (`<data>/store/commitlog/<20-digit offset>`), and
//! nothing of the workload or the checker.

use std::fmt;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::{NemesisError, Rng};
use crate::cluster::{Cluster, ClusterError};

/// Name of the report file a failpoints node appends to at a power cut (in its store root).
pub const REPORT_FILE: &str = "power-cut.jsonl";

/// How long a node may take to die after the power-cut signal.
const CUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes at the end of the written part of a segment that "tail" damage aims at.
const TAIL_BYTES: u64 = 256;

/// The disk faults, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskMode {
    PowerCut,
    Torn,
    Corrupt,
}

impl DiskMode {
    pub const ALL: [DiskMode; 3] = [DiskMode::PowerCut, DiskMode::Torn, DiskMode::Corrupt];

    pub fn name(self) -> &'static str {
        match self {
            DiskMode::PowerCut => "power-cut",
            DiskMode::Torn => "torn",
            DiskMode::Corrupt => "corrupt",
        }
    }

    /// Whether the mode needs a `raftmq` built with the `failpoints` feature.
    pub fn needs_failpoints(self) -> bool {
        matches!(self, DiskMode::PowerCut | DiskMode::Torn)
    }
}

impl fmt::Display for DiskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DiskMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "power-cut" => Ok(DiskMode::PowerCut),
            "torn" => Ok(DiskMode::Torn),
            "corrupt" => Ok(DiskMode::Corrupt),
            other => Err(format!(
                "unknown disk fault {other:?} (known: power-cut, torn, corrupt)"
            )),
        }
    }
}

/// Parses `power-cut,torn,corrupt` (`all` for every mode).
pub fn parse_modes(text: &str) -> Result<Vec<DiskMode>, String> {
    if text.trim() == "all" {
        return Ok(DiskMode::ALL.to_vec());
    }
    text.split(',').map(str::parse).collect()
}

/// The store root of a node (`storePathRootDir` in the `broker.conf` the harness writes).
pub fn store_root(cluster: &Cluster, i: usize) -> Result<PathBuf, ClusterError> {
    Ok(cluster.node(i)?.data_dir.join("store"))
}

/// Cuts the power of every running target (SIGUSR2 with `torn`, else SIGUSR1) and waits for
/// each to die by SIGKILL. Returns one outcome line per target. A target that dies any other
/// way (a binary without the feature dies of the signal's default action) is an error.
pub fn power_cut(
    cluster: &mut Cluster,
    targets: &[usize],
    torn: bool,
) -> Result<Vec<String>, NemesisError> {
    let (sig, sig_name) = if torn {
        (libc::SIGUSR2, "SIGUSR2")
    } else {
        (libc::SIGUSR1, "SIGUSR1")
    };
    let mut outcomes = Vec::new();
    for &i in targets {
        let node = cluster.node(i)?;
        let name = node.name.clone();
        let Some(pid) = node.pid() else {
            outcomes.push(format!("{name}: not running, untouched"));
            continue;
        };
        let report = store_root(cluster, i)?.join(REPORT_FILE);
        let reports_before = count_lines(&report);
        if node.is_paused() {
            cluster.resume(i)?;
        }
        let raw = libc::pid_t::try_from(pid)
            .map_err(|_| NemesisError::Disk(format!("{name}: pid {pid} out of range")))?;
        // SAFETY: kill(2) of a child we have not reaped (its pid cannot be recycled).
        if unsafe { libc::kill(raw, sig) } != 0 {
            return Err(NemesisError::Disk(format!(
                "{name}: {sig_name} to pid {pid}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let deadline = Instant::now() + CUT_TIMEOUT;
        let status = loop {
            if let Some(s) = cluster.try_reap(i)? {
                break s;
            }
            if Instant::now() >= deadline {
                // Do not leave it half-cut: kill it; the window's end restarts it.
                cluster.kill(i)?;
                return Err(NemesisError::Disk(format!(
                    "{name} did not die within {CUT_TIMEOUT:?} of {sig_name} (killed)"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !status.contains("SIGKILL") && !status.contains("signal: 9") {
            return Err(NemesisError::Disk(format!(
                "{name} ended with {status} instead of cutting its power: is the raftmq \
                 binary built with the failpoints feature?"
            )));
        }
        let line = last_line(&report).filter(|_| count_lines(&report) > reports_before);
        outcomes.push(match line {
            Some(l) => format!("{name}: {}", describe_report(&l)),
            None => format!("{name}: died by SIGKILL but wrote no power-cut report"),
        });
    }
    Ok(outcomes)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

fn last_line(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .last()
        .map(str::to_owned)
}

/// One line from a power-cut report (`{"torn":..,"report":{..}}` or `{"error":..}`).
pub fn describe_report(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return format!("unreadable power-cut report {line:?}");
    };
    if let Some(e) = v["error"].as_str() {
        return format!("power cut FAILED inside the node: {e}");
    }
    let r = &v["report"];
    let count = |k: &str| r[k].as_array().map_or(0, Vec::len);
    let mut s = format!(
        "power cut dropped {} un-fsynced bytes ({} files reverted, {} never-synced files removed)",
        r["dropped_bytes"].as_u64().unwrap_or(0),
        count("reverted"),
        count("removed")
    );
    if v["torn"].as_bool() == Some(true) {
        match r["torn"].as_object() {
            Some(t) => s.push_str(&format!(
                "; torn write kept {} of {} bytes at {}@{}",
                t.get("kept").and_then(|k| k.as_u64()).unwrap_or(0),
                t.get("len").and_then(|k| k.as_u64()).unwrap_or(0),
                t.get("file")
                    .and_then(|f| f.as_str())
                    .map(|f| Path::new(f)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default())
                    .unwrap_or_default(),
                t.get("offset").and_then(|k| k.as_u64()).unwrap_or(0)
            )),
            None => s.push_str("; no un-fsynced write to tear"),
        }
    }
    s
}

/// The newest commitlog segment of a node that holds data, and the length of its written
/// part (up to its last non-zero byte).
fn newest_written_segment(store: &Path) -> Result<Option<(PathBuf, u64)>, NemesisError> {
    let dir = store.join("commitlog");
    let mut segs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NemesisError::Disk(format!("{}: {e}", dir.display()))),
    };
    segs.sort();
    for p in segs.into_iter().rev() {
        let data =
            std::fs::read(&p).map_err(|e| NemesisError::Disk(format!("{}: {e}", p.display())))?;
        if let Some(last) = data.iter().rposition(|b| *b != 0) {
            return Ok(Some((p, last as u64 + 1)));
        }
    }
    Ok(None)
}

/// `kill -9` of every target, then one bit flip or truncation in its newest written segment.
/// Returns one outcome line per target (file, offset, what was done).
pub fn corrupt(
    cluster: &mut Cluster,
    targets: &[usize],
    rng: &mut Rng,
    damaged: &mut std::collections::BTreeMap<usize, String>,
) -> Result<Vec<String>, NemesisError> {
    let mut outcomes = Vec::new();
    for &i in targets {
        if cluster.node(i)?.is_running() {
            cluster.kill(i)?;
        }
        let name = cluster.node(i)?.name.clone();
        let store = store_root(cluster, i)?;
        let Some((file, written)) = newest_written_segment(&store)? else {
            outcomes.push(format!("{name}: no written segment, untouched"));
            continue;
        };
        let tail = rng.below(2) == 0;
        let offset = if tail {
            written - 1 - rng.below(written.min(TAIL_BYTES))
        } else {
            rng.below(written)
        };
        let where_ = if tail {
            format!("within the last {TAIL_BYTES} written bytes")
        } else {
            format!("of {written} written bytes")
        };
        let fname = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .map_err(|e| NemesisError::Disk(format!("{}: {e}", file.display())))?;
        let io = |e: std::io::Error| NemesisError::Disk(format!("{}: {e}", file.display()));
        if rng.below(2) == 0 {
            let bit = rng.below(8);
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, offset).map_err(io)?;
            b[0] ^= 1 << bit;
            f.write_all_at(&b, offset).map_err(io)?;
            f.sync_all().map_err(io)?;
            let d = format!("flipped bit {bit} at {fname}@{offset} ({where_})");
            outcomes.push(format!("{name}: {d}"));
            damaged.insert(i, d);
        } else {
            f.set_len(offset).map_err(io)?;
            f.sync_all().map_err(io)?;
            let d = format!("truncated {fname} to {offset} bytes ({where_})");
            outcomes.push(format!("{name}: {d}"));
            damaged.insert(i, d);
        }
    }
    Ok(outcomes)
}

/// How restarting the targets of a disk fault went.
#[derive(Debug, Default)]
pub struct Restarted {
    /// One line per target that came back (with the recovery cut it logged, if any).
    pub outcomes: Vec<String>,
    /// Targets that refused to start and could not be repaired, with the error line naming
    /// the file and offset and why the repair failed.
    pub refused: Vec<(usize, String)>,
    /// Targets that refused to start and were replaced by a new node under a new Raft id:
    /// one description each (old name, the error line, the new name).
    pub repaired: Vec<String>,
    /// Damaged targets that started without cutting anything: the damage went unnoticed
    /// (with the description of the damage).
    pub undetected: Vec<(usize, String)>,
}

/// A log line without its terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Restarts every target that is not running. A node that exits at start with a corruption
/// error (file and offset) is reported in `refused` and left down; a node in `damaged` (its
/// files were edited) that starts without logging a recovery cut is reported in
/// `undetected`; any other start failure is an error.
pub fn restart(
    cluster: &mut Cluster,
    targets: &[usize],
    damaged: &std::collections::BTreeMap<usize, String>,
) -> Result<Restarted, NemesisError> {
    let mut out = Restarted::default();
    for &i in targets {
        if cluster.node(i)?.is_running() {
            continue;
        }
        let node = cluster.node(i)?;
        let name = node.name.clone();
        let log = node.log_path.clone();
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
        match cluster.start(i) {
            Ok(()) => {
                let cut = read_from(&log, log_start)
                    .lines()
                    .find(|l| l.contains("cutting the commitlog tail"))
                    .map(|l| strip_ansi(l).trim().to_owned());
                match (cut, damaged.get(&i)) {
                    (Some(c), _) => out
                        .outcomes
                        .push(format!("{name}: restarted, recovery cut the tail: {c}")),
                    (None, Some(d)) => out.undetected.push((i, d.clone())),
                    (None, None) => out.outcomes.push(format!("{name}: restarted")),
                }
            }
            Err(ClusterError::Exited { log_tail, .. }) => {
                let text = read_from(&log, log_start);
                match corruption_line(&text) {
                    Some(line) => match repair(cluster, i) {
                        Ok(new_name) => out.repaired.push(format!(
                            "{name} refused to start: {line}; repaired: removed from the group, \
                             wiped, replaced by {new_name} under a new Raft id"
                        )),
                        Err(e) => out.refused.push((i, format!("{line}; repair failed: {e}"))),
                    },
                    None => {
                        return Err(NemesisError::Disk(format!(
                            "{name} failed to restart without naming a corrupt file and offset:\n{log_tail}"
                        )))
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The operator's repair of a node that refuses to start: remove it from its group, wipe it,
/// add a new node with a new Raft id in its slot. Returns the new node's name.
fn repair(cluster: &mut Cluster, i: usize) -> Result<String, ClusterError> {
    let removed = cluster.remove_member(i)?;
    let replaced = cluster.add_replacement(&removed)?;
    Ok(replaced.new_name)
}

/// The part of an error text that names the corrupt file and offset
/// (`corruption in FILE at offset N: ...`).
pub fn corruption_line(text: &str) -> Option<String> {
    let at = text.find("corruption in ")?;
    let rest = &text[at..];
    let line = rest.lines().next().unwrap_or(rest).trim();
    line.contains(" at offset ").then(|| line.to_owned())
}

fn read_from(path: &Path, from: u64) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let n = usize::try_from(len.saturating_sub(from).min(1 << 20)).unwrap_or(0);
    let mut buf = vec![0u8; n];
    match f.read_exact_at(&mut buf, from) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_reports_read() {
        assert_eq!(parse_modes("all").unwrap().len(), 3);
        assert_eq!(
            parse_modes("torn,corrupt").unwrap(),
            vec![DiskMode::Torn, DiskMode::Corrupt]
        );
        assert!(parse_modes("melt").unwrap_err().contains("melt"));
        let line = r#"{"torn":true,"report":{"reverted":["/a/00000000000000000000"],"removed":[],"dropped_bytes":1200,"torn":{"file":"/a/00000000000000000000","offset":4096,"kept":300,"len":600}}}"#;
        let d = describe_report(line);
        assert!(d.contains("1200 un-fsynced bytes"), "{d}");
        assert!(
            d.contains("kept 300 of 600 bytes at 00000000000000000000@4096"),
            "{d}"
        );
        assert!(describe_report(r#"{"torn":false,"error":"boom"}"#).contains("boom"));
        let err = "Error: starting broker\n\nCaused by:\n    storage under /x: open storage /x: corruption in /x/commitlog/00000000000000000000 at offset 512: committed entry 7 is missing\n";
        assert_eq!(
            corruption_line(err).unwrap(),
            "corruption in /x/commitlog/00000000000000000000 at offset 512: committed entry 7 is missing"
        );
        assert!(corruption_line("Error: address in use").is_none());
    }
}
