//! Counters, and the summary that shutdown returns.
//!
//! The identity that defines "nothing lost":
//!
//! ```text
//! accepted == delivered + spilled + lost + folded + in_flight
//! ```
//!
//! `folded` counts repeats folded into aggregate reports (see
//! [`crate::fold`]); the aggregates are reports like any other, and once
//! every fold window is closed their counts add up to `folded`.
//!
//! holds at every quiescent moment (no `report()` call and no settlement
//! running), and after shutdown `in_flight == 0`. `refused` reports are not
//! part of it: they were handed back to the caller, who knows.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::diagnostics::Diagnostic;
use crate::durable::SpoolSummary;
use crate::sync::{AtomicU64, Ordering};

/// Live counters. Producer-side and worker-side counters sit on separate
/// cache lines so reporting threads do not contend with the worker.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) producer: ProducerCounters,
    pub(crate) settled: SettledCounters,
}

#[derive(Default)]
#[repr(align(128))]
pub(crate) struct ProducerCounters {
    pub(crate) accepted: AtomicU64,
    /// Incremented before a report becomes visible to anyone else, so it
    /// never underflows; decremented when the report is settled.
    pub(crate) in_flight: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) blocked: AtomicU64,
    pub(crate) late: AtomicU64,
    pub(crate) folded: AtomicU64,
    pub(crate) aggregates: AtomicU64,
    pub(crate) fold_table_full: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) before_send_panics: AtomicU64,
}

#[derive(Default)]
#[repr(align(128))]
pub(crate) struct SettledCounters {
    pub(crate) delivered: AtomicU64,
    pub(crate) spilled: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) sink_panics: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) fallback_errors: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Acquire)
}

impl Counters {
    pub(crate) fn snapshot(
        &self,
        sinks: Vec<SinkStats>,
        spill_location: String,
        spool: Option<SpoolSummary>,
    ) -> Stats {
        let p = &self.producer;
        let s = &self.settled;
        // Settled counters first, in_flight last: a report settling between
        // the reads can only make in_flight look smaller, never count twice.
        let delivered = get(&s.delivered);
        let spilled = get(&s.spilled);
        let lost = get(&s.lost);
        let folded = get(&p.folded);
        let accepted = get(&p.accepted);
        let in_flight = get(&p.in_flight);
        Stats {
            accepted,
            delivered,
            spilled,
            lost,
            folded,
            in_flight,
            aggregates: get(&p.aggregates),
            fold_table_full: get(&p.fold_table_full),
            filtered: get(&p.filtered),
            before_send_panics: get(&p.before_send_panics),
            refused: get(&p.refused),
            overflowed: get(&p.overflowed),
            blocked: get(&p.blocked),
            late: get(&p.late),
            retries: get(&s.retries),
            failed_attempts: get(&s.failed_attempts),
            sink_panics: get(&s.sink_panics),
            abandoned: get(&s.abandoned),
            fallback_errors: get(&s.fallback_errors),
            spill_location,
            spilled_to: Vec::new(),
            sinks,
            spool,
            diagnostics: Vec::new(),
        }
    }
}

