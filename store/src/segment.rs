//! Preallocated, memory-mapped files named by the global offset of their first byte.
//!
//! Owns `Segment` (one mapped file: write, read and flush by *global* offset) and
//! `SegmentList` (the ordered files of one directory, RocketMQ's `MappedFileQueue`). Both the
//! commitlog segments and the entry-index files are segment lists. Knows nothing of records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::format;
use crate::io::{FileSystem, MappedFile};

/// One mapped file covering global offsets `[base, base + size)`.
#[derive(Debug)]
pub struct Segment {
    base: u64,
    size: u64,
    file: Arc<dyn MappedFile>,
}

impl Segment {
    /// Global offset of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Global offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    fn local(&self, pos: u64, len: u64) -> Result<u64> {
        if pos < self.base || pos + len > self.end() {
            return Err(StoreError::InvalidArgument(format!(
                "range {pos}+{len} is outside segment {}",
                self.path().display()
            )));
        }
        Ok(pos - self.base)
    }

    /// Copies `data` to global offset `pos`.
    pub fn write_at(&self, pos: u64, data: &[u8]) -> Result<()> {
        let at = self.local(pos, data.len() as u64)?;
        self.file.write_at(at, data)
    }

    /// Copies bytes from global offset `pos` into `buf`.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.local(pos, buf.len() as u64)?;
        self.file.read_at(at, buf)
    }

    /// Makes global `[from, to)` durable; the range is clipped to this segment.
    pub fn flush(&self, from: u64, to: u64) -> Result<()> {
        let from = from.max(self.base);
        let to = to.min(self.end());
        if from >= to {
            return Ok(());
        }
        self.file.flush_range(from - self.base, to - from)
    }
}

/// The files of one directory, all `file_size` bytes, keyed by base offset.
#[derive(Debug)]
pub struct SegmentList {
    dir: PathBuf,
    file_size: u64,
    fs: Arc<dyn FileSystem>,
    files: BTreeMap<u64, Arc<Segment>>,
}

impl SegmentList {
    /// Maps every correctly named file in `dir` (created if missing). Files with other names
    /// are ignored; a file of the wrong size or not aligned to `file_size` is an error.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, file_size: u64) -> Result<SegmentList> {
        if file_size == 0 {
            return Err(StoreError::InvalidArgument(
                "segment file size must be positive".into(),
            ));
        }
        fs.create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for path in fs.list(dir)? {
            let Some(base) = format::parse_file_name(&path) else {
                continue;
            };
            if base.checked_add(file_size.saturating_mul(2)).is_none() {
                return Err(StoreError::corruption(
                    &path,
                    0,
                    format!("file base {base} is too large"),
                ));
            }
            if base % file_size != 0 {
                return Err(StoreError::corruption(
                    &path,
                    0,
                    format!("file base {base} is not a multiple of the file size {file_size}"),
                ));
            }
            let file = fs.map(&path, file_size, false)?;
            files.insert(
                base,
                Arc::new(Segment {
                    base,
                    size: file_size,
                    file,
                }),
            );
        }
        Ok(SegmentList {
            dir: dir.to_path_buf(),
            file_size,
            fs,
            files,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of every file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Base of the file that holds global offset `pos`.
    pub fn base_of(&self, pos: u64) -> u64 {
        pos - pos % self.file_size
    }

    /// The file holding `pos`, if it exists.
    pub fn get(&self, pos: u64) -> Option<Arc<Segment>> {
        self.files.get(&self.base_of(pos)).cloned()
    }

    /// The file holding `pos`, created (preallocated, fsynced, directory synced) if missing.
    pub fn get_or_create(&mut self, pos: u64) -> Result<Arc<Segment>> {
        let base = self.base_of(pos);
        if let Some(s) = self.files.get(&base) {
            return Ok(s.clone());
        }
        let path = format::file_path(&self.dir, base);
        let file = self.fs.map(&path, self.file_size, true)?;
        self.fs.sync_dir(&self.dir)?;
        let seg = Arc::new(Segment {
            base,
            size: self.file_size,
            file,
        });
        self.files.insert(base, seg.clone());
        Ok(seg)
    }

    /// All files in base order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Segment>> {
        self.files.values()
    }

    /// The file with the highest base.
    pub fn last(&self) -> Option<&Arc<Segment>> {
        self.files.values().next_back()
    }

    /// Files overlapping global `[from, to)`.
    pub fn overlapping(&self, from: u64, to: u64) -> Vec<Arc<Segment>> {
        if from >= to {
            return Vec::new();
        }
        self.files
            .range(self.base_of(from)..to)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Deletes every file whose base is `>= from_base`, highest first, then syncs the
    /// directory. Highest first so that a crash midway leaves a log without holes.
    /// Returns how many bytes of files were removed.
    pub fn remove_from(&mut self, from_base: u64) -> Result<u64> {
        let doomed: Vec<u64> = self
            .files
            .range(from_base..)
            .map(|(b, _)| *b)
            .rev()
            .collect();
        self.remove(&doomed)
    }

    /// Deletes every file that lies wholly below global offset `pos`, lowest first, then
    /// syncs the directory. Returns how many bytes of files were removed.
    pub fn remove_below(&mut self, pos: u64) -> Result<u64> {
        let doomed: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, s)| s.end() <= pos)
            .map(|(b, _)| *b)
            .collect();
        self.remove(&doomed)
    }

    fn remove(&mut self, bases: &[u64]) -> Result<u64> {
        if bases.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        for base in bases {
            if let Some(seg) = self.files.remove(base) {
                self.fs.remove_file(seg.path())?;
                removed += self.file_size;
            }
        }
        self.fs.sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Makes global `[from, to)` durable across however many files it spans.
    pub fn flush(&self, from: u64, to: u64) -> Result<()> {
        for seg in self.overlapping(from, to) {
            seg.flush(from, to)?;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `pos`; the range must lie in one existing file.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        match self.get(pos) {
            Some(seg) => seg.read_at(pos, buf),
            None => Err(StoreError::OutOfRange {
                what: "position",
                at: pos,
                first: self.files.keys().next().copied().unwrap_or(0),
                end: self.last().map(|s| s.end()).unwrap_or(0),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdFileSystem;

    #[test]
    fn files_are_created_on_demand_and_removed_highest_first() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let mut list = SegmentList::open(fs.clone(), dir.path(), 4096).unwrap();
        for pos in [0u64, 4096, 8192 + 10] {
            list.get_or_create(pos)
                .unwrap()
                .write_at(pos, b"x")
                .unwrap();
        }
        assert!(dir.path().join("00000000000000008192").exists());
        let list2 = SegmentList::open(fs.clone(), dir.path(), 4096).unwrap();
        assert_eq!(list2.iter().count(), 3);
        let mut b = [0u8; 1];
        list2.read_at(8202, &mut b).unwrap();
        assert_eq!(&b, b"x");
        drop(list2);
        assert_eq!(list.remove_from(4096).unwrap(), 8192);
        assert_eq!(list.remove_below(4096).unwrap(), 4096);
        assert_eq!(fs.list(dir.path()).unwrap().len(), 0);
        assert!(list.read_at(0, &mut b).is_err());
    }
}
