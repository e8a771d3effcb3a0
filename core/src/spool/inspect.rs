//! Reading a spool directory without opening it: [`Spool::inspect`] and
//! what it returns ([`Inspection`], one [`SegmentInfo`] per segment), for
//! `tidings spool inspect DIR`.
//!
//! Read-only by design: no lock is taken and nothing is written, so it can
//! look at a spool another process has open. It shares the directory scan
//! with recovery (`recover.rs`) but none of the writer's state.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::report::Timestamp;

use super::format::Record;
use super::lock;
use super::recover::{self, read_at};
use super::{RecordId, Spool, SpoolError};

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

impl Spool {
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
