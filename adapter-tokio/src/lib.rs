//! # tidings-tokio
//!
//! [tidings] on tokio: [`TokioRuntime`] runs tidings-core's worker on a tokio
//! runtime, [`NatsSink`] delivers reports to NATS (core publish or
//! JetStream) through async-nats, and [`start`] wires a
//! [`ReporterBuilder`] to the current runtime and hands back a [`Guard`].
//!
//! This crate is thin on purpose: queueing, retry, accounting, spilling and
//! the shutdown protocol all live in tidings-core and behave the same on
//! every runtime.
//!
//! ```
//! use tidings_core::testing::{MemoryFallback, TestSink};
//! use tidings_core::{Report, Reporter};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let (sink, delivered) = TestSink::new("mem");
//!     let (reporter, guard) = tidings_tokio::start(
//!         Reporter::builder().sink(sink).fallback(MemoryFallback::new()),
//!     )?;
//!     reporter.report(Report::error("db_down", "connection refused"))?;
//!
//!     // The recommended ending: drain within the configured deadline.
//!     let summary = guard.shutdown().await;
//!     assert_eq!(summary.stats.delivered, 1);
//!     assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
//!     assert_eq!(delivered.delivered().len(), 1);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
//!
//! ## Ending: the guard, and what dropping it does
//!
//! Prefer `guard.shutdown().await`: it runs the shutdown protocol (drain,
//! deadline, spill what is left, close the sinks) while the runtime keeps
//! running the worker. Dropping the [`Guard`] instead runs the protocol
//! synchronously, which needs care, because a synchronous wait must not
//! block the thread the worker needs:
//!
//! | where the guard is dropped                                    | what happens                                                                 |
//! |----------------------------------------------------------------|------------------------------------------------------------------------------|
//! | in a multi-thread runtime                                      | `block_in_place` + `shutdown_blocking`: drains fully, within the deadline    |
//! | in a current-thread runtime, the reporter on a multi-thread one | `shutdown_blocking`: drains (that other runtime's thread waits meanwhile)   |
//! | in a current-thread runtime otherwise (or its blocking pool)   | `close_now`: everything still queued or in flight is **spilled** at once     |
//! | outside any runtime                                            | `shutdown_blocking`: drains if the runtime is running elsewhere, else spills at the deadline |
//! | while unwinding from a panic                                   | `close_now`                                                                  |
//! | after the runtime was dropped                                  | nothing left to do: the runtime's teardown already spilled everything        |
//!
//! In a current-thread runtime the worker can only run when this very thread
//! yields; blocking it to wait for the worker is the deadlock that hit
//! opentelemetry-rust (#536, #868, #2580). So the guard spills instead:
//! nothing is lost, but nothing more is delivered either — hence
//! `guard.shutdown().await`.
//!
//! Await `shutdown` on the runtime itself (in a task, or
//! `rt.block_on(guard.shutdown())`). Its deadline is a tokio timer, and a
//! current-thread runtime that nobody drives fires no timers and runs no
//! worker; from plain threads use [`Guard::shutdown_blocking`], which waits
//! on the wall clock.
//!
//! If the runtime is dropped while the reporter runs, tokio drops the worker
//! and whatever it held is spilled to the fallback synchronously (no panic,
//! no "runtime is shutting down" error).
//!
//! [tidings]: https://example.invalid/tidings

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod nats;
mod runtime;

use std::time::Duration;

use tidings_core::{
    BuildError, EndSynchronously, Reporter, ReporterBuilder, Settings, ShutdownSummary, SpawnError,
};
use tokio::runtime::{Handle, RuntimeFlavor};

pub use nats::{connect_options, NatsSink};

/// The former name of [`NatsSink`] (every adapter's NATS sink is now
/// called `NatsSink`).
#[deprecated(
    since = "0.1.0",
    note = "renamed to `NatsSink`, the name every adapter uses"
)]
pub type AsyncNatsSink = NatsSink;
pub use runtime::TokioRuntime;

/// Builds `builder` on the tokio runtime of the current context and returns
/// the reporter and its [`Guard`].
///
/// Fails with [`BuildError::Spawn`] outside a tokio runtime context (use
/// [`start_on`]) or when the runtime has no timers, and with
/// [`BuildError::Config`] for invalid settings (the error names the field).
pub fn start(builder: ReporterBuilder) -> Result<(Reporter, Guard), BuildError> {
    let runtime = TokioRuntime::try_current().ok_or_else(|| {
        BuildError::Spawn(SpawnError::new(
            "tidings_tokio::start needs a tokio runtime context; use start_on(handle, builder)",
        ))
    })?;
    Guard::start(runtime, builder)
}

