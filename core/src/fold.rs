//! Storms: repeats of one fingerprint folded into counted aggregates.
//!
//! The moment an error reporter matters most is when everything fails at
//! once and one program reports the same error thousands of times a second.
//! Sending every repeat fills the stream (or the fallback file, when NATS is
//! down too) and drowns the rare report that explains the outage. tidings
//! folds the repeats instead, **without losing any**: every occurrence
//! stays accounted for, as a count in an aggregate report that is itself
//! delivered, spilled or lost like any other report.
//!
//! * Every report has a [`Fingerprint`]: the one it was
//!   given ([`Report::with_fingerprint`](crate::Report::with_fingerprint)),
//!   else one derived from its service, kind and message with the volatile
//!   parts of the message masked (see [`Fingerprint::of`](crate::Fingerprint::of)).
//! * Per fingerprint, the first [`Folding::threshold`] reports of each
//!   [`Folding::window`] go out one by one; further ones are **folded**:
//!   accepted, counted (`folded`), settled at once (the receipt says
//!   [`Status::Folded`](crate::Status::Folded) and names the aggregate), and
//!   not queued.
//! * When the window ends — noticed by the next report of that fingerprint,
//!   or by the worker's sweep — and at shutdown and teardown, so nothing
//!   waits for a window that never ends, one **aggregate report** goes out
//!   for the window's folded reports: same kind and service, the highest
//!   severity seen, and in its context under `"tidings.folded"` the count,
//!   the fingerprint, first and last seen, and a few sample ids and
//!   messages. An aggregate is never refused: when the queue is full or
//!   closed it is spilled.
//! * The identity grows a term: `accepted == delivered + spilled + lost +
//!   folded + in_flight`, and once every window is closed the aggregates'
//!   counts add up to `folded`.
//! * Memory is bounded: at most [`Folding::max_fingerprints`] fingerprints
//!   are tracked. When the table is full, expired entries are swept; if it
//!   is still full, a report with a new fingerprint goes out unfolded (never
//!   dropped), counted in `fold_table_full` and said once.
//! * With a write-ahead spool, a folded report is still written ahead; its
//!   record is released only when its aggregate is delivered or spilled, so
//!   a crash mid-window loses no occurrence: the next start replays them
//!   (one by one). Folding saves the stream's and the fallback's bytes, not
//!   the write-ahead's.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::durable::RangeSet;
use crate::report::{Fingerprint, Report, ReportId, Severity, Timestamp};
use crate::spool::RecordId;
use crate::sync::{lock, Mutex};

/// How repeats are folded (see the [module docs](crate::fold)).
///
/// ```
/// use std::time::Duration;
/// use tidings_core::{Folding, Reporter};
///
/// // The default: the first 100 of each fingerprint per 10 s go out one
/// // by one, the rest are counted into one aggregate per window.
/// let builder = Reporter::builder().folding(Folding::default());
/// // Or off: every report goes out on its own.
/// let builder = Reporter::builder().folding(Folding::off());
/// # drop(builder);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folding {
    /// Fold at all.
    pub enabled: bool,
    /// Reports of one fingerprint that go out individually per window.
    pub threshold: u32,
    /// The window: one aggregate per fingerprint per window at most.
    pub window: Duration,
    /// Fingerprints tracked at once (memory bound).
    pub max_fingerprints: usize,
    /// Sample ids and messages kept per aggregate.
    pub samples: usize,
}

impl Default for Folding {
    fn default() -> Self {
        Folding {
            enabled: true,
            threshold: 100,
            window: Duration::from_secs(10),
            max_fingerprints: 10_000,
            samples: 3,
        }
    }
}

impl Folding {
    /// No folding: every report goes out on its own.
    pub fn off() -> Self {
        Folding {
            enabled: false,
            ..Folding::default()
        }
    }
}

/// The key of the fold table: the fingerprint's bits are already a hash.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Table = HashMap<u64, FoldState, BuildHasherDefault<IdentityHasher>>;

/// Independent locks, so reporting threads with different fingerprints do
/// not contend.
const SHARDS: usize = 16;

pub(crate) struct FoldTable {
    config: Folding,
    shards: Vec<Mutex<Shard>>,
    /// Set the first time the table is full (said once, counted always).
    full_said: std::sync::atomic::AtomicBool,
}

