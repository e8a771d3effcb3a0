//! Test doubles: a scriptable sink, a failing fallback, and a deterministic
//! runtime on virtual time.
//!
//! They are public because adapters, the conformance suite, benches and your
//! own tests use them; they cost nothing unless used.
//!
//! This file is longer than most (about 700 lines): the manual runtime is a
//! small executor with virtual time, and it is kept whole in one place.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use crate::fallback::{Fallback, FallbackError};
use crate::report::{Report, ReportId};
use crate::runtime::{BoxSleep, BoxTask, Runtime, SpawnError};
use crate::sink::{Ack, Batch, Sink, SinkError, SinkErrorKind, SinkFuture};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

// Test doubles use std's primitives even under `cfg(loom)`: they are
// scaffolding around the model, not part of it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ----- TestSink ---------------------------------------------------------------

/// What a [`TestSink`] does with the next attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Take every report ([`Ack::Written`]).
    Deliver,
    /// Fail every attempt with this kind.
    Fail(SinkErrorKind),
    /// Fail this many attempts (with `Unavailable`), then deliver.
    FailTimes(u32),
    /// Never return (the future stays pending until dropped).
    Hang,
    /// Panic inside `send`'s future on every attempt.
    Panic,
    /// Panic this many attempts, then deliver.
    PanicTimes(u32),
    /// Refuse the reports of this kind for good ([`SinkErrorKind::Rejected`],
    /// not retryable: a poison report); take the others.
    RejectKind(&'static str),
}

#[derive(Default)]
struct TestSinkState {
    behavior: Mutex<Option<Behavior>>,
    received: Mutex<Vec<Report>>,
    attempts: AtomicU64,
    started: AtomicU64,
    gate_closed: AtomicBool,
    gate: Event,
    progress: Event,
    closed: AtomicBool,
}

/// A scriptable in-memory sink, controlled through its [`TestSinkHandle`].
///
/// ```
/// use tidings_core::testing::{Behavior, TestSink};
/// let (sink, handle) = TestSink::new("mem");
/// handle.set_behavior(Behavior::FailTimes(2));
/// assert_eq!(handle.delivered().len(), 0);
/// # drop(sink);
/// ```
pub struct TestSink {
    name: String,
    state: Arc<TestSinkState>,
}

/// Controls and observes a [`TestSink`] after it was moved into a builder.
#[derive(Clone)]
pub struct TestSinkHandle {
    state: Arc<TestSinkState>,
}

impl TestSink {
    /// A sink that delivers, and its handle.
    pub fn new(name: &str) -> (TestSink, TestSinkHandle) {
        let state = Arc::new(TestSinkState::default());
        *lock(&state.behavior) = Some(Behavior::Deliver);
        (
            TestSink {
                name: name.to_owned(),
                state: state.clone(),
            },
            TestSinkHandle { state },
        )
    }
}

impl TestSinkHandle {
    /// Changes what the next attempts do.
    pub fn set_behavior(&self, b: Behavior) {
        *lock(&self.state.behavior) = Some(b);
        self.state.progress.notify(usize::MAX);
    }

    /// Makes `send` wait (asynchronously) until [`open_gate`](Self::open_gate).
    /// Attempts that are waiting count as started.
    pub fn close_gate(&self) {
        self.state.gate_closed.store(true, Ordering::SeqCst);
    }

    /// Lets waiting and future attempts proceed.
    pub fn open_gate(&self) {
        self.state.gate_closed.store(false, Ordering::SeqCst);
        self.state.gate.notify(usize::MAX);
    }

    /// Reports delivered so far (each time it took one: a retried report
    /// that was taken twice appears twice).
    pub fn delivered(&self) -> Vec<Report> {
        lock(&self.state.received).clone()
    }

    /// Ids delivered so far.
    pub fn delivered_ids(&self) -> Vec<ReportId> {
        lock(&self.state.received).iter().map(|r| r.id).collect()
    }

