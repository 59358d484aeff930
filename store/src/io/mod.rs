//! The narrow I/O seam every store file goes through.
//!
//! Owns the `FileSystem` and `MappedFile` traits, the real implementation (`StdFileSystem`,
//! mmap via memmap2) and, under `cfg(test)` or the `failpoints` feature, `FaultyFileSystem`,
//! which injects write/fsync errors, torn writes, a crash after N bytes and a power loss that
//! drops everything not made durable. It knows nothing of records or Raft.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Result;

mod std_fs;
pub use std_fs::StdFileSystem;

#[cfg(any(test, feature = "failpoints"))]
mod faulty;
#[cfg(any(test, feature = "failpoints"))]
pub use faulty::{FaultyFileSystem, PowerCutReport, TornWrite};

/// A fixed-length file mapped into memory.
///
/// Writes and reads copy bytes; the implementation serialises them per file, so concurrent
/// callers never race on the same bytes. `flush_range` is `msync(MS_SYNC)`: on return the range
/// is durable. Never shrink a mapped file (the mapping would fault), so there is no `set_len`.
pub trait MappedFile: Send + Sync + fmt::Debug {
    /// The file's path (for error context).
    fn path(&self) -> &Path;
    /// Mapped length in bytes.
    fn len(&self) -> u64;
    /// True for a zero-length mapping (never used by the store, but it keeps `len` honest).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `data` to `offset`. Errors if the range is outside the file.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Copies `buf.len()` bytes from `offset`. Errors if the range is outside the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Makes `[offset, offset + len)` durable (whole pages around it are written).
    fn flush_range(&self, offset: u64, len: u64) -> Result<()>;
}

/// File-system operations the store needs. Paths are absolute or relative to the process.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// `mkdir -p`; the new directories are made durable in their parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Paths of the regular files directly inside `dir`, sorted by name.
    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>>;
    /// True if `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Length of a file in bytes.
    fn file_len(&self, path: &Path) -> Result<u64>;
    /// Last modification time (retention uses it like RocketMQ's `lastModified`).
    fn modified(&self, path: &Path) -> Result<SystemTime>;
    /// Removes a file. Durable only after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Atomically renames. Durable only after `sync_dir` of the directory.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// fsyncs a directory, making creates, removes and renames inside it durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Reads a whole (small) file.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>>;
    /// Creates or replaces `path` with `data` and fsyncs the file (not the directory).
    fn write_file_synced(&self, path: &Path, data: &[u8]) -> Result<()>;
    /// Maps `path`. With `create`, a missing file is created, preallocated to `len` bytes and
    /// fsynced (the caller syncs the directory). An existing file must be exactly `len` long.
    fn map(&self, path: &Path, len: u64, create: bool) -> Result<Arc<dyn MappedFile>>;
    /// Total and available bytes of the disk holding `path`.
    fn disk_space(&self, path: &Path) -> Result<DiskSpace>;
}

/// Capacity of a disk (for the retention disk-ratio rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub total: u64,
    pub available: u64,
}

impl DiskSpace {
    /// Used space in percent (0..=100).
    pub fn used_percent(&self) -> u8 {
        if self.total == 0 {
            return 0;
        }
        let used = self.total.saturating_sub(self.available);
        u8::try_from(used.saturating_mul(100) / self.total).unwrap_or(100)
    }
}
