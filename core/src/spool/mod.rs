//! The durable spool: reports kept on local disk until their delivery is
//! acknowledged, and replayed after a restart.
//!
//! A [`Spool`] is a directory of append-only *segment files* holding
//! length-prefixed, CRC32-checksummed records. [`Spool::append`] writes a
//! batch of reports with one `write` and makes it durable according to the
//! [`SyncPolicy`] before returning; [`Spool::ack`] marks records done (by
//! appending an *ack record*, so a restart does not replay them); a segment
//! file is deleted once it and every older segment hold no live record.
//! [`Spool::open`] takes an exclusive lock on the directory and recovers
//! what is there: [`Spool::pending_after`] reads the live records back,
//! oldest first, a page at a time, with their original [`RecordId`]s and
//! report ids. Recovery keeps only where each live record is (a few bytes
//! per record), never the reports themselves, so reopening a full spool
//! costs little memory.
//!
//! ```
//! use tidings_core::Report;
//! use tidings_core::spool::{Spool, SpoolConfig, SyncPolicy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = SpoolConfig { sync: SyncPolicy::Always, ..SpoolConfig::new(dir.path()) };
//!
//! let (spool, recovery) = Spool::open(config.clone()).unwrap();
//! assert_eq!(recovery.pending_records, 0);
//! let a = Report::error("db_down", "primary unreachable");
//! let b = Report::error("db_down", "still unreachable");
//! let ids = spool.append(&[&a, &b]).unwrap(); // on disk (fsynced) now
//! spool.ack(&ids[..1]).unwrap();              // `a` was delivered
//! drop(spool);                                // … or the process crashes
//!
//! let (spool, recovery) = Spool::open(config).unwrap();
//! assert_eq!(recovery.pending_records, 1);
//! assert_eq!(spool.pending_after(None, 100), vec![(ids[1], b)]); // same record id, same report id
//! ```
//!
//! # What each [`SyncPolicy`] survives
//!
//! | policy | `append` returns after | survives a process crash | survives an OS crash / power loss |
//! |---|---|---|---|
//! | [`None`](SyncPolicy::None) | `write(2)`: the bytes are in the OS page cache | yes | no: what the kernel had not written back (on Linux up to ~30 s) may be lost |
//! | [`Interval(d)`](SyncPolicy::Interval) | `write(2)`; a background thread fsyncs every `d` when something was written | yes | all but the last ~`d` of appends |
//! | [`Always`](SyncPolicy::Always) | `fdatasync(2)` of the segment (and of the directory when a segment is created) | yes | yes, if the disk honours cache flushes |
//!
//! Under `Always`, concurrent appenders share fsyncs (*group commit*): one
//! thread (the leader) fsyncs everything written so far while the others
//! wait for it, so N threads appending at once cost about one fsync, not N.
//!
//! Acknowledgements are written but never fsynced on their own: an ack lost
//! to an OS crash makes a report be delivered twice after the restart
//! (deduplicated downstream by its [`ReportId`](crate::ReportId), which the
//! JetStream sink sends as `Nats-Msg-Id`), never lost.
//!
//! Note for end-to-end power-loss durability: the NATS side matters too.
//! JetStream fsyncs only every 2 minutes by default (Jepsen, NATS 2.12.1), so
//! an acknowledged publish can be lost in an OS crash of the server unless it
//! runs with `sync_interval: always`. A spool that acks a record as soon as
//! JetStream acks it inherits that window.
//!
//! # Bounds
//!
//! `max_bytes` bounds the total size of the segment files. An append that
//! would pass it is refused with [`SpoolError::Full`] ([`WhenFull::Refuse`],
//! counted in [`SpoolStats::full_refusals`]); the caller keeps the reports
//! and sends them to its next fallback (stderr). Nothing already in the
//! spool is ever dropped to make room. Ack records are exempt from the
//! bound (they are small and are what frees room). Space comes back when
//! segments are deleted, which needs the *oldest* records to be acknowledged:
//! one record that is never acknowledged keeps every later segment alive.
//!
//! A full disk is [`SpoolError::DiskFull`], distinct from the bound; a
//! failed write is cut back off the file so the segment stays clean. Both
//! are counted in [`SpoolStats`] and the first of a run of failures is
//! printed to stderr.
//!
//! # Damage
//!
//! Recovery never panics and never gives up on a directory because of its
//! contents. A record whose checksum does not match, that is cut short
//! (power loss mid-write, a truncated file) or that is garbage is skipped:
//! the reader resynchronises on the next record magic whose record is
//! intact, and the skipped region is counted ([`Recovery::corrupt_records`],
//! [`Recovery::torn_bytes`]). Every intact record is recovered. A torn tail
//! of the newest segment is truncated away on open so appends continue on a
//! clean end. Segments written by a newer format version are refused
//! ([`SpoolError::UnsupportedVersion`]) rather than treated as damage.
//!
//! # On-disk format (version 1)
//!
//! A spool directory holds `LOCK` (see [`Spool::open`]) and segment files
//! named `NNNNNNNNNNNNNNNNNNNN.seg` (the segment number, 20 decimal digits;
//! name order is age order). Other files are ignored. All integers are
//! little-endian; CRCs are CRC-32 (IEEE, as `crc32fast` computes).
//!
//! Segment header, 32 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `F7 74 64 73 70 6F 6F 6C` (`\xF7tdspool`) |
//! | 8 | 4 | format version, `1` |
//! | 12 | 8 | segment number (equals the file name) |
//! | 20 | 8 | base record id: the next record id when the segment was created; keeps ids increasing after every record was deleted |
//! | 28 | 4 | CRC-32 of bytes 0..28 |
//!
//! Then records, back to back. Record header, 16 bytes, then `len` bytes of body:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `F7 74 64 72` (`\xF7tdr`; `0xF7` never occurs in UTF-8 JSON) |
//! | 4 | 4 | CRC-32 of every byte after this field: bytes 8..16+len |
//! | 8 | 4 | `len`, the body length, at most [`MAX_RECORD_BODY`] (16 MiB) |
//! | 12 | 1 | kind: `1` report, `2` ack |
//! | 13 | 3 | reserved, zero |
//! | 16 | len | body |
//!
//! Report body: record id (u64, ≥ 1), then the report as JSON
//! ([`Report::to_json`](crate::Report::to_json); a report whose JSON exceeds
//! the limit is shortened with [`Report::encode_within`](crate::Report::encode_within),
//! keeping its id and marking it `truncated`). Ack body: one or more ranges
//! of 16 bytes, first and last record id (inclusive, `first <= last`); every
//! record in a range is done.
//!
//! Record ids increase across segments and restarts. Acks always follow
//! the records they name, and only a prefix of dead segments is ever
//! deleted, so an ack is never separated from a live record it names.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::report::{Report, Timestamp};