    /// Attempts that completed (successfully or not).
    pub fn attempts(&self) -> u64 {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// Attempts that started (including ones waiting at the gate or hanging).
    pub fn started(&self) -> u64 {
        self.state.started.load(Ordering::SeqCst)
    }

    /// True once the worker called `close`.
    pub fn was_closed(&self) -> bool {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Blocks until at least `n` attempts have started, or `timeout`.
    /// Returns whether they did. A synchronisation point for tests, not a
    /// sleep.
    pub fn wait_started(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.started() >= n {
                return true;
            }
            let l = self.state.progress.listen();
            if self.started() >= n {
                return true;
            }
            if l.wait_deadline(deadline).is_none() {
                return self.started() >= n;
            }
        }
    }

    /// Completes once at least `n` attempts have started: the async form of
    /// [`wait_started`](Self::wait_started), for runtimes that only make
    /// progress while the test drives them (tokio current-thread).
    pub async fn started_at_least(&self, n: u64) {
        loop {
            if self.started() >= n {
                return;
            }
            let l = self.state.progress.listen();
            if self.started() >= n {
                return;
            }
            l.await;
        }
    }

    /// Completes once at least `n` reports were delivered.
    pub async fn delivered_at_least(&self, n: usize) {
        loop {
            if lock(&self.state.received).len() >= n {
                return;
            }
            let l = self.state.progress.listen();
            if lock(&self.state.received).len() >= n {
                return;
            }
            l.await;
        }
    }

    /// Blocks until at least `n` reports were delivered, or `timeout`.
    pub fn wait_delivered(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if lock(&self.state.received).len() >= n {
                return true;
            }
            let l = self.state.progress.listen();
            if lock(&self.state.received).len() >= n {
                return true;
            }
            if l.wait_deadline(deadline).is_none() {
                return lock(&self.state.received).len() >= n;
            }
        }
    }
}

impl Sink for TestSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        let state = self.state.clone();
        Box::pin(async move {
            state.started.fetch_add(1, Ordering::SeqCst);
            state.progress.notify(usize::MAX);
            loop {
                if !state.gate_closed.load(Ordering::SeqCst) {
                    break;
                }
                let l = state.gate.listen();
                if !state.gate_closed.load(Ordering::SeqCst) {
                    break;
                }
                l.await;
            }
            let behavior = {
                let mut b = lock(&state.behavior);
                let now = b.unwrap_or(Behavior::Deliver);
                *b = Some(match now {
                    Behavior::FailTimes(n) if n > 1 => Behavior::FailTimes(n - 1),
                    Behavior::FailTimes(_) => Behavior::Deliver,
                    Behavior::PanicTimes(n) if n > 1 => Behavior::PanicTimes(n - 1),
                    Behavior::PanicTimes(_) => Behavior::Deliver,
                    other => other,
                });
                now
            };
            let result = match behavior {
                Behavior::Deliver => {
                    lock(&state.received).extend(batch.iter().cloned());
                    vec![Ok(Ack::Written); batch.len()]
                }
                Behavior::Fail(kind) => {
                    SinkError::new(kind, "scripted failure").for_all(batch.len())
                }
                Behavior::FailTimes(_) => {
                    SinkError::unavailable("scripted failure").for_all(batch.len())
                }
                Behavior::RejectKind(kind) => batch
                    .iter()
                    .map(|report| {
                        if report.kind == kind {
                            Err(SinkError::rejected(format!(
                                "scripted refusal of kind {kind}"
                            )))
                        } else {
                            lock(&state.received).push(report.clone());
                            Ok(Ack::Written)
                        }
                    })
                    .collect(),
                Behavior::Hang => {
                    std::future::pending::<()>().await;
                    unreachable!("pending never completes")
                }
                Behavior::Panic | Behavior::PanicTimes(_) => {
                    state.attempts.fetch_add(1, Ordering::SeqCst);
                    panic!("TestSink scripted panic")
                }
            };
            state.attempts.fetch_add(1, Ordering::SeqCst);
            state.progress.notify(usize::MAX);
            result
        })
    }

    fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        self.state.closed.store(true, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

// ----- fallbacks --------------------------------------------------------------

/// A fallback that keeps spilled reports in memory; can be told to fail.
#[derive(Clone, Default)]
pub struct MemoryFallback {
    reports: Arc<Mutex<Vec<Report>>>,
    failing: Arc<AtomicBool>,
}

impl MemoryFallback {
    /// An empty, working fallback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every spill fail (to exercise the stderr / lost path).
    pub fn set_failing(&self, yes: bool) {
        self.failing.store(yes, Ordering::SeqCst);
    }

    /// What was spilled so far.
    pub fn reports(&self) -> Vec<Report> {
        lock(&self.reports).clone()
    }

    /// Ids spilled so far.
    pub fn ids(&self) -> Vec<ReportId> {
        lock(&self.reports).iter().map(|r| r.id).collect()
    }
}

impl Fallback for MemoryFallback {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(FallbackError::new(
                "memory",
                std::io::Error::new(std::io::ErrorKind::StorageFull, "scripted failure"),
            ));
        }
        lock(&self.reports).extend(reports.iter().map(|r| (*r).clone()));
        Ok(())
    }
}

