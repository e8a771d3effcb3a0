//! State shared by every handle and the worker: the lifecycle, the intake
//! queue, the in-flight registry, the counters, and settlement.
//!
//! # Where a report can be, and who spills it
//!
//! An accepted report is always in exactly one of these places until it is
//! settled:
//!
//! 1. the intake queue — spilled by [`Shared::finish`] (which closes the
//!    queue first, so nothing can slip in behind the drain);
//! 2. the worker's hands between taking it off the queue and registering
//!    its batch — a synchronous stretch; [`Shared::register`] refuses once
//!    finishing has begun and the worker spills the batch itself;
//! 3. a registered in-flight batch — spilled by [`InFlightBatch`]'s `Drop`
//!    (deadline, runtime teardown) or by [`Shared::finish`] (forced).
//!
//! Settling goes through [`Entry::claim`], so when two of these paths race,
//! exactly one settles and counts the report.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use event_listener::Event;

use crate::config::Config;
use crate::diagnostics::Diagnostics;
use crate::durable::Durable;
use crate::entry::{Entry, Outcome, SinkOutcome, SpillReason, Status, StatusKind};
use crate::fallback::{Fallback, FallbackError, Stderr};
use crate::report::Report;
use crate::runtime::Runtime;
use crate::sink::{Batch, Sink};
use crate::stats::{
    add, inc, Counters, Ending, ShutdownSummary, SinkStats, SpillDestination, Stats,
};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, AtomicU8, Mutex, Ordering};

pub(crate) const RUNNING: u8 = 0;
pub(crate) const DRAINING: u8 = 1;
pub(crate) const CLOSED: u8 = 2;

/// Where a reporter is in its life. Moves only forward:
/// `Running → Draining → Closed` (or `Running → Closed` on teardown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Accepting reports and delivering them.
    Running,
    /// Shutdown has begun: intake is closed (late reports follow the
    /// [`Late`](crate::Late) policy), the queue and in-flight sends are
    /// draining until the deadline.
    Draining,
    /// Finished: nothing is queued or in flight; late reports follow the
    /// [`Late`](crate::Late) policy.
    Closed,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) tx: Sender<Arc<Entry>>,
    pub(crate) rx: Receiver<Arc<Entry>>,
    /// Notified when the worker takes reports off the queue (room for
    /// `Overflow::Block` waiters).
    pub(crate) space: Event,
    phase: AtomicU8,
    /// Notified on every phase change (wakes the worker).
    pub(crate) phase_changed: Event,
    /// Notified once the summary exists.
    pub(crate) closed: Event,
    drain: Mutex<Option<Drain>>,
    registry: Mutex<Registry>,
    next_batch: AtomicU64,
    pub(crate) sinks: Vec<SinkState>,
    fallback: std::sync::Arc<dyn Fallback>,
    /// The spool, when configured: first in the fallback chain, and the
    /// write-ahead log in `WriteAhead` mode.
    pub(crate) durable: Option<std::sync::Arc<Durable>>,
    /// Where spilled reports went, and how many to each place.
    spilled_to: Mutex<Vec<SpillDestination>>,
    /// tidings' own messages: once per reason.
    pub(crate) diagnostics: Diagnostics,
    pub(crate) runtime: std::sync::Arc<dyn Runtime>,
    summary: OnceLock<ShutdownSummary>,
    closing: Mutex<()>,
    /// Why in-flight batches dropped from now on are being spilled.
    stop_reason: AtomicU8,
}

#[derive(Clone, Copy)]
struct Drain {
    started: Instant,
    deadline: Instant,
}

