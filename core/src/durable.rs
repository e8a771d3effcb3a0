//! The spool wired into the reporter: write-ahead, spill, acknowledge,
//! replay.
//!
//! * [`SpoolMode::OnSpill`] — the spool is the first fallback: what the
//!   sinks could not take is appended to it (instead of a JSON-lines file),
//!   and replayed to the sinks when they work again — while running, and on
//!   the next start.
//! * [`SpoolMode::WriteAhead`] — every report is in the spool before
//!   `report()` returns; its record is acknowledged (and eventually deleted)
//!   only when every sink took the report. A report that is spilled simply
//!   stays in the spool. After a crash (even SIGKILL), the next start replays
//!   every record that was not acknowledged, with its original id, so
//!   JetStream's `Nats-Msg-Id` deduplication makes the replay
//!   effectively-once.
//!
//! Which records a replay may send: in `OnSpill` mode every live record (it
//! got there by being spilled); in `WriteAhead` mode records from earlier
//! runs, and records of this run whose report was spilled — never a record
//! whose report is still on its way through the queue, which would only be
//! sent twice.
//!
//! A replayed record that no sink will ever take (each sink took it or
//! refused it with a non-retryable error, at least one refused) is moved to
//! the next fallback and acknowledged, and counted in
//! [`SpoolSummary::moved_to_fallback`]: one poison report must not hold up
//! the records behind it, nor keep its segment (and every later one) on
//! disk. If the fallback chain fails too, it stays in the spool.
//!
//! A full spool (`max_bytes`) refuses appends. In `WriteAhead` mode a
//! report that finds it full goes on without a record (logged); spilled
//! later, it goes to the next fallback, while the reports of the same batch
//! that do hold a record stay in the spool. Each spilled report is in one
//! place, so none is delivered twice from two of them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::entry::Entry;
use crate::report::Report;
use crate::spool::{RecordId, Spool, SpoolConfig, SpoolError};
use crate::sync::{lock, AtomicBool, AtomicU64, Mutex, Ordering};

/// How the reporter uses its spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolMode {
    /// The spool takes what the sinks could not (the first fallback), and
    /// gives it back to them when they work again.
    OnSpill,
    /// Every report is written to the spool before `report()` returns, and
    /// leaves it only once delivered. Survives a crash of the process (and,
    /// with [`SyncPolicy::Always`](crate::spool::SyncPolicy::Always), of the
    /// machine).
    WriteAhead,
}

/// The spool's part of [`Stats`](crate::Stats).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpoolSummary {
    /// The spool directory.
    pub dir: String,
    /// `on_spill` or `write_ahead`.
    pub mode: Option<SpoolMode>,
    /// Records appended by this process.
    pub appended: u64,
    /// Records delivered from the spool by a replay (this run's spills and
    /// earlier runs' leftovers).
    pub replayed: u64,
    /// Records no replay can ever deliver — a sink refused them for good
    /// (too large, not permitted), every other sink took them or refused
    /// them too — moved from the spool to the next fallback (the configured
    /// fallback, else stderr), so that they neither hold up the replay nor
    /// pin the spool's disk space. Still *spilled*, never dropped.
    pub moved_to_fallback: u64,
    /// Where the last of those went (the fallback's location, or stderr).
    pub moved_to: Option<String>,
    /// Records still waiting in the spool.
    pub pending: u64,
    /// Total bytes of the spool's segment files on disk, as the spool
    /// tracks them (no directory read): the records waiting, those
    /// delivered but in segments not yet deleted, acknowledgements, segment
    /// headers. What an append is checked against
    /// [`SpoolConfig::max_bytes`](crate::spool::SpoolConfig::max_bytes).
    pub total_bytes: u64,
    /// Records found waiting when the spool was opened.
    pub recovered: u64,
    /// Damaged records skipped (at open or later), never fatal.
    pub corrupt_skipped: u64,
    /// Appends refused because the spool reached its size bound.
    pub full_refusals: u64,
    /// Operations that failed on a full disk.
    pub disk_full_errors: u64,
    /// The last spool error, if any.
    pub last_error: Option<String>,
}