// ----- ManualRuntime ----------------------------------------------------------

/// A deterministic single-threaded runtime on virtual time.
///
/// Spawned tasks run only inside [`ManualRuntime::block_on`]. When no task
/// can make progress, virtual time jumps to the next timer (like tokio's
/// paused clock), so backoffs and deadlines of minutes take no real time.
/// Dropping the runtime drops its tasks unfinished — a runtime teardown —
/// even while [`ManualHandle`]s (held by reporters) are still alive; after
/// that, spawning fails and timers never fire.
///
/// ```
/// use std::time::Duration;
/// use tidings_core::{Reporter, Report};
/// use tidings_core::testing::{ManualRuntime, TestSink, Behavior};
///
/// let rt = ManualRuntime::new();
/// let (sink, sink_handle) = TestSink::new("mem");
/// sink_handle.set_behavior(Behavior::FailTimes(3)); // recovers on the 4th try
/// let reporter = Reporter::builder().sink(sink).build(rt.handle()).unwrap();
///
/// let receipt = reporter.report(Report::error("db", "down")).unwrap();
/// let outcome = rt.block_on(receipt);
/// assert!(outcome.is_delivered());
///
/// // Shutdown drains and closes; the identity holds with nothing in flight.
/// let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
/// assert_eq!((summary.stats.accepted, summary.stats.delivered), (1, 1));
/// assert!(summary.stats.is_balanced() && summary.stats.in_flight == 0);
/// ```
pub struct ManualRuntime {
    inner: Arc<RtInner>,
}

/// A cheap handle to a [`ManualRuntime`]; this is what implements
/// [`Runtime`].
#[derive(Clone)]
pub struct ManualHandle {
    inner: Arc<RtInner>,
}

struct RtInner {
    state: Mutex<RtState>,
    /// Unparks `block_on` when a task is woken from another thread.
    wakeup: Event,
}

struct RtState {
    now: Instant,
    ready: Vec<Arc<Task>>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_wakers: std::collections::HashMap<u64, Waker>,
    next_timer: u64,
    live_tasks: Vec<Weak<Task>>,
    shut_down: bool,
}

struct Task {
    future: Mutex<Option<BoxTask>>,
    queued: AtomicBool,
    rt: Weak<RtInner>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(rt) = self.rt.upgrade() {
            lock(&rt.state).ready.push(self.clone());
            rt.wakeup.notify(usize::MAX);
        }
    }
}

impl Default for ManualRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualRuntime {
    /// A runtime whose clock starts at the real now and then only moves when
    /// idle or when [`advance`](Self::advance) is called.
    pub fn new() -> Self {
        ManualRuntime {
            inner: Arc::new(RtInner {
                state: Mutex::new(RtState {
                    now: Instant::now(),
                    ready: Vec::new(),
                    timers: BinaryHeap::new(),
                    timer_wakers: Default::default(),
                    next_timer: 0,
                    live_tasks: Vec::new(),
                    shut_down: false,
                }),
                wakeup: Event::new(),
            }),
        }
    }

    /// The handle to give to [`ReporterBuilder::build`](crate::ReporterBuilder::build).
    pub fn handle(&self) -> ManualHandle {
        ManualHandle {
            inner: self.inner.clone(),
        }
    }