mod error;
mod format;
mod index;
mod lock;
mod recover;
mod scan;

pub use error::SpoolError;
pub use format::{
    decode_record, encode_record, DecodeError, Record, FORMAT_VERSION, MAX_RECORD_BODY,
    RECORD_HEADER_LEN, RECORD_MAGIC, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
pub use scan::{scan_records, Scan};

use format::SegmentHeader;
use index::{LiveIndex, Loc};
use lock::DirLock;
use recover::segment_path;

/// The position of a record in a spool: assigned by [`Spool::append`],
/// strictly increasing across segments and restarts, never 0.
///
/// ```
/// use tidings_core::spool::RecordId;
/// assert!(RecordId::new(1) < RecordId::new(2));
/// assert_eq!(RecordId::new(7).get(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RecordId(u64);

impl RecordId {
    /// The id with number `n`.
    pub const fn new(n: u64) -> Self {
        RecordId(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// When appended records are forced to stable storage (fsync). See the
/// [module docs](self#what-each-syncpolicy-survives) for what each survives.
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

/// What [`Spool::append`] does when the spool is at `max_bytes`.
///
/// There is deliberately no "drop the oldest": that would lose reports that
/// were accepted, silently from the caller's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Refuse the append with [`SpoolError::Full`] (counted); the caller
    /// still has the reports and sends them to its next fallback (stderr).
    #[default]
    Refuse,
}

/// How to open a [`Spool`].
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool directory (created if missing). One process at a time.
    pub dir: PathBuf,
    /// When appends are fsynced.
    pub sync: SyncPolicy,
    /// Upper bound on the total size of the segment files.
    pub max_bytes: u64,
    /// A new segment is started when the current one would grow past this
    /// (a single batch larger than it gets a segment of its own).
    pub segment_bytes: u64,
    /// What to do when `max_bytes` is reached.
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

    fn validate(&self) -> Result<(), SpoolError> {
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

/// What [`Spool::open`] found in the directory.
#[derive(Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Recovery {
    /// Live records found (appended, never acknowledged): what to replay
    /// first. [`Spool::pending_after`] reads them back page by page, oldest
    /// first, with their original record ids and reports.
    pub pending_records: u64,
    /// Bytes of those records on disk.
    pub pending_bytes: u64,
    /// Damaged regions skipped: torn or corrupt records, garbage, damaged
    /// segment headers (each counts one).
    pub corrupt_records: u64,
    /// Bytes in those regions (a torn tail of the newest segment included;
    /// it has been truncated away).
    pub torn_bytes: u64,
}

/// Counters of a [`Spool`]. Snapshot from [`Spool::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolStats {
    /// Records appended since open.
    pub appended: u64,
    /// Records acknowledged since open (including records taken back
    /// because their fsync failed: see [`Spool::append`]).
    pub acked: u64,
    /// Records waiting for an acknowledgement (recovered ones included).
    pub live_records: u64,
    /// Bytes of those records on disk.
    pub live_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Total bytes of the segment files.
    pub total_bytes: u64,
    /// Damaged regions skipped (at open, or records found unreadable later).
    pub corrupt_skipped: u64,
    /// Bytes in those regions.
    pub torn_bytes: u64,
    /// Appends refused by the `max_bytes` bound.
    pub full_refusals: u64,
    /// Operations that failed because the disk was full.
    pub disk_full_errors: u64,
    /// Other failed I/O operations (fsync failures included).
    pub io_errors: u64,
    /// Fsyncs of segment data done for appends and flushes.
    pub syncs: u64,
    /// The last error, as text.
    pub last_error: Option<String>,
}

/// One segment in an [`Inspection`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its number (from the name).
    pub number: u64,
    /// Its size.
    pub bytes: u64,
    /// Whether its header is intact.
    pub header_ok: bool,
    /// Report records in it (live or acknowledged).
    pub reports: u64,
    /// Ack records in it.
    pub acks: u64,
    /// Live report records in it.
    pub live: u64,
    /// Damaged regions in it.
    pub corrupt_records: u64,
    /// Bytes in those regions.
    pub torn_bytes: u64,
}

/// What [`Spool::inspect`] read from a spool directory.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// Its segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Readable report records (live or acknowledged but not yet deleted).
    pub records: u64,
    /// Live report records: what the next open would replay.
    pub live: u64,
    /// Bytes of the live records.
    pub live_bytes: u64,
    /// Total bytes of the segment files.
    pub total_bytes: u64,
    /// The oldest live report's timestamp.
    pub oldest: Option<Timestamp>,
    /// The newest live report's timestamp.
    pub newest: Option<Timestamp>,
    /// The first live record id.
    pub first_live: Option<RecordId>,
    /// The last live record id.
    pub last_live: Option<RecordId>,
    /// Damaged regions.
    pub corrupt_records: u64,
    /// Bytes in them.
    pub torn_bytes: u64,
    /// The pid written in the `LOCK` file: the process that has the spool
    /// open, or none when it was closed cleanly (a crashed owner's pid
    /// stays until the next open).
    pub lock_pid: Option<u32>,
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "spool {}", self.dir.display())?;
        writeln!(
            f,
            "  segments: {} ({} bytes)",
            self.segments.len(),
            self.total_bytes
        )?;
        writeln!(
            f,
            "  records: {} readable, {} live ({} bytes)",
            self.records, self.live, self.live_bytes
        )?;
        if let (Some(first), Some(last)) = (self.first_live, self.last_live) {
            writeln!(f, "  live ids: {first}..={last}")?;
        }
        if let (Some(oldest), Some(newest)) = (self.oldest, self.newest) {
            writeln!(f, "  live reports from {oldest} to {newest}")?;
        }
        writeln!(
            f,
            "  damaged: {} regions ({} bytes)",
            self.corrupt_records, self.torn_bytes
        )?;
        match self.lock_pid {
            Some(pid) => writeln!(f, "  lock file names process {pid}"),
            None => writeln!(f, "  lock file names no process"),
        }
    }
}

