//! What a scenario needs from an adapter.
//!
//! Each adapter configuration (blocking, tokio multi-thread, tokio
//! current-thread, smol) implements [`Harness`]; every scenario in
//! [`crate::scenarios`] is one generic function over it, and
//! [`conformance_tests!`](crate::conformance_tests) instantiates all of them
//! for one harness — the shape of tokio's `rt_test!`.
//!
//! Scenario bodies never wait on the calling thread for something only the
//! runtime can do: a current-thread runtime makes progress only inside
//! [`Harness::block_on`], so every wait goes through it.

use std::future::Future;
use std::pin::Pin;

use tidings_core::nats::NatsConfig;
use tidings_core::{ConfigError, Reporter, ReporterBuilder, Sink};

/// A boxed task for [`Harness::spawn`].
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One adapter configuration under test.
pub trait Harness: Sized + 'static {
    /// Name shown in failure messages.
    const NAME: &'static str;

    /// True when `drop_runtime` really tears a runtime down (tokio, smol's
    /// executor); false when the adapter has no runtime to drop (blocking),
    /// where the equivalent is the last handle going away.
    const HAS_RUNTIME: bool;

    /// Creates the runtime.
    fn new() -> Self;

    /// Builds and starts a reporter on this adapter. The adapter's guard is
    /// kept by the harness until [`Harness::detach_guards`] or drop.
    fn start(&self, builder: ReporterBuilder) -> Reporter;

    /// Runs `fut` to completion on this adapter's runtime, driving it.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;

    /// Spawns a task on this adapter's executor (an OS thread for the
    /// blocking adapter).
    fn spawn(&self, task: Task);

    /// This adapter's NATS sink for `config`.
    fn nats_sink(&self, config: NatsConfig) -> Result<Box<dyn Sink>, ConfigError>;

    /// Gives up the adapter guards without shutting down (so the last
    /// `Reporter` handle is really the last).
    fn detach_guards(&self);

    /// Drops the runtime without any shutdown: tasks are dropped where they
    /// stand. For the blocking adapter: detaches the guards.
    fn drop_runtime(self);

    /// Tasks (or threads) the adapter started that are still alive.
    fn live_tasks(&self) -> usize;

    /// Lets the runtime run for `d` (on a current-thread runtime the worker
    /// makes progress only while the test drives it).
    fn pause(&self, d: std::time::Duration);

    /// Polls `cond` until it holds (true) or `within` passes (false),
    /// driving the runtime in between.
    fn wait_for(&self, within: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if cond() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            self.pause(std::time::Duration::from_millis(10));
        }
    }
}
