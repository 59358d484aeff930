//! A `FileSystem` that breaks on purpose (tests and the `failpoints` feature).
//!
//! Wraps `StdFileSystem` and keeps, per file, the content that is *durable* (as of its last
//! fsync/msync) and, per directory entry, whether its create/remove/rename was made durable
//! by a directory fsync. On top of that it injects faults:
//!
//! - named failpoints `class::op::kind`, where class is `commitlog` (segment files),
//!   `entryindex`, `meta`, `dirlock` (the abort marker) or `fs` (anything else), op is
//!   `write`, `sync`, `remove` or `rename`, and kind is `err` (the call fails) or `torn`
//!   (only `write`: the first half is written, then the process "crashes");
//! - `crash_after_bytes(n)`: the write that crosses the budget is cut there, then crash;
//! - `crash()`: from now on every mutating call fails, as if the process had died;
//! - `power_loss()`: rewrites the real files to their durable state (unsynced writes,
//!   creates, removes and renames are undone) and clears the crash. Call it only after every
//!   user of the files is gone (mappings dropped), as after a real power cut.
//! - `power_cut(torn)`: the same from *inside* a live process that is about to die: it
//!   freezes the file system first (every later mutating call blocks forever, so no write
//!   gets through and no caller sees an error it could report), then replaces every
//!   file whose content differs from its durable state by a fresh file holding that state
//!   (written beside it and renamed over it, so live mappings keep the old inode and can
//!   neither fault nor leak bytes into the new file). With `torn`, the most recent mapped
//!   write that is not durable (to a commitlog segment if there is one, else to any file)
//!   keeps its first half, as a write cut mid-way by the power.
//!   Returns a [`PowerCutReport`]. The caller then kills the process (SIGKILL).
//!
//! Directories themselves are treated as always durable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{DiskSpace, FileSystem, MappedFile, StdFileSystem};
use crate::error::{Result, StoreError};
use crate::format;

#[derive(Debug, Default)]
struct State {
    /// Failpoint name → remaining hits (`None` = every time).
    points: HashMap<String, Option<usize>>,
    crashed: bool,
    /// A power cut is under way: mutating calls block forever (see `lock_mut`).
    frozen: bool,
    byte_budget: Option<u64>,
    /// Durable content per inode.
    durable_data: HashMap<u64, Vec<u8>>,
    /// Current directory entries.
    live: HashMap<PathBuf, u64>,
    /// Directory entries as of the last fsync of their directory.
    durable_names: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// The most recent mapped writes (inode, offset, bytes), oldest first, at most
    /// [`RECENT_WRITES`] of them: candidates for the torn write of a power cut.
    recent: std::collections::VecDeque<(u64, u64, Vec<u8>)>,
}

/// How many recent mapped writes a power cut may choose its torn write from.
const RECENT_WRITES: usize = 16;

/// What a [`FaultyFileSystem::power_cut`] undid.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PowerCutReport {
    /// Files rewritten to their durable content (their current content differed).
    pub reverted: Vec<PathBuf>,
    /// Files removed because their creation (or rename) was never made durable.
    pub removed: Vec<PathBuf>,
    /// Bytes that differed from the durable content and were dropped (per reverted file,
    /// the differing bytes plus any length difference).
    pub dropped_bytes: u64,
    /// The torn write kept, if one was asked for and a non-durable write existed.
    pub torn: Option<TornWrite>,
}

/// The prefix of a non-durable write that a power cut left in place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornWrite {
    pub file: PathBuf,
    /// Offset of the write in the file.
    pub offset: u64,
    /// Bytes of the write that were kept.
    pub kept: u64,
    /// Length of the whole write.
    pub len: u64,
}

impl State {
    /// True (and counts the hit) when failpoint `name` fires.
    fn fires(&mut self, name: &str) -> bool {
        match self.points.get_mut(name) {
            None => false,
            Some(None) => true,
            Some(Some(0)) => false,
            Some(Some(n)) => {
                *n -= 1;
                true
            }
        }
    }

    fn new_ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    /// The inode of `path`, registering a file that existed before this file system saw it
    /// (its current content counts as durable).
    fn ino_of(&mut self, path: &Path) -> Result<u64> {
        if let Some(i) = self.live.get(path) {
            return Ok(*i);
        }
        let data = std::fs::read(path).map_err(|e| StoreError::io("read", path, e))?;
        let ino = self.new_ino();
        self.durable_data.insert(ino, data);
        self.live.insert(path.to_path_buf(), ino);
        self.durable_names.insert(path.to_path_buf(), ino);
        Ok(ino)
    }
}

/// Fault-injecting file system; see the module docs.
#[derive(Debug, Default)]
pub struct FaultyFileSystem {
    real: StdFileSystem,
    state: Arc<Mutex<State>>,
}