pub(crate) struct Durable {
    spool: Spool,
    pub(crate) mode: SpoolMode,
    /// Records with an id below this predate this run: all replayable.
    boundary: u64,
    /// This run's records whose report was spilled (write-ahead mode):
    /// replayable. Ranges, so an outage's long runs of ids stay small.
    released: Mutex<RangeSet>,
    /// Something may be waiting for a replay.
    dirty: AtomicBool,
    replayed: AtomicU64,
    moved_to_fallback: AtomicU64,
    moved_to: Mutex<Option<String>>,
    recovered: u64,
}

impl Durable {
    pub(crate) fn open(config: SpoolConfig, mode: SpoolMode) -> Result<Durable, SpoolError> {
        let (spool, recovery) = Spool::open(config)?;
        let recovered = recovery.pending_records;
        // Read before anything is appended: every record below it was
        // recovered. The reports themselves are read back a page at a time
        // when replayed (bounded memory after a long outage).
        let boundary = spool.next_record_id();
        Ok(Durable {
            spool,
            mode,
            boundary,
            released: Mutex::new(RangeSet::default()),
            dirty: AtomicBool::new(recovered > 0),
            replayed: AtomicU64::new(0),
            moved_to_fallback: AtomicU64::new(0),
            moved_to: Mutex::new(None),
            recovered,
        })
    }

    pub(crate) fn location(&self) -> String {
        format!("spool {}", self.spool.dir().display())
    }

    /// Up to `limit` pending records after `cursor`, oldest first, with
    /// their reports (read back from disk a page at a time).
    pub(crate) fn pending_after(
        &self,
        cursor: Option<RecordId>,
        limit: usize,
    ) -> Vec<(RecordId, Report)> {
        self.spool.pending_after(cursor, limit)
    }

    /// Makes what the spool holds durable (per its sync policy's promise).
    pub(crate) fn flush(&self) -> Result<(), SpoolError> {
        self.spool.flush()
    }

    /// Write-ahead: the record for `report`, or the spool's error (which
    /// the spool counts in its stats) — the report then goes on without one.
    pub(crate) fn write_ahead(&self, report: &Report) -> Result<RecordId, SpoolError> {
        let ids = self.spool.append(&[report])?;
        ids.first().copied().ok_or_else(|| SpoolError::Io {
            path: self.spool.dir().to_path_buf(),
            op: "append",
            source: std::io::Error::other("append returned no record id"),
        })
    }

