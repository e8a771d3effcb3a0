//! The one trait an adapter implements.
//!
//! tidings-core has no executor. The worker that moves reports from the intake
//! queue to the sinks is written once, here in core, as a future; an adapter
//! says how to run it ([`Runtime::spawn`]) and how to wait
//! ([`Runtime::sleep_until`], [`Runtime::now`]).
//!
//! Every clock read in core goes through [`Runtime::now`], so an adapter whose
//! runtime has a virtual clock (tokio's paused time) makes retries, backoff
//! and shutdown deadlines run on that clock in tests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed, `Send`, `'static` future, as handed to [`Runtime::spawn`].
pub type BoxTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A boxed sleep future returned by [`Runtime::sleep_until`].
pub type BoxSleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How an adapter runs core's work.
///
/// Implementations are small (see tidings-tokio, tidings-smol,
/// tidings-blocking). Contract:
///
/// * [`spawn`](Runtime::spawn) runs the task to completion *or drops it*:
///   core is written so that dropping the task (a runtime being shut down)
///   spills whatever it held; it must not be leaked un-dropped forever
///   while the process keeps running.
/// * [`sleep_until`](Runtime::sleep_until) completes at or after `deadline`
///   as measured by [`now`](Runtime::now), and may be dropped at any time.
/// * [`now`](Runtime::now) is monotonic.
/// * None of the methods may block the calling thread.
pub trait Runtime: Send + Sync + 'static {
    /// Starts `task` in the background.
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError>;

    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxSleep;

    /// The runtime's monotonic clock.
    fn now(&self) -> Instant;

    /// A future that completes after `duration`. Provided.
    fn sleep(&self, duration: Duration) -> BoxSleep {
        let deadline = self.now().checked_add(duration).unwrap_or_else(far_future);
        self.sleep_until(deadline)
    }
}

/// An instant later than any deadline core will compute (about 30 years).
pub(crate) fn far_future() -> Instant {
    // Instant has no MAX; adding a few decades is safe on every platform.
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The runtime refused to spawn the worker (e.g. it is shutting down).
#[derive(Debug, Clone)]
pub struct SpawnError {
    reason: String,
}

impl SpawnError {
    /// A spawn error with an explanation.
    pub fn new(reason: impl Into<String>) -> Self {
        SpawnError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not spawn the tidings worker: {}", self.reason)
    }
}

impl std::error::Error for SpawnError {}