/// A snapshot of a reporter's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Reports taken by `report()` (queued, or spilled at the door).
    pub accepted: u64,
    /// Reports every sink took.
    pub delivered: u64,
    /// Reports written to the fallback instead.
    pub spilled: u64,
    /// Reports the fallback could not store either (printed to stderr).
    pub lost: u64,
    /// Repeats folded into aggregate reports (see [`crate::fold`]): settled
    /// as counts, not sent one by one.
    pub folded: u64,
    /// Accepted reports not yet settled (queued or being sent).
    pub in_flight: u64,
    /// Aggregate reports emitted for folded repeats (each is also counted
    /// in `accepted`, and delivered, spilled or lost like any report).
    pub aggregates: u64,
    /// Reports that went out unfolded because the fold table was full.
    pub fold_table_full: u64,
    /// Reports a `before_send` hook dropped: never accepted, handed back.
    pub filtered: u64,
    /// Times a `before_send` hook panicked (the report went on unchanged).
    pub before_send_panics: u64,
    /// Reports refused by `report()` and handed back to the caller
    /// (queue full with `Reject`, `Block` timed out, closed with late
    /// policy `Refuse`). Not part of `accepted`.
    pub refused: u64,
    /// Times `report()` found the queue full (whatever the policy did).
    pub overflowed: u64,
    /// Times `report()` waited for room (`Block` policy).
    pub blocked: u64,
    /// Reports that arrived while shutting down or after.
    pub late: u64,
    /// Delivery attempts that were retries.
    pub retries: u64,
    /// Delivery attempts that failed (per sink, per report).
    pub failed_attempts: u64,
    /// Panics caught inside sinks.
    pub sink_panics: u64,
    /// Reports whose send was abandoned at the shutdown deadline or at
    /// teardown. A breakdown, not a final state: each is also counted in
    /// `spilled` (or in `lost`, if the fallback chain failed too).
    pub abandoned: u64,
    /// Times the configured fallback failed (its reports then went to
    /// stderr, or were lost).
    pub fallback_errors: u64,
    /// Where spilled reports go first: the spool when one is configured,
    /// else the configured fallback.
    pub spill_location: String,
    /// Where spilled reports actually went, each place with its count: the
    /// spool, the fallback file, stderr when those failed. The counts add
    /// up to `spilled`.
    pub spilled_to: Vec<SpillDestination>,
    /// Per-sink state.
    pub sinks: Vec<SinkStats>,
    /// The spool, when one is configured.
    pub spool: Option<SpoolSummary>,
    /// tidings' own messages, one per reason, with how often each came up.
    pub diagnostics: Vec<Diagnostic>,
}

/// One place spilled reports went, with how many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpillDestination {
    /// `spool DIR`, a file path, or `stderr`.
    pub location: String,
    /// Reports spilled there (by this reporter).
    pub reports: u64,
}

impl Stats {
    /// True when `accepted == delivered + spilled + lost + folded +
    /// in_flight`.
    pub fn is_balanced(&self) -> bool {
        self.accepted == self.delivered + self.spilled + self.lost + self.folded + self.in_flight
    }
}

/// One sink's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Reports it took.
    pub delivered: u64,
    /// Failed attempts (per report).
    pub failed_attempts: u64,
    /// Reports it refused for good (too large, not permitted, a bad
    /// request): spilled at once, not retried. The reason is in
    /// `last_error` and in [`Stats::diagnostics`].
    pub refused: u64,
    /// True while the sink is marked down (its reports are spilled and it is
    /// probed periodically).
    pub down: bool,
    /// The last error it returned, if it has failed since it last worked
    /// (e.g. a connection or authentication error).
    pub last_error: Option<String>,
}

/// What [`shutdown`](crate::Reporter::shutdown) returns: the counters at the
/// end and how the shutdown went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShutdownSummary {
    /// Counters when the reporter closed. `in_flight` is 0.
    pub stats: Stats,
    /// How long the shutdown took.
    #[serde(serialize_with = "as_secs_f64")]
    pub elapsed: Duration,
    /// True when the deadline cut the drain short (what was left was spilled).
    pub deadline_reached: bool,
    /// How the reporter closed.
    pub ended_by: Ending,
    /// Local stores (the fallback, the spool) whose final sync to disk had
    /// not finished when shutdown returned: their data is written (a crash
    /// of the process loses nothing), the sync goes on in the background.
    /// Shutdown does not wait past its deadline for a slow disk.
    pub unsynced: Vec<String>,
}