struct Shard {
    table: Table,
    /// When a full shard was last swept for ended windows: at most once per
    /// tenth of a window, so a full table does not sweep at every report.
    last_sweep: Option<Instant>,
}

/// One fingerprint's current window.
struct FoldState {
    window_end: Instant,
    /// Reports seen in this window (individual and folded).
    seen: u64,
    /// This window's folded reports, if any.
    folded: Option<Aggregate>,
}

/// The folded reports of one window: what the aggregate report will say.
pub(crate) struct Aggregate {
    id: ReportId,
    fingerprint: Fingerprint,
    count: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    severity: Severity,
    template: Report,
    samples: Vec<(ReportId, String)>,
    /// The folded reports' write-ahead records, released when the
    /// aggregate is settled.
    records: RangeSet,
    window: Duration,
}

/// What the table says about a report.
pub(crate) enum Decision {
    /// Send it on its own (and, maybe, an aggregate that just closed).
    Pass(Option<Aggregate>),
    /// It was folded into the aggregate with this id (and maybe an
    /// aggregate of the previous window closed).
    Folded(ReportId, Option<Aggregate>),
    /// The table is full: send it on its own; say so.
    TableFull,
}

impl FoldTable {
    pub(crate) fn new(config: Folding) -> Self {
        FoldTable {
            config,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        table: Table::default(),
                        last_sweep: None,
                    })
                })
                .collect(),
            full_said: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// True the first time it is asked after the table was full.
    pub(crate) fn first_time_full(&self) -> bool {
        !self
            .full_said
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    fn shard(&self, fingerprint: Fingerprint) -> &Mutex<Shard> {
        &self.shards[(fingerprint.bits() as usize) % SHARDS]
    }

    /// Decides about `report` (fingerprinted) seen at `now`; `record` is
    /// its write-ahead record, if any (kept when it is folded).
    pub(crate) fn decide(
        &self,
        report: &Report,
        fingerprint: Fingerprint,
        now: Instant,
        record: Option<RecordId>,
    ) -> Decision {
        let cap = self.config.max_fingerprints.div_ceil(SHARDS).max(1);
        let mut guard = lock(self.shard(fingerprint));
        let shard = &mut *guard;
        let mut closed = None;
        if !shard.table.contains_key(&fingerprint.bits()) && shard.table.len() >= cap {
            // Make room: drop windows that ended and folded nothing (the
            // worker's sweep takes those that folded something).
            let due = shard
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= self.config.window / 10);
            if due {
                shard.last_sweep = Some(now);
                shard
                    .table
                    .retain(|_, s| now < s.window_end || s.folded.is_some());
            }
            if shard.table.len() >= cap {
                return Decision::TableFull;
            }
        }
        let state = shard
            .table
            .entry(fingerprint.bits())
            .or_insert_with(|| FoldState {
                window_end: now + self.config.window,
                seen: 0,
                folded: None,
            });
        if now >= state.window_end {
            closed = state.folded.take();
            state.window_end = now + self.config.window;
            state.seen = 0;
        }
        state.seen += 1;
        if state.seen <= u64::from(self.config.threshold) {
            return Decision::Pass(closed);
        }
        let aggregate = state
            .folded
            .get_or_insert_with(|| Aggregate::new(report, fingerprint, self.config.window));
        aggregate.add(report, record, self.config.samples);
        Decision::Folded(aggregate.id, closed)
    }

    /// Takes the aggregates whose window has ended by `now` (all of them
    /// with `everything`), and forgets idle fingerprints.
    pub(crate) fn take_closed(&self, now: Instant, everything: bool) -> Vec<Aggregate> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.table.retain(|_, s| {
                let ended = everything || now >= s.window_end;
                if ended {
                    out.extend(s.folded.take());
                }
                !ended
            });
        }
        out
    }
}

