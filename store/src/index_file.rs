//! Hash index: message key → commitlog positions, RocketMQ's `index/` files.
//!
//! Owns the files under `index/`. One file is a 40-byte header (beginTimestamp,
//! endTimestamp, beginPhyOffset, endPhyOffset, hashSlotCount, indexCount; big-endian), then
//! `slots` × 4-byte slot heads, then `max_entries` × 20-byte entries (keyHash i32, phyOffset
//! i64, timeDiff i32 seconds since beginTimestamp, prevIndex i32). Entry 0 is never used: a
//! slot or prevIndex of 0 ends a chain. Files are named by their creation time
//! `yyyyMMddHHmmssSSS` (local time) and a new one is started when the current one is full.
//!
//! Keys are `topic#key`; the dispatcher indexes each KEYS token and the UNIQ_KEY. Adding is
//! idempotent per message: a message whose position is below the newest file's
//! endPhyOffset was already indexed and is skipped (RocketMQ's rule), which makes
//! re-dispatch after a crash safe; queries drop the duplicate a half-indexed message can
//! leave. This module knows nothing of the stored-message layout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::io::{FileSystem, MappedFile};
use crate::message::java_string_hash;

/// Header bytes at the start of an index file.
pub const INDEX_HEADER_SIZE: u64 = 40;
/// Bytes per hash slot.
pub const HASH_SLOT_SIZE: u64 = 4;
/// Bytes per index entry.
pub const INDEX_ENTRY_SIZE: u64 = 20;
/// RocketMQ `maxHashSlotNum` default.
pub const DEFAULT_SLOTS: u32 = 5_000_000;
/// RocketMQ `maxIndexNum` default.
pub const DEFAULT_MAX_ENTRIES: u32 = 20_000_000;

/// Geometry of an index file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexConfig {
    /// Hash slots per file (`maxHashSlotNum`, default 5,000,000).
    pub slots: u32,
    /// Entries per file (`maxIndexNum`, default 20,000,000); entry 0 is reserved.
    pub max_entries: u32,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            slots: DEFAULT_SLOTS,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

impl IndexConfig {
    /// Total file length.
    pub fn file_size(&self) -> u64 {
        INDEX_HEADER_SIZE
            + u64::from(self.slots) * HASH_SLOT_SIZE
            + u64::from(self.max_entries) * INDEX_ENTRY_SIZE
    }

    fn validate(&self) -> Result<()> {
        if self.slots == 0 || self.max_entries < 2 || self.max_entries > i32::MAX as u32 {
            return Err(StoreError::InvalidArgument(format!(
                "index config {self:?}: need slots > 0 and 2 <= max_entries <= i32::MAX"
            )));
        }
        Ok(())
    }
}

/// Index key hash: |Java String.hashCode| with Integer.MIN_VALUE mapped to 0.
pub fn index_key_hash(key: &str) -> i32 {
    let h = java_string_hash(key);
    if h == i32::MIN {
        0
    } else {
        h.abs()
    }
}

