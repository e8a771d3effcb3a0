//! The lifecycle: `Running → Draining → Closed`, one atomic phase, and the
//! end of a reporter ([`Shared::finish`]), which happens exactly once.
//!
//! * **Running** — intake is open.
//! * **Draining** — [`Shared::begin_shutdown`] records the deadline (the
//!   first caller's), closes intake, and wakes the worker, which keeps
//!   delivering what was accepted until the queue is empty or the deadline.
//! * **Closed** — [`Shared::finish`] has spilled everything still queued or
//!   in flight, made the local stores durable (bounded by the deadline), and
//!   fixed the [`ShutdownSummary`]. Later and concurrent callers get that
//!   same summary.
//!
//! A teardown (runtime or last handle dropped) goes from Running straight
//! to Closed through the same `finish`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::entry::SpillReason;
use crate::shared::Shared;
use crate::stats::{Ending, ShutdownSummary};
use crate::sync::{lock, AtomicBool, AtomicU8, Mutex, Ordering};

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

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

pub(crate) struct Lifecycle {
    phase: AtomicU8,
    /// Notified on every phase change (wakes the worker).
    pub(crate) changed: Event,
    /// Notified once the summary exists.
    pub(crate) closed: Event,
    drain: Mutex<Option<Drain>>,
    summary: OnceLock<ShutdownSummary>,
    /// Held by `finish`: one ending at a time.
    closing: Mutex<()>,
    /// In-flight batches dropped from now on are spilled for the deadline
    /// (otherwise: for a teardown).
    past_deadline: AtomicBool,
}

#[derive(Clone, Copy)]
struct Drain {
    started: Instant,
    deadline: Instant,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle {
            phase: AtomicU8::new(RUNNING),
            changed: Event::new(),
            closed: Event::new(),
            drain: Mutex::new(None),
            summary: OnceLock::new(),
            closing: Mutex::new(()),
            past_deadline: AtomicBool::new(false),
        }
    }
}

impl Shared {
    pub(crate) fn phase(&self) -> Phase {
        match self.lifecycle.phase.load(Ordering::SeqCst) {
            RUNNING => Phase::Running,
            DRAINING => Phase::Draining,
            _ => Phase::Closed,
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.lifecycle.phase.load(Ordering::SeqCst) == RUNNING
    }

    pub(crate) fn summary(&self) -> Option<&ShutdownSummary> {
        self.lifecycle.summary.get()
    }

    /// Starts the shutdown protocol if it has not started: records the
    /// deadline, closes intake, wakes the worker. Returns the deadline in
    /// force (the first caller's), on the runtime's clock.
    pub(crate) fn begin_shutdown(&self, within: Duration) -> Instant {
        let mut drain = lock(&self.lifecycle.drain);
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
        let _ = self.lifecycle.phase.compare_exchange(
            RUNNING,
            DRAINING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // No report folds from now on (intake folds only while running);
        // every open fold window closes, its aggregate queued to be drained
        // like any report. A fold racing this lands in `finish`'s sweep.
        self.flush_folds(true);
        // Closing the queue is what makes the drain complete: once closed
        // and empty, the worker's receive ends; offers fail with `Closed`.
        self.queue.close();
        self.lifecycle.changed.notify(usize::MAX);
        deadline
    }

    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        lock(&self.lifecycle.drain).map(|d| d.deadline)
    }

    /// Why in-flight batches dropped from now on are spilled.
    pub(crate) fn stop_reason(&self) -> SpillReason {
        if self.lifecycle.past_deadline.load(Ordering::Relaxed) {
            SpillReason::Deadline
        } else {
            SpillReason::Teardown
        }
    }

    /// Sets it: the deadline or a teardown, the only two reasons a batch
    /// is abandoned.
    pub(crate) fn set_stop_reason(&self, reason: SpillReason) {
        debug_assert!(matches!(
            reason,
            SpillReason::Deadline | SpillReason::Teardown
        ));
        self.lifecycle
            .past_deadline
            .store(matches!(reason, SpillReason::Deadline), Ordering::Relaxed);
    }

    /// Ends the reporter: spills everything still queued or in flight,
    /// makes the local stores durable (bounded by the deadline), builds the
    /// summary, moves to `Closed`. Idempotent: later and concurrent callers
    /// get the first summary. Never awaits, never blocks on a sink: safe
    /// from `Drop`, from any thread, during runtime teardown.
    pub(crate) fn finish(&self, ending: Ending, reason: SpillReason) -> ShutdownSummary {
        let _closing = lock(&self.lifecycle.closing);
        if let Some(s) = self.lifecycle.summary.get() {
            return s.clone();
        }
        self.queue.close();
        self.set_stop_reason(reason);
        // Aggregates of windows still open: spilled (the queue is closed).
        self.flush_folds(true);
        for batch in self.stop_registering() {
            self.spill_abandoned(&batch.entries, reason);
        }
        self.spill_queue(reason);
        self.wait_for_claims(Duration::from_millis(100));
        let unsynced = self.sync_local_stores();
        let now = self.runtime.now();
        let drain = *lock(&self.lifecycle.drain);
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
        self.lifecycle.phase.store(CLOSED, Ordering::SeqCst);
        let _ = self.lifecycle.summary.set(summary.clone());
        self.lifecycle.closed.notify(usize::MAX);
        self.lifecycle.changed.notify(usize::MAX);
        summary
    }
}

impl Shared {
    /// Sends the aggregates of fold windows that have ended by now (every
    /// open one with `everything`): queued while intake is open, spilled
    /// once it is closed. Never refused.
    pub(crate) fn flush_folds(&self, everything: bool) {
        if !self.folds.enabled() {
            return;
        }
        let now = self.runtime.now();
        for aggregate in self.folds.take_closed(now, everything) {
            crate::intake::emit_aggregate(self, aggregate);
        }
    }
}
