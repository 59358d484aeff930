//! The dispatch checkpoint: how far the derived files (consumequeue, index) are known durable.
//!
//! Owns the `checkpoint` file at the store root. It records the last applied log entry, the
//! commitlog position just past it, every queue's next offset, the index's endPhyOffset and
//! an opaque blob for the state-machine layer (for example its last membership). The
//! dispatcher writes it only after it has flushed the files it describes, so after a crash
//! everything up to it is on disk and everything past it is trimmed and re-dispatched.
//!
//! Format (big-endian, our own; RocketMQ's 4096-byte timestamp file has no room for a queue
//! table): `magic u32 "RMQC" | version u8 | reserved [3] | has_applied u8 | index u64 |
//! term u64 | leader u64 | next_pos u64 | index_end_phy i64 | queue_count u32 |
//! { topic_len u16 | topic | queue_id i32 | next_offset i64 }* | extra_len u32 | extra |
//! reset_count u32 | { topic_len u16 | topic | queue_id i32 }* | crc32c u32` (CRC over every
//! byte before it; version 1 files end after `extra` and have no resets). Replaced
//! atomically: temp file, fsync, rename, fsync of the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::commitlog::EntryId;
use crate::error::{Result, StoreError};
use crate::io::FileSystem;

/// File name of the dispatch checkpoint inside the store root.
pub const CHECKPOINT_FILE: &str = "checkpoint";
const MAGIC: u32 = 0x524D_5143;
const VERSION: u8 = 2;
/// The first format, without the reset list; still read.
const VERSION_1: u8 = 1;

