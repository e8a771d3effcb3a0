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

/// Counts an adapter's live tasks: spawned, and neither finished nor
/// dropped. Every adapter's runtime keeps one, so "no task left behind"
/// means the same thing, and is checked the same way, on every runtime.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tidings_core::LiveTasks;
///
/// let live = LiveTasks::default();
/// let task = live.start();
/// assert_eq!(live.count(), 1);
/// // Still running: waiting for none times out.
/// assert!(!live.wait_until_none(Instant::now() + Duration::from_millis(10)));
/// drop(task); // finished, or dropped by its runtime
/// assert_eq!(live.count(), 0);
/// assert!(live.wait_until_none(Instant::now()));
/// ```
#[derive(Clone, Default)]
pub struct LiveTasks {
    inner: std::sync::Arc<LiveInner>,
}

#[derive(Default)]
struct LiveInner {
    count: std::sync::atomic::AtomicUsize,
    ended: event_listener::Event,
}

/// One live task of a [`LiveTasks`]: counted until dropped. Hold it in the
/// task (or its wrapper) so that finishing, panicking and being dropped by
/// the runtime all end the count.
pub struct LiveTask {
    inner: std::sync::Arc<LiveInner>,
}

impl LiveTasks {
    /// Counts one more live task until the returned token is dropped.
    pub fn start(&self) -> LiveTask {
        self.inner
            .count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        LiveTask {
            inner: self.inner.clone(),
        }
    }

    /// Tasks started and not yet ended.
    pub fn count(&self) -> usize {
        self.inner.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Blocks until no task is live or `deadline` passes; true when none
    /// is. Never waits past the deadline.
    pub fn wait_until_none(&self, deadline: Instant) -> bool {
        use event_listener::Listener;
        loop {
            if self.count() == 0 {
                return true;
            }
            let listener = self.inner.ended.listen();
            if self.count() == 0 {
                return true;
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.count() == 0;
            }
        }
    }
}

impl fmt::Debug for LiveTasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveTasks")
            .field("count", &self.count())
            .finish()
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.inner
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.ended.notify(usize::MAX);
    }
}

impl fmt::Debug for LiveTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LiveTask")
    }
}