/// The key stored for `key` of a message in `topic`.
pub fn build_key(topic: &str, key: &str) -> String {
    // Built by hand: `format!` goes through the formatting machinery, once per key of every
    // dispatched message.
    let mut k = String::with_capacity(topic.len() + 1 + key.len());
    k.push_str(topic);
    k.push('#');
    k.push_str(key);
    k
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IndexHeader {
    begin_timestamp: i64,
    end_timestamp: i64,
    begin_phy_offset: i64,
    end_phy_offset: i64,
    hash_slot_count: i32,
    index_count: i32,
}

impl IndexHeader {
    fn encode(&self) -> [u8; INDEX_HEADER_SIZE as usize] {
        let mut b = [0u8; INDEX_HEADER_SIZE as usize];
        b[0..8].copy_from_slice(&self.begin_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy_offset.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy_offset.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    fn decode(b: &[u8; INDEX_HEADER_SIZE as usize]) -> IndexHeader {
        let i64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(x)
        };
        let i32_at = |at: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[at..at + 4]);
            i32::from_be_bytes(x)
        };
        IndexHeader {
            begin_timestamp: i64_at(0),
            end_timestamp: i64_at(8),
            begin_phy_offset: i64_at(16),
            end_phy_offset: i64_at(24),
            hash_slot_count: i32_at(32),
            index_count: i32_at(36),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    key_hash: i32,
    phy_offset: i64,
    time_diff: i32,
    prev: i32,
}

impl IndexEntry {
    fn encode(&self) -> [u8; INDEX_ENTRY_SIZE as usize] {
        let mut b = [0u8; INDEX_ENTRY_SIZE as usize];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev.to_be_bytes());
        b
    }

    fn decode(b: &[u8; INDEX_ENTRY_SIZE as usize]) -> IndexEntry {
        let mut h = [0u8; 4];
        h.copy_from_slice(&b[0..4]);
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[4..12]);
        let mut t = [0u8; 4];
        t.copy_from_slice(&b[12..16]);
        let mut v = [0u8; 4];
        v.copy_from_slice(&b[16..20]);
        IndexEntry {
            key_hash: i32::from_be_bytes(h),
            phy_offset: i64::from_be_bytes(p),
            time_diff: i32::from_be_bytes(t),
            prev: i32::from_be_bytes(v),
        }
    }
}

/// One index file.
pub struct IndexFile {
    map: Arc<dyn MappedFile>,
    cfg: IndexConfig,
    header: IndexHeader,
    dirty: bool,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.map.path())
            .field("header", &self.header)
            .finish()
    }
}

impl IndexFile {
    fn open(fs: &dyn FileSystem, path: &Path, cfg: IndexConfig, create: bool) -> Result<Self> {
        let map = fs.map(path, cfg.file_size(), create)?;
        let mut hb = [0u8; INDEX_HEADER_SIZE as usize];
        map.read_at(0, &mut hb)?;
        let header = IndexHeader::decode(&hb);
        // A fresh file's header is all zero; entry numbering starts at 1.
        let header = if header.index_count == 0 {
            IndexHeader {
                index_count: 1,
                ..header
            }
        } else {
            header
        };
        if header.index_count < 1 || header.index_count as u32 > cfg.max_entries {
            return Err(StoreError::corruption(
                path,
                36,
                format!(
                    "indexCount {} outside 1..={}",
                    header.index_count, cfg.max_entries
                ),
            ));
        }
        Ok(IndexFile {
            map,
            cfg,
            header,
            dirty: false,
        })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        self.map.path()
    }
    /// Number of entries in use (entry 0 excluded).
    pub fn entries(&self) -> u32 {
        (self.header.index_count - 1) as u32
    }
    pub fn is_full(&self) -> bool {
        self.header.index_count as u32 >= self.cfg.max_entries
    }
    pub fn begin_phy_offset(&self) -> i64 {
        self.header.begin_phy_offset
    }
    pub fn end_phy_offset(&self) -> i64 {
        self.header.end_phy_offset
    }
    pub fn begin_timestamp(&self) -> i64 {
        self.header.begin_timestamp
    }
    pub fn end_timestamp(&self) -> i64 {
        self.header.end_timestamp
    }

    fn slot_pos(&self, hash: i32) -> u64 {
        INDEX_HEADER_SIZE + (hash as u64 % u64::from(self.cfg.slots)) * HASH_SLOT_SIZE
    }

    fn entry_pos(&self, n: i32) -> u64 {
        INDEX_HEADER_SIZE + u64::from(self.cfg.slots) * HASH_SLOT_SIZE + n as u64 * INDEX_ENTRY_SIZE
    }

    fn read_i32(&self, pos: u64) -> Result<i32> {
        let mut b = [0u8; 4];
        self.map.read_at(pos, &mut b)?;
        Ok(i32::from_be_bytes(b))
    }

