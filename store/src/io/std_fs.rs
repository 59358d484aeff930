//! The real file system: std::fs plus memmap2 shared mappings.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use memmap2::MmapRaw;

use super::{DiskSpace, FileSystem, MappedFile};
use crate::error::{Result, StoreError};

/// `FileSystem` over the operating system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFileSystem;

impl StdFileSystem {
    /// A shareable handle.
    pub fn arc() -> Arc<dyn FileSystem> {
        Arc::new(StdFileSystem)
    }
}

/// Reserves the blocks of a fresh file so later page faults do not allocate. Falls back to a
/// sparse file where the file system cannot preallocate.
fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    file.set_len(len)
        .map_err(|e| StoreError::io("set_len", path, e))?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Ok(l) = libc::off_t::try_from(len) else {
            return Ok(());
        };
        // SAFETY: a plain syscall on an fd we own; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, l) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            tracing::debug!(path = %path.display(), cause = %err, "fallocate unsupported, file stays sparse");
        }
    }
    Ok(())
}

/// Creates `path` at its full length, zero-filled and fsynced, under a temporary name first
/// (`NAME.creating`, replaced if an earlier attempt left one), then renames it into place. A
/// crash mid-creation (`kill -9` between create and preallocate) so leaves at most a stray
/// temporary file, which no store lists, never a short file under the real name that the next
/// open would have to refuse as corrupt. The caller syncs the directory.
fn create_preallocated(path: &Path, len: u64) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".creating");
    let tmp = PathBuf::from(tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io("create", &tmp, e))?;
    preallocate(&file, &tmp, len)?;
    file.sync_all()
        .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", &tmp, e))
}

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir_all", dir, e))?;
        if let Some(parent) = dir.parent() {
            if !parent.as_os_str().is_empty() {
                self.sync_dir(parent)?;
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| StoreError::io("read_dir", dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io("read_dir", dir, e))?;
            let ft = ent
                .file_type()
                .map_err(|e| StoreError::io("file_type", ent.path(), e))?;
            if ft.is_file() {
                out.push(ent.path());
            }
        }
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn file_len(&self, path: &Path) -> Result<u64> {
        fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| StoreError::io("stat", path, e))
    }

    fn modified(&self, path: &Path) -> Result<SystemTime> {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| StoreError::io("stat", path, e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| StoreError::io("rename", from, e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("fsync dir", dir, e))
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        fs::read(path).map_err(|e| StoreError::io("read", path, e))
    }

    fn write_file_synced(&self, path: &Path, data: &[u8]) -> Result<()> {
        let mut f = File::create(path).map_err(|e| StoreError::io("create", path, e))?;
        f.write_all(data)
            .map_err(|e| StoreError::io("write", path, e))?;
        f.sync_all().map_err(|e| StoreError::io("fsync", path, e))
    }

    fn map(&self, path: &Path, len: u64, create: bool) -> Result<Arc<dyn MappedFile>> {
        if create && len > 0 && !path.exists() {
            create_preallocated(path, len)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open", path, e))?;
        let cur = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, e))?
            .len();
        if cur == 0 && create && len > 0 {
            preallocate(&file, path, len)?;
            file.sync_all()
                .map_err(|e| StoreError::io("fsync", path, e))?;
        } else if cur != len {
            return Err(StoreError::corruption(
                path,
                cur,
                format!("file is {cur} bytes, expected {len}"),
            ));
        }
        let map = MmapRaw::map_raw(&file).map_err(|e| StoreError::io("mmap", path, e))?;
        Ok(Arc::new(StdMappedFile {
            path: path.to_path_buf(),
            len,
            map,
            file,
            guard: RwLock::new(()),
        }))
    }

    fn disk_space(&self, path: &Path) -> Result<DiskSpace> {
        #[cfg(unix)]
        {
            use std::ffi::CString;
            use std::os::unix::ffi::OsStrExt;
            let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                StoreError::InvalidArgument(format!("path {} contains NUL", path.display()))
            })?;
            // SAFETY: statvfs is plain data; zeroed is a valid initial value.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `c` is a valid NUL-terminated string and `st` a valid out pointer.
            let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
            if rc != 0 {
                return Err(StoreError::io(
                    "statvfs",
                    path,
                    std::io::Error::last_os_error(),
                ));
            }
            #[allow(clippy::unnecessary_cast)]
            let frsize = st.f_frsize as u64;
            #[allow(clippy::unnecessary_cast)]
            Ok(DiskSpace {
                total: st.f_blocks as u64 * frsize,
                available: st.f_bavail as u64 * frsize,
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Ok(DiskSpace {
                total: 0,
                available: 0,
            })
        }
    }
}

/// Writes at least this long use `pwrite` (see [`StdMappedFile`]).
const PWRITE_MIN: usize = 512;

