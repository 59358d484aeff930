//! The commitlog's meta file: vote, committed, purged and where the log starts.
//!
//! Replaced atomically (write `meta.tmp`, fsync, rename over `meta`, fsync the directory), so
//! a crash leaves either the old or the new content, never a mix. Fixed big-endian layout with
//! a CRC32C trailer; the vote is opaque bytes owned by the raft layer.

use std::path::{Path, PathBuf};

use crate::commitlog::EntryId;
use crate::error::{Result, StoreError};
use crate::io::FileSystem;

const META_MAGIC: u32 = 0x524D_514D; // "RMQM"
const META_VERSION: u8 = 1;
/// Name of the meta file inside the commitlog directory.
pub const META_FILE: &str = "meta";
const META_TMP: &str = "meta.tmp";

/// Everything the commitlog must remember besides the records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Opaque vote bytes (`save_vote`).
    pub vote: Option<Vec<u8>>,
    /// Last committed entry known when the meta was written (never past the durable log).
    pub committed: Option<EntryId>,
    /// Last purged entry.
    pub purged: Option<EntryId>,
    /// Index of the first entry in the log (or the next one when the log is empty).
    pub start_index: u64,
    /// Global offset where the log starts.
    pub start_pos: u64,
    /// Written at a clean shutdown: (next_index, next_pos) of the log at that moment, so a
    /// clean start needs no scan. Only trusted when the `abort` marker is absent.
    pub clean_end: Option<(u64, u64)>,
}

fn put_id(out: &mut Vec<u8>, id: Option<EntryId>) {
    let id = id.unwrap_or(EntryId {
        index: 0,
        term: 0,
        leader: 0,
    });
    out.extend_from_slice(&id.index.to_be_bytes());
    out.extend_from_slice(&id.term.to_be_bytes());
    out.extend_from_slice(&id.leader.to_be_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Some(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_be_bytes(a))
    }
    fn id(&mut self) -> Option<EntryId> {
        Some(EntryId {
            index: self.u64()?,
            term: self.u64()?,
            leader: self.u64()?,
        })
    }
}

impl Meta {
    /// Encodes: magic u32 | version u8 | flags u8 | reserved u16 | committed (3×u64) |
    /// purged (3×u64) | start_index u64 | start_pos u64 | clean next_index u64 |
    /// clean next_pos u64 | vote_len u32 | vote | crc32c u32 over everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&META_MAGIC.to_be_bytes());
        out.push(META_VERSION);
        let flags = u8::from(self.committed.is_some())
            | (u8::from(self.purged.is_some()) << 1)
            | (u8::from(self.clean_end.is_some()) << 2)
            | (u8::from(self.vote.is_some()) << 3);
        out.push(flags);
        out.extend_from_slice(&[0, 0]);
        put_id(&mut out, self.committed);
        put_id(&mut out, self.purged);
        out.extend_from_slice(&self.start_index.to_be_bytes());
        out.extend_from_slice(&self.start_pos.to_be_bytes());
        let (ci, cp) = self.clean_end.unwrap_or((0, 0));
        out.extend_from_slice(&ci.to_be_bytes());
        out.extend_from_slice(&cp.to_be_bytes());
        let vote = self.vote.as_deref().unwrap_or(&[]);
        let vote_len = u32::try_from(vote.len()).expect("invariant: a vote is a few bytes");
        out.extend_from_slice(&vote_len.to_be_bytes());
        out.extend_from_slice(vote);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes and checks the CRC; `path` is only for the error.
    pub fn decode(buf: &[u8], path: &Path) -> Result<Meta> {
        let bad = |reason: &str| StoreError::corruption(path, 0, reason.to_string());
        if buf.len() < 4 {
            return Err(bad("meta file too short"));
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        let mut c = [0u8; 4];
        c.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_be_bytes(c) {
            return Err(bad("meta CRC mismatch"));
        }
        let mut r = Reader { buf: body, at: 0 };
        let short = || bad("meta file truncated");
        if r.u32().ok_or_else(short)? != META_MAGIC {
            return Err(bad("bad meta magic"));
        }
        let version = r.u8().ok_or_else(short)?;
        if version != META_VERSION {
            return Err(bad(&format!("unknown meta version {version}")));
        }
        let flags = r.u8().ok_or_else(short)?;
        r.take(2).ok_or_else(short)?;
        let committed = r.id().ok_or_else(short)?;
        let purged = r.id().ok_or_else(short)?;
        let start_index = r.u64().ok_or_else(short)?;
        let start_pos = r.u64().ok_or_else(short)?;
        let ci = r.u64().ok_or_else(short)?;
        let cp = r.u64().ok_or_else(short)?;
        let vote_len = r.u32().ok_or_else(short)? as usize;
        let vote = r.take(vote_len).ok_or_else(short)?.to_vec();
        Ok(Meta {
            vote: (flags & 8 != 0).then_some(vote),
            committed: (flags & 1 != 0).then_some(committed),
            purged: (flags & 2 != 0).then_some(purged),
            start_index,
            start_pos,
            clean_end: (flags & 4 != 0).then_some((ci, cp)),
        })
    }

    /// Loads `dir/meta`, or the default (empty log at index 0, position 0) if absent.
    pub fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Meta> {
        let path = dir.join(META_FILE);
        if !fs.exists(&path) {
            return Ok(Meta::default());
        }
        let buf = fs.read_file(&path)?;
        Meta::decode(&buf, &path)
    }

    /// Replaces `dir/meta` atomically and durably.
    pub fn store(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let tmp: PathBuf = dir.join(META_TMP);
        fs.write_file_synced(&tmp, &self.encode())?;
        fs.rename(&tmp, &dir.join(META_FILE))?;
        fs.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StdFileSystem;

    #[test]
    fn meta_round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        assert_eq!(Meta::load(&fs, dir.path()).unwrap(), Meta::default());
        let m = Meta {
            vote: Some(b"term=3".to_vec()),
            committed: Some(EntryId {
                index: 9,
                term: 3,
                leader: 1,
            }),
            purged: None,
            start_index: 4,
            start_pos: 4096,
            clean_end: Some((10, 9000)),
        };
        m.store(&fs, dir.path()).unwrap();
        assert_eq!(Meta::load(&fs, dir.path()).unwrap(), m);
        let mut raw = m.encode();
        raw[20] ^= 1;
        assert!(Meta::decode(&raw, dir.path()).is_err());
    }
}
