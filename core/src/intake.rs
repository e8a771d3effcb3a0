//! Intake: the one way into a reporter.
//!
//! Every entry point — [`Reporter::report`](crate::Reporter::report), its
//! blocking wait for room under [`Overflow::Block`], and
//! [`Reporter::report_async`](crate::Reporter::report_async) — goes through
//! one [`Admission`]. An admission counts its report *in flight* the moment
//! it is created, before anyone else can see the report, and then ends in
//! exactly one of three ways, each of which settles the counters itself:
//!
//! * **queued** — offered to the queue and taken: counted *accepted*; from
//!   here the worker settles it;
//! * **spilled at the door** (queue full with [`Overflow::Spill`], or intake
//!   closed with [`Late::Spill`]): counted *accepted* and settled as
//!   *spilled* at once;
//! * **refused** ([`Overflow::Reject`], a [`Overflow::Block`] timeout,
//!   [`Late::Refuse`]): the in-flight count is taken back, a write-ahead
//!   record released, and the report handed back in [`Refused`].
//!
//! An admission dropped without ending (a panic between two of these lines)
//! takes its counts back in `Drop`: the identity
//! `accepted == delivered + spilled + lost + in_flight` does not depend on
//! every caller getting every path right. The queue itself ([`Queue`]) is a
//! bounded async-channel with both a sync and an async end, usable from any
//! thread.

use std::borrow::Cow;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use async_channel::{Receiver, Sender, TrySendError};
use event_listener::{Event, EventListener, Listener};
use futures::future::{self, Either};

use crate::config::{Late, Overflow};
use crate::durable::SpoolMode;
use crate::entry::{Entry, Receipt, SpillReason};
use crate::fold::{Aggregate, Decision};
use crate::report::{Fingerprint, Report};
use crate::shared::Shared;
use crate::spool::RecordId;
use crate::stats::inc;
use crate::sync::{Arc, Ordering};

/// The bounded queue between intake and the worker.
pub(crate) struct Queue {
    tx: Sender<Arc<Entry>>,
    rx: Receiver<Arc<Entry>>,
    /// Notified when the worker takes reports off the queue (room for
    /// `Overflow::Block` waiters).
    room: Event,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = async_channel::bounded(capacity);
        Queue {
            tx,
            rx,
            room: Event::new(),
        }
    }

    /// Closes intake: offers fail from now on; what is queued stays until
    /// taken.
    pub(crate) fn close(&self) {
        self.tx.close();
    }

    /// The worker's end.
    pub(crate) fn receiver(&self) -> Receiver<Arc<Entry>> {
        self.rx.clone()
    }

    /// Takes one queued report without waiting.
    pub(crate) fn try_take(&self) -> Option<Arc<Entry>> {
        self.rx.try_recv().ok()
    }

    /// Says that `n` reports were taken off (wakes blocked reporters).
    pub(crate) fn took(&self, n: usize) {
        self.room.notify(n);
    }
}

/// Why a report was refused at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusedReason {
    /// The queue was full and the overflow policy is [`Overflow::Reject`].
    Full,
    /// The queue stayed full for the whole [`Overflow::Block`] timeout.
    Timeout,
    /// Shutdown had begun (or finished) and the late policy is
    /// [`Late::Refuse`].
    Closed,
    /// The `before_send` hook dropped it
    /// ([`ReporterBuilder::before_send`](crate::ReporterBuilder::before_send)).
    Filtered,
}

/// A report refused at the door, handed back to the caller.
///
/// Nothing is lost by a refusal: the caller gets the report back
/// ([`Refused::into_report`]) and decides.
pub struct Refused {
    reason: RefusedReason,
    // Boxed: keeps `Result<Receipt, Refused>` small on the hot path.
    report: Box<Report>,
}

impl Refused {
    /// Why it was refused.
    pub fn reason(&self) -> RefusedReason {
        self.reason
    }

    /// The report, back to the caller.
    pub fn into_report(self) -> Report {
        *self.report
    }

