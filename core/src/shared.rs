//! What every handle and the worker share, and where a report can be.
//!
//! Each job has a room of its own, and this file holds them together:
//!
//! | room | job |
//! |---|---|
//! | `intake.rs` | the one way in: admission, the bounded queue, overflow and late policies |
//! | `lifecycle.rs` | `Running → Draining → Closed`, the deadline, the one ending (`finish`) |
//! | `worker.rs` | taking batches off the queue, sending them with retry, the shutdown steps |
//! | `settle.rs` | batches in flight, settling reports as delivered |
//! | `spill.rs` | the spool → fallback → stderr chain, where each spilled report went |
//! | `health.rs` | each sink's up/down state, probes, refusals |
//! | `fold.rs` | storms: repeats of one fingerprint folded into counted aggregates |
//! | `replay.rs` | giving the sinks back what the spool holds |
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
//! 3. a registered in-flight batch — spilled by
//!    [`InFlightBatch`](crate::settle::InFlightBatch)'s `Drop` (deadline,
//!    runtime teardown) or by [`Shared::finish`] (forced).
//!
//! Settling goes through [`Entry::claim`](crate::entry::Entry), so when two
//! of these paths race, exactly one settles and counts the report.

use crate::config::Config;
use crate::diagnostics::Diagnostics;
use crate::durable::{Durable, SpoolMode};
use crate::entry::Entry;
use crate::fallback::Fallback;
use crate::fold::FoldTable;
use crate::health::SinkState;
use crate::intake::Queue;
use crate::lifecycle::Lifecycle;
use crate::report::Fingerprint;
use crate::report::Report;
use crate::runtime::Runtime;
use crate::settle::Registry;
use crate::sink::Sink;
use crate::spill::SpillChain;
use crate::spool::RecordId;
use crate::stats::{Counters, Stats};
use crate::sync::{lock, Ordering};

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) queue: Queue,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) registry: Registry,
    pub(crate) sinks: Vec<SinkState>,
    pub(crate) spill_chain: SpillChain,
    /// Repeats being folded, per fingerprint (see `fold.rs`).
    pub(crate) folds: FoldTable,
    /// tidings' own messages: once per reason.
    pub(crate) diagnostics: Diagnostics,
    pub(crate) runtime: std::sync::Arc<dyn Runtime>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        sinks: Vec<Box<dyn Sink>>,
        fallback: Box<dyn Fallback>,
        durable: Option<Durable>,
        runtime: std::sync::Arc<dyn Runtime>,
    ) -> Self {
        Shared {
            counters: Counters::default(),
            queue: Queue::new(config.capacity),
            lifecycle: Lifecycle::new(),
            registry: Registry::default(),
            sinks: sinks.into_iter().map(SinkState::new).collect(),
            spill_chain: SpillChain::new(fallback, durable),
            folds: FoldTable::new(config.folding),
            diagnostics: Diagnostics::new(config.log_to_stderr),
            runtime,
            config,
        }
    }

    /// The spool, when one is configured.
    pub(crate) fn durable(&self) -> Option<&Durable> {
        self.spill_chain.durable.as_deref()
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
        let mut stats = self.counters.snapshot(
            sinks,
            self.spill_chain.location(),
            self.durable().map(Durable::summary),
        );
        stats.spilled_to = lock(&self.spill_chain.spilled_to).clone();
        stats.diagnostics = self.diagnostics.list();
        stats
    }

    /// What intake does to every report before accepting it: makes it
    /// readable back from every format ([`Report::normalize`]), fills in the
    /// configured source, and gives it a fingerprint when folding is on.
    pub(crate) fn prepare(&self, report: &mut Report) {
        report.normalize();
        self.config.scrub.scrub(report);
        if report.source.service.is_empty() && !self.config.service.is_empty() {
            report.source.service = std::borrow::Cow::Borrowed(self.config.service);
        }
        if report.source.instance.is_empty() && !self.config.instance.is_empty() {
            report.source.instance = std::borrow::Cow::Borrowed(self.config.instance);
        }
        // After the source: the service is part of it.
        if report.fingerprint.is_none() && self.folds.enabled() {
            report.fingerprint = Some(Fingerprint::of(report));
        }
    }

    /// Writes `report` ahead to the spool in write-ahead mode. A refusal
    /// (full, disk full) is said once per reason and counted by the spool;
    /// the report goes on without a record rather than being refused.
    pub(crate) fn write_ahead(&self, report: &Report) -> Option<RecordId> {
        let d = self.durable()?;
        if d.mode != SpoolMode::WriteAhead {
            return None;
        }
        match d.write_ahead(report) {
            Ok(id) => Some(id),
            Err(e) => {
                self.note(
                    "spool",
                    &format!("write-ahead failed; reports continue without a record: {e}"),
                );
                None
            }
        }
    }

    /// Takes back an admission that did not end in acceptance: its
    /// in-flight count, and its write-ahead record (the caller has the
    /// report back, or it never left the caller).
    pub(crate) fn withdraw(&self, entry: &Entry) {
        self.counters
            .producer
            .in_flight
            .fetch_sub(1, Ordering::AcqRel);
        if let (Some(record), Some(d)) = (entry.record, self.durable()) {
            d.ack(&[record]);
        }
    }
}
