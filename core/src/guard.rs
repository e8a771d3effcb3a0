//! The guard every adapter hands out with its reporter: one type,
//! [`Guard`], with the same methods and the same meaning on every runtime.
//! It holds a [`Reporter`] handle and ends the reporter exactly once — by
//! an explicit shutdown, or when dropped. An adapter's `Guard` is this type
//! for its runtime (`tidings_tokio::Guard = Guard<TokioRuntime>`, …); the
//! one thing an adapter says is how its runtime may be waited on from
//! synchronous code ([`EndSynchronously`]).
//!
//! | method | meaning (every adapter) |
//! |---|---|
//! | `guard.shutdown().await` | the shutdown protocol with the configured deadline, awaited (any executor) |
//! | `guard.shutdown_within(d).await` | the same with deadline `d` |
//! | `guard.shutdown_blocking()` | the protocol from synchronous code, as dropping the guard does, returning the summary |
//! | `guard.shutdown_blocking_within(d)` | the same with deadline `d` |
//! | `guard.detach()` | give up the guard: the reporter ends with its last handle, or its runtime |
//! | `drop(guard)` | `shutdown_blocking()`, summary discarded |
//! | `guard.reporter()`, `guard.runtime()` | the handle it holds, the runtime the worker runs on (`runtime().live_tasks()`: a leak check) |
//!
//! What ending synchronously does on each runtime:
//!
//! | runtime | `shutdown_blocking()` / drop |
//! |---|---|
//! | blocking (a thread) | waits for the protocol (at most deadline + grace), then up to 500 ms for the worker thread to exit; a thread stuck in a sink is detached, never joined without a limit |
//! | smol | waits for the protocol on the wall clock; if the dropping thread is the only one driving the executor, the worker cannot run meanwhile: everything left is spilled at the deadline (prefer `shutdown().await` there) |
//! | tokio, multi-thread | `block_in_place`, then waits for the protocol: drains fully |
//! | tokio, current-thread (or its blocking pool) | spills everything at once (`close_now`) rather than block the thread its worker needs |
//! | tokio, outside any runtime | waits on the wall clock |
//! | any, while unwinding from a panic (tokio) | spills at once |

use std::fmt;
use std::time::Duration;

use crate::builder::{BuildError, ReporterBuilder};
use crate::reporter::Reporter;
use crate::runtime::Runtime;
use crate::stats::ShutdownSummary;

/// How a runtime ends a reporter from synchronous code: a guard's drop, or
/// a blocking shutdown.
pub trait EndSynchronously: Runtime + Clone + fmt::Debug {
    /// Ends `reporter` without an executor to await on. The default waits
    /// for the shutdown protocol with `deadline`
    /// ([`Reporter::shutdown_blocking`]); a runtime whose worker might need
    /// the very thread that would wait (a current-thread executor) must do
    /// something that cannot deadlock instead, e.g.
    /// [`Reporter::close_now`].
    fn end_synchronously(&self, reporter: &Reporter, deadline: Duration) -> ShutdownSummary {
        reporter.shutdown_blocking(deadline)
    }
}

/// Holds a reporter handle and ends the reporter once: by
/// [`shutdown`](Guard::shutdown) (async), by
/// [`shutdown_blocking`](Guard::shutdown_blocking), or on drop (through
/// [`EndSynchronously`] with the configured deadline). While it lives,
/// dropping every other handle does not tear the reporter down.
///
/// Hold it for as long as the program reports — typically in `main`. See
/// the [module docs](self) for what each ending does on each runtime.
#[must_use = "dropping the guard shuts the reporter down at once; bind it: `let (reporter, _guard) = ...`"]
pub struct Guard<R: EndSynchronously> {
    /// `None` once consumed (shut down or detached): `Drop` does nothing.
    reporter: Option<Reporter>,
    runtime: R,
}

impl<R: EndSynchronously> Guard<R> {
    /// Builds `builder` on `runtime` and returns a handle and the guard.
    pub fn start(runtime: R, builder: ReporterBuilder) -> Result<(Reporter, Guard<R>), BuildError> {
        let reporter = builder.build(runtime.clone())?;
        let guard = Guard {
            reporter: Some(reporter.clone()),
            runtime,
        };
        Ok((reporter, guard))
    }

    /// The reporter this guard ends.
    pub fn reporter(&self) -> &Reporter {
        self.reporter
            .as_ref()
            .expect("only shutdown and detach take the reporter, and they consume the guard")
    }

    /// The runtime the reporter's worker runs on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Gives up the guard without shutting down: the reporter then ends when
    /// its last handle is dropped (spilling whatever is left), or with its
    /// runtime.
    pub fn detach(mut self) {
        self.reporter.take();
    }

    /// Runs the shutdown protocol with the configured deadline
    /// ([`ReporterBuilder::shutdown_deadline`]) and awaits its summary.
    pub async fn shutdown(self) -> ShutdownSummary {
        let deadline = self.reporter().default_shutdown_deadline();
        self.shutdown_within(deadline).await
    }

    /// [`Guard::shutdown`] with an explicit deadline.
    pub async fn shutdown_within(mut self, deadline: Duration) -> ShutdownSummary {
        let reporter = self.take();
        reporter.shutdown(deadline).await
    }

    /// Ends the reporter from synchronous code, as dropping the guard does,
    /// with the configured deadline.
    pub fn shutdown_blocking(self) -> ShutdownSummary {
        let deadline = self.reporter().default_shutdown_deadline();
        self.shutdown_blocking_within(deadline)
    }

    /// [`Guard::shutdown_blocking`] with an explicit deadline.
    pub fn shutdown_blocking_within(mut self, deadline: Duration) -> ShutdownSummary {
        let reporter = self.take();
        self.runtime.end_synchronously(&reporter, deadline)
    }

    fn take(&mut self) -> Reporter {
        self.reporter
            .take()
            .expect("a guard is consumed by the first shutdown or detach")
    }
}

impl<R: EndSynchronously> Drop for Guard<R> {
    fn drop(&mut self) {
        if let Some(reporter) = self.reporter.take() {
            let deadline = reporter.default_shutdown_deadline();
            self.runtime.end_synchronously(&reporter, deadline);
        }
    }
}

impl<R: EndSynchronously> fmt::Debug for Guard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("reporter", &self.reporter)
            .field("runtime", &self.runtime)
            .finish()
    }
}
