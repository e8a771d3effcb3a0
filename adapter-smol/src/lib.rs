//! # tidings-smol
//!
//! tidings on [smol]: the worker is a task on a smol executor; NATS is
//! reached with the synchronous `nats` client on a thread of its own
//! (async-nats needs tokio's reactor, so it cannot be used here), shared
//! with the blocking adapter through `tidings-nats-sync`.
//!
//! | core trait method | here |
//! |---|---|
//! | [`Runtime::spawn`] | `smol::spawn(..).detach()`, or `Executor::spawn` on an executor you own |
//! | [`Runtime::sleep_until`] | `async_io::Timer::at` (smol's timer; works under any executor) |
//! | [`Runtime::now`] | `std::time::Instant::now` |
//!
//! tokio is not in this crate's dependency tree.
//!
//! ```
//! use std::time::Duration;
//! use tidings_core::{JsonLinesSink, Report, Reporter};
//!
//! let dir = tempfile::tempdir().unwrap();
//! smol::block_on(async {
//!     let (reporter, guard) = tidings_smol::start(
//!         Reporter::builder().sink(JsonLinesSink::open(dir.path().join("r.jsonl")).unwrap()),
//!     )
//!     .unwrap();
//!     let outcome = reporter.report(Report::error("db", "down")).unwrap().await;
//!     assert!(outcome.is_delivered());
//!     let summary = guard.shutdown().await;
//!     assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
//! });
//! ```
//!
//! [smol]: https://docs.rs/smol

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Instant;

use smol::Executor;
use tidings_core::{
    BoxSleep, BoxTask, BuildError, EndSynchronously, LiveTasks, Reporter, ReporterBuilder, Runtime,
    Settings, SpawnError,
};

pub use tidings_nats_sync::SyncNatsSink as NatsSink;

/// A [`Runtime`] on smol.
///
/// With [`SmolRuntime::global`] tasks go to smol's global executor. With
/// [`SmolRuntime::on`] they go to an executor you own and drive; the
/// runtime holds it weakly, so dropping your executor drops the worker
/// (tidings then spills what it held) instead of being kept alive by it.
#[derive(Clone)]
pub struct SmolRuntime {
    executor: Option<Weak<Executor<'static>>>,
    live: LiveTasks,
}

impl SmolRuntime {
    /// Tasks on smol's global executor (`smol::spawn`).
    pub fn global() -> Self {
        SmolRuntime {
            executor: None,
            live: LiveTasks::default(),
        }
    }

    /// Tasks on `executor`, which the caller keeps alive and drives.
    pub fn on(executor: &Arc<Executor<'static>>) -> Self {
        SmolRuntime {
            executor: Some(Arc::downgrade(executor)),
            live: LiveTasks::default(),
        }
    }

    /// Tasks spawned through this runtime that have neither finished nor
    /// been dropped: 0 after every reporter on it shut down (a leak check).
    pub fn live_tasks(&self) -> usize {
        self.live.count()
    }
}

impl fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolRuntime")
            .field("global", &self.executor.is_none())
            .field("live_tasks", &self.live_tasks())
            .finish()
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError> {
        // Counted until the task finishes or the executor drops it.
        let live = self.live.start();
        let task = async move {
            let _live = live;
            task.await;
        };
        match &self.executor {
            None => smol::spawn(task).detach(),
            Some(weak) => match weak.upgrade() {
                Some(executor) => executor.spawn(task).detach(),
                None => return Err(SpawnError::new("the smol executor was dropped")),
            },
        }
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

/// Starts a reporter whose worker is a task on smol's global executor.
pub fn start(builder: ReporterBuilder) -> Result<(Reporter, Guard), BuildError> {
    Guard::start(SmolRuntime::global(), builder)
}

/// Starts a reporter on smol's global executor configured by the environment: the NATS
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
/// smol::block_on(async {
///     let (reporter, guard) = tidings_smol::init()?;
///     reporter.report(tidings_core::Report::error("db", "primary unreachable"))?;
///     assert_eq!(guard.shutdown().await.stats.delivered, 1);
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init() -> Result<(Reporter, Guard), BuildError> {
    let settings = Settings::from_env()?;
    let nats = settings.nats.clone().map(NatsSink::connect).transpose()?;
    start(settings.configure(Reporter::builder(), nats)?)
}

/// Starts a reporter whose worker is a task on `executor` (kept alive and
/// driven by the caller).
pub fn start_on(
    executor: &Arc<Executor<'static>>,
    builder: ReporterBuilder,
) -> Result<(Reporter, Guard), BuildError> {
    Guard::start(SmolRuntime::on(executor), builder)
}

/// Shuts the reporter down: `guard.shutdown().await` in async code; on
/// drop (or [`Guard::shutdown_blocking`]), the blocking form with the
/// configured deadline. The same guard as every adapter's (see
/// [`tidings_core::guard`]).
///
/// Dropping the guard blocks the dropping thread for at most the deadline
/// plus a small grace. If that thread is the only one driving the executor
/// the worker lives on, the worker cannot run meanwhile: nothing is lost
/// (everything left is spilled at the deadline) but nothing more is
/// delivered either — prefer `guard.shutdown().await` there.
pub type Guard = tidings_core::Guard<SmolRuntime>;

/// Dropping the guard waits for the shutdown protocol (the default).
impl EndSynchronously for SmolRuntime {}