/// Starts a reporter on the tokio runtime of the current context, configured by the environment: the NATS
/// sink that `NATS_URL` and the other variables of
/// [`Settings::from_env`](tidings_core::Settings#from-the-environment)
/// describe, or — with no `NATS_URL` — the embedded default, the JSON-lines
/// file [`DEFAULT_REPORTS_FILE`](tidings_core::DEFAULT_REPORTS_FILE). Says
/// which through tidings' diagnostics (a tracing event with target
/// `tidings`, else a line on stderr). Fails, naming the variable, on a bad
/// value. With settings from elsewhere (a file, a test), or a builder of
/// your own: `start(settings.configure(builder, nats_sink)?)`.
/// Awaited inside a tokio runtime (async-nats connects there).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # std::env::set_current_dir(dir.path()).unwrap();
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let (reporter, guard) = tidings_tokio::init().await?;
/// reporter.report(tidings_core::Report::error("db", "primary unreachable"))?;
/// assert_eq!(guard.shutdown().await.stats.delivered, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn init() -> Result<(Reporter, Guard), BuildError> {
    let settings = Settings::from_env()?;
    let nats = match &settings.nats {
        Some(config) => Some(NatsSink::connect(config.clone()).await?),
        None => None,
    };
    start(settings.configure(Reporter::builder(), nats)?)
}

/// Builds `builder` on the runtime behind `handle` (callable from any
/// thread) and returns the reporter and its [`Guard`].
pub fn start_on(handle: Handle, builder: ReporterBuilder) -> Result<(Reporter, Guard), BuildError> {
    Guard::start(TokioRuntime::new(handle), builder)
}

/// Ends the reporter: `guard.shutdown().await` (recommended),
/// [`Guard::shutdown_blocking`], or dropping it (see the
/// [crate docs](crate#ending-the-guard-and-what-dropping-it-does)). The
/// same guard as every adapter's (see [`tidings_core::guard`]).
///
/// While the guard lives it holds a [`Reporter`] handle, so dropping every
/// other handle does not tear the reporter down.
pub type Guard = tidings_core::Guard<TokioRuntime>;

impl EndSynchronously for TokioRuntime {
    fn end_synchronously(&self, reporter: &Reporter, deadline: Duration) -> ShutdownSummary {
        if let Some(summary) = reporter.summary() {
            return summary;
        }
        // Unwinding: do the fastest thing that loses nothing; a second panic
        // here would abort the process.
        if std::thread::panicking() || self.is_shut_down() {
            return reporter.close_now();
        }
        match Handle::try_current() {
            Ok(current) => match current.runtime_flavor() {
                RuntimeFlavor::MultiThread => {
                    // block_in_place hands this worker's other tasks to
                    // another thread. It refuses (panics) only in odd
                    // nestings, e.g. a multi-thread handle entered inside a
                    // current-thread runtime; spill then.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        tokio::task::block_in_place(|| reporter.shutdown_blocking(deadline))
                    }))
                    .unwrap_or_else(|_| reporter.close_now())
                }
                // Another runtime's thread (ours runs on worker threads of
                // its own): blocking it does not starve our worker.
                RuntimeFlavor::CurrentThread if self.flavor() == RuntimeFlavor::MultiThread => {
                    reporter.shutdown_blocking(deadline)
                }
                // Possibly the very thread our worker needs: do not wait for
                // it.
                _ => reporter.close_now(),
            },
            Err(_) => reporter.shutdown_blocking(deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::testing::{Behavior, MemoryFallback, TestSink};
    use tidings_core::{Ending, Report};

    fn report_n(reporter: &Reporter, n: usize) {
        for i in 0..n {
            reporter
                .report(Report::error("test", format!("report {i}")))
                .unwrap();
        }
    }

    #[test]
    fn start_outside_a_runtime_is_a_spawn_error() {
        let (sink, _) = TestSink::new("mem");
        let err = start(Reporter::builder().sink(sink)).unwrap_err();
        assert!(matches!(err, BuildError::Spawn(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_guard_in_a_multi_thread_runtime_drains() {
        let (sink, delivered) = TestSink::new("mem");
        let spill = MemoryFallback::new();
        let (reporter, guard) = start(
            Reporter::builder()
                .folding(tidings_core::Folding::off())
                .sink(sink)
                .fallback(spill.clone()),
        )
        .unwrap();
        report_n(&reporter, 1000);
        drop(guard);
        let summary = reporter.summary().expect("closed by the guard");
        assert_eq!(summary.ended_by, Ending::Drained);
        assert_eq!(summary.stats.delivered, 1000);
        assert_eq!(delivered.delivered().len(), 1000);
        assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
    }

    #[tokio::test]
    async fn dropping_the_guard_in_a_current_thread_runtime_spills_without_deadlock() {
        let (sink, delivered) = TestSink::new("mem");
        delivered.set_behavior(Behavior::Hang);
        let spill = MemoryFallback::new();
        let (reporter, guard) = start(
            Reporter::builder()
                .folding(tidings_core::Folding::off())
                .sink(sink)
                .fallback(spill.clone()),
        )
        .unwrap();
        report_n(&reporter, 1000);
        drop(guard);
        let s = reporter.summary().expect("closed by the guard").stats;
        assert_eq!(s.spilled, 1000);
        assert_eq!(spill.ids().len(), 1000);
        assert!(s.is_balanced() && s.in_flight == 0 && s.lost == 0);
    }

    #[test]
    fn dropping_the_guard_outside_the_runtime_drains_when_the_runtime_runs() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (sink, delivered) = TestSink::new("mem");
        let (reporter, guard) = start_on(rt.handle().clone(), Reporter::builder().sink(sink))
            .expect("start from outside the runtime");
        report_n(&reporter, 100);
        let summary = guard.shutdown_blocking();
        assert_eq!(summary.ended_by, Ending::Drained);
        assert_eq!(delivered.delivered().len(), 100);
    }
}