/// A durable spool. `Send + Sync`; every method takes `&self`.
///
/// Opened with [`Spool::open`], which holds the directory's lock until the
/// spool is dropped. Dropping it stops the interval-sync thread (if any)
/// and fsyncs what was written (unless the policy is [`SyncPolicy::None`]).
pub struct Spool {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

struct Inner {
    shared: Shared,
    state: Mutex<State>,
    stop: Mutex<bool>,
    stopping: Condvar,
    // Last, so it is released after the segment files are closed.
    _lock: DirLock,
}

/// What the spool's parts share besides the state: settings and the
/// group-commit bookkeeping.
struct Shared {
    dir: PathBuf,
    sync: SyncPolicy,
    max_bytes: u64,
    segment_bytes: u64,
    commit: Mutex<Commit>,
    committed: Condvar,
}

/// Group-commit bookkeeping. Lock order: `state` before `commit`.
#[derive(Default)]
struct Commit {
    /// Every write with a sequence number up to this one is fsynced.
    synced_seq: u64,
    /// A leader is fsyncing now.
    syncing: bool,
    /// Set by a failed fsync; from then on durability is refused.
    poisoned: Option<(io::ErrorKind, String)>,
    syncs: u64,
    #[cfg(test)]
    fail_next_sync: bool,
}

/// A segment file. (Whether it holds a live record is the index's to say:
/// see [`LiveIndex::first_segment`].)
#[derive(Debug)]
struct Segment {
    bytes: u64,
}

struct Active {
    number: u64,
    file: Arc<File>,
    len: u64,
    /// A failed write could not be cut back: start a new segment first.
    broken: bool,
}

struct State {
    active: Active,
    segments: BTreeMap<u64, Segment>,
    /// The live records (count and bytes included).
    live: LiveIndex,
    total_bytes: u64,
    next_id: u64,
    next_segment: u64,
    /// Sequence number of the last write (appends and acks).
    written_seq: u64,
    appended: u64,
    acked: u64,
    corrupt_skipped: u64,
    torn_bytes: u64,
    full_refusals: u64,
    disk_full_errors: u64,
    io_errors: u64,
    last_error: Option<String>,
    /// Inside a run of failures (only its first is printed).
    failing: bool,
    #[cfg(test)]
    fail_next_write: Option<io::ErrorKind>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything
    // that could panic, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

impl Spool {
    /// Opens (creating it if needed) the spool in `config.dir` and recovers
    /// what it holds.
    ///
    /// Takes an exclusive lock on `DIR/LOCK` first: if another spool — in
    /// another process or in this one — has the directory open, this fails
    /// with [`SpoolError::Locked`] naming its pid. The lock is an OS file
    /// lock, released when its owner exits or dies, so the lock file of a
    /// crashed process is taken over, whatever pid it names. (On network
    /// file systems where `flock` is not honoured, the lock is not either.)
    ///
    /// Then reads every segment, oldest first (see the [module docs](self)
    /// on damage), truncates a torn tail off the newest one, deletes
    /// segments with nothing live, and continues appending where the
    /// newest segment ends. Fails on an invalid configuration
    /// ([`SpoolError::Config`], naming the field), an I/O error on the
    /// directory, or a segment from a newer format version — never because
    /// of damaged contents.
    pub fn open(config: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        config.validate()?;
        let dir = config.dir;
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io("create", &dir, e))?;
        let dir_lock = DirLock::acquire(&dir)?;
        let scan = recover::scan_dir(&dir)?;
        let sync = config.sync;

        let mut recovery = Recovery::default();
        let mut segments = BTreeMap::new();
        for s in &scan.segments {
            recovery.corrupt_records += s.corrupt;
            recovery.torn_bytes += s.skipped_bytes;
            segments.insert(s.number, Segment { bytes: s.file_len });
        }
        recovery.pending_records = scan.live.len();
        recovery.pending_bytes = scan.live.bytes();

        // Cut a torn tail off the newest segment, and continue it if it has
        // room.
        let mut active = None;
        if let Some(last) = scan.segments.last() {
            if last.header.is_some_and(|h| h.version == FORMAT_VERSION) {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| SpoolError::io("open", &last.path, e))?;
                if last.tail() > 0 {
                    file.set_len(last.good_end)
                        .and_then(|()| match sync {
                            SyncPolicy::None => Ok(()),
                            _ => file.sync_data(),
                        })
                        .map_err(|e| SpoolError::io("truncate", &last.path, e))?;
                    if let Some(seg) = segments.get_mut(&last.number) {
                        seg.bytes = last.good_end;
                    }
                }
                if last.good_end < config.segment_bytes {
                    active = Some(Active {
                        number: last.number,
                        file: Arc::new(file),
                        len: last.good_end,
                        broken: false,
                    });
                }
            }
        }
        let next_id = (scan.max_id + 1).max(scan.max_base).max(1);
        let next_segment = scan.segments.last().map_or(1, |s| s.number + 1);
        let total_bytes = segments.values().map(|s| s.bytes).sum();
        // Segments without a single intact record name nothing: delete them
        // wherever they are (e.g. a file cut short while being created).
        let empty: Vec<u64> = scan
            .segments
            .iter()
            .filter(|s| s.reports == 0 && s.acks == 0)
            .map(|s| s.number)
            .collect();