#[derive(Default)]
struct Registry {
    finishing: bool,
    batches: Vec<(u64, Batch)>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        sinks: Vec<Box<dyn Sink>>,
        fallback: Box<dyn Fallback>,
        durable: Option<Durable>,
        runtime: std::sync::Arc<dyn Runtime>,
    ) -> Self {
        let fallback: std::sync::Arc<dyn Fallback> = std::sync::Arc::from(fallback);
        let (tx, rx) = async_channel::bounded(config.capacity);
        Shared {
            counters: Counters::default(),
            tx,
            rx,
            space: Event::new(),
            phase: AtomicU8::new(RUNNING),
            phase_changed: Event::new(),
            closed: Event::new(),
            drain: Mutex::new(None),
            registry: Mutex::new(Registry::default()),
            next_batch: AtomicU64::new(0),
            sinks: sinks.into_iter().map(SinkState::new).collect(),
            fallback,
            durable: durable.map(std::sync::Arc::new),
            spilled_to: Mutex::new(Vec::new()),
            diagnostics: Diagnostics::new(config.log_to_stderr),
            runtime,
            summary: OnceLock::new(),
            closing: Mutex::new(()),
            stop_reason: AtomicU8::new(reason_code(SpillReason::Teardown)),
            config,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            RUNNING => Phase::Running,
            DRAINING => Phase::Draining,
            _ => Phase::Closed,
        }
    }

    pub(crate) fn summary(&self) -> Option<&ShutdownSummary> {
        self.summary.get()
    }

    /// Says something that happens rarely (a sink down or recovered).
    pub(crate) fn log(&self, args: std::fmt::Arguments<'_>) {
        self.diagnostics.say(args);
    }

    /// Says `message` from `source` once per reason; repeats are counted
    /// (and listed in the summary).
    pub(crate) fn note(&self, source: &str, message: &str) {
        self.diagnostics.once(source, message);
    }

    pub(crate) fn stats(&self) -> Stats {
        let sinks = self.sinks.iter().map(SinkState::stats).collect();
        let location = match &self.durable {
            Some(d) => d.location(),
            None => self.fallback.location(),
        };
        let mut stats = self.counters.snapshot(
            sinks,
            location,
            self.durable.as_deref().map(Durable::summary),
        );
        stats.spilled_to = lock(&self.spilled_to).clone();
        stats.diagnostics = self.diagnostics.list();
        stats
    }

    /// Counts `n` reports as spilled to `location` (negative: moved away).
    fn count_destination(&self, location: &str, n: i64) {
        if n == 0 {
            return;
        }
        let mut to = lock(&self.spilled_to);
        let i = match to.iter().position(|d| d.location == location) {
            Some(i) => i,
            None => {
                to.push(SpillDestination {
                    location: location.to_owned(),
                    reports: 0,
                });
                to.len() - 1
            }
        };
        to[i].reports = to[i].reports.saturating_add_signed(n);
    }

    /// What intake does to every report before accepting it: fills in the
    /// configured source and makes it readable back from every format
    /// ([`Report::normalize`]).
    pub(crate) fn prepare(&self, report: &mut Report) {
        report.normalize();
        self.config.scrub.scrub(report);
        if report.source.service.is_empty() && !self.config.service.is_empty() {
            report.source.service.clone_from(&self.config.service);
        }
        if report.source.instance.is_empty() && !self.config.instance.is_empty() {
            report.source.instance.clone_from(&self.config.instance);
        }
    }

    // ----- lifecycle -------------------------------------------------------

    /// Starts the shutdown protocol if it has not started: records the
    /// deadline, closes intake, wakes the worker. Returns the deadline in
    /// force (the first caller's), on the runtime's clock.
    pub(crate) fn begin_shutdown(&self, within: Duration) -> Instant {
        let mut drain = lock(&self.drain);
        if let Some(d) = *drain {
            return d.deadline;
        }
        let now = self.runtime.now();
        let deadline = now
            .checked_add(within)
            .unwrap_or_else(crate::runtime::far_future);
        *drain = Some(Drain {
            started: now,
            deadline,
        });
        drop(drain);
        let _ = self
            .phase
            .compare_exchange(RUNNING, DRAINING, Ordering::SeqCst, Ordering::SeqCst);
        // Closing the channel is what makes the drain complete: once closed
        // and empty, the worker's receive ends; sends fail with `Closed`.
        self.tx.close();
        self.phase_changed.notify(usize::MAX);
        deadline
    }

    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        lock(&self.drain).map(|d| d.deadline)
    }

    /// Registers a batch the worker took off the queue. Returns `None` (and
    /// spills the batch) once finishing has begun.
    pub(crate) fn register(shared: &Arc<Shared>, batch: Batch) -> Option<InFlightBatch> {
        let id = shared.next_batch.fetch_add(1, Ordering::Relaxed);
        {
            let mut reg = lock(&shared.registry);
            if !reg.finishing {
                reg.batches.push((id, batch.clone()));
                return Some(InFlightBatch {
                    shared: shared.clone(),
                    id,
                    batch,
                });
            }
        }
        shared.spill_unsent(&batch.entries, shared.stop_reason());
        None
    }

    fn stop_reason(&self) -> SpillReason {
        reason_from_code(self.stop_reason.load(Ordering::Relaxed))
    }

    pub(crate) fn set_stop_reason(&self, reason: SpillReason) {
        self.stop_reason
            .store(reason_code(reason), Ordering::Relaxed);
    }

    /// Ends the reporter: spills everything still queued or in flight,
    /// builds the summary, moves to `Closed`. Idempotent: later and
    /// concurrent callers get the first summary. Never awaits, never blocks
    /// on a sink: safe from `Drop`, from any thread, during runtime teardown.
    pub(crate) fn finish(&self, ending: Ending, reason: SpillReason) -> ShutdownSummary {
        let _closing = lock(&self.closing);
        if let Some(s) = self.summary.get() {
            return s.clone();
        }
        self.tx.close();
        self.set_stop_reason(reason);
        let batches: Vec<Batch> = {
            let mut reg = lock(&self.registry);
            reg.finishing = true;
            reg.batches.iter().map(|(_, b)| b.clone()).collect()
        };
        for batch in batches {
            self.spill_abandoned(&batch.entries, reason);
        }
        self.spill_queue(reason);
        self.wait_for_claims(Duration::from_millis(100));
        let unsynced = self.sync_local_stores();
        let now = self.runtime.now();
        let drain = *lock(&self.drain);
        let summary = ShutdownSummary {
            stats: self.stats(),
            elapsed: drain
                .map(|d| now.saturating_duration_since(d.started))
                .unwrap_or_default(),
            deadline_reached: matches!(ending, Ending::Deadline | Ending::Forced)
                || drain.is_some_and(|d| now >= d.deadline),
            ended_by: ending,
            unsynced,
        };
        self.phase.store(CLOSED, Ordering::SeqCst);
        let _ = self.summary.set(summary.clone());
        self.closed.notify(usize::MAX);
        self.phase_changed.notify(usize::MAX);
        summary
    }

    /// Makes the fallback and the spool durable (fsync) for the summary,
    /// on a thread of its own so a slow disk can hold neither the caller's
    /// thread (perhaps an async runtime's) nor the deadline: it waits only
    /// for what is left of the drain deadline (at least the close grace).
    /// Returns the places whose sync had not finished by then; their data
    /// is written, and the sync goes on in the background.
    fn sync_local_stores(&self) -> Vec<String> {
        let fallback = self.fallback.clone();
        let durable = self.durable.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(String, Option<String>)>();
        let mut pending: Vec<String> = vec![fallback.location()];
        if let Some(d) = &durable {
            pending.push(d.location());
        }
        // Each store is let go before its answer is sent: once the caller
        // has every answer, nothing of this thread holds the spool (its
        // directory lock) any more.
        let work = move || {
            let location = fallback.location();
            let error = fallback.flush().err().map(|mut e| {
                // A file restored while syncing hands back what it lost.
                for orphan in e.take_orphaned() {
                    let _ = Stderr.spill(&[&orphan]);
                }
                e.to_string()
            });
            drop(fallback);
            let _ = done_tx.send((location, error));
            if let Some(d) = durable {
                let location = d.location();
                let error = d.flush().err().map(|e| e.to_string());
                drop(d);
                let _ = done_tx.send((location, error));
            }
        };
        let now = self.runtime.now();
        let left = self
            .drain_deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or_default()
            .max(self.config.close_grace);
        let wait_until = Instant::now() + left;
        if cfg!(loom) {
            // The model checker tracks no OS threads: sync inline.
            work();
        } else if std::thread::Builder::new()
            .name("tidings-sync".into())
            .spawn(work)
            .is_err()
        {
            // No thread to be had: nothing is synced rather than risk the
            // deadline on this thread.
            return pending;
        }
        while !pending.is_empty() {
            let wait = wait_until.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(wait) {
                Ok((location, error)) => {
                    pending.retain(|p| *p != location);
                    if let Some(e) = error {
                        inc(&self.counters.settled.fallback_errors);
                        self.note("sync", &format!("syncing {location} failed: {e}"));
                    }
                }
                Err(_) => break,
            }
        }
        pending
    }

    /// Spills everything left in the (closed) queue.
    pub(crate) fn spill_queue(&self, reason: SpillReason) {
        loop {
            let mut chunk = Vec::new();
            while chunk.len() < 1024 {
                match self.rx.try_recv() {
                    Ok(e) => chunk.push(e),
                    Err(_) => break,
                }
            }
            if chunk.is_empty() {
                return;
            }
            self.space.notify(chunk.len());
            self.spill_unsent(&chunk, reason);
        }
    }

    /// Waits (bounded) for entries claimed by someone else to be settled:
    /// claims are held only across synchronous code, so this is short.
    fn wait_for_claims(&self, bound: Duration) {
        let start = Instant::now();
        // Under loom, a bounded number of yields explores the interleavings;
        // a time bound would make the model spin without end.
        let mut spins = 0u32;
        while self.counters.producer.in_flight.load(Ordering::SeqCst) > 0
            && start.elapsed() < bound
            && (cfg!(not(loom)) || spins < 8)
        {
            spins += 1;
            crate::sync::yield_now();
        }
    }

    // ----- settlement ------------------------------------------------------

    /// Settles `entry` as delivered, if nobody settled it first, without
    /// touching the counters: the
    /// caller settles a whole batch, then counts it once with
    /// [`Shared::count_delivered`] (two shared atomics per batch instead of
    /// per report; `in_flight` shares its cache line with every producer).
    /// Must be followed by that call without awaiting in between.
    pub(crate) fn settle_delivered_uncounted(
        &self,
        entry: &Entry,
        sinks: impl FnOnce() -> Vec<SinkOutcome>,
    ) -> bool {
        if !entry.claim() {
            return false;
        }
        let outcome = entry.is_watched().then(|| Outcome {
            id: entry.report.id,
            status: Status::Delivered,
            sinks: sinks(),
        });
        entry.finish(outcome, StatusKind::Delivered);
        true
    }

    /// Counts `n` reports settled by [`Shared::settle_delivered_uncounted`].
    pub(crate) fn count_delivered(&self, n: u64) {
        if n == 0 {
            return;
        }
        add(&self.counters.settled.delivered, n);
        self.counters
            .producer
            .in_flight
            .fetch_sub(n, Ordering::AcqRel);
    }

    /// Spills the entries that are still pending, through the fallback
    /// chain (configured fallback, then stderr; lost only if both fail).
    /// `sinks_of(i)` gives the per-sink outcome of `entries[i]`. Returns how
    /// many this call settled.
    pub(crate) fn spill(
        &self,
        entries: &[&Entry],
        reason: SpillReason,
        sinks_of: &dyn Fn(usize) -> Vec<SinkOutcome>,
    ) -> usize {
        let claimed: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].claim()).collect();
        if claimed.is_empty() {
            return 0;
        }
        // Where each claimed entry went: `(kind, to)` per group, and the
        // group of each entry.
        let mut groups: Vec<(StatusKind, String)> = Vec::with_capacity(2);
        let mut group_of = vec![0usize; claimed.len()];
        match &self.durable {
            Some(d) => {
                let claimed_entries: Vec<&Entry> = claimed.iter().map(|&i| entries[i]).collect();
                groups.push((StatusKind::Spilled, d.location()));
                if let Err(e) = d.spill(&claimed_entries) {
                    // Entries that already hold a record (written ahead)
                    // are in the spool whatever the append
                    // did; only the others need the next fallback. Sending
                    // the recorded ones there too would deliver them twice:
                    // once from the fallback, once from the spool at the
                    // next start.
                    let unstored: Vec<&Report> = claimed_entries
                        .iter()
                        .filter(|e| e.record.is_none())
                        .map(|e| &e.report)
                        .collect();
                    self.note(
                        "spool",
                        &format!("refused reports, using the next fallback: {e}"),
                    );
                    groups.push(self.spill_to_fallback(&unstored));
                    for (g, e) in group_of.iter_mut().zip(&claimed_entries) {
                        if e.record.is_none() {
                            *g = 1;
                        }
                    }
                }
            }
            None => {
                let reports: Vec<&Report> = claimed.iter().map(|&i| &entries[i].report).collect();
                groups.push(self.spill_to_fallback(&reports));
            }
        }
        for (g, (kind, to)) in groups.iter().enumerate() {
            if *kind == StatusKind::Lost {
                // G1: lost is counted *and* said out loud, as best we can.
                eprintln!(
                    "tidings: LOST {} report(s) ({to}); ids: {}",
                    group_of.iter().filter(|&&x| x == g).count(),
                    claimed
                        .iter()
                        .zip(&group_of)
                        .filter(|(_, &x)| x == g)
                        .map(|(&i, _)| entries[i].report.id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        for (g, (kind, to)) in groups.iter().enumerate() {
            if *kind == StatusKind::Spilled {
                let n = group_of.iter().filter(|&&x| x == g).count();
                self.count_destination(to, n as i64);
            }
        }
        let (mut spilled, mut lost) = (0u64, 0u64);
        for (&i, &g) in claimed.iter().zip(&group_of) {
            let entry = entries[i];
            let (kind, to) = &groups[g];
            let outcome = entry.is_watched().then(|| Outcome {
                id: entry.report.id,
                status: match kind {
                    StatusKind::Lost => Status::Lost { reason: to.clone() },
                    _ => Status::Spilled {
                        reason,
                        to: to.clone(),
                    },
                },
                sinks: sinks_of(i),
            });
            entry.finish(outcome, *kind);
            match kind {
                StatusKind::Lost => lost += 1,
                _ => spilled += 1,
            }
        }
        if spilled > 0 {
            add(&self.counters.settled.spilled, spilled);
        }
        if lost > 0 {
            add(&self.counters.settled.lost, lost);
        }
        self.counters
            .producer
            .in_flight
            .fetch_sub(spilled + lost, Ordering::AcqRel);
        claimed.len()
    }
}

impl Shared {
    /// Spills the entries no sink has reported on (nothing to say per
    /// sink); those settled already are skipped. Returns how many this call
    /// settled.
    pub(crate) fn spill_unsent(&self, entries: &[Arc<Entry>], reason: SpillReason) -> usize {
        // Most batches end fully settled: a load each, no claim attempts.
        let pending: Vec<&Entry> = entries
            .iter()
            .map(|e| &**e)
            .filter(|e| e.is_pending())
            .collect();
        if pending.is_empty() {
            return 0;
        }
        self.spill(&pending, reason, &|_| Vec::new())
    }

    /// [`Shared::spill_unsent`] for a batch whose send was abandoned
    /// (deadline, teardown), counted as such.
    fn spill_abandoned(&self, entries: &[Arc<Entry>], reason: SpillReason) {
        let n = self.spill_unsent(entries, reason);
        if n > 0 {
            add(&self.counters.settled.abandoned, n as u64);
        }
    }

    /// The configured fallback, then stderr: where a report goes when the
    /// spool is absent or refused it. Lost only if both fail.
    pub(crate) fn spill_to_fallback(&self, reports: &[&Report]) -> (StatusKind, String) {
        match self.fallback.spill(reports) {
            Ok(()) => (StatusKind::Spilled, self.fallback.location()),
            Err(mut e) => {
                inc(&self.counters.settled.fallback_errors);
                self.rescue_orphans(&mut e);
                self.note(
                    "fallback",
                    &format!("failed, writing its reports to stderr: {e}"),
                );
                match Stderr.spill(reports) {
                    Ok(()) => (StatusKind::Spilled, Stderr.location()),
                    Err(e2) => (StatusKind::Lost, format!("{e}; then {e2}")),
                }
            }
        }
    }

    /// Reports the fallback held and can no longer keep (its file deleted,
    /// the path not restorable) go to stderr; the destinations follow them.
    /// If stderr fails too they are lost, counted and said.
    fn rescue_orphans(&self, e: &mut FallbackError) {
        let orphaned = e.take_orphaned();
        if orphaned.is_empty() {
            return;
        }
        let n = orphaned.len() as u64;
        let from = self.fallback.location();
        let reports: Vec<&Report> = orphaned.iter().collect();
        // Only what this reporter put there is in its counters.
        let ours = lock(&self.spilled_to)
            .iter()
            .find(|d| d.location == from)
            .map_or(0, |d| d.reports)
            .min(n);
        self.count_destination(&from, -(ours as i64));
        match Stderr.spill(&reports) {
            Ok(()) => {
                self.count_destination(&Stderr.location(), ours as i64);
                self.note(
                    "fallback",
                    &format!(
                        "{from} was deleted and cannot be restored: the {n} report(s) it held \
                         were written to stderr"
                    ),
                );
            }
            Err(e2) => {
                add(&self.counters.settled.lost, ours);
                let spilled = &self.counters.settled.spilled;
                let _ = spilled.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(s.saturating_sub(ours))
                });
                eprintln!(
                    "tidings: LOST {n} report(s): {from} was deleted and cannot be restored, \
                     and stderr failed ({e2}); ids: {}",
                    orphaned
                        .iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
    }
}

fn reason_code(r: SpillReason) -> u8 {
    match r {
        SpillReason::Deadline => 1,
        _ => 0,
    }
}

fn reason_from_code(c: u8) -> SpillReason {
    match c {
        1 => SpillReason::Deadline,
        _ => SpillReason::Teardown,
    }
}

/// A batch the worker is sending. Dropping it — normally after every
/// report in it was settled, or early when the deadline or a runtime
/// teardown drops the send — spills whatever is still pending.
pub(crate) struct InFlightBatch {
    shared: Arc<Shared>,
    id: u64,
    pub(crate) batch: Batch,
}

impl Drop for InFlightBatch {
    fn drop(&mut self) {
        {
            let mut reg = lock(&self.shared.registry);
            reg.batches.retain(|(id, _)| *id != self.id);
        }
        self.shared
            .spill_abandoned(&self.batch.entries, self.shared.stop_reason());
    }
}

// ----- sink health ----------------------------------------------------------

pub(crate) struct SinkState {
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) name: std::sync::Arc<str>,
    health: Mutex<Health>,
    down: AtomicBool,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    /// Reports this sink refused for good (not retried).
    refused: AtomicU64,
}

struct Health {
    failing_since: Option<Instant>,
    next_probe: Option<Instant>,
    last_error: Option<String>,
}

/// Whether a batch may be sent to a sink now.
pub(crate) enum Admit {
    /// The sink is up.
    Send,
    /// The sink is down and due for a probe: one attempt.
    Probe,
    /// The sink is down: skip it.
    Skip,
}

impl SinkState {
    fn new(sink: Box<dyn Sink>) -> Self {
        SinkState {
            name: std::sync::Arc::from(sink.name()),
            sink,
            health: Mutex::new(Health {
                failing_since: None,
                next_probe: None,
                last_error: None,
            }),
            down: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The sink refused a report for good (`error` is not retryable): the
    /// reason is its last error, and said once per reason.
    pub(crate) fn on_refusal(&self, shared: &Shared, error: &crate::sink::SinkError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let text = error.to_string();
        shared.note(&format!("sink '{}'", self.name), &text);
        lock(&self.health).last_error = Some(text);
    }

    pub(crate) fn admit(&self, now: Instant, probe_interval: Duration) -> Admit {
        if !self.down.load(Ordering::Acquire) {
            return Admit::Send;
        }
        let mut h = lock(&self.health);
        match h.next_probe {
            Some(t) if now < t => Admit::Skip,
            _ => {
                h.next_probe = Some(now + probe_interval);
                Admit::Probe
            }
        }
    }

    pub(crate) fn on_success(&self, shared: &Shared) {
        if self.down.load(Ordering::Acquire) || lock(&self.health).failing_since.is_some() {
            let mut h = lock(&self.health);
            h.failing_since = None;
            h.last_error = None;
            h.next_probe = None;
            if self.down.swap(false, Ordering::AcqRel) {
                shared.log(format_args!("sink '{}' recovered", self.name));
                // What was spooled while it was down can go now.
                if let Some(d) = &shared.durable {
                    d.mark_dirty();
                }
            }
        }
    }

    pub(crate) fn on_failure(&self, shared: &Shared, now: Instant, error: &str) {
        let policy = &shared.config.retry;
        let mut h = lock(&self.health);
        h.last_error = Some(error.to_owned());
        let since = *h.failing_since.get_or_insert(now);
        if !self.down.load(Ordering::Acquire)
            && now.saturating_duration_since(since) >= policy.down_after
        {
            self.down.store(true, Ordering::Release);
            h.next_probe = Some(now + policy.probe_interval);
            drop(h);
            shared.log(format_args!(
                "sink '{}' marked down after failing for {:?}; its reports are spilled \
                 until a probe succeeds. Last error: {error}",
                self.name, policy.down_after
            ));
        }
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            name: self.name.to_string(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
            last_error: lock(&self.health).last_error.clone(),
        }
    }
}