fn class_of(path: &Path) -> &'static str {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path
        .components()
        .any(|c| c.as_os_str() == crate::commitlog::ENTRY_INDEX_DIR)
    {
        "entryindex"
    } else if name.starts_with("meta") {
        "meta"
    } else if name == crate::dirlock::ABORT_FILE {
        "dirlock"
    } else if format::parse_file_name(path).is_some() {
        "commitlog"
    } else {
        "fs"
    }
}

fn injected(point: &str, path: &Path) -> StoreError {
    StoreError::io(
        "failpoint",
        path,
        std::io::Error::other(format!("injected fault {point}")),
    )
}

fn crashed_err(path: &Path) -> StoreError {
    StoreError::io(
        "crashed",
        path,
        std::io::Error::other("simulated crash: the process is gone"),
    )
}

impl FaultyFileSystem {
    /// A fresh instance with no faults armed.
    pub fn new() -> Arc<FaultyFileSystem> {
        Arc::new(FaultyFileSystem::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for a mutating call. Once a power cut has begun the calling thread never
    /// returns: the process is about to be killed, and a failing write would let it answer
    /// clients with errors a real power cut never gives them.
    fn lock_mut(&self) -> MutexGuard<'_, State> {
        let st = self.lock();
        if st.frozen {
            drop(st);
            loop {
                std::thread::park();
            }
        }
        st
    }

    /// Arms failpoint `point` (`class::op::kind`) for the next `times` hits, or every hit.
    pub fn enable(&self, point: &str, times: Option<usize>) {
        self.lock().points.insert(point.to_string(), times);
    }

    /// Disarms a failpoint.
    pub fn disable(&self, point: &str) {
        self.lock().points.remove(point);
    }

    /// After `n` more bytes are written (mapped or plain), cut the write and crash.
    pub fn crash_after_bytes(&self, n: u64) {
        self.lock().byte_budget = Some(n);
    }

    /// Every later mutating call fails, as if the process had died.
    pub fn crash(&self) {
        self.lock().crashed = true;
    }

    /// Lets a crashed instance work again *without* undoing anything: what a restarted
    /// process sees after a kill (the page cache survives).
    pub fn restart(&self) {
        let mut st = self.lock();
        st.crashed = false;
        st.byte_budget = None;
        st.points.clear();
    }

    /// True once crashed (by `crash`, a torn write or the byte budget).
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Crashes the file system, then rewrites every file to what a power cut would leave
    /// (plus, with `torn`, the first half of the latest non-durable mapped write), without
    /// ever shrinking or rewriting a file that is still mapped: changed files are replaced by
    /// renaming a fresh copy over them. The file system stays frozen (mutating calls never
    /// return): the process is expected to kill itself right after. See the module docs.
    pub fn power_cut(&self, torn: bool) -> Result<PowerCutReport> {
        let mut st = self.lock();
        st.crashed = true;
        st.frozen = true;
        let mut report = PowerCutReport::default();
        // The torn write: the latest mapped write whose bytes are not all durable and not
        // all zero (zeroing a stale header after a batch is not the interesting write).
        // Writes to commitlog segments come first (consume-queue and index files under
        // `consumequeue/` and `index/` are named the same way): they carry the records
        // recovery must judge.
        let mut torn_write: Option<(u64, u64, Vec<u8>)> = None;
        let segment_inos: std::collections::HashSet<u64> = st
            .live
            .iter()
            .filter(|(p, _)| {
                class_of(p) == "commitlog"
                    && !p
                        .components()
                        .any(|c| c.as_os_str() == "consumequeue" || c.as_os_str() == "index")
            })
            .map(|(_, i)| *i)
            .collect();
        let mut candidates: Vec<&(u64, u64, Vec<u8>)> = st.recent.iter().rev().collect();
        candidates.sort_by_key(|(ino, _, _)| !segment_inos.contains(ino));
        if torn {
            for (ino, off, data) in candidates {
                if data.iter().all(|b| *b == 0) {
                    continue;
                }
                let durable = st.durable_data.get(ino).map(Vec::as_slice).unwrap_or(&[]);
                let start = usize::try_from(*off).unwrap_or(usize::MAX);
                let same = durable
                    .get(start..start.saturating_add(data.len()))
                    .is_some_and(|d| d == data.as_slice());
                if !same {
                    let kept = (data.len() / 2).max(1);
                    torn_write = Some((*ino, *off, data[..kept].to_vec()));
                    break;
                }
            }
        }
        let live: Vec<(PathBuf, u64)> = st.live.iter().map(|(p, i)| (p.clone(), *i)).collect();
        for (path, ino) in &live {
            if st.durable_names.get(path) != Some(ino) && path.exists() {
                std::fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
                if !st.durable_names.contains_key(path) {
                    report.removed.push(path.clone());
                }
            }
        }
        let mut durable: Vec<(PathBuf, u64)> = st
            .durable_names
            .iter()
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        durable.sort();
        for (path, ino) in &durable {
            let mut data = st.durable_data.get(ino).cloned().unwrap_or_default();
            if let Some((tino, off, kept)) = &torn_write {
                if tino == ino {
                    let start = usize::try_from(*off).unwrap_or(usize::MAX);
                    let end = start.saturating_add(kept.len());
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[start..end].copy_from_slice(kept);
                    report.torn = Some(TornWrite {
                        file: path.clone(),
                        offset: *off,
                        kept: kept.len() as u64,
                        len: st
                            .recent
                            .iter()
                            .rev()
                            .find(|(i, o, _)| i == ino && o == off)
                            .map_or(kept.len() as u64, |(_, _, d)| d.len() as u64),
                    });
                }
            }
            let current = match std::fs::read(path) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(StoreError::io("read", path, e)),
            };
            if current.as_deref() == Some(data.as_slice()) {
                continue;
            }
            let cur = current.unwrap_or_default();
            let differing = cur.iter().zip(&data).filter(|(a, b)| a != b).count();
            report.dropped_bytes += differing as u64 + cur.len().abs_diff(data.len()) as u64;
            let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
            tmp_name.push(".power-cut");
            let tmp = path.with_file_name(tmp_name);
            std::fs::write(&tmp, &data).map_err(|e| StoreError::io("write", &tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
            report.reverted.push(path.clone());
        }
        st.live = st.durable_names.clone();
        Ok(report)
    }

    /// Rewrites the real files to what a power cut would leave, then clears every fault.
    pub fn power_loss(&self) -> Result<()> {
        let mut st = self.lock();
        let live: Vec<(PathBuf, u64)> = st.live.iter().map(|(p, i)| (p.clone(), *i)).collect();
        for (path, ino) in &live {
            if st.durable_names.get(path) != Some(ino) && path.exists() {
                std::fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
            }
        }
        let durable: Vec<(PathBuf, u64)> = st
            .durable_names
            .iter()
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (path, ino) in &durable {
            let data = st.durable_data.get(ino).cloned().unwrap_or_default();
            std::fs::write(path, &data).map_err(|e| StoreError::io("write", path, e))?;
        }
        st.live = st.durable_names.clone();
        st.crashed = false;
        st.byte_budget = None;
        st.points.clear();
        Ok(())
    }

    fn check(&self, st: &mut State, path: &Path, op: &str) -> Result<()> {
        if st.crashed {
            return Err(crashed_err(path));
        }
        let point = format!("{}::{op}::err", class_of(path));
        if st.fires(&point) {
            return Err(injected(&point, path));
        }
        Ok(())
    }

    /// How many of `len` bytes may be written before a fault; sets the crash flag when cut.
    fn allowance(&self, st: &mut State, path: &Path, len: usize) -> Result<usize> {
        self.check(st, path, "write")?;
        let mut allowed = len;
        let torn = format!("{}::write::torn", class_of(path));
        if st.fires(&torn) {
            allowed = len / 2;
            st.crashed = true;
        }
        if let Some(b) = st.byte_budget.as_mut() {
            if (allowed as u64) >= *b {
                allowed = *b as usize;
                st.crashed = true;
                *b = 0;
            } else {
                *b -= allowed as u64;
            }
        }
        Ok(allowed)
    }
}

impl FileSystem for FaultyFileSystem {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = self.lock_mut();
        self.check(&mut st, dir, "write")?;
        self.real.create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        self.real.list(dir)
    }

    fn exists(&self, path: &Path) -> bool {
        self.real.exists(path)
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        self.real.file_len(path)
    }

    fn modified(&self, path: &Path) -> Result<SystemTime> {
        self.real.modified(path)
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut st = self.lock_mut();
        self.check(&mut st, path, "remove")?;
        st.ino_of(path)?;
        self.real.remove_file(path)?;
        st.live.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.lock_mut();
        self.check(&mut st, to, "rename")?;
        let ino = st.ino_of(from)?;
        self.real.rename(from, to)?;
        st.live.remove(from);
        st.live.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = self.lock_mut();
        self.check(&mut st, dir, "sync")?;
        self.real.sync_dir(dir)?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let now: Vec<(PathBuf, u64)> = st
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable_names.extend(now);
        Ok(())
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        self.real.read_file(path)
    }

    fn write_file_synced(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut st = self.lock_mut();
        let allowed = self.allowance(&mut st, path, data.len())?;
        let ino = match st.live.get(path) {
            Some(i) => *i,
            None if path.exists() => st.ino_of(path)?,
            None => {
                let i = st.new_ino();
                st.live.insert(path.to_path_buf(), i);
                st.durable_data.insert(i, Vec::new());
                i
            }
        };
        if allowed < data.len() {
            // Cut short and never synced: the durable content stays as it was.
            std::fs::write(path, &data[..allowed]).map_err(|e| StoreError::io("write", path, e))?;
            return Err(crashed_err(path));
        }
        let point = format!("{}::sync::err", class_of(path));
        if st.fires(&point) {
            std::fs::write(path, data).map_err(|e| StoreError::io("write", path, e))?;
            return Err(injected(&point, path));
        }
        self.real.write_file_synced(path, data)?;
        st.durable_data.insert(ino, data.to_vec());
        Ok(())
    }

    fn map(&self, path: &Path, len: u64, create: bool) -> Result<Arc<dyn MappedFile>> {
        let mut st = self.lock_mut();
        let existed = path.exists();
        if !existed {
            self.check(&mut st, path, "write")?;
        }
        let real = self.real.map(path, len, create)?;
        let ino = if existed {
            st.ino_of(path)?
        } else {
            // Freshly preallocated and fsynced: zeros are durable, the name is not yet.
            let i = st.new_ino();
            st.live.insert(path.to_path_buf(), i);
            st.durable_data.insert(i, vec![0u8; len as usize]);
            i
        };
        Ok(Arc::new(FaultyMappedFile {
            fs: FaultyFileSystem {
                real: StdFileSystem,
                state: self.state.clone(),
            },
            real,
            ino,
        }))
    }

    fn disk_space(&self, path: &Path) -> Result<DiskSpace> {
        self.real.disk_space(path)
    }
}

#[derive(Debug)]
struct FaultyMappedFile {
    fs: FaultyFileSystem,
    real: Arc<dyn MappedFile>,
    ino: u64,
}

impl MappedFile for FaultyMappedFile {
    fn path(&self) -> &Path {
        self.real.path()
    }

