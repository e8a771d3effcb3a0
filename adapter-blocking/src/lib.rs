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
//! let summary = guard.shutdown();
//! assert_eq!(summary.stats.delivered, 1);
//! assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};
use tidings_core::guard::{self as core_guard, EndSynchronously};
use tidings_core::{
    BoxSleep, BoxTask, BuildError, Reporter, ReporterBuilder, Runtime, ShutdownSummary, SpawnError,
};

pub use tidings_nats_sync::SyncNatsSink as NatsSink;

/// A [`Runtime`] that runs each spawned task on an OS thread of its own.
///
/// Core spawns exactly one task per reporter (the worker), so this is one
/// thread per reporter. Threads are tracked so a [`Guard`] can check they
/// ended.
#[derive(Clone, Default)]
pub struct ThreadRuntime {
    threads: Arc<Threads>,
}

#[derive(Default)]
struct Threads {
    live: AtomicUsize,
    ended: Event,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl ThreadRuntime {
    /// A new runtime with no threads yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Threads started by this runtime that have not finished their task.
    pub fn live_threads(&self) -> usize {
        self.threads.live.load(Ordering::SeqCst)
    }

    /// Waits until every thread has finished its task, or `deadline`.
    /// Finished threads are joined (a finished task's thread exits at
    /// once); threads still running are left alone, never joined without
    /// a limit. Returns whether all ended.
    pub fn wait_threads(&self, deadline: Instant) -> bool {
        loop {
            if self.live_threads() == 0 {
                break;
            }
            let listener = self.threads.ended.listen();
            if self.live_threads() == 0 {
                break;
            }
            if listener.wait_deadline(deadline).is_none() {
                return self.live_threads() == 0;
            }
        }
        let handles = std::mem::take(
            &mut *self
                .threads
                .handles
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
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
            .field("live_threads", &self.live_threads())
            .finish()
    }
}

/// Decrements the live count even if the task panics.
struct LiveGuard(Arc<Threads>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify(usize::MAX);
    }
}

impl Runtime for ThreadRuntime {
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError> {
        let threads = self.threads.clone();
        threads.live.fetch_add(1, Ordering::SeqCst);
        let live = LiveGuard(threads.clone());
        let handle = std::thread::Builder::new()
            .name("tidings-worker".into())
            .spawn(move || {
                let _live = live;
                async_io::block_on(task);
            })
            .map_err(|e| SpawnError::new(format!("could not start the worker thread: {e}")))?;
        threads
            .handles
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
    let (reporter, guard) = core_guard::Guard::start(ThreadRuntime::new(), builder)?;
    Ok((reporter, Guard(guard)))
}

/// Shuts the reporter down when dropped (or when you call
/// [`Guard::shutdown`]): close intake, drain, spill what is left at the
/// configured deadline, close sinks, stop the worker thread.
///
/// Hold it for as long as the program reports — typically in `main`.
/// Dropping it blocks the dropping thread for at most the shutdown deadline
/// plus a small grace.
#[must_use = "dropping the guard shuts the reporter down at once; bind it: `let (reporter, _guard) = ...`"]
pub struct Guard(core_guard::Guard<ThreadRuntime>);

impl Guard {
    /// The reporter this guard shuts down.
    pub fn reporter(&self) -> &Reporter {
        self.0.reporter()
    }

    /// The runtime (to observe the worker thread).
    pub fn runtime(&self) -> &ThreadRuntime {
        self.0.runtime()
    }

    /// Runs the shutdown protocol with the configured deadline and waits for
    /// the worker thread to end.
    pub fn shutdown(self) -> ShutdownSummary {
        self.0.shutdown_blocking()
    }

    /// Runs the shutdown protocol with `deadline` and waits for the worker
    /// thread to end.
    pub fn shutdown_within(self, deadline: Duration) -> ShutdownSummary {
        self.0.shutdown_blocking_within(deadline)
    }

    /// Gives up the guard without shutting down. The reporter then ends
    /// when its last handle is dropped, spilling whatever is still queued or
    /// in flight (no drain); or call `shutdown_blocking` on a handle.
    pub fn detach(self) {
        self.0.detach();
    }
}

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

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
