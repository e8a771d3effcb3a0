//! # tidings-blocking
//!
//! tidings for programs with no async at all: the worker runs on a
//! dedicated background thread, NATS is reached with the synchronous `nats`
//! client (on a thread of its own, see `tidings-nats-sync`), and a
//! `#[must_use]` [`Guard`] runs the shutdown protocol when dropped.
//!
//! | core trait method | here |
//! |---|---|
//! | [`Runtime::spawn`] | a new OS thread named `tidings-worker` running the task with `async_io::block_on` |
//! | [`Runtime::sleep_until`] | `async_io::Timer::at` |
//! | [`Runtime::now`] | `std::time::Instant::now` |
//!
//! ```
//! use std::time::Duration;
//! use tidings_blocking::start;
//! use tidings_core::{JsonLinesSink, Report, Reporter};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (reporter, guard) = start(
//!     Reporter::builder()
//!         .service("billing")
//!         .sink(JsonLinesSink::open(dir.path().join("reports.jsonl")).unwrap()),
//! )
//! .unwrap();
//!
//! let receipt = reporter.report(Report::error("db", "primary unreachable")).unwrap();
//! let outcome = receipt.wait(Duration::from_secs(5)).unwrap();
//! assert!(outcome.is_delivered());
//!
//! // Shutdown drains, closes the sinks, stops the worker thread.
//! let summary = guard.shutdown_blocking();
//! assert_eq!(summary.stats.delivered, 1);
//! assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings_core::{
    BoxSleep, BoxTask, BuildError, EndSynchronously, LiveTasks, Reporter, ReporterBuilder, Runtime,
    Settings, ShutdownSummary, SpawnError,
};

pub use tidings_nats_sync::SyncNatsSink as NatsSink;

/// A [`Runtime`] that runs each spawned task on an OS thread of its own.
///
/// Core spawns exactly one task per reporter (the worker), so this is one
/// thread per reporter. Threads are tracked so a [`Guard`] can check they
/// ended.
#[derive(Clone, Default)]
pub struct ThreadRuntime {
    live: LiveTasks,
    handles: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl ThreadRuntime {
    /// A new runtime with no threads yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Worker threads started by this runtime that have not finished their
    /// task: 0 after every reporter on it shut down (a leak check).
    pub fn live_tasks(&self) -> usize {
        self.live.count()
    }

    /// The former name of [`ThreadRuntime::live_tasks`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `live_tasks`, the name every runtime uses"
    )]
    pub fn live_threads(&self) -> usize {
        self.live_tasks()
    }

    /// Waits until every thread has finished its task, or `deadline`.
    /// Finished threads are joined (a finished task's thread exits at
    /// once); threads still running are left alone, never joined without
    /// a limit. Returns whether all ended.
    pub fn wait_threads(&self, deadline: Instant) -> bool {
        if !self.live.wait_until_none(deadline) {
            return false;
        }
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            // Every task has returned; the thread is exiting: join is short.
            let _ = h.join();
        }
        true
    }
}

impl fmt::Debug for ThreadRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadRuntime")
            .field("live_tasks", &self.live_tasks())
            .finish()
    }
}

impl Runtime for ThreadRuntime {
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError> {
        // Counted until the task returns or panics (the token is dropped
        // either way), or the thread could not start.
        let live = self.live.start();
        let handle = std::thread::Builder::new()
            .name("tidings-worker".into())
            .spawn(move || {
                let _live = live;
                async_io::block_on(task);
            })
            .map_err(|e| SpawnError::new(format!("could not start the worker thread: {e}")))?;
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
        Ok(())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxSleep {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Starts a reporter whose worker runs on a background thread.
///
/// Returns the [`Reporter`] handle (clone it freely) and the [`Guard`] that
/// shuts it down. With no sink configured, reports go to the embedded
/// default JSON-lines file ([`tidings_core::DEFAULT_REPORTS_FILE`]).
pub fn start(builder: ReporterBuilder) -> Result<(Reporter, Guard), BuildError> {
    Guard::start(ThreadRuntime::new(), builder)
}

/// Starts a reporter on a background thread configured by the environment: the NATS
/// sink that `NATS_URL` and the other variables of
/// [`Settings::from_env`](tidings_core::Settings#from-the-environment)
/// describe, or — with no `NATS_URL` — the embedded default, the JSON-lines
/// file [`DEFAULT_REPORTS_FILE`](tidings_core::DEFAULT_REPORTS_FILE). Says
/// which through tidings' diagnostics (a tracing event with target
/// `tidings`, else a line on stderr). Fails, naming the variable, on a bad
/// value. With settings from elsewhere (a file, a test), or a builder of
/// your own: `start(settings.configure(builder, nats_sink)?)`.
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
/// let (reporter, guard) = tidings_blocking::init()?;
/// reporter.report(tidings_core::Report::error("db", "primary unreachable"))?;
/// assert_eq!(guard.shutdown_blocking().stats.delivered, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init() -> Result<(Reporter, Guard), BuildError> {
    let settings = Settings::from_env()?;
    let nats = settings.nats.clone().map(NatsSink::connect).transpose()?;
    start(settings.configure(Reporter::builder(), nats)?)
}

/// Shuts the reporter down when dropped, or when you call
/// [`Guard::shutdown_blocking`]: close intake, drain, spill what is left at
/// the configured deadline, close sinks, stop the worker thread. The same
/// guard as every adapter's (see [`tidings_core::guard`]).
///
/// Hold it for as long as the program reports — typically in `main`.
/// Dropping it blocks the dropping thread for at most the shutdown deadline
/// plus a small grace.
pub type Guard = tidings_core::Guard<ThreadRuntime>;

/// Waits for the shutdown protocol, then for the worker thread to exit.
impl EndSynchronously for ThreadRuntime {
    fn end_synchronously(&self, reporter: &Reporter, deadline: Duration) -> ShutdownSummary {
        let summary = reporter.shutdown_blocking(deadline);
        // The worker returns right after the summary exists; give it a
        // moment to exit, never wait unbounded (a sink stuck in a blocking
        // call is detached with its thread).
        if !self.wait_threads(Instant::now() + Duration::from_millis(500)) {
            eprintln!("tidings: the worker thread did not stop in time; detached");
        }
        summary
    }
}
