//! [`TokioRuntime`]: tidings-core's [`Runtime`] on a tokio runtime.
//!
//! | core                                   | tokio                                                        |
//! |----------------------------------------|--------------------------------------------------------------|
//! | [`Runtime::spawn`]                     | [`Handle::spawn`] (the task is detached, never aborted)      |
//! | [`Runtime::sleep_until`]               | [`tokio::time::sleep_until`], created in the handle's context |
//! | [`Runtime::now`]                       | [`tokio::time::Instant::now`], read in the handle's context  |
//!
//! Every clock read and every timer goes through the runtime the handle
//! belongs to, so tokio's paused test time (`start_paused`,
//! [`tokio::time::pause`]) drives core's retries, backoff and shutdown
//! deadlines, whichever thread core happens to call from.
//!
//! Core calls these methods from places tokio does not usually expect: from
//! `Drop` impls, from threads outside any runtime, while the runtime is being
//! torn down. None of them panics there:
//!
//! * `now()` enters the handle's context for the read (so it needs none of
//!   its own) and falls back to [`std::time::Instant::now`] on a thread whose
//!   thread-locals are already destroyed.
//! * A sleep creates its tokio timer lazily, in the handle's context, on its
//!   first poll; dropping it needs no context. Once the runtime has been shut
//!   down (tokio panics when a timer of a shut-down runtime is polled), the
//!   sleep completes at once: nothing can measure time any more, and every
//!   waiter in core treats an elapsed deadline as "stop waiting, spill".
//! * `spawn` on a runtime that is shutting down returns a [`SpawnError`]
//!   (tokio drops such a task unstarted; core then spills anything it held).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tidings_core::{BoxSleep, BoxTask, LiveTask, LiveTasks, Runtime, SpawnError};
use tokio::runtime::{Handle, RuntimeFlavor};

/// tidings-core's [`Runtime`] on a tokio runtime, through its [`Handle`].
///
/// Cheap to clone. The runtime must have timers enabled
/// ([`enable_time`](tokio::runtime::Builder::enable_time) or
/// `enable_all`; `#[tokio::main]` does), and the NATS sinks need I/O too.
///
/// ```
/// use tidings_tokio::TokioRuntime;
///
/// // Outside a runtime there is no current one.
/// assert!(TokioRuntime::try_current().is_none());
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let runtime = TokioRuntime::new(rt.handle().clone());
/// let inside = rt.block_on(async { TokioRuntime::try_current().is_some() });
/// assert!(inside);
/// # drop(runtime);
/// ```
#[derive(Clone)]
pub struct TokioRuntime {
    handle: Handle,
    tasks: Arc<TaskState>,
}

#[derive(Default)]
struct TaskState {
    /// Set once a task spawned through this runtime was dropped before it
    /// finished: tokio does that only when the runtime shuts down.
    gone: AtomicBool,
    /// Tasks spawned through this runtime (and its clones) not yet finished
    /// or dropped.
    live: LiveTasks,
}

impl TokioRuntime {
    /// Runs core's work on the runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        TokioRuntime {
            handle,
            tasks: Arc::default(),
        }
    }

    /// The runtime of the current context.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime context, like [`Handle::current`]. Use
    /// [`TokioRuntime::try_current`] to get an `Option` instead.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// The runtime of the current context, or `None` outside one.
    pub fn try_current() -> Option<Self> {
        Handle::try_current().ok().map(Self::new)
    }

    /// The tokio handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Current-thread or multi-thread.
    pub fn flavor(&self) -> RuntimeFlavor {
        self.handle.runtime_flavor()
    }

    /// True once the runtime was seen shutting down (it dropped a task spawned
    /// through this handle before the task finished).
    pub fn is_shut_down(&self) -> bool {
        self.tasks.gone.load(Ordering::SeqCst)
    }

    /// Tasks spawned through this runtime (the reporters' workers) that have
    /// neither finished nor been dropped: 0 after every reporter on it shut
    /// down and its worker returned (a leak check).
    pub fn live_tasks(&self) -> usize {
        self.tasks.live.count()
    }

    /// Whether the runtime has its time driver. Creating a timer on a runtime
    /// without one panics inside tokio, so this is checked once, at spawn
    /// (that is, when the reporter is built), instead of failing later.
    fn timers_enabled(&self) -> bool {
        let _enter = self.handle.enter();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            // Creating (not polling) a Sleep registers nothing; it only looks
            // up the time driver, and panics if there is none.
            drop(tokio::time::sleep(std::time::Duration::ZERO));
        }))
        .is_ok()
    }
}

