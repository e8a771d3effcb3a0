//! The [`Reporter`] handle: cheap to clone, `Send + Sync`, usable from any
//! thread, async task or `Drop` impl; and the [`Observer`], a view that
//! does not keep the reporter open.
//!
//! Everything a handle does is delegated to a room of its own: reporting to
//! intake (`intake.rs`), shutdown to the lifecycle (`lifecycle.rs`). What is
//! here is the handle itself, and the rule that dropping the **last**
//! handle without a shutdown spills whatever is queued or in flight.

use std::fmt;
use std::time::{Duration, Instant};

use event_listener::Listener;
use futures::future::{self, Either};

use crate::builder::ReporterBuilder;
use crate::entry::{Receipt, SpillReason};
use crate::intake::{self, Refused};
use crate::lifecycle::Phase;
use crate::report::Report;
use crate::shared::Shared;
use crate::stats::{Ending, ShutdownSummary, Stats};
use crate::sync::Arc;

#[cfg(doc)] // only named by the docs
use crate::config::{Late, Overflow};

/// The handle programs report through. Cheap to clone, `Send + Sync`.
///
/// * [`report`](Reporter::report) never blocks (unless the overflow policy
///   is [`Overflow::Block`]), never panics, needs no runtime context, and
///   works from sync code, async code, any thread and `Drop` impls.
/// * [`shutdown`](Reporter::shutdown) /
///   [`shutdown_blocking`](Reporter::shutdown_blocking) run the shutdown
///   protocol: close intake, drain, spill what is left at the deadline,
///   close the sinks, return the summary.
/// * Dropping the **last** handle without shutting down spills whatever is
///   queued or in flight to the fallback, synchronously. Adapters'
///   start-up guards hold a handle and run the full protocol instead.
#[derive(Clone)]
pub struct Reporter {
    handle: std::sync::Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.shared.summary().is_none() {
            self.shared.finish(Ending::Teardown, SpillReason::Teardown);
        }
    }
}

impl Reporter {
    /// A builder with the defaults.
    pub fn builder() -> ReporterBuilder {
        ReporterBuilder::default()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Reporter {
        Reporter {
            handle: std::sync::Arc::new(Handle { shared }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    #[cfg(all(test, loom))]
    pub(crate) fn handle_shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Reports `report`.
    ///
    /// Returns a [`Receipt`] for an accepted report — queued for the sinks,
    /// or already spilled to the fallback when the queue was full
    /// ([`Overflow::Spill`]) or shutdown had begun ([`Late::Spill`]). The
    /// receipt may be dropped: the report is tracked regardless.
    ///
    /// Returns [`Refused`], with the report, when the policy says refuse
    /// ([`Overflow::Reject`], [`Overflow::Block`] timing out,
    /// [`Late::Refuse`]).
    ///
    /// Never panics and needs no runtime context. Blocks only under
    /// [`Overflow::Block`], at most for its timeout; in async code prefer
    /// [`Reporter::report_async`] with that policy.
    pub fn report(&self, report: Report) -> Result<Receipt, Refused> {
        intake::report(self.shared(), report)
    }

    /// Like [`Reporter::report`], but under [`Overflow::Block`] waits for
    /// room asynchronously (on the runtime's clock) instead of blocking the
    /// thread. Under the other policies it is `report()`.
    pub async fn report_async(&self, report: Report) -> Result<Receipt, Refused> {
        intake::report_async(self.shared(), report).await
    }

    /// A snapshot of the counters. At any quiescent moment
    /// `accepted == delivered + spilled + lost + in_flight`
    /// ([`Stats::is_balanced`]).
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// Where the reporter is in its life.
    pub fn phase(&self) -> Phase {
        self.shared().phase()
    }

    /// The deadline configured for shutdowns triggered without one.
    pub fn default_shutdown_deadline(&self) -> Duration {
        self.shared().config.shutdown_deadline
    }

    /// Runs the shutdown protocol and waits for it asynchronously:
    /// close intake → drain the queue and in-flight sends → at `deadline`,
    /// abandon what is still in flight and spill it → flush and close the
    /// sinks → return the [`ShutdownSummary`].
    ///
    /// Returns within `deadline` plus about twice the close grace, even when
    /// a sink never returns or the worker cannot run (then this call spills
    /// everything itself). Idempotent: concurrent and later callers get the
    /// same summary; the first caller's deadline applies. Reports arriving
    /// meanwhile follow the [`Late`] policy.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownSummary {
        let shared = self.shared();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        let hard = shared.begin_shutdown(deadline);
        let backstop = hard + shared.config.close_grace * 2;
        let listener = shared.lifecycle.closed.listen();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        match future::select(listener, shared.runtime.sleep_until(backstop)).await {
            Either::Left(_) => {}
            Either::Right(_) => {
                shared.finish(Ending::Forced, SpillReason::Deadline);
            }
        }
        self.summary_now()
    }

    /// The blocking form of [`Reporter::shutdown`], for sync code. Waits on
    /// the wall clock. Safe to call on a thread that is also the async
    /// runtime's only thread (the worker cannot run then, so this call
    /// spills everything itself once the deadline has passed).
    pub fn shutdown_blocking(&self, deadline: Duration) -> ShutdownSummary {
        let shared = self.shared();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        let started = Instant::now();
        shared.begin_shutdown(deadline);
        let backstop = started
            .checked_add(deadline + shared.config.close_grace * 2)
            .unwrap_or_else(crate::runtime::far_future);
        loop {
            if shared.summary().is_some() {
                break;
            }
            let listener = shared.lifecycle.closed.listen();
            if shared.summary().is_some() {
                break;
            }
            if listener.wait_deadline(backstop).is_none() {
                shared.finish(Ending::Forced, SpillReason::Deadline);
                break;
            }
        }
        self.summary_now()
    }

    /// Ends the reporter now without draining: everything queued or in
    /// flight is spilled synchronously, the summary is returned. What
    /// dropping the last handle does; useful in `Drop` impls and on paths
    /// where waiting is not an option.
    pub fn close_now(&self) -> ShutdownSummary {
        self.shared()
            .finish(Ending::Teardown, SpillReason::Teardown)
    }

    /// The shutdown summary, if the reporter is closed.
    pub fn summary(&self) -> Option<ShutdownSummary> {
        self.shared().summary().cloned()
    }

    /// A read-only view of this reporter's counters that does not count as
    /// a handle: it does not keep the reporter open, so the last-handle
    /// teardown still happens when every [`Reporter`] is dropped.
    pub fn observer(&self) -> Observer {
        Observer {
            shared: self.handle.shared.clone(),
        }
    }

    fn summary_now(&self) -> ShutdownSummary {
        match self.shared().summary() {
            Some(s) => s.clone(),
            None => self.shared().finish(Ending::Forced, SpillReason::Deadline),
        }
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("phase", &self.phase())
            .field("service", &self.shared().config.service)
            .finish()
    }
}

/// Reads a reporter's counters without keeping it open (see
/// [`Reporter::observer`]).
#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
}

impl Observer {
    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Where the reporter is in its life.
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// The shutdown summary, once closed.
    pub fn summary(&self) -> Option<ShutdownSummary> {
        self.shared.summary().cloned()
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("phase", &self.phase())
            .finish()
    }
}
