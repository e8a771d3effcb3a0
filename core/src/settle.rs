//! Batches in flight, and settling reports as delivered.
//!
//! The worker registers every batch it takes off the queue
//! ([`Shared::register`]); the registration is an [`InFlightBatch`] whose
//! `Drop` spills whatever of the batch is still pending — after a normal
//! send (nothing left), at the deadline or at a runtime teardown (the send
//! was dropped mid-way). [`Shared::finish`] spills the registered batches
//! of a forced ending itself and stops new registrations, so a batch in the
//! worker's hands is never missed.
//!
//! Settling goes through [`Entry::claim`]: when two of these paths race,
//! exactly one settles and counts each report.

use std::time::{Duration, Instant};

use crate::entry::{Outcome, SinkOutcome, Status, StatusKind};
use crate::shared::Shared;
use crate::sink::Batch;
use crate::spool::RecordId;
use crate::stats::add;
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};

#[derive(Default)]
pub(crate) struct Registry {
    next_batch: AtomicU64,
    batches: Mutex<Batches>,
}

#[derive(Default)]
struct Batches {
    finishing: bool,
    list: Vec<(u64, Batch)>,
}

impl Shared {
    /// Registers a batch the worker took off the queue. Returns `None` (and
    /// spills the batch) once finishing has begun.
    pub(crate) fn register(shared: &Arc<Shared>, batch: Batch) -> Option<InFlightBatch> {
        let id = shared.registry.next_batch.fetch_add(1, Ordering::Relaxed);
        {
            let mut reg = lock(&shared.registry.batches);
            if !reg.finishing {
                reg.list.push((id, batch.clone()));
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

    /// Refuses registrations from now on; returns the batches registered.
    pub(crate) fn stop_registering(&self) -> Vec<Batch> {
        let mut reg = lock(&self.registry.batches);
        reg.finishing = true;
        reg.list.iter().map(|(_, b)| b.clone()).collect()
    }

    /// Settles as delivered the reports of `batch` at `indices` that nobody
    /// settled first, counts them once for the whole batch (two shared
    /// atomics per batch, not per report: `in_flight` shares its cache line
    /// with every producer), and lets the spool release the written-ahead
    /// records of those reports. `sinks(i)` is report `i`'s per-sink
    /// outcome, built only for reports someone watches.
    pub(crate) fn settle_delivered(
        &self,
        batch: &Batch,
        indices: impl Iterator<Item = usize>,
        sinks: &dyn Fn(usize) -> Vec<SinkOutcome>,
    ) {
        let mut delivered = 0u64;
        let mut records: Vec<RecordId> = Vec::new();
        for i in indices {
            let entry = &batch.entries[i];
            if !entry.claim() {
                continue;
            }
            let outcome = entry.is_watched().then(|| Outcome {
                id: entry.report.id,
                status: Status::Delivered,
                sinks: sinks(i),
            });
            entry.finish(outcome, StatusKind::Delivered);
            delivered += 1;
            records.extend(entry.record);
            self.release_folded(entry);
        }
        if delivered > 0 {
            add(&self.counters.settled.delivered, delivered);
            self.counters
                .producer
                .in_flight
                .fetch_sub(delivered, Ordering::AcqRel);
        }
        // Written ahead and now delivered: the spool may let them go.
        if let Some(d) = self.durable() {
            d.ack(&records);
        }
    }

    /// An aggregate report was delivered or spilled: the write-ahead
    /// records of the reports it folded may go (see `fold.rs`).
    pub(crate) fn release_folded(&self, entry: &crate::entry::Entry) {
        if let (Some(records), Some(d)) = (&entry.folded_records, self.durable()) {
            d.ack_set(records);
        }
    }

    /// Waits (bounded) for entries claimed by someone else to be settled:
    /// claims are held only across synchronous code, so this is short.
    pub(crate) fn wait_for_claims(&self, bound: Duration) {
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
            let mut reg = lock(&self.shared.registry.batches);
            reg.list.retain(|(id, _)| *id != self.id);
        }
        self.shared
            .spill_abandoned(&self.batch.entries, self.shared.stop_reason());
    }
}