    /// Puts spilled entries in the spool: entries that already have a
    /// record (written ahead; replayed reports never come through here) are
    /// released for replay, the others are appended. On error nothing was
    /// stored for the appended ones, but the recorded ones were released all
    /// the same: they are in the spool either way.
    pub(crate) fn spill(&self, entries: &[&Entry]) -> Result<(), SpoolError> {
        if self.mode == SpoolMode::WriteAhead {
            let mut released = lock(&self.released);
            for e in entries {
                if let Some(id) = e.record {
                    released.insert(id.get());
                }
            }
        }
        let to_append: Vec<&Report> = entries
            .iter()
            .filter(|e| e.record.is_none())
            .map(|e| &e.report)
            .collect();
        let appended = if to_append.is_empty() {
            Vec::new()
        } else {
            match self.spool.append(&to_append) {
                Ok(ids) => ids,
                Err(e) => {
                    self.dirty.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        };
        if self.mode == SpoolMode::WriteAhead {
            let mut released = lock(&self.released);
            for id in &appended {
                released.insert(id.get());
            }
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Acknowledges every record in `set` (the reports an aggregate folded,
    /// once the aggregate is delivered or spilled), a slice at a time.
    pub(crate) fn ack_set(&self, set: &RangeSet) {
        let mut chunk = Vec::with_capacity(4096);
        for (first, last) in set.ranges() {
            for id in first..=last {
                chunk.push(RecordId::new(id));
                if chunk.len() == chunk.capacity() {
                    self.ack(&chunk);
                    chunk.clear();
                }
            }
        }
        self.ack(&chunk);
    }

    /// Acknowledges delivered (or handed back) records. A failure only
    /// means they may be replayed once more (deduplicated by report id).
    pub(crate) fn ack(&self, ids: &[RecordId]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.spool.ack(ids) {
            eprintln!(
                "tidings: acknowledging {} spool record(s) failed (they may be sent again): {e}",
                ids.len()
            );
        }
        if self.mode == SpoolMode::WriteAhead {
            let mut released = lock(&self.released);
            for id in ids {
                released.remove(id.get());
            }
        }
    }

    pub(crate) fn is_replayable(&self, id: RecordId) -> bool {
        match self.mode {
            SpoolMode::OnSpill => true,
            SpoolMode::WriteAhead => {
                id.get() < self.boundary || lock(&self.released).contains(id.get())
            }
        }
    }

    /// Takes the "something to replay" flag.
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub(crate) fn count_replayed(&self, n: u64) {
        self.replayed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count_moved_to_fallback(&self, n: u64, to: &str) {
        *lock(&self.moved_to) = Some(to.to_owned());
        self.moved_to_fallback.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn summary(&self) -> SpoolSummary {
        let s = self.spool.stats();
        SpoolSummary {
            dir: self.spool.dir().display().to_string(),
            mode: Some(self.mode),
            appended: s.appended,
            replayed: self.replayed.load(Ordering::Relaxed),
            moved_to_fallback: self.moved_to_fallback.load(Ordering::Relaxed),
            moved_to: lock(&self.moved_to).clone(),
            pending: s.live_records,
            total_bytes: s.total_bytes,
            recovered: self.recovered,
            corrupt_skipped: s.corrupt_skipped,
            full_refusals: s.full_refusals,
            disk_full_errors: s.disk_full_errors,
            last_error: s.last_error,
        }
    }
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("dir", &self.spool.dir())
            .field("mode", &self.mode)
            .finish()
    }
}

/// A set of u64 kept as disjoint inclusive ranges.
#[derive(Default, Debug)]
pub(crate) struct RangeSet {
    /// start → end (inclusive); ranges neither overlap nor touch.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub(crate) fn contains(&self, x: u64) -> bool {
        self.ranges
            .range(..=x)
            .next_back()
            .is_some_and(|(_, &end)| x <= end)
    }

    pub(crate) fn insert(&mut self, x: u64) {
        if self.contains(x) {
            return;
        }
        let mut start = x;
        let mut end = x;
        if let Some((&s, &e)) = self.ranges.range(..x).next_back() {
            if e + 1 == x {
                start = s;
                self.ranges.remove(&s);
            }
        }
        if let Some(next) = x.checked_add(1) {
            if let Some(e) = self.ranges.remove(&next) {
                end = e;
            }
        }
        self.ranges.insert(start, end);
    }

    pub(crate) fn remove(&mut self, x: u64) {
        let Some((&s, &e)) = self.ranges.range(..=x).next_back() else {
            return;
        };
        if x > e {
            return;
        }
        self.ranges.remove(&s);
        if s < x {
            self.ranges.insert(s, x - 1);
        }
        if x < e {
            self.ranges.insert(x + 1, e);
        }
    }

    /// The ranges, in order (inclusive).
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    #[cfg(all(test, not(loom)))]
    fn len_ranges(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::RangeSet;

    #[test]
    fn range_set_merges_and_splits() {
        let mut s = RangeSet::default();
        for x in [5, 3, 4, 10, 6, 11, 1] {
            s.insert(x);
        }
        assert_eq!(s.len_ranges(), 3); // 1, 3..=6, 10..=11
        for x in [1, 3, 4, 5, 6, 10, 11] {
            assert!(s.contains(x), "{x}");
        }
        for x in [0, 2, 7, 9, 12] {
            assert!(!s.contains(x), "{x}");
        }
        s.remove(4);
        assert!(!s.contains(4) && s.contains(3) && s.contains(5));
        s.remove(1);
        s.remove(3);
        s.remove(100);
        assert!(!s.contains(1) && !s.contains(3));
        s.insert(4);
        s.insert(3);
        assert_eq!(s.len_ranges(), 2); // 3..=6, 10..=11
        let mut big = RangeSet::default();
        for x in 0..1_000_000u64 {
            big.insert(x);
        }
        assert_eq!(big.len_ranges(), 1);
        big.insert(u64::MAX);
        assert!(big.contains(u64::MAX));
    }
}