    /// The report, borrowed.
    pub fn report(&self) -> &Report {
        &self.report
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("reason", &self.reason)
            .field("report", &self.report.id)
            .finish()
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            RefusedReason::Full => "the queue is full",
            RefusedReason::Timeout => "the queue stayed full for the whole block timeout",
            RefusedReason::Closed => "the reporter is shutting down or closed",
            RefusedReason::Filtered => "the before_send hook dropped it",
        };
        write!(f, "report {} refused: {why}", self.report.id)
    }
}

impl std::error::Error for Refused {}

/// A report on its way in; see the [module docs](self).
pub(crate) struct Admission<'a> {
    shared: &'a Shared,
    /// `None` once ended.
    entry: Option<Arc<Entry>>,
}

/// Why an offer to the queue did not take.
enum Turned {
    Full,
    Closed,
}

impl<'a> Admission<'a> {
    /// Admits `entry` (prepared, written ahead where it applies), counted
    /// in flight before anyone else can see it: in_flight never
    /// underflows.
    fn new(shared: &'a Shared, entry: Entry) -> Self {
        shared
            .counters
            .producer
            .in_flight
            .fetch_add(1, Ordering::AcqRel);
        Admission {
            shared,
            entry: Some(Arc::new(entry)),
        }
    }

    fn entry(&self) -> &Arc<Entry> {
        self.entry
            .as_ref()
            .expect("an admission is used only until it ends")
    }

    /// Offers the report to the queue; queued means accepted.
    fn offer(mut self) -> Result<Receipt, (Self, Turned)> {
        match self.shared.queue.tx.try_send(self.entry().clone()) {
            Ok(()) => {
                let entry = self.entry.take().expect("not ended");
                inc(&self.shared.counters.producer.accepted);
                Ok(Receipt::new(entry))
            }
            // The refused clone is dropped before this returns: the
            // admission's Arc is unique again.
            Err(TrySendError::Full(_)) => Err((self, Turned::Full)),
            Err(TrySendError::Closed(_)) => Err((self, Turned::Closed)),
        }
    }

    /// Accepted, and spilled at once (it never reaches the queue).
    fn spill(mut self, reason: SpillReason) -> Receipt {
        let entry = self.entry.take().expect("not ended");
        inc(&self.shared.counters.producer.accepted);
        self.shared.spill(&[&entry], reason, &|_| Vec::new());
        Receipt::new(entry)
    }

    /// Handed back: the in-flight count and any write-ahead record are
    /// taken back.
    fn refuse(mut self, reason: RefusedReason) -> Refused {
        let entry = self.entry.take().expect("not ended");
        withdraw(self.shared, &entry);
        inc(&self.shared.counters.producer.refused);
        Refused {
            reason,
            report: Box::new(unwrap_report(entry)),
        }
    }

    /// Offers again while waiting for room: `Err` (the admission back) when
    /// the queue is still full.
    fn offer_again(self) -> Result<Result<Receipt, Refused>, Self> {
        match self.offer() {
            Ok(receipt) => Ok(Ok(receipt)),
            Err((admission, Turned::Closed)) => Ok(admission.late()),
            Err((admission, Turned::Full)) => Err(admission),
        }
    }

    /// The last offer once the wait for room timed out: room may have
    /// appeared just now; still full is a refusal.
    fn last_offer(self) -> Result<Receipt, Refused> {
        self.offer_again()
            .unwrap_or_else(|admission| Err(admission.refuse(RefusedReason::Timeout)))
    }

    /// Intake is closed (shutdown began): the late policy.
    fn late(self) -> Result<Receipt, Refused> {
        inc(&self.shared.counters.producer.late);
        match self.shared.config.late {
            Late::Refuse => Err(self.refuse(RefusedReason::Closed)),
            Late::Spill => Ok(self.spill(SpillReason::Closed)),
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            withdraw(self.shared, &entry);
        }
    }
}

