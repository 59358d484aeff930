//! Consumequeue: the per-(topic, queue) index from logical queue offset to commitlog position.
//!
//! Owns the files under `consumequeue/<topic>/<queueId>/`: fixed-size mapped files of 20-byte
//! big-endian units `(phys offset i64, size i32, tags code i64)` (RocketMQ's layout), named by
//! the 20-digit byte offset of their first unit within the queue. Unit `n` lives at byte
//! `n * 20` of the queue, so lookup by queue offset is O(1).
//!
//! Writes go to the mapping without fsync; [`ConsumeQueue::flush`] makes them durable and the
//! dispatcher calls it before it persists a checkpoint. This module knows nothing of messages
//! or Raft: the store timestamp a time search needs comes through [`PhysReader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::format::{file_name, parse_file_name};
use crate::io::{FileSystem, MappedFile};

/// Bytes per consumequeue unit.
pub const CQ_UNIT_SIZE: u64 = 20;
/// `mapedFileSizeConsumeQueue` default: 300,000 units (6,000,000 bytes) per file.
pub const DEFAULT_UNITS_PER_FILE: u64 = 300_000;
/// Largest queue offset whose byte position fits the file naming (byte offset in an i64).
pub const MAX_QUEUE_OFFSET: i64 = i64::MAX / CQ_UNIT_SIZE as i64 - 1;
/// Size of a placeholder unit written in front of a queue that starts past offset 0.
pub const PLACEHOLDER_SIZE: i32 = i32::MAX;

/// One consumequeue unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqUnit {
    /// Commitlog position of the stored message.
    pub phys_offset: i64,
    /// Stored size of the message in bytes.
    pub size: i32,
    /// Java hash of the TAGS property (0 without tags).
    pub tags_code: i64,
}

impl CqUnit {
    fn encode(&self) -> [u8; CQ_UNIT_SIZE as usize] {
        let mut b = [0u8; CQ_UNIT_SIZE as usize];
        b[0..8].copy_from_slice(&self.phys_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> CqUnit {
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[0..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&b[8..12]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        CqUnit {
            phys_offset: i64::from_be_bytes(p),
            size: i32::from_be_bytes(s),
            tags_code: i64::from_be_bytes(t),
        }
    }

    /// A written unit has a positive size (zeroed bytes are free space), as RocketMQ's
    /// recovery rule `offset >= 0 && size > 0`.
    fn is_written(&self) -> bool {
        self.phys_offset >= 0 && self.size > 0
    }

    fn is_placeholder(&self) -> bool {
        self.size == PLACEHOLDER_SIZE && self.phys_offset == 0
    }
}

/// Reads the store timestamp of the message at a commitlog position (for time search).
/// `Ok(None)` means the message is no longer in the commitlog.
pub trait PhysReader {
    fn store_timestamp(&self, phys_offset: i64, size: i32) -> Result<Option<i64>>;
}

impl<F> PhysReader for F
where
    F: Fn(i64, i32) -> Result<Option<i64>>,
{
    fn store_timestamp(&self, phys_offset: i64, size: i32) -> Result<Option<i64>> {
        self(phys_offset, size)
    }
}

struct CqFile {
    /// Byte offset within the queue of the file's first unit.
    base: u64,
    map: Arc<dyn MappedFile>,
}

/// One queue's consumequeue files.
pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    file_size: u64,
    /// Contiguous files: `files[i].base == files[0].base + i * file_size`.
    files: Vec<CqFile>,
    /// First valid logical offset.
    min_offset: i64,
    /// Next logical offset to be written.
    max_offset: i64,
    /// Lowest byte position written since the last flush.
    dirty_from: Option<u64>,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .field("files", &self.files.len())
            .finish()
    }
}

impl ConsumeQueue {
    /// Opens (or starts, when `dir` holds no files) the queue in `dir`, finding the write
    /// position by scanning the last file forward to its first unwritten unit.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        topic: &str,
        queue_id: i32,
        units_per_file: u64,
    ) -> Result<ConsumeQueue> {
        if units_per_file == 0 {
            return Err(StoreError::InvalidArgument(
                "consumequeue units per file must be positive".into(),
            ));
        }
        let file_size = units_per_file * CQ_UNIT_SIZE;
        let mut files = Vec::new();
        if fs.exists(dir) {
            for path in fs.list(dir)? {
                let Some(base) = parse_file_name(&path) else {
                    tracing::warn!(path = %path.display(), "ignoring stray file in consumequeue dir");
                    continue;
                };
                if base % file_size != 0 {
                    return Err(StoreError::corruption(
                        &path,
                        0,
                        format!("file base {base} is not a multiple of the file size {file_size}"),
                    ));
                }
                if let Some(prev) = files.last() {
                    let prev: &CqFile = prev;
                    if prev.base + file_size != base {
                        return Err(StoreError::corruption(
                            &path,
                            0,
                            format!(
                                "consumequeue files not contiguous: {} then {base}",
                                prev.base
                            ),
                        ));
                    }
                }
                let map = fs.map(&path, file_size, false)?;
                files.push(CqFile { base, map });
            }
        }
        let mut cq = ConsumeQueue {
            topic: topic.to_owned(),
            queue_id,
            dir: dir.to_path_buf(),
            fs,
            file_size,
            files,
            min_offset: 0,
            max_offset: 0,
            dirty_from: None,
        };
        cq.recover()?;
        Ok(cq)
    }