impl fmt::Debug for TokioRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioRuntime")
            .field("flavor", &self.flavor())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError> {
        if !self.timers_enabled() {
            return Err(SpawnError::new(
                "the tokio runtime has no timers: build it with enable_time() or enable_all()",
            ));
        }
        let state = Arc::new(AtomicU8::new(UNPOLLED));
        let tracked = Tracked {
            task: Some(task),
            live: Some(self.tasks.live.start()),
            state: state.clone(),
            tasks: self.tasks.clone(),
        };
        // Detached: tidings never aborts its worker; the runtime either runs it
        // to completion or drops it at shutdown (which core turns into spills).
        drop(self.handle.spawn(tracked));
        if state.load(Ordering::SeqCst) == DROPPED_UNPOLLED {
            return Err(SpawnError::new("the tokio runtime is shutting down"));
        }
        Ok(())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxSleep {
        Box::pin(TokioSleep {
            deadline,
            runtime: self.clone(),
            timer: None,
        })
    }

    fn now(&self) -> Instant {
        match Handle::try_current() {
            // Thread-locals are being destroyed (a reporter dropped at thread
            // exit): entering a context would panic. The wall clock is right
            // unless time is paused, and then only a summary's `elapsed` is off.
            Err(e) if e.is_thread_local_destroyed() => Instant::now(),
            _ => {
                let _enter = self.handle.enter();
                tokio::time::Instant::now().into_std()
            }
        }
    }
}

const UNPOLLED: u8 = 0;
const POLLED: u8 = 1;
const DONE: u8 = 2;
const DROPPED_UNPOLLED: u8 = 3;

/// A spawned task that counts itself live and records whether the runtime
/// dropped it unfinished.
struct Tracked {
    /// Dropped as soon as it completes (so `live` counts running work only).
    task: Option<BoxTask>,
    /// Counted live until the task is done and dropped.
    live: Option<LiveTask>,
    state: Arc<AtomicU8>,
    tasks: Arc<TaskState>,
}

impl Future for Tracked {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let _ = self
            .state
            .compare_exchange(UNPOLLED, POLLED, Ordering::SeqCst, Ordering::SeqCst);
        // A panicking task is dropped by tokio too; that must not read as a
        // runtime shutdown.
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(());
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                self.finish();
                Poll::Ready(())
            }
            Err(panic) => {
                self.finish();
                std::panic::resume_unwind(panic)
            }
        }
    }
}

impl Tracked {
    fn finish(&mut self) {
        self.state.store(DONE, Ordering::SeqCst);
        drop(self.task.take());
        drop(self.live.take());
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        match self.state.load(Ordering::SeqCst) {
            DONE => return,
            UNPOLLED => self.state.store(DROPPED_UNPOLLED, Ordering::SeqCst),
            _ => {}
        }
        self.tasks.gone.store(true, Ordering::SeqCst);
        // The task's destructors (core's spills) run before it stops
        // counting as live.
        drop(self.task.take());
        drop(self.live.take());
    }
}

/// A sleep on the runtime's clock that is safe to create, poll and drop
/// anywhere (see the module docs).
struct TokioSleep {
    deadline: Instant,
    runtime: TokioRuntime,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for TokioSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.runtime.is_shut_down() {
            return Poll::Ready(());
        }
        let this = &mut *self;
        let timer = this.timer.get_or_insert_with(|| {
            let deadline = tokio::time::Instant::from_std(this.deadline);
            let _enter = this.runtime.handle.enter();
            Box::pin(tokio::time::sleep_until(deadline))
        });
        timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn now_and_sleep_work_outside_any_runtime_context() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let runtime = TokioRuntime::new(rt.handle().clone());
        // No context on this thread.
        assert!(Handle::try_current().is_err());
        let a = runtime.now();
        let sleep = runtime.sleep(Duration::from_millis(20));
        futures_lite::future::block_on(sleep);
        assert!(runtime.now() >= a + Duration::from_millis(20));
        // Dropping a polled-but-pending sleep outside a context is fine.
        let mut pending = runtime.sleep(Duration::from_secs(3600));
        let waker = futures::task::noop_waker();
        assert!(pending
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(pending);
    }

    #[test]
    fn a_shut_down_runtime_refuses_spawns_and_its_sleeps_do_not_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let runtime = TokioRuntime::new(rt.handle().clone());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        runtime
            .spawn(Box::pin(async move {
                let _tx = tx;
                std::future::pending::<()>().await
            }))
            .unwrap();
        let mut sleep = runtime.sleep(Duration::from_secs(3600));
        let waker = futures::task::noop_waker();
        assert!(sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(rt);
        // The task was dropped unfinished (its sender is gone)...
        assert!(rx.recv().is_err());
        assert!(runtime.is_shut_down());
        // ...so sleeps complete instead of panicking, old and new.
        assert!(sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
        futures_lite::future::block_on(runtime.sleep(Duration::from_secs(3600)));
        let _ = runtime.now();
        let err = runtime.spawn(Box::pin(async {})).unwrap_err();
        assert!(err.to_string().contains("shutting down"), "{err}");
    }

    #[test]
    fn a_runtime_without_timers_is_refused_at_spawn() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runtime = TokioRuntime::new(rt.handle().clone());
        let err = runtime.spawn(Box::pin(async {})).unwrap_err();
        assert!(err.to_string().contains("enable_time"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_drives_now_and_sleep() {
        let runtime = TokioRuntime::current();
        let start = runtime.now();
        runtime.sleep(Duration::from_secs(3600)).await;
        let elapsed = runtime.now() - start;
        assert!(elapsed >= Duration::from_secs(3600));
        assert!(elapsed < Duration::from_secs(3601));
        // From another thread (no context there), now() still reads the
        // paused clock of this runtime.
        let other = runtime.clone();
        let seen = std::thread::spawn(move || other.now()).join().unwrap();
        assert!(seen - start >= Duration::from_secs(3600));
    }
}