    fn read_entry(&self, n: i32) -> Result<IndexEntry> {
        let mut b = [0u8; INDEX_ENTRY_SIZE as usize];
        self.map.read_at(self.entry_pos(n), &mut b)?;
        Ok(IndexEntry::decode(&b))
    }

    /// A slot or chain link is followed only when it names an entry in use.
    fn valid_entry(&self, n: i32) -> bool {
        n >= 1 && n < self.header.index_count
    }

    /// Adds `key` → `phy_offset`; `false` when the file is full.
    fn put(&mut self, key: &str, phy_offset: i64, store_timestamp: i64) -> Result<bool> {
        if self.is_full() {
            return Ok(false);
        }
        let hash = index_key_hash(key);
        let slot_pos = self.slot_pos(hash);
        let head = self.read_i32(slot_pos)?;
        let head = if self.valid_entry(head) { head } else { 0 };
        let time_diff = if self.header.begin_timestamp <= 0 {
            0
        } else {
            (store_timestamp.saturating_sub(self.header.begin_timestamp) / 1000)
                .clamp(0, i64::from(i32::MAX)) as i32
        };
        let n = self.header.index_count;
        let entry = IndexEntry {
            key_hash: hash,
            phy_offset,
            time_diff,
            prev: head,
        };
        self.map.write_at(self.entry_pos(n), &entry.encode())?;
        self.map.write_at(slot_pos, &n.to_be_bytes())?;
        if n <= 1 {
            self.header.begin_phy_offset = phy_offset;
            self.header.begin_timestamp = store_timestamp;
        }
        if head == 0 {
            self.header.hash_slot_count += 1;
        }
        self.header.index_count += 1;
        self.header.end_phy_offset = phy_offset;
        self.header.end_timestamp = store_timestamp;
        self.map.write_at(0, &self.header.encode())?;
        self.dirty = true;
        Ok(true)
    }

    /// Positions stored under `key` with a time in `[begin, end]` (ms), newest first.
    fn query(
        &self,
        key: &str,
        begin: i64,
        end: i64,
        max: usize,
        seen: &mut HashSet<i64>,
        out: &mut Vec<i64>,
    ) -> Result<()> {
        let hash = index_key_hash(key);
        let mut n = self.read_i32(self.slot_pos(hash))?;
        // Bounded walk: a damaged chain cannot loop forever.
        let mut steps = 0i64;
        while self.valid_entry(n) && out.len() < max && steps < i64::from(self.header.index_count) {
            steps += 1;
            let e = self.read_entry(n)?;
            let time = self
                .header
                .begin_timestamp
                .saturating_add(i64::from(e.time_diff) * 1000);
            if e.key_hash == hash && time >= begin && time <= end && seen.insert(e.phy_offset) {
                out.push(e.phy_offset);
            }
            if e.prev >= n {
                break;
            }
            n = e.prev;
        }
        Ok(())
    }

    /// First entry number of the tail to drop for a cut at `pos`: entries are appended in
    /// commitlog order, so walk back from the newest while entries are at or past `pos`, or
    /// all zero (lost in a power cut while the header survived).
    fn first_entry_at_or_past(&self, pos: i64) -> Result<i32> {
        let mut n = self.header.index_count;
        while n > 1 {
            let e = self.read_entry(n - 1)?;
            let lost = e.phy_offset == 0 && e.key_hash == 0 && e.prev == 0 && e.time_diff == 0;
            if e.phy_offset >= pos || lost {
                n -= 1;
            } else {
                break;
            }
        }
        Ok(n)
    }