/// What the derived files hold, durably.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DispatchCheckpoint {
    /// Last entry whose effects are in the files; `None` before the first.
    pub applied: Option<EntryId>,
    /// Commitlog position just past the applied entry: every unit or index entry at or past
    /// it is newer than this checkpoint.
    pub next_pos: u64,
    /// Next offset of every queue that has one.
    pub queues: BTreeMap<(String, i32), i64>,
    /// endPhyOffset of the newest index file (-1 when nothing is indexed).
    pub index_end_phy: i64,
    /// Opaque bytes kept for the state-machine layer.
    pub extra: Vec<u8>,
    /// Queues the applied entry emptied (their topic was deleted): they end at their next
    /// offset with no unit before it. Whatever their files still hold is stale, so opening
    /// empties them again.
    pub resets: BTreeSet<(String, i32)>,
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> StoreError {
    StoreError::corruption(path, offset as u64, reason)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| corrupt(self.path, self.at, "checkpoint is truncated"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn queue(&mut self) -> Result<(String, i32)> {
        let len = self.u16()? as usize;
        let at = self.at;
        let topic = std::str::from_utf8(self.take(len)?)
            .map_err(|_| corrupt(self.path, at, "topic is not UTF-8"))?
            .to_owned();
        Ok((topic, self.i32()?))
    }
}

fn put_queue(out: &mut Vec<u8>, topic: &str, queue_id: i32) -> Result<()> {
    let len = u16::try_from(topic.len())
        .map_err(|_| StoreError::InvalidArgument(format!("topic of {} bytes", topic.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&queue_id.to_be_bytes());
    Ok(())
}

impl DispatchCheckpoint {
    /// Serialises with a trailing CRC32C.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.queues.len() * 32 + self.extra.len());
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.push(VERSION);
        out.extend_from_slice(&[0u8; 3]);
        let id = self.applied.unwrap_or(EntryId {
            index: 0,
            term: 0,
            leader: 0,
        });
        out.push(u8::from(self.applied.is_some()));
        out.extend_from_slice(&id.index.to_be_bytes());
        out.extend_from_slice(&id.term.to_be_bytes());
        out.extend_from_slice(&id.leader.to_be_bytes());
        out.extend_from_slice(&self.next_pos.to_be_bytes());
        out.extend_from_slice(&self.index_end_phy.to_be_bytes());
        let count = u32::try_from(self.queues.len())
            .map_err(|_| StoreError::InvalidArgument("too many queues for a checkpoint".into()))?;
        out.extend_from_slice(&count.to_be_bytes());
        for ((topic, qid), next) in &self.queues {
            put_queue(&mut out, topic, *qid)?;
            out.extend_from_slice(&next.to_be_bytes());
        }
        let extra_len = u32::try_from(self.extra.len())
            .map_err(|_| StoreError::InvalidArgument("checkpoint extra too large".into()))?;
        out.extend_from_slice(&extra_len.to_be_bytes());
        out.extend_from_slice(&self.extra);
        let resets = u32::try_from(self.resets.len())
            .map_err(|_| StoreError::InvalidArgument("too many resets for a checkpoint".into()))?;
        out.extend_from_slice(&resets.to_be_bytes());
        for (topic, qid) in &self.resets {
            put_queue(&mut out, topic, *qid)?;
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(out)
    }

    /// Parses bytes written by [`DispatchCheckpoint::encode`]; `path` is for error context.
    pub fn decode(buf: &[u8], path: &Path) -> Result<DispatchCheckpoint> {
        if buf.len() < 4 {
            return Err(corrupt(path, 0, "checkpoint is truncated"));
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        let mut c = [0u8; 4];
        c.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_be_bytes(c) {
            return Err(corrupt(path, body.len(), "checkpoint CRC mismatch"));
        }
        let mut r = Reader {
            buf: body,
            at: 0,
            path,
        };
        if r.u32()? != MAGIC {
            return Err(corrupt(path, 0, "bad checkpoint magic"));
        }
        let version = r.u8()?;
        if version != VERSION && version != VERSION_1 {
            return Err(corrupt(
                path,
                4,
                format!("unknown checkpoint version {version}"),
            ));
        }
        r.take(3)?;
        let has_applied = r.u8()? != 0;
        let id = EntryId {
            index: r.u64()?,
            term: r.u64()?,
            leader: r.u64()?,
        };
        let next_pos = r.u64()?;
        let index_end_phy = r.i64()?;
        let count = r.u32()?;
        let mut queues = BTreeMap::new();
        for _ in 0..count {
            let key = r.queue()?;
            let next = r.i64()?;
            queues.insert(key, next);
        }
        let extra_len = r.u32()? as usize;
        let extra = r.take(extra_len)?.to_vec();
        let mut resets = BTreeSet::new();
        if version != VERSION_1 {
            for _ in 0..r.u32()? {
                let key = r.queue()?;
                if !queues.contains_key(&key) {
                    return Err(corrupt(
                        path,
                        r.at,
                        format!("reset of unknown queue {}/{}", key.0, key.1),
                    ));
                }
                resets.insert(key);
            }
        }
        if r.at != body.len() {
            return Err(corrupt(path, r.at, "trailing bytes in checkpoint"));
        }
        Ok(DispatchCheckpoint {
            applied: has_applied.then_some(id),
            next_pos,
            queues,
            index_end_phy,
            extra,
            resets,
        })
    }

    /// Path of the checkpoint under `root`.
    pub fn path(root: &Path) -> PathBuf {
        root.join(CHECKPOINT_FILE)
    }

    /// Loads the checkpoint under `root`; `None` when there is none yet.
    pub fn load(fs: &dyn FileSystem, root: &Path) -> Result<Option<DispatchCheckpoint>> {
        let path = Self::path(root);
        if !fs.exists(&path) {
            return Ok(None);
        }
        let bytes = fs.read_file(&path)?;
        Self::decode(&bytes, &path).map(Some)
    }

    /// Atomically replaces the checkpoint under `root`: a crash leaves the old or the new one.
    pub fn store(&self, fs: &dyn FileSystem, root: &Path) -> Result<()> {
        let bytes = self.encode()?;
        let path = Self::path(root);
        let tmp = root.join(format!("{CHECKPOINT_FILE}.tmp"));
        fs.write_file_synced(&tmp, &bytes)?;
        fs.rename(&tmp, &path)?;
        fs.sync_dir(root)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::io::StdFileSystem;

    fn sample() -> DispatchCheckpoint {
        let mut queues = BTreeMap::new();
        queues.insert(("TopicA".to_owned(), 0), 17);
        queues.insert(("%RETRY%g".to_owned(), 3), 2);
        DispatchCheckpoint {
            applied: Some(EntryId {
                index: 9,
                term: 2,
                leader: 1,
            }),
            next_pos: 4096,
            queues,
            index_end_phy: 3000,
            extra: b"membership".to_vec(),
            resets: [("TopicA".to_owned(), 0)].into_iter().collect(),
        }
    }

    #[test]
    fn version_1_files_still_load() {
        let mut cp = sample();
        cp.resets.clear();
        let v2 = cp.encode().unwrap();
        // Version 1 had no reset list: drop its count (and the CRC), then re-seal.
        let mut v1 = v2[..v2.len() - 8].to_vec();
        v1[4] = VERSION_1;
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(DispatchCheckpoint::decode(&v1, Path::new("c")).unwrap(), cp);
    }

    #[test]
    fn a_reset_of_a_queue_it_does_not_list_is_corruption() {
        let mut cp = sample();
        cp.resets.insert(("Other".to_owned(), 1));
        let bytes = cp.encode().unwrap();
        assert!(matches!(
            DispatchCheckpoint::decode(&bytes, Path::new("c")),
            Err(StoreError::Corruption { .. })
        ));
    }

    #[test]
    fn round_trips_through_an_atomic_replace() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = StdFileSystem::arc();
        assert_eq!(
            DispatchCheckpoint::load(fs.as_ref(), tmp.path()).unwrap(),
            None
        );
        sample().store(fs.as_ref(), tmp.path()).unwrap();
        assert_eq!(
            DispatchCheckpoint::load(fs.as_ref(), tmp.path()).unwrap(),
            Some(sample())
        );
        let empty = DispatchCheckpoint::default();
        empty.store(fs.as_ref(), tmp.path()).unwrap();
        assert_eq!(
            DispatchCheckpoint::load(fs.as_ref(), tmp.path()).unwrap(),
            Some(empty)
        );
        assert!(!tmp.path().join("checkpoint.tmp").exists());
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_corruption() {
        let bytes = sample().encode().unwrap();
        let p = Path::new("checkpoint");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(matches!(
                DispatchCheckpoint::decode(&b, p),
                Err(StoreError::Corruption { .. })
            ));
        }
        for n in 0..bytes.len() {
            assert!(DispatchCheckpoint::decode(&bytes[..n], p).is_err());
        }
    }
}
