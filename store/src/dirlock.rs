//! The `lock` and `abort` files of a store directory.
//!
//! `lock` is held with an exclusive `flock` for the life of `StoreDir`, so a second process
//! (or a second open in the same process) gets `StoreError::Locked`. `abort` exists while the
//! store runs and is removed by `mark_clean` at a clean shutdown; finding it at start means the
//! last stop was unclean and recovery must scan (RocketMQ's abort file).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::io::{FileSystem, StdFileSystem};

/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";
/// Name of the unclean-stop marker.
pub const ABORT_FILE: &str = "abort";

/// An exclusively held store directory.
#[derive(Debug)]
pub struct StoreDir {
    root: PathBuf,
    fs: Arc<dyn FileSystem>,
    // Held for its flock; closing the file releases the lock.
    _lock: File,
    clean_marked: bool,
}

impl StoreDir {
    /// Locks `root` (created if missing) with the real file system. Returns whether the last
    /// stop was clean.
    pub fn open(root: &Path) -> Result<(StoreDir, bool)> {
        StoreDir::open_with(root, Arc::new(StdFileSystem))
    }

    /// Like `open`, with the `abort` marker written through `fs` (so fault injection covers it).
    /// The lock itself always uses the operating system: it must exclude real processes.
    pub fn open_with(root: &Path, fs: Arc<dyn FileSystem>) -> Result<(StoreDir, bool)> {
        fs.create_dir_all(root)?;
        let lock_path = root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, e))?;
        try_lock(&lock, &lock_path)?;
        let abort = root.join(ABORT_FILE);
        let was_clean = !fs.exists(&abort);
        if was_clean {
            fs.write_file_synced(&abort, &[])?;
            fs.sync_dir(root)?;
        }
        Ok((
            StoreDir {
                root: root.to_path_buf(),
                fs,
                _lock: lock,
                clean_marked: false,
            },
            was_clean,
        ))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the `abort` marker durably: call only after everything is flushed.
    pub fn mark_clean(&mut self) -> Result<()> {
        let abort = self.root.join(ABORT_FILE);
        if self.fs.exists(&abort) {
            self.fs.remove_file(&abort)?;
        }
        self.fs.sync_dir(&self.root)?;
        self.clean_marked = true;
        Ok(())
    }

    /// True once `mark_clean` succeeded.
    pub fn is_marked_clean(&self) -> bool {
        self.clean_marked
    }
}

#[cfg(unix)]
fn try_lock(file: &File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an fd we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(StoreError::Locked {
            path: path.to_path_buf(),
        })
    } else {
        Err(StoreError::io("flock", path, err))
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File, _path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_locked_and_abort_tracks_clean_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (mut d, clean) = StoreDir::open(dir.path()).unwrap();
        assert!(clean);
        assert!(matches!(
            StoreDir::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(d);
        let (d2, clean) = StoreDir::open(dir.path()).unwrap();
        assert!(!clean, "dropped without mark_clean means unclean");
        d = d2;
        d.mark_clean().unwrap();
        drop(d);
        assert!(StoreDir::open(dir.path()).unwrap().1);
    }
}