    /// Removes entries at position `pos` or later, newest first, restoring each slot head to
    /// the entry's predecessor; then makes the whole file durable.
    fn truncate_from_pos(&mut self, pos: i64) -> Result<()> {
        let cut = self.first_entry_at_or_past(pos)?;
        if cut >= self.header.index_count {
            return Ok(());
        }
        let zero = [0u8; INDEX_ENTRY_SIZE as usize];
        let mut n = self.header.index_count - 1;
        while n >= cut {
            let e = self.read_entry(n)?;
            let slot_pos = self.slot_pos(e.key_hash);
            if self.read_i32(slot_pos)? == n {
                let prev = if e.prev >= 1 && e.prev < n { e.prev } else { 0 };
                self.map.write_at(slot_pos, &prev.to_be_bytes())?;
                if prev == 0 {
                    self.header.hash_slot_count = self.header.hash_slot_count.saturating_sub(1);
                }
            }
            self.map.write_at(self.entry_pos(n), &zero)?;
            n -= 1;
        }
        self.header.index_count = cut;
        if cut <= 1 {
            self.header = IndexHeader {
                index_count: 1,
                ..IndexHeader::default()
            };
        } else {
            let last = self.read_entry(cut - 1)?;
            self.header.end_phy_offset = last.phy_offset;
            // Only whole seconds survive in an entry; round up so a time query still
            // reaches the last remaining entry.
            self.header.end_timestamp = self
                .header
                .begin_timestamp
                .saturating_add(i64::from(last.time_diff) * 1000 + 999);
        }
        self.map.write_at(0, &self.header.encode())?;
        self.map.flush_range(0, self.cfg.file_size())?;
        self.dirty = false;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.dirty {
            // Header, slots and the entries in use; the unused tail was never written.
            let used = self
                .entry_pos(self.header.index_count)
                .min(self.cfg.file_size());
            self.map.flush_range(0, used)?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// Formats a Unix time in ms as local `yyyyMMddHHmmssSSS`.
pub fn index_file_name(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, mo, d, h, mi, s) = local_time(secs);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{ms:03}")
}

#[cfg(unix)]
fn local_time(secs: i64) -> (i32, u32, u32, u32, u32, u32) {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data, zero is a valid value; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return utc_time(secs);
    }
    (
        tm.tm_year + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

#[cfg(not(unix))]
fn local_time(secs: i64) -> (i32, u32, u32, u32, u32, u32) {
    utc_time(secs)
}

/// Civil UTC time (days-from-civil inverse), used when local time is unavailable.
fn utc_time(secs: i64) -> (i32, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (
        y,
        m,
        d,
        (sod / 3600) as u32,
        ((sod % 3600) / 60) as u32,
        (sod % 60) as u32,
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_index_file_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 17 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The `index/` directory: files oldest first, the last one being written.
pub struct IndexStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    cfg: IndexConfig,
    files: Vec<IndexFile>,
}

impl std::fmt::Debug for IndexStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexStore")
            .field("dir", &self.dir)
            .field("files", &self.files)
            .finish()
    }
}

impl IndexStore {
    /// Opens every index file in `dir` (creating the directory if needed). Files are
    /// ordered by name, i.e. creation time.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, cfg: IndexConfig) -> Result<IndexStore> {
        cfg.validate()?;
        fs.create_dir_all(dir)?;
        let mut files = Vec::new();
        for path in fs.list(dir)? {
            if !is_index_file_name(&path) {
                tracing::warn!(path = %path.display(), "ignoring stray file in index dir");
                continue;
            }
            files.push(IndexFile::open(fs.as_ref(), &path, cfg, false)?);
        }
        Ok(IndexStore {
            fs,
            dir: dir.to_path_buf(),
            cfg,
            files,
        })
    }

    /// Index files, oldest first.
    pub fn files(&self) -> &[IndexFile] {
        &self.files
    }

    /// endPhyOffset of the newest file with entries (-1 when nothing is indexed): messages
    /// below it are already in the index.
    pub fn end_phy_offset(&self) -> i64 {
        self.files
            .iter()
            .rev()
            .find(|f| f.entries() > 0)
            .map_or(-1, |f| f.end_phy_offset())
    }

    fn new_file(&mut self) -> Result<()> {
        let mut ms = now_ms();
        // Names must sort after the current newest, even within one millisecond or after a
        // clock step back.
        let mut name = index_file_name(ms);
        let last_name = self
            .files
            .last()
            .and_then(|f| f.path().file_name())
            .and_then(|n| n.to_str())
            .map(str::to_owned);
        let mut tries = 0;
        while last_name.as_deref().is_some_and(|l| name.as_str() <= l)
            || self.fs.exists(&self.dir.join(&name))
        {
            tries += 1;
            if tries > 100_000 {
                return Err(StoreError::Fatal(format!(
                    "cannot find a fresh index file name after {name}"
                )));
            }
            ms += 1;
            name = index_file_name(ms);
            if let Some(l) = &last_name {
                if name.as_str() <= l.as_str() {
                    // Clock behind the newest file: continue from its name.
                    if let Ok(v) = l.parse::<u64>() {
                        name = format!("{:017}", v + tries);
                    }
                }
            }
        }
        let path = self.dir.join(&name);
        let file = IndexFile::open(self.fs.as_ref(), &path, self.cfg, true)?;
        self.fs.sync_dir(&self.dir)?;
        self.files.push(file);
        Ok(())
    }

    /// Indexes one message's keys (already `topic#key` strings). Skipped entirely when the
    /// message's position is below the newest endPhyOffset (already indexed).
    pub fn add_message(
        &mut self,
        phy_offset: i64,
        store_timestamp: i64,
        keys: &[String],
    ) -> Result<()> {
        if keys.is_empty() || phy_offset < self.end_phy_offset() {
            return Ok(());
        }
        for key in keys {
            if self.files.last().is_none_or(IndexFile::is_full) {
                self.new_file()?;
            }
            let file = self
                .files
                .last_mut()
                .expect("invariant: a file was just ensured");
            if !file.put(key, phy_offset, store_timestamp)? {
                return Err(StoreError::Fatal("fresh index file is full".into()));
            }
        }
        Ok(())
    }

    /// Positions of messages stored under `topic#key` at a time in `[begin, end]` (ms),
    /// newest first, at most `max`, without duplicates.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<i64>> {
        let full = build_key(topic, key);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for f in self.files.iter().rev() {
            if out.len() >= max {
                break;
            }
            if f.entries() == 0 || f.end_timestamp() < begin || f.begin_timestamp() > end {
                continue;
            }
            f.query(&full, begin, end, max, &mut seen, &mut out)?;
        }
        Ok(out)
    }