impl Aggregate {
    fn new(first: &Report, fingerprint: Fingerprint, window: Duration) -> Self {
        Aggregate {
            id: ReportId::new(),
            fingerprint,
            count: 0,
            first_seen: first.timestamp,
            last_seen: first.timestamp,
            severity: first.severity,
            // Field by field: the context and backtrace are not carried
            // over, so they are not cloned (this runs under the shard lock).
            template: Report {
                schema: first.schema,
                id: first.id,
                timestamp: first.timestamp,
                severity: first.severity,
                kind: first.kind.clone(),
                message: first.message.clone(),
                source: first.source.clone(),
                context: Default::default(),
                chain: first.chain.clone(),
                backtrace: None,
                truncated: first.truncated,
                fingerprint: first.fingerprint,
            },
            samples: Vec::new(),
            records: RangeSet::default(),
            window,
        }
    }

    fn add(&mut self, report: &Report, record: Option<RecordId>, samples: usize) {
        self.count += 1;
        self.first_seen = self.first_seen.min(report.timestamp);
        self.last_seen = self.last_seen.max(report.timestamp);
        self.severity = self.severity.max(report.severity);
        if self.samples.len() < samples {
            self.samples.push((report.id, report.message.clone()));
        }
        if let Some(r) = record {
            self.records.insert(r.get());
        }
    }

    /// How many reports it folded.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The aggregate report: the folded reports' kind, service and cause
    /// chain, their highest severity, and under `"tidings.folded"` the
    /// count, fingerprint, first and last seen and the samples.
    pub(crate) fn into_report(self) -> (Report, RangeSet) {
        let mut report = self.template;
        report.id = self.id;
        report.timestamp = Timestamp::now();
        report.severity = self.severity;
        report.fingerprint = Some(self.fingerprint);
        report.message = format!("{} more like this, folded: {}", self.count, report.message);
        let folded = serde_json::json!({
            "count": self.count,
            "fingerprint": self.fingerprint.to_string(),
            "first_seen": self.first_seen.to_string(),
            "last_seen": self.last_seen.to_string(),
            "window_secs": self.window.as_secs_f64(),
            "sample_ids": self.samples.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            "sample_messages": self.samples.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
        });
        report.context.insert(FOLDED_KEY.to_owned(), folded);
        (report, self.records)
    }
}

/// The context key of an aggregate report's fold details.
pub const FOLDED_KEY: &str = "tidings.folded";

impl fmt::Debug for FoldTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoldTable")
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table(threshold: u32) -> FoldTable {
        FoldTable::new(Folding {
            threshold,
            window: Duration::from_secs(10),
            max_fingerprints: 32,
            ..Folding::default()
        })
    }

    #[test]
    fn the_first_n_pass_the_rest_fold_into_one_aggregate_per_window() {
        let t = table(3);
        let now = Instant::now();
        let r = Report::error("db", "connection 17 refused");
        let fp = Fingerprint::of(&r);
        let mut folded_into = None;
        for i in 0..10 {
            match t.decide(&r, fp, now, None) {
                Decision::Pass(None) => assert!(i < 3),
                Decision::Folded(id, None) => {
                    assert!(i >= 3);
                    assert_eq!(*folded_into.get_or_insert(id), id);
                }
                _ => panic!("unexpected decision at {i}"),
            }
        }
        assert!(t.take_closed(now, false).is_empty(), "window still open");
        // The next window: the closed aggregate comes out with the first
        // report of the new window, which passes.
        let later = now + Duration::from_secs(10);
        match t.decide(&r, fp, later, None) {
            Decision::Pass(Some(agg)) => {
                assert_eq!(agg.count(), 7);
                assert_eq!(Some(agg.id), folded_into);
                let (report, _) = agg.into_report();
                assert_eq!(report.context[FOLDED_KEY]["count"], 7);
                assert_eq!(report.fingerprint, Some(fp));
                assert_eq!(report.kind, "db");
            }
            _ => panic!("the closed aggregate should come out"),
        }
    }

    #[test]
    fn a_full_table_lets_new_fingerprints_through_unfolded() {
        let t = FoldTable::new(Folding {
            threshold: 0,
            max_fingerprints: 1,
            ..Folding::default()
        });
        let now = Instant::now();
        let mut full = 0;
        for i in 0..200 {
            let r = Report::error(format!("kind{i}"), "m");
            if let Decision::TableFull = t.decide(&r, Fingerprint::of(&r), now, None) {
                full += 1;
            }
        }
        assert!(full > 150, "{full}");
        // Everything comes out at the end.
        let total: u64 = t.take_closed(now, true).iter().map(Aggregate::count).sum();
        assert_eq!(total + full, 200);
    }
}