    fn len(&self) -> u64 {
        self.real.len()
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut st = self.fs.lock_mut();
        let allowed = self.fs.allowance(&mut st, self.path(), data.len())?;
        self.real.write_at(offset, &data[..allowed])?;
        if st.recent.len() >= RECENT_WRITES {
            st.recent.pop_front();
        }
        st.recent
            .push_back((self.ino, offset, data[..allowed].to_vec()));
        if allowed < data.len() {
            return Err(crashed_err(self.path()));
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.real.read_at(offset, buf)
    }

    fn flush_range(&self, offset: u64, len: u64) -> Result<()> {
        let mut st = self.fs.lock_mut();
        self.fs.check(&mut st, self.path(), "sync")?;
        self.real.flush_range(offset, len)?;
        let mut cur = vec![0u8; len as usize];
        self.real.read_at(offset, &mut cur)?;
        let durable = st.durable_data.entry(self.ino).or_default();
        let end = (offset + len) as usize;
        if durable.len() < end {
            durable.resize(end, 0);
        }
        durable[offset as usize..end].copy_from_slice(&cur);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_keeps_only_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFileSystem::new();
        let seg = dir.path().join(format::file_name(0));
        let m = fs.map(&seg, 4096, true).unwrap();
        fs.sync_dir(dir.path()).unwrap();
        m.write_at(0, b"durable").unwrap();
        m.flush_range(0, 7).unwrap();
        m.write_at(100, b"volatile").unwrap();
        let lost = dir.path().join(format::file_name(4096));
        let _m2 = fs.map(&lost, 4096, true).unwrap(); // name never synced
        drop(m);
        drop(_m2);
        fs.power_loss().unwrap();
        let data = std::fs::read(&seg).unwrap();
        assert_eq!(&data[..7], b"durable");
        assert_eq!(&data[100..108], &[0u8; 8]);
        assert!(!lost.exists());
    }

    #[test]
    fn failpoints_fire_by_class_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFileSystem::new();
        let m = fs
            .map(&dir.path().join(format::file_name(0)), 4096, true)
            .unwrap();
        fs.enable("commitlog::sync::err", Some(1));
        assert!(m.flush_range(0, 10).is_err());
        m.flush_range(0, 10).unwrap();
        fs.enable("commitlog::write::torn", Some(1));
        assert!(m.write_at(0, &[7u8; 10]).is_err());
        assert!(fs.is_crashed());
        let mut b = [0u8; 10];
        m.read_at(0, &mut b).unwrap();
        assert_eq!(b, [7, 7, 7, 7, 7, 0, 0, 0, 0, 0]);
        assert!(m.write_at(0, b"x").is_err(), "crashed stays crashed");
    }
}