        let mut state = State {
            active: Active {
                number: 0,
                file: Arc::new(
                    File::open(lock::lock_path(&dir))
                        .map_err(|e| SpoolError::io("open", &lock::lock_path(&dir), e))?,
                ),
                len: 0,
                broken: true,
            },
            segments,
            live: scan.live,
            total_bytes,
            next_id,
            next_segment,
            written_seq: 0,
            appended: 0,
            acked: 0,
            corrupt_skipped: recovery.corrupt_records,
            torn_bytes: recovery.torn_bytes,
            full_refusals: 0,
            disk_full_errors: 0,
            io_errors: 0,
            last_error: None,
            failing: false,
            #[cfg(test)]
            fail_next_write: None,
        };
        let shared = Shared {
            dir,
            sync,
            max_bytes: config.max_bytes,
            segment_bytes: config.segment_bytes,
            commit: Mutex::new(Commit::default()),
            committed: Condvar::new(),
        };
        match active {
            Some(active) => state.active = active,
            // No segment to continue: start one (the stand-in above is
            // `broken`, so nothing is ever written to it).
            None => state.start_segment(&shared)?,
        }
        for number in empty {
            if number != state.active.number {
                state.remove_segment(&shared, number);
            }
        }
        state.delete_dead_prefix(&shared);
        let inner = Inner {
            shared,
            state: Mutex::new(state),
            stop: Mutex::new(false),
            stopping: Condvar::new(),
            _lock: dir_lock,
        };
        let inner = Arc::new(inner);
        let flusher = match sync {
            SyncPolicy::Interval(every) => {
                let dir = inner.shared.dir.clone();
                let inner = Arc::clone(&inner);
                let handle = std::thread::Builder::new()
                    .name("tidings-spool-sync".into())
                    .spawn(move || inner.sync_every(every))
                    .map_err(|e| SpoolError::io("start sync thread for", &dir, e))?;
                Some(handle)
            }
            _ => None,
        };
        Ok((Spool { inner, flusher }, recovery))
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// The sync policy it was opened with.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.inner.shared.sync
    }