/// A shared read-write mapping of a whole file.
///
/// Writes of `PWRITE_MIN` bytes or more (commitlog records) go through `pwrite` on the file
/// rather than a copy into the mapping: the page cache is the same either way, so reads
/// through the mapping and `msync` (which syncs the file range, however it was dirtied) see
/// them, but pages written with `pwrite` are never write-mapped, so writing them back does not
/// write-protect page-table entries on every CPU (a TLB shootdown per flush) and the next
/// write does not fault. Small writes (consumequeue units, index slots, end markers) stay
/// copies: a system call each would cost more than it saves.
///
/// Copies in and out go through `guard` (writes exclusive, reads shared), so Rust never sees
/// two threads touching the same bytes at once. `flush_range` does not take it: msync only asks
/// the kernel to write pages back and reads no memory on our behalf.
struct StdMappedFile {
    path: PathBuf,
    len: u64,
    map: MmapRaw,
    file: File,
    guard: RwLock<()>,
}

impl std::fmt::Debug for StdMappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdMappedFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}

impl StdMappedFile {
    fn check(&self, offset: u64, len: usize) -> Result<usize> {
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= self.len => Ok(offset as usize),
            _ => Err(StoreError::InvalidArgument(format!(
                "range {offset}+{len} outside {} ({} bytes)",
                self.path.display(),
                self.len
            ))),
        }
    }
}

impl MappedFile for StdMappedFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let at = self.check(offset, data.len())?;
        let _g = self.guard.write().unwrap_or_else(|p| p.into_inner());
        if data.len() >= PWRITE_MIN {
            return self
                .file
                .write_all_at(data, offset)
                .map_err(|e| StoreError::io("pwrite", &self.path, e));
        }
        // SAFETY: `at + data.len()` is inside the mapping (checked); the write lock excludes
        // every other copy in or out of this mapping; `data` cannot alias the mapping because
        // callers only hold copies (read_at copies out).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(at), data.len());
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let at = self.check(offset, buf.len())?;
        let _g = self.guard.read().unwrap_or_else(|p| p.into_inner());
        // SAFETY: in bounds (checked); writers are excluded by the lock.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(at), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    fn flush_range(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let at = self.check(offset, len as usize)?;
        self.map
            .flush_range(at, len as usize)
            .map_err(|e| StoreError::io("msync", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_writes_through_the_file_and_small_copies_agree_in_one_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        let p = dir.path().join("00000000000000000000");
        let m = fs.map(&p, 16384, true).unwrap();
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        m.write_at(1000, &big).unwrap(); // pwrite
        m.write_at(3000, b"small").unwrap(); // a copy into the mapping, over it
        m.flush_range(0, 16384).unwrap();
        let mut expected = big.clone();
        expected[2000..2005].copy_from_slice(b"small");
        let mut back = vec![0u8; 5000];
        m.read_at(1000, &mut back).unwrap();
        assert_eq!(back, expected, "read through the mapping");
        let on_disk = std::fs::read(&p).unwrap();
        assert_eq!(&on_disk[1000..6000], &expected[..], "read through the file");
        assert!(m.write_at(16000, &big).is_err(), "bounds are checked first");
    }

    #[test]
    fn creation_goes_through_a_temporary_name_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        let p = dir.path().join("00000000000000008192");
        // What a crash between create and preallocate left behind on an earlier attempt.
        std::fs::write(dir.path().join("00000000000000008192.creating"), b"").unwrap();
        let m = fs.map(&p, 8192, true).unwrap();
        m.write_at(0, b"abc").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 8192);
        let names: Vec<String> = fs
            .list(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["00000000000000008192"],
            "the temporary file was renamed"
        );
        // An existing file is opened as it is, never recreated.
        drop(m);
        let again = fs.map(&p, 8192, true).unwrap();
        let mut b = [0u8; 3];
        again.read_at(0, &mut b).unwrap();
        assert_eq!(&b, b"abc");
    }

    #[test]
    fn mapped_file_is_preallocated_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFileSystem;
        let p = dir.path().join("00000000000000000000");
        let m = fs.map(&p, 8192, true).unwrap();
        assert_eq!(fs.file_len(&p).unwrap(), 8192);
        m.write_at(4000, b"abcdef").unwrap();
        m.flush_range(4000, 6).unwrap();
        let mut b = [0u8; 6];
        m.read_at(4000, &mut b).unwrap();
        assert_eq!(&b, b"abcdef");
        assert!(m.write_at(8190, b"abc").is_err());
        drop(m);
        // Reopening with the wrong length is refused rather than remapped.
        assert!(fs.map(&p, 4096, false).is_err());
        let m = fs.map(&p, 8192, false).unwrap();
        m.read_at(4000, &mut b).unwrap();
        assert_eq!(&b, b"abcdef");
    }
}