/// What happens before admission: the `before_send` hook may change or
/// drop the report. A panicking hook lets the original through.
fn screen(shared: &Shared, mut report: Report) -> Result<Report, Refused> {
    let Some(hook) = &shared.config.before_send else {
        return Ok(report);
    };
    let original = report.clone();
    match std::panic::catch_unwind(AssertUnwindSafe(|| (hook.0)(&mut report))) {
        Ok(true) => Ok(report),
        Ok(false) => {
            inc(&shared.counters.producer.filtered);
            Err(Refused {
                reason: RefusedReason::Filtered,
                report: Box::new(report),
            })
        }
        Err(_) => {
            inc(&shared.counters.producer.before_send_panics);
            shared.note(
                "before_send",
                "the hook panicked; the report went on unchanged",
            );
            Ok(original)
        }
    }
}

/// What intake does to every report before accepting it: makes it
/// readable back from every format ([`Report::normalize`]), scrubs it,
/// fills in the configured source, gives it a fingerprint when folding is
/// on — and writes it ahead to the spool in write-ahead mode while intake
/// is open.
fn prepare(shared: &Shared, mut report: Report) -> (Report, Option<RecordId>) {
    report.normalize();
    shared.config.scrub.scrub(&mut report);
    let config = &shared.config;
    if report.source.service.is_empty() && !config.service.is_empty() {
        report.source.service = Cow::Borrowed(config.service);
    }
    if report.source.instance.is_empty() && !config.instance.is_empty() {
        report.source.instance = Cow::Borrowed(config.instance);
    }
    // After the source: the service is part of it.
    if report.fingerprint.is_none() && shared.folds.enabled() {
        report.fingerprint = Some(Fingerprint::of(&report));
    }
    let record = if shared.is_running() {
        write_ahead(shared, &report)
    } else {
        None
    };
    (report, record)
}

/// Writes `report` ahead to the spool in write-ahead mode. A refusal
/// (full, disk full) is said once per reason and counted by the spool;
/// the report goes on without a record rather than being refused.
fn write_ahead(shared: &Shared, report: &Report) -> Option<RecordId> {
    let d = shared.durable()?;
    if d.mode != SpoolMode::WriteAhead {
        return None;
    }
    match d.write_ahead(report) {
        Ok(id) => Some(id),
        Err(e) => {
            shared.note(
                "spool",
                &format!("write-ahead failed; reports continue without a record: {e}"),
            );
            None
        }
    }
}

/// Takes back an admission that did not end in acceptance: its in-flight
/// count, and its write-ahead record (the caller has the report back, or it
/// never left the caller).
fn withdraw(shared: &Shared, entry: &Entry) {
    shared
        .counters
        .producer
        .in_flight
        .fetch_sub(1, Ordering::AcqRel);
    if let (Some(record), Some(d)) = (entry.record, shared.durable()) {
        d.ack(&[record]);
    }
}

/// Screens, prepares and admits `report`, folding it when it is a repeat
/// beyond the threshold. `Ok` is a receipt already settled (folded);
/// `Err` the admission to offer to the queue. The fold is decided before
/// the report is tracked, so a folded report costs no queue slot, no
/// in-flight count and no outcome of its own.
fn admit(shared: &Shared, report: Report) -> Result<Result<Receipt, Admission<'_>>, Refused> {
    let report = screen(shared, report)?;
    let (report, record) = prepare(shared, report);
    let fingerprint = report
        .fingerprint
        .filter(|_| shared.folds.enabled() && shared.is_running());
    if let Some(fingerprint) = fingerprint {
        let now = shared.runtime.now();
        let (folded_into, closed) = match shared.folds.decide(&report, fingerprint, now, record) {
            Decision::Pass(closed) => (None, closed),
            Decision::Folded(into, closed) => (Some(into), closed),
            Decision::TableFull => {
                inc(&shared.counters.producer.fold_table_full);
                if shared.folds.first_time_full() {
                    shared.note(
                        "folding",
                        "the fold table is full: reports with new fingerprints go out unfolded",
                    );
                }
                (None, None)
            }
        };
        if let Some(aggregate) = closed {
            emit_aggregate(shared, aggregate);
        }
        if let Some(into) = folded_into {
            // Settled as it is made: its write-ahead record stays with the
            // aggregate, which releases it.
            let counters = &shared.counters.producer;
            inc(&counters.accepted);
            inc(&counters.folded);
            return Ok(Ok(Receipt::new(Arc::new(Entry::folded(report, into)))));
        }
    }
    Ok(Err(Admission::new(
        shared,
        Entry::new(report).with_record(record),
    )))
}

