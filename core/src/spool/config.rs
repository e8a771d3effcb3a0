//! How a spool is configured: [`SpoolConfig`] and the policies it names,
//! [`SyncPolicy`] (when appends are fsynced) and [`WhenFull`] (what an
//! append does at the size bound), with the checks
//! [`Spool::open`](super::Spool::open) runs on them.
//!
//! Plain values only: nothing here touches the disk, so the settings can be
//! read without the machinery that obeys them.

use std::path::PathBuf;
use std::time::Duration;

use super::SpoolError;

/// When appended records are forced to stable storage (fsync). See the
/// [module docs](super#what-each-syncpolicy-survives) for what each survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never fsync on append: survives a crash of the process, not of the OS.
    None,
    /// A background thread fsyncs every given interval when something was
    /// written: an OS crash loses at most about that much. Must be non-zero.
    Interval(Duration),
    /// Fsync before `append` returns (shared between concurrent appenders):
    /// survives an OS crash or power loss.
    Always,
}

impl Default for SyncPolicy {
    /// `Interval(1 s)`.
    fn default() -> Self {
        SyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// What [`Spool::append`](super::Spool::append) does when the spool is at `max_bytes`.
///
/// There is deliberately no "drop the oldest": that would lose reports that
/// were accepted, silently from the caller's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WhenFull {
    /// Refuse the append with [`SpoolError::Full`] (counted); the caller
    /// still has the reports and sends them to its next fallback (stderr).
    #[default]
    Refuse,
}

/// How to open a [`Spool`](super::Spool).
///
/// ```
/// use std::time::Duration;
/// use tidings_core::spool::{SpoolConfig, SyncPolicy};
///
/// let config = SpoolConfig {
///     sync: SyncPolicy::Interval(Duration::from_millis(200)),
///     max_bytes: 64 << 20,
///     ..SpoolConfig::new("/var/spool/myapp")
/// };
/// assert_eq!(config.segment_bytes, SpoolConfig::DEFAULT_SEGMENT_BYTES);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// The spool directory (created if missing). One process at a time.
    pub dir: PathBuf,
    /// When appends are fsynced.
    #[serde(default)]
    pub sync: SyncPolicy,
    /// Upper bound on the total size of the segment files.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// A new segment is started when the current one would grow past this
    /// (a single batch larger than it gets a segment of its own).
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// What to do when `max_bytes` is reached.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl SpoolConfig {
    /// Default `max_bytes`: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    /// Default `segment_bytes`: 16 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 16 << 20;
    /// Smallest `segment_bytes` accepted: 4 KiB.
    pub const MIN_SEGMENT_BYTES: u64 = 4096;

    /// Defaults for a spool in `dir`: `sync` [`SyncPolicy::default`],
    /// 1 GiB `max_bytes`, 16 MiB segments, [`WhenFull::Refuse`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            sync: SyncPolicy::default(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            when_full: WhenFull::Refuse,
        }
    }

    pub(super) fn validate(&self) -> Result<(), SpoolError> {
        let bad = |field, reason: String| Err(SpoolError::Config { field, reason });
        if self.dir.as_os_str().is_empty() {
            return bad("dir", "must not be empty".into());
        }
        if let SyncPolicy::Interval(d) = self.sync {
            if d.is_zero() {
                return bad(
                    "sync",
                    "Interval must be non-zero (use Always to fsync every append)".into(),
                );
            }
        }
        if self.segment_bytes < Self::MIN_SEGMENT_BYTES {
            return bad(
                "segment_bytes",
                format!(
                    "{} is below the minimum of {}",
                    self.segment_bytes,
                    Self::MIN_SEGMENT_BYTES
                ),
            );
        }
        if self.max_bytes < self.segment_bytes {
            return bad(
                "max_bytes",
                format!(
                    "{} is below segment_bytes ({})",
                    self.max_bytes, self.segment_bytes
                ),
            );
        }
        Ok(())
    }
}

/// `SpoolConfig`'s defaults for the fields a file may leave out.
fn default_max_bytes() -> u64 {
    SpoolConfig::DEFAULT_MAX_BYTES
}

fn default_segment_bytes() -> u64 {
    SpoolConfig::DEFAULT_SEGMENT_BYTES
}
