//! The newest entries, kept in memory as the writer wrote them.
//!
//! Each entry is read back soon after it is written: to apply it on every node, and on the
//! leader once more per follower to replicate it. Served from here, those reads skip the copy
//! out of the mapped segment, the header checks and the CRC. The writer fills the cache and
//! trims it on every truncate, purge and reset, so it never holds an entry the log does not;
//! it is bounded by entries and by bytes, and a reopened log starts with it empty, so data
//! read after a restart is always checked against its CRC.

use std::collections::VecDeque;

use super::StoredEntry;

/// At most this many entries are kept.
const MAX_ENTRIES: usize = 4096;
/// At most this many payload bytes are kept (beyond the newest entry, which always is).
const MAX_BYTES: usize = 8 << 20;

#[derive(Debug, Default)]
pub(crate) struct TailCache {
    /// Contiguous by index, oldest first.
    entries: VecDeque<StoredEntry>,
    bytes: usize,
}

impl TailCache {
    /// The entry at `index`, if cached.
    pub(crate) fn get(&self, index: u64) -> Option<&StoredEntry> {
        let first = self.entries.front()?.id.index;
        let at = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(at)
    }

    /// Adds the entry just written. One that does not follow the newest cached entry starts
    /// the cache over.
    pub(crate) fn push(&mut self, e: StoredEntry) {
        if self
            .entries
            .back()
            .is_some_and(|last| last.id.index + 1 != e.id.index)
        {
            self.clear();
        }
        self.bytes += e.payload.len();
        self.entries.push_back(e);
        while self.entries.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.payload.len();
            }
        }
    }

    /// Forgets the entries at `from` and above (a truncation).
    pub(crate) fn truncate(&mut self, from: u64) {
        while self.entries.back().is_some_and(|e| e.id.index >= from) {
            if let Some(old) = self.entries.pop_back() {
                self.bytes -= old.payload.len();
            }
        }
    }

    /// Forgets the entries at `upto` and below (a purge).
    pub(crate) fn purge(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|e| e.id.index <= upto) {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.payload.len();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitlog::{EntryId, EntryKind};
    use bytes::Bytes;

    fn entry(index: u64, len: usize) -> StoredEntry {
        StoredEntry {
            id: EntryId {
                index,
                term: 1,
                leader: 0,
            },
            kind: EntryKind::Messages,
            pos: index * 100,
            payload: Bytes::from(vec![index as u8; len]),
        }
    }

    #[test]
    fn serves_what_was_pushed_and_forgets_on_truncate_purge_and_gaps() {
        let mut c = TailCache::default();
        for i in 10..20 {
            c.push(entry(i, 10));
        }
        assert_eq!(c.get(9), None);
        assert_eq!(c.get(10), Some(&entry(10, 10)));
        assert_eq!(c.get(19), Some(&entry(19, 10)));
        assert_eq!(c.get(20), None);

        c.truncate(15);
        assert_eq!(c.get(15), None);
        assert_eq!(c.get(14), Some(&entry(14, 10)));
        c.purge(11);
        assert_eq!(c.get(11), None);
        assert_eq!(c.get(12), Some(&entry(12, 10)));
        assert_eq!(c.bytes, 30);

        // A replacement at a lower index after truncation follows on.
        c.push(entry(15, 10));
        assert_eq!(c.get(15), Some(&entry(15, 10)));
        // A gap (a reset elsewhere) starts over.
        c.push(entry(40, 10));
        assert_eq!(c.get(12), None);
        assert_eq!(c.get(40), Some(&entry(40, 10)));
        assert_eq!(c.bytes, 10);
    }

    #[test]
    fn stays_within_its_bounds_but_keeps_the_newest_entry() {
        let mut c = TailCache::default();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            c.push(entry(i, 1));
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert_eq!(c.get(9), None);
        assert!(c.get(10).is_some());

        let mut c = TailCache::default();
        c.push(entry(0, MAX_BYTES / 2));
        c.push(entry(1, MAX_BYTES / 2));
        c.push(entry(2, 1));
        assert_eq!(c.get(0), None, "over the byte bound the oldest goes");
        assert!(c.get(1).is_some() && c.get(2).is_some());
        c.push(entry(3, MAX_BYTES * 2));
        assert_eq!(
            c.entries.len(),
            1,
            "an oversized newest entry is kept alone"
        );
        assert!(c.get(3).is_some());
    }
}
