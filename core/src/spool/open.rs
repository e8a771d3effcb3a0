//! Opening a spool: [`Spool::open`] validates the configuration, takes the
//! directory's lock, recovers what the segment files hold (reporting it as
//! a [`Recovery`]), cuts a torn tail off the newest segment, and sets up
//! the writer's state and, under [`SyncPolicy::Interval`], the sync thread.
//!
//! Separate from the handle's other methods because it is the one place
//! where recovery's findings become a running spool: everything after it
//! only appends, acknowledges and reads.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::sync::{Arc, Condvar, Mutex};

use super::commit::Commit;
use super::format::FORMAT_VERSION;
use super::lock::{self, DirLock};
use super::recover;
use super::writer::{Active, Segment, State};
use super::{Inner, Shared, Spool, SpoolConfig, SpoolError, SyncPolicy};

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
    /// Then reads every segment, oldest first (see the [module docs](super)
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
}
