//! The spool directory's exclusive lock.
//!
//! The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows,
//! via `fs4`) on `DIR/LOCK`, held for as long as the spool is open. The OS
//! releases it when the owner exits or dies, so a lock left by a crashed
//! process is simply taken over — no pid liveness check, no race with pid
//! reuse. The owner's pid is written into the file only so that a refused
//! opener can say who holds it.
//!
//! The lock belongs to an open file description, not a process: a second
//! [`Spool::open`](super::Spool::open) of the same directory in the *same*
//! process is refused too (with this process's pid).
//!
//! A child process forked while the spool is open shares the lock until it
//! execs (files are opened close-on-exec, so `std::process::Command` children
//! let go at once); a reopen racing such a fork may briefly be refused with
//! `Locked { pid: None }`.
//!
//! The file is never deleted: deleting it would let a waiting opener lock
//! the unlinked inode while a third locks a fresh file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::SpoolError;

/// Name of the lock file inside the spool directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, SpoolError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SpoolError::io("open", &path, e))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    pid: read_pid(&path),
                    dir: dir.to_path_buf(),
                })
            }
            Err(fs4::TryLockError::Error(e)) => return Err(SpoolError::io("lock", &path, e)),
        }
        // Ours now; whatever pid is written there is a previous owner's.
        let write_pid = |file: &mut File| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
        };
        write_pid(&mut file).map_err(|e| SpoolError::io("write", &path, e))?;
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Clear the pid while still holding the lock; closing the file
        // (right after) releases it.
        let _ = self.file.set_len(0);
    }
}

/// The pid written in `DIR/LOCK`, if any.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// `DIR/LOCK` for a spool directory.
pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}
