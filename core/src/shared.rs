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
use crate::durable::Durable;
use crate::fallback::Fallback;
use crate::fold::FoldTable;
use crate::health::SinkState;
use crate::intake::Queue;
use crate::lifecycle::Lifecycle;
use crate::runtime::Runtime;
use crate::settle::Registry;
use crate::sink::Sink;
use crate::spill::SpillChain;
use crate::stats::{Counters, Stats};
use crate::sync::lock;

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
        // After the counters: a spill between the two reads shows in the
        // destinations, never missing from them.
        stats.spilled_to = lock(&self.spill_chain.spilled_to).clone();
        stats.diagnostics = self.diagnostics.list();
        stats
    }
}