    /// Removes every entry at commitlog position `pos` or later (files wholly past it are
    /// deleted, newest first).
    pub fn truncate_from_pos(&mut self, pos: i64) -> Result<()> {
        while let Some(f) = self.files.last() {
            if f.entries() > 0 && f.begin_phy_offset() >= pos {
                let f = self.files.pop().expect("invariant: last exists");
                self.fs.remove_file(f.path())?;
                self.fs.sync_dir(&self.dir)?;
            } else {
                break;
            }
        }
        if let Some(f) = self.files.last_mut() {
            f.truncate_from_pos(pos)?;
        }
        Ok(())
    }

    /// Deletes files whose every entry is below `pos`, except the newest file.
    pub fn purge_below_pos(&mut self, pos: i64) -> Result<()> {
        let mut removed = false;
        while self.files.len() > 1 && self.files[0].end_phy_offset() < pos {
            let f = self.files.remove(0);
            self.fs.remove_file(f.path())?;
            removed = true;
        }
        if removed {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Makes every file written since the last flush durable.
    pub fn flush(&mut self) -> Result<()> {
        for f in &mut self.files {
            f.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn utc_civil_dates() {
        assert_eq!(utc_time(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29T12:34:56Z
        assert_eq!(utc_time(1_709_210_096), (2024, 2, 29, 12, 34, 56));
    }

    #[test]
    fn index_hash_is_abs_java_hash() {
        assert_eq!(index_key_hash("TagA"), 2598919);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(index_key_hash("polygenelubricants"), 0);
    }

    #[test]
    fn file_names_have_seventeen_digits() {
        let n = index_file_name(1_709_210_096_123);
        assert_eq!(n.len(), 17);
        assert!(n.ends_with("123"));
    }
}