    /// Moves virtual time forward by `d`, waking due timers.
    pub fn advance(&self, d: Duration) {
        let due = {
            let mut st = lock(&self.inner.state);
            st.now += d;
            Self::due_wakers(&mut st)
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// Number of spawned tasks that have not finished (leak checks).
    pub fn live_tasks(&self) -> usize {
        let mut st = lock(&self.inner.state);
        st.live_tasks.retain(|t| t.strong_count() > 0);
        st.live_tasks
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| lock(&t.future).is_some())
            .count()
    }

    /// Removes the timers that are due and returns their wakers; the caller
    /// wakes them after releasing the state lock (waking re-locks it).
    #[must_use]
    fn due_wakers(st: &mut RtState) -> Vec<Waker> {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = st.timers.peek().copied() {
            if at > st.now {
                break;
            }
            st.timers.pop();
            due.extend(st.timer_wakers.remove(&id));
        }
        due
    }

    /// Runs `fut` to completion, running spawned tasks meanwhile and
    /// advancing virtual time whenever everything is idle. Blocks on real
    /// time only when there is no timer and nothing to run (waiting for
    /// another thread).
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let main = Arc::new(MainWaker::default());
        let main_waker = Waker::from(main.clone());
        let rt = self.inner.clone();
        main.rt.set(Arc::downgrade(&rt)).ok();
        main.woken.store(true, Ordering::SeqCst);
        loop {
            if main.woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&main_waker)) {
                    return out;
                }
            }
            let ready = std::mem::take(&mut lock(&rt.state).ready);
            if !ready.is_empty() {
                for task in ready {
                    task.queued.store(false, Ordering::SeqCst);
                    let waker = Waker::from(task.clone());
                    let mut slot = lock(&task.future);
                    if let Some(f) = slot.as_mut() {
                        if f.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                            *slot = None;
                        }
                    }
                }
                continue;
            }
            if main.woken.load(Ordering::SeqCst) {
                continue;
            }
            // Idle: jump to the next timer, or wait for another thread.
            let listener = rt.wakeup.listen();
            let due = {
                let mut st = lock(&rt.state);
                if !st.ready.is_empty() || main.woken.load(Ordering::SeqCst) {
                    continue;
                }
                match st.timers.peek().copied() {
                    Some(Reverse((at, _))) => {
                        if at > st.now {
                            st.now = at;
                        }
                        Self::due_wakers(&mut st)
                    }
                    None => Vec::new(),
                }
            };
            if due.is_empty() {
                listener.wait_timeout(Duration::from_millis(50));
            } else {
                due.into_iter().for_each(Waker::wake);
            }
        }
    }
}

#[derive(Default)]
struct MainWaker {
    woken: AtomicBool,
    rt: std::sync::OnceLock<Weak<RtInner>>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(rt) = self.rt.get().and_then(Weak::upgrade) {
            rt.wakeup.notify(usize::MAX);
        }
    }
}

impl Runtime for ManualHandle {
    fn spawn(&self, task: BoxTask) -> Result<(), SpawnError> {
        if lock(&self.inner.state).shut_down {
            return Err(SpawnError::new("the ManualRuntime was dropped"));
        }
        let task = Arc::new(Task {
            future: Mutex::new(Some(task)),
            queued: AtomicBool::new(false),
            rt: Arc::downgrade(&self.inner),
        });
        lock(&self.inner.state)
            .live_tasks
            .push(Arc::downgrade(&task));
        task.wake_by_ref();
        Ok(())
    }

    fn sleep_until(&self, deadline: Instant) -> BoxSleep {
        let inner = Arc::downgrade(&self.inner);
        let mut id: Option<u64> = None;
        Box::pin(std::future::poll_fn(move |cx| {
            let Some(rt) = inner.upgrade() else {
                return Poll::Pending;
            };
            let mut st = lock(&rt.state);
            if st.now >= deadline {
                return Poll::Ready(());
            }
            let key = *id.get_or_insert_with(|| {
                st.next_timer += 1;
                let key = st.next_timer;
                st.timers.push(Reverse((deadline, key)));
                key
            });
            st.timer_wakers.insert(key, cx.waker().clone());
            Poll::Pending
        }))
    }

