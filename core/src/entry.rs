//! A tracked report, the [`Receipt`] a caller may wait on, and the
//! [`Outcome`] it resolves to.
//!
//! Every accepted report lives in one [`Entry`] whose state moves exactly
//! once from *pending* to a final state (delivered, spilled, lost), through a
//! compare-and-swap *claim*. Whoever wins the claim — the worker after a
//! successful send, the worker spilling a failed batch, a shutdown caller
//! forcing a spill at the deadline, a teardown — settles it and counts it;
//! everyone else backs off. That single transition is what makes
//! `accepted == delivered + spilled + lost + in_flight` exact.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener, Listener};

use crate::durable::RangeSet;
use crate::report::{Report, ReportId};
use crate::sink::{Ack, SinkError};
use crate::spool::RecordId;
use crate::sync::{lock, Arc, AtomicBool, AtomicU8, Mutex, Ordering};

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const DELIVERED: u8 = 2;
const SPILLED: u8 = 3;
const LOST: u8 = 4;
const FOLDED: u8 = 5;

pub(crate) struct Entry {
    pub(crate) report: Report,
    /// Its spool record when written ahead (see `durable`).
    pub(crate) record: Option<RecordId>,
    /// For an aggregate report: the write-ahead records of the reports it
    /// folded, released once it is delivered or spilled.
    pub(crate) folded_records: Option<Box<RangeSet>>,
    /// For a folded report: the aggregate that counts it (its outcome is
    /// made from this when asked for, not built for every fold).
    folded_into: Option<ReportId>,
    state: AtomicU8,
    /// True while a [`Receipt`] for this entry is alive: only then is a
    /// detailed [`Outcome`] built (it costs allocations per report).
    watched: AtomicBool,
    /// Boxed: built only for watched entries, and every `report()` writes
    /// the whole `Entry` (72 bytes inline would be a fifth of it).
    outcome: Mutex<Option<Box<Outcome>>>,
    done: Event,
}

impl Entry {
    pub(crate) fn new(report: Report) -> Self {
        Entry {
            report,
            record: None,
            folded_records: None,
            folded_into: None,
            state: AtomicU8::new(PENDING),
            watched: AtomicBool::new(true),
            outcome: Mutex::new(None),
            done: Event::new(),
        }
    }

    /// An entry whose report was written ahead to the spool as `record`.
    pub(crate) fn with_record(mut self, record: Option<RecordId>) -> Self {
        self.record = record;
        self
    }

    /// A report folded into the aggregate `into`: settled from the start.
    pub(crate) fn folded(report: Report, into: ReportId) -> Self {
        let mut e = Self::new(report);
        e.folded_into = Some(into);
        e.state = AtomicU8::new(FOLDED);
        e
    }

    /// An entry that belongs to no reporter (for [`crate::Batch::from_reports`]).
    pub(crate) fn untracked(report: Report) -> Self {
        let e = Self::new(report);
        e.watched.store(false, Ordering::Relaxed);
        e
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    pub(crate) fn is_watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// Takes the exclusive right to settle this entry. Exactly one caller
    /// ever gets `true`; it must then call [`Entry::finish`] promptly and
    /// without awaiting (shutdown waits for claimed entries to finish).
    pub(crate) fn claim(&self) -> bool {
        self.state
            .compare_exchange(PENDING, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records the final status of a claimed entry and wakes its receipt.
    pub(crate) fn finish(&self, outcome: Option<Outcome>, status: StatusKind) {
        if let Some(o) = outcome {
            *lock(&self.outcome) = Some(Box::new(o));
        }
        let final_state = match status {
            StatusKind::Delivered => DELIVERED,
            StatusKind::Spilled => SPILLED,
            StatusKind::Lost => LOST,
        };
        self.state.store(final_state, Ordering::Release);
        self.done.notify(usize::MAX);
    }

    fn settled_outcome(&self) -> Option<Outcome> {
        let state = self.state.load(Ordering::Acquire);
        if state < DELIVERED {
            return None;
        }
        if let Some(o) = lock(&self.outcome).as_deref() {
            return Some(o.clone());
        }
        // Settled while nobody watched (cannot happen for a live receipt,
        // kept total for safety): a minimal outcome.
        let status = match state {
            DELIVERED => Status::Delivered,
            SPILLED => Status::Spilled {
                reason: SpillReason::SinkFailed,
                to: String::new(),
            },
            FOLDED => Status::Folded {
                into: self.folded_into.unwrap_or(self.report.id),
            },
            _ => Status::Lost {
                reason: String::from("fallback failed"),
            },
        };
        Some(Outcome {
            id: self.report.id,
            status,
            sinks: Vec::new(),
        })
    }
}

/// The three final states, without detail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusKind {
    Delivered,
    Spilled,
    Lost,
}

/// What happened to one report, in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The report's id.
    pub id: ReportId,
    /// Where it ended.
    pub status: Status,
    /// What each sink did with it (empty when it never reached the sinks,
    /// e.g. spilled at the door because the queue was full).
    pub sinks: Vec<SinkOutcome>,
}

impl Outcome {
    /// True when every sink took the report.
    pub fn is_delivered(&self) -> bool {
        matches!(self.status, Status::Delivered)
    }