/// How a reporter came to be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The worker drained the queue and closed the sinks.
    Drained,
    /// The worker reached the deadline, abandoned what was in flight and
    /// spilled it.
    Deadline,
    /// The worker did not answer by the deadline (blocked thread, runtime
    /// not running); the shutdown caller spilled everything itself.
    Forced,
    /// The runtime dropped the worker, or the last handle was dropped,
    /// without a shutdown; everything left was spilled.
    Teardown,
}

fn as_secs_f64<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl fmt::Display for ShutdownSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "accepted {}  delivered {}  spilled {}  lost {}  folded {}  in flight {}",
            s.accepted, s.delivered, s.spilled, s.lost, s.folded, s.in_flight
        )?;
        writeln!(
            f,
            "refused {}  late {}  retries {}  abandoned {}  sink panics {}",
            s.refused, s.late, s.retries, s.abandoned, s.sink_panics
        )?;
        if s.folded > 0 || s.fold_table_full > 0 {
            writeln!(
                f,
                "folded {} repeats into {} aggregate reports{}",
                s.folded,
                s.aggregates,
                if s.fold_table_full > 0 {
                    format!(
                        "; {} went out unfolded (fold table full)",
                        s.fold_table_full
                    )
                } else {
                    String::new()
                }
            )?;
        }
        if s.filtered > 0 || s.before_send_panics > 0 {
            writeln!(
                f,
                "before_send: {} dropped, {} panics (those reports went on unchanged)",
                s.filtered, s.before_send_panics
            )?;
        }
        if s.spilled > 0 {
            let places: Vec<String> = s
                .spilled_to
                .iter()
                .filter(|d| d.reports > 0)
                .map(|d| format!("{} ({})", d.location, d.reports))
                .collect();
            if places.is_empty() {
                writeln!(f, "spilled reports are in: {}", s.spill_location)?;
            } else {
                writeln!(f, "spilled reports are in: {}", places.join(", "))?;
            }
        }
        if let Some(spool) = &s.spool {
            writeln!(
                f,
                "spool {}: pending {}, replayed {}, appended {}, recovered at start {}{}",
                spool.dir,
                spool.pending,
                spool.replayed,
                spool.appended,
                spool.recovered,
                if spool.corrupt_skipped > 0 {
                    format!(", damaged records skipped {}", spool.corrupt_skipped)
                } else {
                    String::new()
                }
            )?;
            if spool.moved_to_fallback > 0 {
                writeln!(
                    f,
                    "spool: {} report(s) no sink will ever take, moved to {}",
                    spool.moved_to_fallback,
                    spool.moved_to.as_deref().unwrap_or("the fallback")
                )?;
            }
            if let Some(e) = &spool.last_error {
                writeln!(f, "spool last error: {e}")?;
            }
        }
        for sink in &s.sinks {
            write!(
                f,
                "sink {}: delivered {}, failed attempts {}{}{}",
                sink.name,
                sink.delivered,
                sink.failed_attempts,
                if sink.refused > 0 {
                    format!(", refused {}", sink.refused)
                } else {
                    String::new()
                },
                if sink.down { ", DOWN" } else { "" }
            )?;
            if let Some(e) = &sink.last_error {
                write!(f, ", last error: {e}")?;
            }
            writeln!(f)?;
        }
        for d in s.diagnostics.iter().filter(|d| d.count > 1) {
            writeln!(f, "{}: {} (×{})", d.source, d.message, d.count)?;
        }
        if !self.unsynced.is_empty() {
            writeln!(
                f,
                "not yet synced to disk at the deadline (written; the sync goes on): {}",
                self.unsynced.join(", ")
            )?;
        }
        write!(
            f,
            "shutdown: {:?} in {:.3}s{}; balanced: {}",
            self.ended_by,
            self.elapsed.as_secs_f64(),
            if self.deadline_reached {
                " (deadline reached)"
            } else {
                ""
            },
            if s.is_balanced() && s.in_flight == 0 {
                "yes"
            } else {
                "NO"
            }
        )
    }
}