    fn now(&self) -> Instant {
        lock(&self.inner.state).now
    }
}

impl Drop for ManualRuntime {
    fn drop(&mut self) {
        // Take the task futures out under the lock, drop them outside it:
        // their destructors spill and may touch this runtime's timers.
        let (tasks, ready, wakers) = {
            let mut st = lock(&self.inner.state);
            st.shut_down = true;
            let tasks: Vec<Arc<Task>> = st.live_tasks.iter().filter_map(Weak::upgrade).collect();
            (
                tasks,
                std::mem::take(&mut st.ready),
                std::mem::take(&mut st.timer_wakers),
            )
        };
        drop((ready, wakers));
        for t in tasks {
            let f = lock(&t.future).take();
            drop(f);
        }
    }
}

/// What the TLS hooks see in each connect failure core's table tells apart
/// ([`ConnectFailure::classify`](crate::nats::ConnectFailure::classify)):
/// one fixture per case, for the table-driven tests of core and both NATS
/// sinks.
pub mod tls_seen {
    use crate::nats::TlsSeen;

    /// The server's certificate does not chain to a trusted CA.
    pub fn untrusted() -> TlsSeen {
        TlsSeen {
            server_cert: Some(Err("invalid peer certificate: UnknownIssuer".into())),
            ..TlsSeen::default()
        }
    }

    /// The server's certificate is not valid for the name verified.
    pub fn wrong_name() -> TlsSeen {
        TlsSeen {
            server_cert: Some(Err("invalid peer certificate: NotValidForName".into())),
            ..TlsSeen::default()
        }
    }

    /// The server asked for a client certificate; none was configured.
    pub fn asked_none() -> TlsSeen {
        TlsSeen {
            server_cert: Some(Ok(())),
            client_cert_asked: Some(false),
            ..TlsSeen::default()
        }
    }

    /// The server asked for a client certificate; one was sent.
    pub fn asked_sent() -> TlsSeen {
        TlsSeen {
            server_cert: Some(Ok(())),
            client_cert_asked: Some(true),
            ..TlsSeen::default()
        }
    }

    /// TLS required, no handshake seen.
    pub fn required() -> TlsSeen {
        TlsSeen::new(true)
    }

    /// TLS required, the client's hello went out, no certificate came back.
    pub fn started() -> TlsSeen {
        TlsSeen {
            handshake_started: true,
            ..TlsSeen::new(true)
        }
    }
}

/// JetStream publish answers as they arrive on the wire (the body of the
/// reply to a publish), each with the kind core's table gives it. Both NATS
/// sinks run these rows through their own client's parsing in a
/// table-driven test, so a row that reads differently on one stack fails
/// there.
pub const JETSTREAM_ANSWERS: &[(&str, crate::SinkErrorKind)] = &[
    (
        r#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#,
        crate::SinkErrorKind::Unavailable,
    ),
    (
        r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        crate::SinkErrorKind::Unavailable,
    ),
    (
        r#"{"error":{"code":500,"err_code":10001,"description":"internal error"}}"#,
        crate::SinkErrorKind::Unavailable,
    ),
    (
        r#"{"error":{"code":502,"err_code":0,"description":"bad gateway"}}"#,
        crate::SinkErrorKind::Unavailable,
    ),
    (
        r#"{"error":{"code":408,"err_code":0,"description":"request timeout"}}"#,
        crate::SinkErrorKind::Timeout,
    ),
    (
        r#"{"error":{"code":504,"err_code":0,"description":"gateway timeout"}}"#,
        crate::SinkErrorKind::Timeout,
    ),
    (
        r#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#,
        crate::SinkErrorKind::TooLarge,
    ),
    (
        r#"{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}"#,
        crate::SinkErrorKind::Rejected,
    ),
    (
        r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#,
        crate::SinkErrorKind::Rejected,
    ),
    (
        r#"{"error":{"code":403,"err_code":0,"description":"forbidden"}}"#,
        crate::SinkErrorKind::Rejected,
    ),
];