    /// Appends `reports` as one batch and returns their record ids, in
    /// order. When it returns `Ok`, every report is in the spool, as durable
    /// as the [`SyncPolicy`] promises (fsynced under `Always`).
    ///
    /// All or nothing as far as the caller can tell: on `Err` the caller
    /// should treat the reports as not spooled and send them elsewhere. (If
    /// only the fsync failed, they were written: they are acknowledged at
    /// once, so this process never hands them out again. That
    /// acknowledgement cannot be made durable either, so after a restart they
    /// may come back: a duplicate, deduplicated by report id, not a loss.)
    ///
    /// Errors: [`SpoolError::Full`] when the batch would take the spool past
    /// `max_bytes` (nothing is written); [`SpoolError::DiskFull`] or
    /// [`SpoolError::Io`] when writing fails (the partial write is cut back
    /// off the file); [`SpoolError::SyncFailed`] once an fsync has failed.
    ///
    /// An empty batch returns `Ok(vec![])` and writes nothing.
    ///
    /// ```
    /// use tidings_core::Report;
    /// use tidings_core::spool::{Spool, SpoolConfig, SpoolError, SyncPolicy};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = SpoolConfig {
    ///     max_bytes: 8192,
    ///     segment_bytes: 4096,
    ///     ..SpoolConfig::new(dir.path())
    /// };
    /// let (spool, _) = Spool::open(config).unwrap();
    /// let big = Report::error("e", "x".repeat(3000));
    /// spool.append(&[&big]).unwrap();
    /// spool.append(&[&big]).unwrap();
    /// let err = spool.append(&[&big]).unwrap_err(); // past max_bytes
    /// assert!(matches!(err, SpoolError::Full { .. }));
    /// assert_eq!(spool.stats().full_refusals, 1);
    /// assert_eq!(spool.pending_count(), 2); // nothing was dropped
    /// ```
    pub fn append(&self, reports: &[&Report]) -> Result<Vec<RecordId>, SpoolError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        if inner.shared.sync != SyncPolicy::None {
            if let Err(e) = inner.shared.check_poisoned() {
                lock(&inner.state).note_error(&e);
                return Err(e);
            }
        }
        // Encode outside the lock: it is the expensive part.
        let mut jsons = Vec::with_capacity(reports.len());
        for report in reports {
            let mut json = Vec::new();
            report
                .encode_within(format::MAX_REPORT_JSON, &mut json)
                .map_err(|e| SpoolError::TooLarge {
                    size: e.size,
                    max: e.max,
                })?;
            jsons.push(json);
        }
        let mut state = lock(&inner.state);
        let (ids, seq) = match state.append(&inner.shared, &jsons) {
            Ok(done) => done,
            Err(e) => {
                state.note_error(&e);
                return Err(e);
            }
        };
        drop(state);
        if inner.shared.sync == SyncPolicy::Always {
            if let Err(e) = inner.sync_upto(seq) {
                lock(&inner.state).note_error(&e);
                // The caller is told they were not spooled and sends them
                // elsewhere: replaying them too would deliver them twice.
                let _ = self.ack(&ids);
                return Err(e);
            }
        }
        Ok(ids)
    }

    /// Marks records done: they will not be returned by [`pending`](Self::pending)
    /// nor replayed after a restart. Unknown or already acknowledged ids are
    /// ignored, so acknowledging twice is harmless.
    ///
    /// The acknowledgement takes effect in memory at once and is written to
    /// the log as an ack record (not fsynced on its own: see the
    /// [module docs](self#what-each-syncpolicy-survives)). Segments that
    /// become dead — no live record in them or in any older segment — are
    /// deleted. On `Err` (the ack record could not be written) the records
    /// are still done in this process but may be replayed after a restart.
    pub fn ack(&self, ids: &[RecordId]) -> Result<(), SpoolError> {
        let inner = &*self.inner;
        let mut state = lock(&inner.state);
        let mut done = Vec::with_capacity(ids.len());
        for id in ids {
            if state.live.remove(id.0).is_some() {
                done.push(id.0);
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        state.acked += done.len() as u64;
        done.sort_unstable();
        let mut ranges: Vec<RangeInclusive<RecordId>> = Vec::new();
        for id in done {
            match ranges.last_mut() {
                Some(r) if r.end().0 + 1 == id => *r = *r.start()..=RecordId(id),
                _ => ranges.push(RecordId(id)..=RecordId(id)),
            }
        }
        let mut buf = Vec::new();
        format::write_acks(&mut buf, &ranges);
        let result = state.write_records(&inner.shared, &buf);
        state.delete_dead_prefix(&inner.shared);
        result.map(drop).inspect_err(|e| state.note_error(e))
    }

    /// Live records, oldest first: what a restart would replay. Read from
    /// disk; a record found unreadable now (the file was damaged or removed
    /// behind the spool's back) is skipped and counted in
    /// [`SpoolStats::corrupt_skipped`]. For a large spool, prefer paging
    /// with [`pending_after`](Self::pending_after).
    pub fn pending(&self) -> Vec<(RecordId, Report)> {
        self.pending_after(None, usize::MAX)
    }

    /// At most `limit` live records with ids greater than `after` (from the
    /// oldest when `None`), oldest first.
    ///
    /// ```
    /// use tidings_core::Report;
    /// use tidings_core::spool::{Spool, SpoolConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).unwrap();
    /// let reports: Vec<_> = (0..5).map(|i| Report::info("n", i.to_string())).collect();
    /// let ids = spool.append(&reports.iter().collect::<Vec<_>>()).unwrap();
    /// let page = spool.pending_after(Some(ids[1]), 2);
    /// assert_eq!(page.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[2..4]);
    /// ```
    pub fn pending_after(&self, after: Option<RecordId>, limit: usize) -> Vec<(RecordId, Report)> {
        let inner = &*self.inner;
        let locs = lock(&inner.state)
            .live
            .after(after.map(RecordId::get), limit);
        let mut out = Vec::with_capacity(locs.len());
        let mut damaged = Vec::new();
        let mut failed = None;
        let mut open: Option<(u64, File)> = None;
        for (id, loc) in locs {
            match read_at(&inner.shared.dir, &mut open, loc) {
                Ok(Ok((Record::Report { id: found, report }, _))) if found.0 == id => {
                    out.push((found, report))
                }
                Ok(_) => damaged.push(id),
                Err(e) if e.kind() == io::ErrorKind::NotFound => damaged.push(id),
                Err(e) => {
                    failed = Some(SpoolError::io(
                        "read",
                        &segment_path(&inner.shared.dir, loc.segment),
                        e,
                    ))
                }
            }
        }
        if !damaged.is_empty() || failed.is_some() {
            let mut state = lock(&inner.state);
            for id in damaged {
                // Gone meanwhile because it was acknowledged: fine. Still
                // live: it cannot be read, so it can never be delivered.
                if let Some(loc) = state.live.remove(id) {
                    state.corrupt_skipped += 1;
                    state.torn_bytes += loc.len;
                }
            }
            if let Some(e) = failed {
                state.note_error(&e);
            }
            state.delete_dead_prefix(&inner.shared);
        }
        out
    }

    /// The id the next appended record will get: every record with a lower
    /// id was appended before (by this process, or by an earlier one and
    /// recovered at open).
    pub(crate) fn next_record_id(&self) -> u64 {
        lock(&self.inner.state).next_id
    }

    /// Number of live records.
    pub fn pending_count(&self) -> u64 {
        lock(&self.inner.state).live.len()
    }

    /// Bytes of the live records on disk.
    pub fn pending_bytes(&self) -> u64 {
        lock(&self.inner.state).live.bytes()
    }

    /// Fsyncs everything written so far, whatever the policy.
    pub fn flush(&self) -> Result<(), SpoolError> {
        let inner = &*self.inner;
        let result = match inner.shared.sync {
            // Nothing was fsynced at segment changes: sync every file.
            SyncPolicy::None => inner.sync_all_files(),
            _ => {
                let seq = lock(&inner.state).written_seq;
                inner.sync_upto(seq)
            }
        };
        result.inspect_err(|e| lock(&inner.state).note_error(e))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SpoolStats {
        let syncs = lock(&self.inner.shared.commit).syncs;
        let state = lock(&self.inner.state);
        SpoolStats {
            appended: state.appended,
            acked: state.acked,
            live_records: state.live.len(),
            live_bytes: state.live.bytes(),
            segments: state.segments.len() as u64,
            total_bytes: state.total_bytes,
            corrupt_skipped: state.corrupt_skipped,
            torn_bytes: state.torn_bytes,
            full_refusals: state.full_refusals,
            disk_full_errors: state.disk_full_errors,
            io_errors: state.io_errors,
            syncs,
            last_error: state.last_error.clone(),
        }
    }

    /// Reads a spool directory without opening it: no lock is taken and
    /// nothing is written (a torn tail is reported, not truncated), so it
    /// is safe on a spool another process has open (whose newest record may
    /// then show up as torn). For `tidings spool inspect DIR`.
    ///
    /// ```
    /// use tidings_core::Report;
    /// use tidings_core::spool::{Spool, SpoolConfig};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).unwrap();
    /// let ids = spool.append(&[&Report::error("a", "1"), &Report::error("b", "2")]).unwrap();
    /// spool.ack(&ids[..1]).unwrap();
    ///
    /// let seen = Spool::inspect(dir.path()).unwrap();
    /// assert_eq!((seen.records, seen.live), (2, 1));
    /// assert_eq!(seen.first_live, Some(ids[1]));
    /// assert_eq!(seen.lock_pid, Some(std::process::id()));
    /// ```
    pub fn inspect(dir: &Path) -> Result<Inspection, SpoolError> {
        fs::metadata(dir).map_err(|e| SpoolError::io("read", dir, e))?;
        let scan = recover::scan_dir(dir)?;
        let mut segments: Vec<SegmentInfo> = scan
            .segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                number: s.number,
                bytes: s.file_len,
                header_ok: s.header.is_some(),
                reports: s.reports,
                acks: s.acks,
                live: 0,
                corrupt_records: s.corrupt,
                torn_bytes: s.skipped_bytes,
            })
            .collect();
        for (segment, live) in scan.live.live_per_segment() {
            if let Some(seg) = segments.iter_mut().find(|s| s.number == segment) {
                seg.live += live;
            }
        }
        // The live reports' time span: read them back a page at a time
        // (the scan kept where they are, not what they say). One that
        // cannot be read now (a live spool rotated it away) is left out.
        let mut oldest: Option<Timestamp> = None;
        let mut newest: Option<Timestamp> = None;
        let mut open = None;
        let mut after = None;
        loop {
            let page = scan.live.after(after, 1024);
            let Some(&(last, _)) = page.last() else {
                break;
            };
            for (_, loc) in page {
                if let Ok(Ok((Record::Report { report, .. }, _))) = read_at(dir, &mut open, loc) {
                    let t = report.timestamp;
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
            }
            after = Some(last);
        }
        Ok(Inspection {
            dir: dir.to_path_buf(),
            records: segments.iter().map(|s| s.reports).sum(),
            live: scan.live.len(),
            live_bytes: scan.live.bytes(),
            total_bytes: segments.iter().map(|s| s.bytes).sum(),
            oldest,
            newest,
            first_live: scan.live.first_id().map(RecordId),
            last_live: scan.live.last_id().map(RecordId),
            corrupt_records: segments.iter().map(|s| s.corrupt_records).sum(),
            torn_bytes: segments.iter().map(|s| s.torn_bytes).sum(),
            lock_pid: lock::read_pid(&lock::lock_path(dir)),
            segments,
        })
    }
}

/// Reads and decodes the record at `loc`, reusing `open` when it is the
/// same segment.
fn read_at(
    dir: &Path,
    open: &mut Option<(u64, File)>,
    loc: Loc,
) -> io::Result<Result<(Record, usize), DecodeError>> {
    if open.as_ref().is_none_or(|(n, _)| *n != loc.segment) {
        *open = Some((loc.segment, File::open(segment_path(dir, loc.segment))?));
    }
    let Some((_, file)) = open.as_mut() else {
        unreachable!("opened just above")
    };
    file.seek(SeekFrom::Start(loc.offset))?;
    let mut bytes = Vec::new();
    // `len` came from a record that decoded, so it is bounded.
    file.take(loc.len).read_to_end(&mut bytes)?;
    Ok(decode_record(&bytes))
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(handle) = self.flusher.take() {
            *lock(&self.inner.stop) = true;
            self.inner.stopping.notify_all();
            // The thread only waits on the condvar or runs one fsync.
            let _ = handle.join();
        }
        if self.inner.shared.sync != SyncPolicy::None {
            let _ = self.flush();
        }
    }
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.shared.dir)
            .field("sync", &self.inner.shared.sync)
            .field("max_bytes", &self.inner.shared.max_bytes)
            .field("segment_bytes", &self.inner.shared.segment_bytes)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn check_poisoned(&self) -> Result<(), SpoolError> {
        match &lock(&self.commit).poisoned {
            Some((kind, message)) => Err(self.sync_failed(*kind, message)),
            None => Ok(()),
        }
    }

    fn sync_failed(&self, kind: io::ErrorKind, message: &str) -> SpoolError {
        SpoolError::SyncFailed {
            dir: self.dir.clone(),
            kind,
            message: message.to_owned(),
        }
    }

    fn poison(&self, path: &Path, e: &io::Error) -> SpoolError {
        let message = format!("fsync {}: {e}", path.display());
        let err = self.sync_failed(e.kind(), &message);
        lock(&self.commit)
            .poisoned
            .get_or_insert((e.kind(), message));
        self.committed.notify_all();
        err
    }
}

