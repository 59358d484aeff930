//! Entry index: Raft index → where its record lies, one fixed 32-byte unit per entry.
//!
//! The unit for index `i` sits at global byte `i * 32` of a list of mapped files (named like
//! segments), so a lookup is one read. The index is derived data: recovery rewrites any unit
//! that disagrees with the segments. A zeroed unit means "no entry".

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::format::{IndexUnit, INDEX_UNIT_LEN};
use crate::io::FileSystem;
use crate::segment::SegmentList;

const UNIT: u64 = INDEX_UNIT_LEN as u64;

/// The entry-index files of one commitlog.
#[derive(Debug)]
pub struct EntryIndex {
    files: SegmentList,
}

impl EntryIndex {
    /// Opens (or creates) the index directory.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path, file_size: u64) -> Result<EntryIndex> {
        Ok(EntryIndex {
            files: SegmentList::open(fs, dir, file_size)?,
        })
    }

    /// The unit of `index`, or `None` if it was never written or was zeroed.
    pub fn get(&self, index: u64) -> Result<Option<IndexUnit>> {
        let at = index * UNIT;
        let Some(file) = self.files.get(at) else {
            return Ok(None);
        };
        let mut u = [0u8; INDEX_UNIT_LEN];
        file.read_at(at, &mut u)?;
        Ok(IndexUnit::decode(&u))
    }

    /// Writes the unit of `index` (not yet durable; see `flush`).
    pub fn put(&mut self, index: u64, unit: &IndexUnit) -> Result<()> {
        let at = index * UNIT;
        self.files.get_or_create(at)?.write_at(at, &unit.encode())
    }

    /// Zeroes the units of `[from, to)` that lie in existing files, and makes them durable.
    pub fn zero_range(&mut self, from: u64, to: u64) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let (start, end) = (from * UNIT, to * UNIT);
        let zeros = vec![0u8; 64 * 1024];
        for file in self.files.overlapping(start, end) {
            let mut p = start.max(file.base());
            let stop = end.min(file.end());
            while p < stop {
                let n = (stop - p).min(zeros.len() as u64);
                file.write_at(p, &zeros[..n as usize])?;
                p += n;
            }
            file.flush(start, end)?;
        }
        Ok(())
    }

    /// The files holding units `[from, to)` (to sync them without holding the log lock).
    pub fn files_for(&self, from: u64, to: u64) -> Vec<Arc<crate::segment::Segment>> {
        self.files.overlapping(from * UNIT, to * UNIT)
    }

    /// Makes the units of `[from, to)` durable.
    pub fn flush(&self, from: u64, to: u64) -> Result<()> {
        self.files.flush(from * UNIT, to * UNIT)
    }

    /// Deletes the files holding only units below `index`.
    pub fn remove_below(&mut self, index: u64) -> Result<u64> {
        self.files.remove_below(index * UNIT)
    }

    /// Deletes the files whose units all lie at or above `index`.
    pub fn remove_from(&mut self, index: u64) -> Result<u64> {
        let at = index * UNIT;
        let from_base = if at % self.files.file_size() == 0 {
            at
        } else {
            self.files.base_of(at) + self.files.file_size()
        };
        self.files.remove_from(from_base)
    }

    /// Deletes every file.
    pub fn clear(&mut self) -> Result<u64> {
        self.files.remove_from(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::EntryKind;
    use crate::io::StdFileSystem;

    fn unit(pos: u64) -> IndexUnit {
        IndexUnit {
            pos,
            record_len: 100,
            kind: EntryKind::Command,
            term: 1,
            leader: 0,
        }
    }

    #[test]
    fn units_are_found_across_files_and_zeroing_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = EntryIndex::open(Arc::new(StdFileSystem), dir.path(), 4 * UNIT).unwrap();
        for i in 3..11 {
            ix.put(i, &unit(i * 100)).unwrap();
        }
        assert_eq!(ix.get(2).unwrap(), None);
        assert_eq!(ix.get(9).unwrap(), Some(unit(900)));
        ix.zero_range(6, 11).unwrap();
        assert_eq!(ix.get(5).unwrap(), Some(unit(500)));
        assert_eq!(ix.get(6).unwrap(), None);
        assert_eq!(ix.remove_from(6).unwrap(), 4 * UNIT);
        assert_eq!(ix.remove_below(4).unwrap(), 4 * UNIT);
        assert_eq!(ix.get(3).unwrap(), None);
        assert_eq!(ix.get(5).unwrap(), Some(unit(500)));
    }
}
