//! What can go wrong with a spool, as a type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A spool operation failed. Every message says what failed and where.
///
/// A full disk is its own variant ([`SpoolError::DiskFull`]), distinct from
/// the spool's own size bound ([`SpoolError::Full`]) and from other I/O
/// errors, so a caller (and the stats) can tell them apart.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpoolError {
    /// An I/O operation on a spool file failed.
    Io {
        /// What was being done (`"write"`, `"fsync"`, `"create"`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The disk (or the user's quota) is full: ENOSPC / EDQUOT.
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Appending would take the spool past its configured `max_bytes`
    /// ([`WhenFull::Refuse`](super::WhenFull::Refuse)). Nothing was written.
    Full {
        /// The spool directory.
        dir: PathBuf,
        /// The configured bound.
        max_bytes: u64,
        /// Bytes the spool's segment files use now.
        used: u64,
        /// Bytes the refused batch needed.
        needed: u64,
    },
    /// Another spool (in this or another process) holds the directory.
    Locked {
        /// The owner's process id as written in the lock file, if readable.
        pid: Option<u32>,
        /// The spool directory.
        dir: PathBuf,
    },
    /// An earlier fsync failed. After a failed fsync the OS may have dropped
    /// written data, so the spool no longer promises durability and refuses
    /// appends that need it; reopen the spool to start afresh (what reached
    /// the disk is recovered).
    SyncFailed {
        /// The spool directory.
        dir: PathBuf,
        /// The original error's kind.
        kind: io::ErrorKind,
        /// The original error's message.
        message: String,
    },
    /// A segment was written by a newer format version; it is left alone.
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// The configuration is invalid.
    Config {
        /// The offending field of [`SpoolConfig`](super::SpoolConfig).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A report cannot be encoded within the record size limit.
    TooLarge {
        /// Bytes of its smallest encoding.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl SpoolError {
    /// Classifies an I/O error: a full disk or quota becomes
    /// [`SpoolError::DiskFull`], anything else [`SpoolError::Io`].
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        if is_disk_full(&source) {
            SpoolError::DiskFull { op, path, source }
        } else {
            SpoolError::Io { op, path, source }
        }
    }

    /// True for [`SpoolError::DiskFull`] and [`SpoolError::Full`]: the
    /// report was refused for lack of room, not because something broke.
    pub fn is_full(&self) -> bool {
        matches!(self, SpoolError::DiskFull { .. } | SpoolError::Full { .. })
    }

    /// The closest [`io::ErrorKind`], for callers that speak `io::Error`:
    /// `StorageFull` for a full disk, `QuotaExceeded` for the spool's own
    /// bound, `WouldBlock` for a locked directory.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            SpoolError::Io { source, .. } => source.kind(),
            SpoolError::DiskFull { .. } => io::ErrorKind::StorageFull,
            SpoolError::Full { .. } => io::ErrorKind::QuotaExceeded,
            SpoolError::Locked { .. } => io::ErrorKind::WouldBlock,
            SpoolError::SyncFailed { kind, .. } => *kind,
            SpoolError::UnsupportedVersion { .. } => io::ErrorKind::InvalidData,
            SpoolError::Config { .. } => io::ErrorKind::InvalidInput,
            SpoolError::TooLarge { .. } => io::ErrorKind::InvalidInput,
        }
    }
}

pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Io { op, path, source } => {
                write!(f, "spool: could not {op} {}: {source}", path.display())
            }
            SpoolError::DiskFull { op, path, source } => write!(
                f,
                "spool: disk full: could not {op} {}: {source}",
                path.display()
            ),
            SpoolError::Full {
                dir,
                max_bytes,
                used,
                needed,
            } => write!(
                f,
                "spool {} is full: {used} of max_bytes {max_bytes} used, {needed} more needed",
                dir.display()
            ),
            SpoolError::Locked { pid, dir } => {
                write!(f, "spool {} is in use by ", dir.display())?;
                match pid {
                    Some(pid) => write!(f, "process {pid}")?,
                    None => f.write_str("another process")?,
                }
                f.write_str(" (only one process may open a spool directory)")
            }
            SpoolError::SyncFailed { dir, message, .. } => write!(
                f,
                "spool {}: an earlier fsync failed ({message}); durability can no longer be \
                 promised until the spool is reopened",
                dir.display()
            ),
            SpoolError::UnsupportedVersion { path, version } => write!(
                f,
                "spool segment {} has format version {version}, newer than the supported {}",
                path.display(),
                super::format::FORMAT_VERSION
            ),
            SpoolError::Config { field, reason } => {
                write!(f, "invalid spool configuration: {field}: {reason}")
            }
            SpoolError::TooLarge { size, max } => write!(
                f,
                "report of {size} bytes cannot be spooled (record limit {max} bytes)"
            ),
        }
    }
}

impl std::error::Error for SpoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } | SpoolError::DiskFull { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_its_own_variant() {
        let p = Path::new("/spool/00000000000000000001.seg");
        let e = SpoolError::io("write", p, io::Error::from(io::ErrorKind::StorageFull));
        assert!(matches!(e, SpoolError::DiskFull { .. }));
        assert!(e.is_full());
        assert_eq!(e.io_kind(), io::ErrorKind::StorageFull);
        assert!(e.to_string().contains("disk full"), "{e}");
        assert!(e.to_string().contains("00000000000000000001.seg"), "{e}");
        let e = SpoolError::io("write", p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, SpoolError::Io { .. }));
        assert!(!e.is_full());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn enospc_and_edquot_are_disk_full() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(122)));
    }
}