impl Inner {
    /// Returns once every write up to `seq` is fsynced (group commit: one
    /// caller at a time fsyncs everything written so far; the others wait
    /// for it and usually find their write covered).
    fn sync_upto(&self, seq: u64) -> Result<(), SpoolError> {
        let mut commit = lock(&self.shared.commit);
        loop {
            if commit.synced_seq >= seq {
                return Ok(());
            }
            if let Some((kind, message)) = &commit.poisoned {
                return Err(self.shared.sync_failed(*kind, message));
            }
            if commit.syncing {
                commit = self
                    .shared
                    .committed
                    .wait(commit)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            commit.syncing = true;
            drop(commit);
            // Writes up to `target` are in the active file or in older
            // segments, which were fsynced when they were retired.
            let (file, target, number) = {
                let state = lock(&self.state);
                (
                    Arc::clone(&state.active.file),
                    state.written_seq,
                    state.active.number,
                )
            };
            #[cfg(test)]
            let result = if std::mem::take(&mut lock(&self.shared.commit).fail_next_sync) {
                Err(io::Error::other("injected fsync failure"))
            } else {
                file.sync_data()
            };
            #[cfg(not(test))]
            let result = file.sync_data();
            commit = lock(&self.shared.commit);
            commit.syncing = false;
            commit.syncs += 1;
            match result {
                Ok(()) => commit.synced_seq = commit.synced_seq.max(target),
                Err(e) => {
                    let path = segment_path(&self.shared.dir, number);
                    commit
                        .poisoned
                        .get_or_insert((e.kind(), format!("fsync {}: {e}", path.display())));
                }
            }
            self.shared.committed.notify_all();
        }
    }

    /// Under [`SyncPolicy::None`] nothing tracks what is unsynced: fsync
    /// every segment file and the directory.
    fn sync_all_files(&self) -> Result<(), SpoolError> {
        let (numbers, active) = {
            let state = lock(&self.state);
            let numbers: Vec<u64> = state.segments.keys().copied().collect();
            (numbers, Arc::clone(&state.active.file))
        };
        for number in numbers {
            let path = segment_path(&self.shared.dir, number);
            match File::open(&path).and_then(|f| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted meanwhile
                Err(e) => return Err(SpoolError::io("fsync", &path, e)),
            }
        }
        active
            .sync_data()
            .map_err(|e| SpoolError::io("fsync", &self.shared.dir, e))?;
        lock(&self.shared.commit).syncs += 1;
        sync_dir(&self.shared.dir).map_err(|e| SpoolError::io("fsync", &self.shared.dir, e))
    }

    /// The interval-sync thread's body.
    fn sync_every(&self, every: Duration) {
        let mut stop = lock(&self.stop);
        loop {
            stop = self
                .stopping
                .wait_timeout(stop, every)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if *stop {
                return;
            }
            drop(stop);
            let seq = lock(&self.state).written_seq;
            if lock(&self.shared.commit).synced_seq < seq {
                if let Err(e) = self.sync_upto(seq) {
                    lock(&self.state).note_error(&e);
                }
            }
            stop = lock(&self.stop);
        }
    }
}

impl State {
    /// Writes one batch of report records; returns their ids and the
    /// write's sequence number.
    fn append(
        &mut self,
        shared: &Shared,
        jsons: &[Vec<u8>],
    ) -> Result<(Vec<RecordId>, u64), SpoolError> {
        let frames: u64 = jsons
            .iter()
            .map(|j| format::report_frame_len(j.len()) as u64)
            .sum();
        let mut rotate = self.needs_new_segment(shared, frames);
        let mut needed = frames + if rotate { HEADER_LEN } else { 0 };
        if self.total_bytes + needed > shared.max_bytes
            && self.live.is_empty()
            && self.active.len > HEADER_LEN
        {
            // Everything is acknowledged: the old segments are garbage.
            // A fresh segment lets the prefix rule delete them all.
            self.start_segment(shared)?;
            rotate = self.needs_new_segment(shared, frames);
            needed = frames + if rotate { HEADER_LEN } else { 0 };
        }
        if self.total_bytes + needed > shared.max_bytes {
            return Err(SpoolError::Full {
                dir: shared.dir.clone(),
                max_bytes: shared.max_bytes,
                used: self.total_bytes,
                needed,
            });
        }
        if rotate {
            self.start_segment(shared)?;
        }
        let mut buf = Vec::with_capacity(frames as usize);
        let mut placed = Vec::with_capacity(jsons.len());
        for json in jsons {
            let id = RecordId(self.next_id + placed.len() as u64);
            let offset = self.active.len + buf.len() as u64;
            format::write_report(&mut buf, id, json);
            placed.push((id, offset, self.active.len + buf.len() as u64 - offset));
        }
        let seq = self.write_records(shared, &buf)?;
        let segment = self.active.number;
        for &(id, offset, len) in &placed {
            self.live.push(
                id.0,
                Loc {
                    segment,
                    offset,
                    len,
                },
            );
        }
        self.next_id += placed.len() as u64;
        self.appended += placed.len() as u64;
        self.failing = false;
        Ok((placed.into_iter().map(|(id, _, _)| id).collect(), seq))
    }