/// Sends an aggregate report (folded repeats, see [`crate::fold`]) like
/// any report, except that it is never refused: when the queue is full or
/// closed it is spilled. The records of the reports it folded are released
/// once it is delivered or spilled.
pub(crate) fn emit_aggregate(shared: &Shared, aggregate: Aggregate) {
    let (report, records) = aggregate.into_report();
    let (report, record) = prepare(shared, report);
    inc(&shared.counters.producer.aggregates);
    let mut entry = Entry::new(report).with_record(record);
    if !records.is_empty() {
        entry.folded_records = Some(Box::new(records));
    }
    let admission = Admission::new(shared, entry);
    match admission.offer() {
        Ok(_receipt) => {}
        Err((admission, Turned::Full)) => {
            inc(&shared.counters.producer.overflowed);
            admission.spill(SpillReason::Overflow);
        }
        Err((admission, Turned::Closed)) => {
            admission.spill(SpillReason::Closed);
        }
    }
}

/// `report()`: never waits, except under [`Overflow::Block`], on this
/// thread, at most for its timeout.
pub(crate) fn report(shared: &Shared, report: Report) -> Result<Receipt, Refused> {
    let admission = match admit(shared, report)? {
        Ok(folded) => return Ok(folded),
        Err(admission) => admission,
    };
    match admission.offer() {
        Ok(receipt) => Ok(receipt),
        Err((admission, Turned::Closed)) => admission.late(),
        Err((admission, Turned::Full)) => {
            inc(&shared.counters.producer.overflowed);
            match shared.config.overflow {
                Overflow::Spill => Ok(admission.spill(SpillReason::Overflow)),
                Overflow::Reject => Err(admission.refuse(RefusedReason::Full)),
                Overflow::Block { timeout } => {
                    inc(&shared.counters.producer.blocked);
                    wait_for_room(admission, Instant::now().checked_add(timeout))
                }
            }
        }
    }
}

/// Blocks the thread until the queue has room (offers again each time the
/// worker takes reports off), intake closes, or `deadline` passes.
fn wait_for_room(
    mut admission: Admission<'_>,
    deadline: Option<Instant>,
) -> Result<Receipt, Refused> {
    loop {
        let listener = admission.shared.queue.room.listen();
        admission = match admission.offer_again() {
            Ok(result) => return result,
            Err(admission) => admission,
        };
        let woke = match deadline {
            Some(d) => listener.wait_deadline(d).is_some(),
            None => {
                listener.wait();
                true
            }
        };
        if !woke {
            return admission.last_offer();
        }
    }
}

/// `report_async()`: under [`Overflow::Block`] waits for room on the
/// runtime's clock without blocking the thread; otherwise `report()`.
pub(crate) async fn report_async(shared: &Shared, report: Report) -> Result<Receipt, Refused> {
    let Overflow::Block { timeout } = shared.config.overflow else {
        return self::report(shared, report);
    };
    let mut admission = match admit(shared, report)? {
        Ok(folded) => return Ok(folded),
        Err(admission) => admission,
    };
    let mut timer = shared.runtime.sleep(timeout);
    let mut counted = false;
    loop {
        let listener: EventListener = shared.queue.room.listen();
        admission = match admission.offer_again() {
            Ok(result) => return result,
            Err(admission) => admission,
        };
        if !counted {
            counted = true;
            inc(&shared.counters.producer.overflowed);
            inc(&shared.counters.producer.blocked);
        }
        match future::select(listener, timer).await {
            Either::Left(((), t)) => timer = t,
            Either::Right(((), _)) => return admission.last_offer(),
        }
    }
}

fn unwrap_report(entry: Arc<Entry>) -> Report {
    match Arc::try_unwrap(entry) {
        Ok(e) => e.report,
        // Only reachable if the channel kept a clone, which it does not
        // after refusing; clone rather than panic.
        Err(shared) => shared.report.clone(),
    }
}