    /// True when the report went to the fallback.
    pub fn is_spilled(&self) -> bool {
        matches!(self.status, Status::Spilled { .. })
    }

    /// True when the report was folded into an aggregate.
    pub fn is_folded(&self) -> bool {
        matches!(self.status, Status::Folded { .. })
    }

    /// The result for the sink called `name`, if it was involved.
    pub fn sink(&self, name: &str) -> Option<&SinkResult> {
        self.sinks
            .iter()
            .find(|s| &*s.sink == name)
            .map(|s| &s.result)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "report {}: ", self.id)?;
        match &self.status {
            Status::Delivered => f.write_str("delivered")?,
            Status::Spilled { reason, to } => write!(f, "spilled to {to} ({reason})")?,
            Status::Lost { reason } => write!(f, "LOST ({reason})")?,
            Status::Folded { into } => write!(f, "folded into aggregate {into}")?,
        }
        for s in &self.sinks {
            write!(f, "; {}: {}", s.sink, s.result)?;
        }
        Ok(())
    }
}

/// Where a report ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Every sink took it.
    Delivered,
    /// It went to the local fallback (file, stderr, spool).
    Spilled {
        /// Why it was not delivered.
        reason: SpillReason,
        /// The fallback that holds it (e.g. a file path).
        to: String,
    },
    /// The fallback failed too. Counted in `lost`, printed to stderr.
    Lost {
        /// What failed.
        reason: String,
    },
    /// A repeat of a fingerprint beyond the folding threshold: counted in
    /// `folded` and in the aggregate report `into`, which is delivered,
    /// spilled or lost like any report (see [`crate::fold`]).
    Folded {
        /// The aggregate report that counts it.
        into: ReportId,
    },
}

/// Why a report was spilled rather than delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SpillReason {
    /// The queue was full and the overflow policy is `Spill`.
    Overflow,
    /// It arrived while shutting down or after (late policy `Spill`).
    Closed,
    /// A sink failed it (retries exhausted, or a permanent error).
    SinkFailed,
    /// A sink was marked down, so it was not tried.
    SinkDown,
    /// Still queued or in flight at the shutdown deadline.
    Deadline,
    /// The worker or the last handle went away without a shutdown
    /// (runtime dropped, thread ended).
    Teardown,
}

impl fmt::Display for SpillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpillReason::Overflow => "queue full",
            SpillReason::Closed => "reported after shutdown began",
            SpillReason::SinkFailed => "sink failed",
            SpillReason::SinkDown => "sink down",
            SpillReason::Deadline => "shutdown deadline reached",
            SpillReason::Teardown => "worker or last handle dropped without shutdown",
        })
    }
}

/// One sink's part of an [`Outcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkOutcome {
    /// The sink's name.
    pub sink: std::sync::Arc<str>,
    /// What it did.
    pub result: SinkResult,
}