    fn needs_new_segment(&self, shared: &Shared, bytes: u64) -> bool {
        self.active.broken
            || (self.active.len > HEADER_LEN && self.active.len + bytes > shared.segment_bytes)
    }

    /// Writes `buf` (whole records) at the end of the active segment,
    /// starting a new segment first if needed; returns the write's sequence
    /// number. A failed write is cut back off the file.
    fn write_records(&mut self, shared: &Shared, buf: &[u8]) -> Result<u64, SpoolError> {
        if self.needs_new_segment(shared, buf.len() as u64) {
            self.start_segment(shared)?;
        }
        let start = self.active.len;
        let path = segment_path(&shared.dir, self.active.number);
        if let Err(e) = self.write_all(buf) {
            if self.active.file.set_len(start).is_err() {
                self.active.broken = true;
            }
            return Err(SpoolError::io("write", &path, e));
        }
        let len = buf.len() as u64;
        self.active.len += len;
        self.total_bytes += len;
        if let Some(seg) = self.segments.get_mut(&self.active.number) {
            seg.bytes += len;
        }
        self.written_seq += 1;
        Ok(self.written_seq)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(kind) = self.fail_next_write.take() {
            // A partial write, then the failure.
            (&*self.active.file).write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::from(kind));
        }
        (&*self.active.file).write_all(buf)
    }

    /// Retires the active segment (fsyncing it unless the policy is
    /// `None`) and starts a new one, then deletes dead segments.
    fn start_segment(&mut self, shared: &Shared) -> Result<(), SpoolError> {
        if shared.sync != SyncPolicy::None && self.active.number != 0 {
            if let Err(e) = self.active.file.sync_data() {
                let path = segment_path(&shared.dir, self.active.number);
                return Err(shared.poison(&path, &e));
            }
        }
        // Numbers are never reused, even if creating this one fails.
        let number = self.next_segment;
        self.next_segment += 1;
        let path = segment_path(&shared.dir, number);
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            number,
            base_id: self.next_id,
        };
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpoolError::io("create", &path, e))?;
        let written = (&file).write_all(&header.encode()).and_then(|()| {
            if shared.sync == SyncPolicy::None {
                Ok(())
            } else {
                file.sync_data().and_then(|()| sync_dir(&shared.dir))
            }
        });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(SpoolError::io("write", &path, e));
        }
        self.segments.insert(number, Segment { bytes: HEADER_LEN });
        self.total_bytes += HEADER_LEN;
        self.active = Active {
            number,
            file: Arc::new(file),
            len: HEADER_LEN,
            broken: false,
        };
        self.delete_dead_prefix(shared);
        Ok(())
    }

    /// Deletes the oldest segments while they hold no live record (never
    /// the active one).
    fn delete_dead_prefix(&mut self, shared: &Shared) {
        while let Some(&number) = self.segments.keys().next() {
            // Record ids grow with segment numbers, so no segment older
            // than the oldest live record's holds a live record.
            let holds_live = self.live.first_segment().is_some_and(|s| s <= number);
            if number == self.active.number || holds_live {
                break;
            }
            if !self.remove_segment(shared, number) {
                break;
            }
        }
    }

    /// Deletes a segment file; false (and the error noted) if that fails.
    fn remove_segment(&mut self, shared: &Shared, number: u64) -> bool {
        let path = segment_path(&shared.dir, number);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.note_error(&SpoolError::io("delete", &path, e));
                return false;
            }
        }
        if let Some(seg) = self.segments.remove(&number) {
            self.total_bytes -= seg.bytes;
        }
        true
    }

    /// Counts an error, keeps its text for the stats, and prints the first
    /// of a run of failures to stderr (a full disk must not go unnoticed).
    fn note_error(&mut self, e: &SpoolError) {
        match e {
            SpoolError::Full { .. } => self.full_refusals += 1,
            SpoolError::DiskFull { .. } => self.disk_full_errors += 1,
            _ => self.io_errors += 1,
        }
        self.last_error = Some(e.to_string());
        if !self.failing {
            self.failing = true;
            eprintln!("tidings: {e}");
        }
    }
}