    /// Finds the write position without outside help: the end of the written prefix of the
    /// newest file that has one (after a power cut, newer files may hold only zeros). Units
    /// are written in order, so the boundary is found by binary search (a few reads per file,
    /// not the whole file). After a crash the prefix may have holes, so this is only a guess;
    /// [`ConsumeQueue::restore_end`] makes it exact from a dispatch checkpoint.
    fn recover(&mut self) -> Result<()> {
        let Some(first) = self.files.first() else {
            return Ok(());
        };
        let first_base = first.base;
        let units = self.file_size / CQ_UNIT_SIZE;
        let mut end = first_base;
        for f in self.files.iter().rev() {
            if !Self::read_unit(f, 0)?.is_written() {
                continue;
            }
            // Invariant: unit `lo` is written; the boundary lies in (lo, hi].
            let (mut lo, mut hi) = (0u64, units);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if Self::read_unit(f, mid)?.is_written() {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            end = f.base + hi * CQ_UNIT_SIZE;
            break;
        }
        self.max_offset = (end / CQ_UNIT_SIZE) as i64;
        // min offset: the first real (non-placeholder) unit of the first file.
        let mut lead = 0u64;
        while lead < units && Self::read_unit(&self.files[0], lead)?.is_placeholder() {
            lead += 1;
        }
        self.min_offset =
            (((first_base + lead * CQ_UNIT_SIZE) / CQ_UNIT_SIZE) as i64).min(self.max_offset);
        Ok(())
    }

    /// Unit number `n` of a file.
    fn read_unit(f: &CqFile, n: u64) -> Result<CqUnit> {
        let mut b = [0u8; CQ_UNIT_SIZE as usize];
        f.map.read_at(n * CQ_UNIT_SIZE, &mut b)?;
        Ok(CqUnit::decode(&b))
    }

    /// Declares that the queue ends exactly at `next` (the offset a dispatch checkpoint
    /// recorded, whose units were flushed before it was written): checks that the unit before
    /// `next` is there, then zeroes and removes whatever lies past it, durably.
    pub fn restore_end(&mut self, next: i64) -> Result<()> {
        if next > MAX_QUEUE_OFFSET {
            return Err(StoreError::corruption(
                &self.dir,
                0,
                format!("checkpoint end {next} beyond {MAX_QUEUE_OFFSET}"),
            ));
        }
        if next < self.min_offset {
            return Err(StoreError::corruption(
                &self.dir,
                0,
                format!(
                    "checkpoint end {next} is below the queue's min offset {}",
                    self.min_offset
                ),
            ));
        }
        if next > self.min_offset {
            let pos = (next - 1) as u64 * CQ_UNIT_SIZE;
            let unit = match self.file_index(pos) {
                Some(i) => {
                    let f = &self.files[i];
                    let mut b = [0u8; CQ_UNIT_SIZE as usize];
                    f.map.read_at(pos - f.base, &mut b)?;
                    Some(CqUnit::decode(&b))
                }
                None => None,
            };
            if !unit.is_some_and(|u| u.is_written()) {
                return Err(StoreError::corruption(
                    &self.dir,
                    pos,
                    format!(
                        "unit {} is missing but the dispatch checkpoint covers it",
                        next - 1
                    ),
                ));
            }
        }
        self.cut_at(next)?;
        self.max_offset = next;
        Ok(())
    }

    /// Drops everything from logical `offset` on: zeroes the written units in its file
    /// (durably) and removes every later file; an empty file at the cut goes too, unless it
    /// is the first. Only `[offset, max_offset)` is zeroed: bytes past `max_offset` in the cut
    /// file (a power cut can leave some behind a hole) are never read, since reads stop at
    /// `max_offset` and appends overwrite them in order.
    fn cut_at(&mut self, offset: i64) -> Result<()> {
        let from = offset as u64 * CQ_UNIT_SIZE;
        let keep = match self.file_index(from) {
            Some(i) if from > self.files[i].base || i == 0 => i + 1,
            Some(i) => i,
            None if self.files.first().is_some_and(|f| from < f.base) => 0,
            None => self.files.len(),
        };
        if let Some(f) = keep.checked_sub(1).and_then(|i| self.files.get(i)) {
            let stop = (f.base + self.file_size).min(self.max_offset.max(0) as u64 * CQ_UNIT_SIZE);
            if from < stop && from >= f.base {
                let zeros = vec![0u8; (stop - from) as usize];
                f.map.write_at(from - f.base, &zeros)?;
                f.map.flush_range(from - f.base, stop - from)?;
            }
        }
        self.remove_files_from(keep)?;
        if self.dirty_from.is_some_and(|d| d >= from) {
            self.dirty_from = None;
        }
        Ok(())
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }
    /// First valid logical offset.
    pub fn min_offset(&self) -> i64 {
        self.min_offset
    }
    /// Next logical offset to be written (RocketMQ's maxOffset).
    pub fn max_offset(&self) -> i64 {
        self.max_offset
    }

    fn file_index(&self, byte_pos: u64) -> Option<usize> {
        let first = self.files.first()?.base;
        if byte_pos < first {
            return None;
        }
        let idx = ((byte_pos - first) / self.file_size) as usize;
        (idx < self.files.len()).then_some(idx)
    }

    fn ensure_file(&mut self, byte_pos: u64) -> Result<usize> {
        if let Some(i) = self.file_index(byte_pos) {
            return Ok(i);
        }
        let base = byte_pos - byte_pos % self.file_size;
        if let Some(last) = self.files.last() {
            if base != last.base + self.file_size {
                return Err(StoreError::InvalidArgument(format!(
                    "consumequeue {}/{}: byte position {byte_pos} is not next to the last file {}",
                    self.topic, self.queue_id, last.base
                )));
            }
        }
        self.fs.create_dir_all(&self.dir)?;
        let path = self.dir.join(file_name(base));
        let map = self.fs.map(&path, self.file_size, true)?;
        self.fs.sync_dir(&self.dir)?;
        self.files.push(CqFile { base, map });
        Ok(self.files.len() - 1)
    }

    fn write_unit(&mut self, offset: i64, unit: &CqUnit) -> Result<()> {
        let pos = offset as u64 * CQ_UNIT_SIZE;
        let i = self.ensure_file(pos)?;
        let f = &self.files[i];
        f.map.write_at(pos - f.base, &unit.encode())?;
        self.dirty_from = Some(self.dirty_from.map_or(pos, |d| d.min(pos)));
        Ok(())
    }

    /// Writes the unit for logical `offset`.
    ///
    /// `offset == max_offset` appends. `offset < max_offset` rewrites in place (re-dispatch
    /// after a crash writes the same bytes at the same position). Any jump past `max_offset`
    /// is a [`StoreError::QueueOffsetGap`]; a queue that must begin past offset 0 is first
    /// moved there with [`ConsumeQueue::start_at`].
    pub fn put(&mut self, offset: i64, unit: CqUnit) -> Result<()> {
        if !(0..MAX_QUEUE_OFFSET).contains(&offset) || unit.size <= 0 || unit.phys_offset < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "consumequeue {}/{}: bad unit {unit:?} at offset {offset}",
                self.topic, self.queue_id
            )));
        }
        if offset > self.max_offset {
            return Err(StoreError::QueueOffsetGap {
                topic: self.topic.clone(),
                queue_id: self.queue_id,
                expected: self.max_offset,
                got: offset,
            });
        } else if offset < self.min_offset {
            return Err(StoreError::InvalidArgument(format!(
                "consumequeue {}/{}: offset {offset} is below the min offset {}",
                self.topic, self.queue_id, self.min_offset
            )));
        }
        self.write_unit(offset, &unit)?;
        if offset == self.max_offset {
            self.max_offset += 1;
        }
        Ok(())
    }

    /// Makes an empty queue start at `offset` (a replica that received a snapshot, whose
    /// queues begin where the leader's retained data begins): drops its files and front-fills
    /// the file that will hold `offset` with placeholders, as RocketMQ does for a queue created
    /// past offset 0.
    pub fn start_at(&mut self, offset: i64) -> Result<()> {
        if self.max_offset != self.min_offset {
            return Err(StoreError::InvalidArgument(format!(
                "consumequeue {}/{}: cannot restart a non-empty queue at {offset}",
                self.topic, self.queue_id
            )));
        }
        if !(0..=MAX_QUEUE_OFFSET).contains(&offset) {
            return Err(StoreError::InvalidArgument(format!(
                "queue offset {offset} outside 0..={MAX_QUEUE_OFFSET}"
            )));
        }
        self.remove_files_from(0)?;
        let pos = offset as u64 * CQ_UNIT_SIZE;
        let base = pos - pos % self.file_size;
        let placeholder = CqUnit {
            phys_offset: 0,
            size: PLACEHOLDER_SIZE,
            tags_code: 0,
        };
        let mut o = (base / CQ_UNIT_SIZE) as i64;
        while o < offset {
            self.write_unit(o, &placeholder)?;
            o += 1;
        }
        self.ensure_file(pos)?;
        self.min_offset = offset;
        self.max_offset = offset;
        Ok(())
    }

    /// Empties the queue but keeps its offsets going: every file goes and the queue restarts
    /// at `next` as [`ConsumeQueue::start_at`] does (its topic was deleted; offsets never go
    /// back, so a consumer's old offset can never name a new message). Idempotent.
    pub fn clear_at(&mut self, next: i64) -> Result<()> {
        self.min_offset = next;
        self.max_offset = next;
        self.start_at(next)
    }

    /// The unit at logical `offset`, or `None` outside `[min_offset, max_offset)`.
    pub fn get(&self, offset: i64) -> Result<Option<CqUnit>> {
        if offset < self.min_offset || offset >= self.max_offset {
            return Ok(None);
        }
        let pos = offset as u64 * CQ_UNIT_SIZE;
        let Some(i) = self.file_index(pos) else {
            return Ok(None);
        };
        let f = &self.files[i];
        let mut b = [0u8; CQ_UNIT_SIZE as usize];
        f.map.read_at(pos - f.base, &mut b)?;
        Ok(Some(CqUnit::decode(&b)))
    }

    fn unit_at(&self, offset: i64) -> Result<CqUnit> {
        self.get(offset)?.ok_or_else(|| {
            StoreError::corruption(
                &self.dir,
                offset as u64 * CQ_UNIT_SIZE,
                format!(
                    "missing unit {offset} inside [{}, {})",
                    self.min_offset, self.max_offset
                ),
            )
        })
    }

    /// First logical offset whose unit has `phys_offset >= pos` (units are in commitlog
    /// order within a queue), or `max_offset` when none.
    fn first_at_or_past_pos(&self, pos: i64) -> Result<i64> {
        let (mut lo, mut hi) = (self.min_offset, self.max_offset);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.unit_at(mid)?.phys_offset >= pos {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Smallest offset in `[min, max)` whose message was stored at or after `ts` (ms);
    /// `max_offset` when every message is older (RocketMQ 5's lower-bound search). Messages
    /// the reader no longer finds count as older.
    pub fn search_offset_by_time(&self, ts: i64, reader: &dyn PhysReader) -> Result<i64> {
        let (mut lo, mut hi) = (self.min_offset, self.max_offset);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let u = self.unit_at(mid)?;
            let stored = reader.store_timestamp(u.phys_offset, u.size)?;
            if stored.is_some_and(|s| s >= ts) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// Drops every unit at logical `offset` or later (zeroed and made durable at once, so a
    /// crash cannot bring them back).
    pub fn truncate_to_offset(&mut self, offset: i64) -> Result<()> {
        if offset >= self.max_offset {
            return Ok(());
        }
        let offset = offset.max(self.min_offset);
        self.cut_at(offset)?;
        self.max_offset = offset;
        Ok(())
    }

    /// Drops every unit whose message starts at commitlog position `pos` or later.
    pub fn truncate_from_pos(&mut self, pos: i64) -> Result<()> {
        let cut = self.first_at_or_past_pos(pos)?;
        self.truncate_to_offset(cut)
    }

    /// Deletes files whose every unit points below commitlog position `pos` (never the file
    /// being written), then moves the min offset to the first unit at or past `pos`.
    pub fn purge_below_pos(&mut self, pos: i64) -> Result<()> {
        let mut drop = 0;
        while drop + 1 < self.files.len() {
            let f = &self.files[drop];
            let last_off = ((f.base + self.file_size) / CQ_UNIT_SIZE) as i64 - 1;
            let last = self.get(last_off)?;
            match last {
                Some(u) if u.phys_offset.saturating_add(i64::from(u.size.max(0))) <= pos => {
                    drop += 1
                }
                _ => break,
            }
        }
        if drop > 0 {
            for f in self.files.drain(..drop) {
                self.fs.remove_file(f.map.path())?;
            }
            self.fs.sync_dir(&self.dir)?;
            if let Some(first) = self.files.first() {
                self.min_offset = self.min_offset.max((first.base / CQ_UNIT_SIZE) as i64);
            }
        }
        // Skip units below `pos` still inside the first kept file.
        let new_min = self.first_at_or_past_pos(pos)?;
        self.min_offset = new_min.max(self.min_offset);
        Ok(())
    }

    fn remove_files_from(&mut self, keep: usize) -> Result<()> {
        if keep >= self.files.len() {
            return Ok(());
        }
        // Highest first, so a crash in between never leaves a hole in the file chain.
        while self.files.len() > keep {
            let f = self.files.pop().expect("invariant: len > keep");
            self.fs.remove_file(f.map.path())?;
        }
        self.fs.sync_dir(&self.dir)?;
        if self.files.is_empty() {
            self.min_offset = self.max_offset.min(self.min_offset);
        }
        Ok(())
    }

    /// Makes every unit written since the last flush durable.
    pub fn flush(&mut self) -> Result<()> {
        let Some(from) = self.dirty_from else {
            return Ok(());
        };
        let end = (self.max_offset as u64 * CQ_UNIT_SIZE).max(from + CQ_UNIT_SIZE);
        for f in &self.files {
            let (fs, fe) = (f.base, f.base + self.file_size);
            let (s, e) = (from.max(fs), end.min(fe));
            if s < e {
                f.map.flush_range(s - fs, e - s)?;
            }
        }
        self.dirty_from = None;
        Ok(())
    }

    /// Removes all files and the directory contents of this queue (queue deleted).
    pub fn destroy(mut self) -> Result<()> {
        self.remove_files_from(0)
    }

    /// Names and sizes of this queue's files (for tools and tests).
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .map(|f| f.map.path().to_path_buf())
            .collect()
    }
}