/// What one sink did with one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkResult {
    /// Delivered, with what the sink could say about it.
    Delivered(Ack),
    /// Failed; the last error after retries.
    Failed(SinkError),
    /// Not tried because the sink was down.
    Skipped,
    /// The attempt was abandoned (shutdown deadline, or the report was
    /// settled elsewhere while the attempt ran).
    Abandoned,
}

impl fmt::Display for SinkResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkResult::Delivered(Ack::Stored {
                stream,
                sequence,
                duplicate,
            }) => write!(
                f,
                "stored in {stream} #{sequence}{}",
                if *duplicate { " (duplicate)" } else { "" }
            ),
            SinkResult::Delivered(Ack::Sent) => f.write_str("sent (no server ack)"),
            SinkResult::Delivered(Ack::Written) => f.write_str("written"),
            SinkResult::Failed(e) => write!(f, "failed: {e}"),
            SinkResult::Skipped => f.write_str("skipped (sink down)"),
            SinkResult::Abandoned => f.write_str("abandoned"),
        }
    }
}

/// A claim on the outcome of one accepted report.
///
/// A receipt is both a [`Future`] (`receipt.await` in async code) and a
/// blocking waiter ([`Receipt::wait`] in sync code). It is optional:
/// dropping it changes nothing about the report, which stays tracked and is
/// still delivered or spilled. While it is alive it keeps its report in
/// memory, so drop receipts you do not mean to wait on.
///
/// ```
/// # use tidings_core::{Receipt, Outcome};
/// fn log_outcome(receipt: Receipt) {
///     match receipt.wait(std::time::Duration::from_secs(5)) {
///         Ok(outcome) => println!("{outcome}"),
///         Err(receipt) => println!("report {} still pending", receipt.id()),
///     }
/// }
/// ```
pub struct Receipt {
    entry: Arc<Entry>,
    listener: Option<EventListener>,
}

impl Receipt {
    pub(crate) fn new(entry: Arc<Entry>) -> Self {
        Receipt {
            entry,
            listener: None,
        }
    }

    /// The report's id.
    pub fn id(&self) -> ReportId {
        self.entry.report.id
    }

    /// The outcome if the report is settled, without waiting.
    pub fn try_outcome(&self) -> Option<Outcome> {
        self.entry.settled_outcome()
    }

    /// Blocks the calling thread until the report is settled or `timeout`
    /// passes; on timeout the receipt is handed back so the caller can keep
    /// waiting. Do not call from inside an async task (use `.await`).
    pub fn wait(self, timeout: Duration) -> Result<Outcome, Receipt> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => Ok(self.wait_forever()),
        }
    }

    /// Like [`Receipt::wait`] with an absolute deadline.
    pub fn wait_deadline(self, deadline: Instant) -> Result<Outcome, Receipt> {
        loop {
            if let Some(o) = self.entry.settled_outcome() {
                return Ok(o);
            }
            let listener = self.entry.done.listen();
            if let Some(o) = self.entry.settled_outcome() {
                return Ok(o);
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.entry.settled_outcome().ok_or(self);
            }
        }
    }

    fn wait_forever(self) -> Outcome {
        loop {
            if let Some(o) = self.entry.settled_outcome() {
                return o;
            }
            let listener = self.entry.done.listen();
            if let Some(o) = self.entry.settled_outcome() {
                return o;
            }
            listener.wait();
        }
    }
}

impl Future for Receipt {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        loop {
            if let Some(o) = self.entry.settled_outcome() {
                self.listener = None;
                return Poll::Ready(o);
            }
            match self.listener.as_mut() {
                None => {
                    // Listen, then re-check before sleeping (no lost wake-up).
                    self.listener = Some(self.entry.done.listen());
                }
                Some(listener) => {
                    std::task::ready!(Pin::new(listener).poll(cx));
                    self.listener = None;
                }
            }
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        self.entry.watched.store(false, Ordering::Relaxed);
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("id", &self.id())
            .field("settled", &!self.entry.is_pending())
            .finish()
    }
}
