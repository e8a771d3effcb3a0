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
//! | 8 | 4 | `len`, the body length, at most 16 MiB (16,777,216) |
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

// The files of this module, each one job:
// - mod.rs: the contract above, the `Spool` handle and its everyday methods
//   (append, ack, pending, flush, stats), `RecordId`, `SpoolStats`.
// - config.rs: `SpoolConfig`, `SyncPolicy`, `WhenFull`.
// - open.rs: `Spool::open` and its `Recovery`.
// - writer.rs: the mutable state; writing, rotating and deleting segments.
// - commit.rs: fsyncs: group commit, the interval thread, poisoning.
// - inspect.rs: `Spool::inspect`, read-only.
// - format.rs (bytes), scan.rs (resynchronising reader), recover.rs
//   (reading a directory), index.rs (where live records are), lock.rs,
//   error.rs.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::report::Report;

mod commit;
mod config;
mod error;
mod format;
mod index;
mod inspect;
mod lock;
mod open;
mod recover;
mod scan;
mod writer;

pub use config::{SpoolConfig, SyncPolicy, WhenFull};
pub use error::SpoolError;
pub use inspect::{Inspection, SegmentInfo};
pub use open::Recovery;

// The record format, reachable from outside only for tidings' own fuzz
// targets and property tests (the `fuzzing` feature, see core/Cargo.toml).
// Not an API: hidden from the docs, free to change in any release.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use format::{
    decode_record, encode_record, DecodeError, Record, FORMAT_VERSION, MAX_RECORD_BODY,
    RECORD_HEADER_LEN, RECORD_MAGIC, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use scan::{scan_records, Scan};

use commit::Commit;
use lock::DirLock;
use recover::{read_at, segment_path};
use writer::State;

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything
    // that could panic, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Spool {
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
                Ok(Ok((format::Record::Report { id: found, report }, _))) if found.0 == id => {
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn open(dir: &Path, sync: SyncPolicy) -> (Spool, Recovery) {
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
}