/// Fsyncs a directory, so that file creations in it are durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, sync: SyncPolicy) -> (Spool, Recovery) {
        Spool::open(SpoolConfig {
            sync,
            ..SpoolConfig::new(dir)
        })
        .unwrap()
    }

    #[test]
    fn the_spool_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Spool>();
        send_sync::<SpoolError>();
    }

    #[test]
    fn a_full_disk_reaches_the_stats_and_the_partial_write_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let kept = Report::error("a", "kept");
        let ids = spool.append(&[&kept]).unwrap();
        let len_before = lock(&spool.inner.state).active.len;

        lock(&spool.inner.state).fail_next_write = Some(io::ErrorKind::StorageFull);
        let lost = Report::error("b", "refused");
        let err = spool.append(&[&lost]).unwrap_err();
        assert!(
            matches!(err, SpoolError::DiskFull { op: "write", .. }),
            "{err}"
        );
        let stats = spool.stats();
        assert_eq!(stats.disk_full_errors, 1);
        assert!(stats.last_error.unwrap().contains("disk full"));
        assert_eq!(stats.appended, 1);
        assert_eq!(stats.live_records, 1);
        // The half-written record is gone from the file, so appends go on
        // from a clean end and a restart finds no damage.
        let (number, len) = {
            let state = lock(&spool.inner.state);
            (state.active.number, state.active.len)
        };
        assert_eq!(len, len_before);
        let path = segment_path(spool.dir(), number);
        assert_eq!(fs::metadata(&path).unwrap().len(), len_before);

        let after = Report::error("c", "after");
        let more = spool.append(&[&after]).unwrap();
        drop(spool);
        let (spool, recovery) = open(dir.path(), SyncPolicy::None);
        assert_eq!(recovery.corrupt_records, 0);
        assert_eq!(recovery.pending_records, 2);
        assert_eq!(spool.pending(), vec![(ids[0], kept), (more[0], after)]);
    }

    #[test]
    fn a_failed_fsync_refuses_durability_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::Always);
        let first = Report::error("a", "1");
        spool.append(&[&first]).unwrap();
        lock(&spool.inner.shared.commit).fail_next_sync = true;
        let second = Report::error("b", "2");
        let err = spool.append(&[&second]).unwrap_err();
        assert!(matches!(err, SpoolError::SyncFailed { .. }), "{err}");
        // Every later append is refused too, before writing anything.
        let err = spool.append(&[&Report::error("c", "3")]).unwrap_err();
        assert!(matches!(err, SpoolError::SyncFailed { .. }), "{err}");
        assert_eq!(spool.stats().io_errors, 2);
        assert_eq!(spool.stats().appended, 2);
        // The record whose fsync failed was written, but its caller was told
        // it was not (and sends it elsewhere): taken back at once.
        assert_eq!(spool.pending_count(), 1);
        assert_eq!(spool.stats().acked, 1);
        drop(spool);
        // Only the durable record comes back (here the take-back was written
        // too; had it not been, `second` would come back: a duplicate at
        // worst).
        let (spool, recovery) = open(dir.path(), SyncPolicy::Always);
        assert_eq!(recovery.pending_records, spool.pending_count());
        let replayed: Vec<_> = spool.pending().into_iter().map(|(_, r)| r).collect();
        assert_eq!(replayed, vec![first]);
        spool.append(&[&Report::error("d", "4")]).unwrap();
    }

    /// Heap bytes of the live-record index per live record.
    fn index_bytes_per_record(spool: &Spool) -> f64 {
        let state = lock(&spool.inner.state);
        state.live.heap_bytes() as f64 / state.live.len() as f64
    }

    #[test]
    fn the_index_costs_about_four_bytes_per_live_record() {
        // (`index::tests` has 1M records in the same layout, without the
        // I/O.)
        const N: usize = 200_000;
        const RESTART: usize = 60_000;
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let report = Report::error("k", "m");
        let batch = vec![&report; 1000];
        for _ in 0..N / batch.len() {
            spool.append(&batch).unwrap();
        }
        assert_eq!(spool.pending_count(), N as u64);
        let appended = index_bytes_per_record(&spool);
        assert!(appended <= 5.0, "{appended:.2} bytes per record");
        eprintln!("appended: {appended:.2} bytes per record");
        drop(spool);

        // Rebuilt from the files after a restart, with acknowledged records
        // between the live ones: still small.
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let mut ids = Vec::new();
        for _ in 0..RESTART / batch.len() {
            ids.extend(spool.append(&batch).unwrap());
        }
        let acked: Vec<RecordId> = ids.iter().copied().step_by(3).collect();
        spool.ack(&acked).unwrap();
        drop(spool);
        let (spool, recovery) = open(dir.path(), SyncPolicy::None);
        assert_eq!(recovery.pending_records, (RESTART - acked.len()) as u64);
        let recovered = index_bytes_per_record(&spool);
        // 1.5 entries of 4 bytes per live record (the acknowledged ones
        // are dead entries).
        assert!(recovered <= 7.0, "{recovered:.2} bytes per record");
        eprintln!("recovered: {recovered:.2} bytes per record");
    }

    #[test]
    fn a_write_that_cannot_be_cut_back_moves_appends_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        spool.append(&[&Report::error("a", "1")]).unwrap();
        let first_segment = lock(&spool.inner.state).active.number;
        lock(&spool.inner.state).active.broken = true;
        spool.append(&[&Report::error("b", "2")]).unwrap();
        assert_ne!(lock(&spool.inner.state).active.number, first_segment);
        assert_eq!(spool.stats().segments, 2);
    }
}
