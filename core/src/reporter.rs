//! The [`Reporter`] handle and its builder.

use std::fmt;
use std::time::{Duration, Instant};

use event_listener::Listener;
use futures::future::{self, Either};

use crate::config::{Config, ConfigError, Late, Overflow, RetryPolicy};
use crate::durable::{Durable, SpoolMode};
use crate::entry::{Entry, Receipt, SpillReason};
use crate::fallback::{Fallback, FallbackError, JsonLinesSink, Stderr};
use crate::spool::{RecordId, SpoolConfig, SpoolError};

/// Where reports go when no sink is configured (relative to the current
/// directory).
pub const DEFAULT_REPORTS_FILE: &str = "tidings-reports.jsonl";
use crate::report::Report;
use crate::runtime::{Runtime, SpawnError};
use crate::shared::{Phase, Shared};
use crate::sink::Sink;
use crate::stats::{inc, Ending, ShutdownSummary, Stats};
use crate::sync::{Arc, Ordering};

/// The handle programs report through. Cheap to clone, `Send + Sync`.
///
/// * [`report`](Reporter::report) never blocks (unless the overflow policy
///   is [`Overflow::Block`]), never panics, needs no runtime context, and
///   works from sync code, async code, any thread and `Drop` impls (G3).
/// * [`shutdown`](Reporter::shutdown) /
///   [`shutdown_blocking`](Reporter::shutdown_blocking) run the shutdown
///   protocol (G5).
/// * Dropping the **last** handle without shutting down spills whatever is
///   queued or in flight to the fallback, synchronously (G6). Adapters'
///   start-up guards hold a handle and run the full protocol instead.
#[derive(Clone)]
pub struct Reporter {
    handle: std::sync::Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.shared.summary().is_none() {
            self.shared.finish(Ending::Teardown, SpillReason::Teardown);
        }
    }
}

/// Why [`Reporter::report`] refused a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusedReason {
    /// The queue was full and the overflow policy is [`Overflow::Reject`].
    Full,
    /// The queue stayed full for the whole [`Overflow::Block`] timeout.
    Timeout,
    /// Shutdown had begun (or finished) and the late policy is
    /// [`Late::Refuse`].
    Closed,
}

/// A report refused at the door, handed back to the caller.
///
/// Nothing is lost by a refusal: the caller gets the report back
/// ([`Refused::into_report`]) and decides.
pub struct Refused {
    reason: RefusedReason,
    // Boxed: keeps `Result<Receipt, Refused>` small on the hot path.
    report: Box<Report>,
}

impl Refused {
    /// Why it was refused.
    pub fn reason(&self) -> RefusedReason {
        self.reason
    }

    /// The report, back to the caller.
    pub fn into_report(self) -> Report {
        *self.report
    }

    /// The report, borrowed.
    pub fn report(&self) -> &Report {
        &self.report
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("reason", &self.reason)
            .field("report", &self.report.id)
            .finish()
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            RefusedReason::Full => "the queue is full",
            RefusedReason::Timeout => "the queue stayed full for the whole block timeout",
            RefusedReason::Closed => "the reporter is shutting down or closed",
        };
        write!(f, "report {} refused: {why}", self.report.id)
    }
}

impl std::error::Error for Refused {}

/// Building a reporter failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid; the error names it.
    Config(ConfigError),
    /// The runtime would not run the worker.
    Spawn(SpawnError),
    /// A file (the default reports file) could not be opened.
    File(FallbackError),
    /// The spool could not be opened (e.g. another process holds it).
    Spool(SpoolError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => fmt::Display::fmt(e, f),
            BuildError::Spawn(e) => fmt::Display::fmt(e, f),
            BuildError::File(e) => fmt::Display::fmt(e, f),
            BuildError::Spool(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::File(e) => Some(e),
            BuildError::Spool(e) => Some(e),
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl From<SpawnError> for BuildError {
    fn from(e: SpawnError) -> Self {
        BuildError::Spawn(e)
    }
}

/// Configures and starts a [`Reporter`]. Adapters wrap this with their
/// runtime and sinks; use it directly to plug in a sink or runtime of your
/// own.
#[derive(Default)]
pub struct ReporterBuilder {
    config: Config,
    sinks: Vec<Box<dyn Sink>>,
    fallback: Option<Box<dyn Fallback>>,
    spool: Option<(SpoolConfig, SpoolMode)>,
}

impl fmt::Debug for ReporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReporterBuilder")
            .field("config", &self.config)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.as_ref().map(|f| f.location()))
            .finish()
    }
}

impl ReporterBuilder {
    /// The service name filled into reports that do not set one.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.config.service = service.into();
        self
    }

    /// The instance name filled into reports that do not set one.
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.config.instance = instance.into();
        self
    }

    /// Intake queue capacity, in reports (default 8192). Memory is bounded
    /// by this times the report size, plus `max_batch ×
    /// max_concurrent_batches` reports in flight.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity;
        self
    }

    /// What `report()` does when the queue is full (default
    /// [`Overflow::Spill`]).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.config.overflow = policy;
        self
    }

    /// What `report()` does once shutdown has begun (default [`Late::Spill`]).
    pub fn late(mut self, policy: Late) -> Self {
        self.config.late = policy;
        self
    }

    /// Most reports handed to a sink at once (default 512).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.config.max_batch = n;
        self
    }

    /// Most batches being sent at once (default 4).
    pub fn max_concurrent_batches(mut self, n: usize) -> Self {
        self.config.max_concurrent_batches = n;
        self
    }

    /// Retry and sink-health policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// The deadline used when shutdown is triggered without one (the
    /// adapters' guards on drop). Default 5 s.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.config.shutdown_deadline = deadline;
        self
    }

    /// Extra time allowed to flush and close sinks after the deadline
    /// (default 100 ms). Shutdown returns within deadline + about twice this.
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.config.close_grace = grace;
        self
    }

    /// Whether tidings writes its own diagnostics (sink down/recovered,
    /// fallback failures) to stderr. Default true. Lost reports are always
    /// printed.
    pub fn log_to_stderr(mut self, yes: bool) -> Self {
        self.config.log_to_stderr = yes;
        self
    }

    /// What is scrubbed from every report before it is accepted (so before
    /// any sink, the spool or the fallback sees it): on by default, see
    /// [`crate::scrub`] for the key list and what it guarantees;
    /// [`ScrubConfig::off`](crate::scrub::ScrubConfig::off) turns it off.
    pub fn scrub(mut self, config: crate::scrub::ScrubConfig) -> Self {
        self.config.scrub = crate::scrub::Scrubber::new(&config);
        self
    }

    /// Adds a sink. Reports count as delivered when every sink took them.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// True when at least one sink was added (otherwise the embedded
    /// default, [`DEFAULT_REPORTS_FILE`], is used).
    pub fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// Sets the fallback (default [`Stderr`]). Whatever it is, stderr backs
    /// it up.
    pub fn fallback(mut self, fallback: impl Fallback) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }

    /// Adds a durable spool (see [`crate::spool`] for the format and what
    /// each sync policy survives, and [`SpoolMode`] for the modes). It comes
    /// first in the fallback chain; what it holds is replayed to the sinks
    /// when they work again and on the next start. Opening fails at
    /// [`build`](Self::build) if another process holds the directory.
    pub fn spool(mut self, config: SpoolConfig, mode: SpoolMode) -> Self {
        self.spool = Some((config, mode));
        self
    }

    /// The configured default shutdown deadline.
    pub fn configured_shutdown_deadline(&self) -> Duration {
        self.config.shutdown_deadline
    }

    /// Checks the configuration without starting anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.config.validate()?;
        let mut names: Vec<&str> = self.sinks.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::new(
                "sinks",
                format!("two sinks are named {:?}; names must be unique", w[0]),
            ));
        }
        if self.sinks.iter().any(|s| s.name().is_empty()) {
            return Err(ConfigError::new("sinks", "a sink has an empty name"));
        }
        Ok(())
    }

    /// Validates the configuration and starts the worker on `runtime`.
    ///
    /// With no sink configured, reports go to the embedded default: a
    /// [`JsonLinesSink`] appending to [`DEFAULT_REPORTS_FILE`] in the
    /// current directory.
    pub fn build(self, runtime: impl Runtime) -> Result<Reporter, BuildError> {
        self.build_with(std::sync::Arc::new(runtime))
    }

    /// [`ReporterBuilder::build`] with a shared runtime.
    pub fn build_with(
        mut self,
        runtime: std::sync::Arc<dyn Runtime>,
    ) -> Result<Reporter, BuildError> {
        self.validate()?;
        if self.sinks.is_empty() {
            let file = JsonLinesSink::open(DEFAULT_REPORTS_FILE).map_err(BuildError::File)?;
            self.sinks.push(Box::new(file));
        }
        let durable = match self.spool {
            Some((config, mode)) => Some(Durable::open(config, mode).map_err(BuildError::Spool)?),
            None => None,
        };
        let fallback = self.fallback.unwrap_or_else(|| Box::new(Stderr));
        let shared = Arc::new(Shared::new(
            self.config,
            self.sinks,
            fallback,
            durable,
            runtime,
        ));
        let worker = crate::worker::run(shared.clone());
        if let Err(e) = shared.runtime.spawn(Box::pin(worker)) {
            // The worker future was dropped unstarted: nothing was accepted.
            shared.finish(Ending::Teardown, SpillReason::Teardown);
            return Err(e.into());
        }
        Ok(Reporter {
            handle: std::sync::Arc::new(Handle { shared }),
        })
    }
}

impl Reporter {
    /// A builder with the defaults.
    pub fn builder() -> ReporterBuilder {
        ReporterBuilder::default()
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    #[cfg(all(test, loom))]
    pub(crate) fn handle_shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Reports `report`.
    ///
    /// Returns a [`Receipt`] for an accepted report — queued for the sinks,
    /// or already spilled to the fallback when the queue was full
    /// ([`Overflow::Spill`]) or shutdown had begun ([`Late::Spill`]). The
    /// receipt may be dropped: the report is tracked regardless.
    ///
    /// Returns [`Refused`], with the report, when the policy says refuse
    /// ([`Overflow::Reject`], [`Overflow::Block`] timing out,
    /// [`Late::Refuse`]).
    ///
    /// Never panics and needs no runtime context. Blocks only under
    /// [`Overflow::Block`], at most for its timeout; in async code prefer
    /// [`Reporter::report_async`] with that policy.
    pub fn report(&self, mut report: Report) -> Result<Receipt, Refused> {
        let shared = self.shared();
        shared.prepare(&mut report);
        if shared.phase() != Phase::Running {
            return self.late(report);
        }
        let record = self.write_ahead(&report);
        let entry = Arc::new(Entry::new(report).with_record(record));
        let p = &shared.counters.producer;
        // Count it in flight before anyone else can see it: never underflows.
        p.in_flight.fetch_add(1, Ordering::AcqRel);
        match try_send(shared, &entry) {
            Sent::Ok => {
                inc(&p.accepted);
                Ok(Receipt::new(entry))
            }
            Sent::Closed => {
                p.in_flight.fetch_sub(1, Ordering::AcqRel);
                self.late_entry(entry)
            }
            Sent::Full => {
                inc(&p.overflowed);
                match shared.config.overflow {
                    Overflow::Spill => {
                        inc(&p.accepted);
                        shared.spill(&[&entry], SpillReason::Overflow, &|_| Vec::new());
                        Ok(Receipt::new(entry))
                    }
                    Overflow::Reject => {
                        p.in_flight.fetch_sub(1, Ordering::AcqRel);
                        self.refuse_entry(entry, RefusedReason::Full)
                    }
                    Overflow::Block { timeout } => {
                        inc(&p.blocked);
                        let deadline = Instant::now().checked_add(timeout);
                        self.block_until_room(entry, deadline)
                    }
                }
            }
        }
    }

    fn block_until_room(
        &self,
        entry: Arc<Entry>,
        deadline: Option<Instant>,
    ) -> Result<Receipt, Refused> {
        let shared = self.shared();
        let p = &shared.counters.producer;
        loop {
            let listener = shared.space.listen();
            match try_send(shared, &entry) {
                Sent::Ok => {
                    inc(&p.accepted);
                    return Ok(Receipt::new(entry));
                }
                Sent::Closed => {
                    p.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return self.late_entry(entry);
                }
                Sent::Full => {
                    let woke = match deadline {
                        Some(d) => listener.wait_deadline(d).is_some(),
                        None => {
                            listener.wait();
                            true
                        }
                    };
                    if !woke {
                        // One last try: room may have appeared just now.
                        if let Sent::Ok = try_send(shared, &entry) {
                            inc(&p.accepted);
                            return Ok(Receipt::new(entry));
                        }
                        p.in_flight.fetch_sub(1, Ordering::AcqRel);
                        return self.refuse_entry(entry, RefusedReason::Timeout);
                    }
                }
            }
        }
    }

    /// Like [`Reporter::report`], but under [`Overflow::Block`] waits for
    /// room asynchronously (on the runtime's clock) instead of blocking the
    /// thread. Under the other policies it is `report()`.
    pub async fn report_async(&self, mut report: Report) -> Result<Receipt, Refused> {
        let shared = self.shared();
        let Overflow::Block { timeout } = shared.config.overflow else {
            return self.report(report);
        };
        shared.prepare(&mut report);
        if shared.phase() != Phase::Running {
            return self.late(report);
        }
        let record = self.write_ahead(&report);
        let entry = Arc::new(Entry::new(report).with_record(record));
        let p = &shared.counters.producer;
        p.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut sleep = shared.runtime.sleep(timeout);
        let mut waited = false;
        loop {
            let listener = shared.space.listen();
            match try_send(shared, &entry) {
                Sent::Ok => {
                    inc(&p.accepted);
                    return Ok(Receipt::new(entry));
                }
                Sent::Closed => {
                    p.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return self.late_entry(entry);
                }
                Sent::Full => {
                    if !waited {
                        waited = true;
                        inc(&p.overflowed);
                        inc(&p.blocked);
                    }
                    match future::select(listener, sleep).await {
                        Either::Left(((), s)) => sleep = s,
                        Either::Right(((), _)) => {
                            if let Sent::Ok = try_send(shared, &entry) {
                                inc(&p.accepted);
                                return Ok(Receipt::new(entry));
                            }
                            p.in_flight.fetch_sub(1, Ordering::AcqRel);
                            return self.refuse_entry(entry, RefusedReason::Timeout);
                        }
                    }
                }
            }
        }
    }

    /// Writes `report` ahead to the spool in write-ahead mode. A refusal
    /// (full, disk full) is logged and counted by the spool; the report goes
    /// on without a record rather than being refused.
    fn write_ahead(&self, report: &Report) -> Option<RecordId> {
        let d = self.shared().durable.as_ref()?;
        if d.mode != SpoolMode::WriteAhead {
            return None;
        }
        match d.write_ahead(report) {
            Ok(id) => Some(id),
            Err(e) => {
                self.shared().note(
                    "spool",
                    &format!("write-ahead failed; reports continue without a record: {e}"),
                );
                None
            }
        }
    }

    fn late(&self, report: Report) -> Result<Receipt, Refused> {
        self.late_entry(Arc::new(Entry::new(report)))
    }

    /// A report arriving once shutdown has begun: the late policy.
    fn late_entry(&self, entry: Arc<Entry>) -> Result<Receipt, Refused> {
        let shared = self.shared();
        inc(&shared.counters.producer.late);
        match shared.config.late {
            Late::Refuse => self.refuse_entry(entry, RefusedReason::Closed),
            Late::Spill => {
                let p = &shared.counters.producer;
                p.in_flight.fetch_add(1, Ordering::AcqRel);
                inc(&p.accepted);
                shared.spill(&[&entry], SpillReason::Closed, &|_| Vec::new());
                Ok(Receipt::new(entry))
            }
        }
    }

    /// Refuses a report that may have been written ahead: its record is
    /// acknowledged, since the caller got the report back.
    fn refuse_entry(&self, entry: Arc<Entry>, reason: RefusedReason) -> Result<Receipt, Refused> {
        if let (Some(record), Some(d)) = (entry.record, self.shared().durable.as_ref()) {
            d.ack(&[record]);
        }
        self.refuse(unwrap_report(entry), reason)
    }

    fn refuse(&self, report: Report, reason: RefusedReason) -> Result<Receipt, Refused> {
        inc(&self.shared().counters.producer.refused);
        Err(Refused {
            reason,
            report: Box::new(report),
        })
    }

    /// A snapshot of the counters. At any quiescent moment
    /// `accepted == delivered + spilled + lost + in_flight`
    /// ([`Stats::is_balanced`]).
    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// Where the reporter is in its life.
    pub fn phase(&self) -> Phase {
        self.shared().phase()
    }

    /// The deadline configured for shutdowns triggered without one.
    pub fn default_shutdown_deadline(&self) -> Duration {
        self.shared().config.shutdown_deadline
    }

    /// Runs the shutdown protocol and waits for it asynchronously:
    /// close intake → drain the queue and in-flight sends → at `deadline`,
    /// abandon what is still in flight and spill it → flush and close the
    /// sinks → return the [`ShutdownSummary`].
    ///
    /// Returns within `deadline` plus about twice the close grace, even when
    /// a sink never returns or the worker cannot run (then this call spills
    /// everything itself). Idempotent: concurrent and later callers get the
    /// same summary; the first caller's deadline applies. Reports arriving
    /// meanwhile follow the [`Late`] policy.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownSummary {
        let shared = self.shared();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        let hard = shared.begin_shutdown(deadline);
        let backstop = hard + shared.config.close_grace * 2;
        let listener = shared.closed.listen();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        match future::select(listener, shared.runtime.sleep_until(backstop)).await {
            Either::Left(_) => {}
            Either::Right(_) => {
                shared.finish(Ending::Forced, SpillReason::Deadline);
            }
        }
        self.summary_now()
    }

    /// The blocking form of [`Reporter::shutdown`], for sync code. Waits on
    /// the wall clock. Safe to call on a thread that is also the async
    /// runtime's only thread (the worker cannot run then, so this call
    /// spills everything itself once the deadline has passed).
    pub fn shutdown_blocking(&self, deadline: Duration) -> ShutdownSummary {
        let shared = self.shared();
        if let Some(s) = shared.summary() {
            return s.clone();
        }
        let started = Instant::now();
        shared.begin_shutdown(deadline);
        let backstop = started
            .checked_add(deadline + shared.config.close_grace * 2)
            .unwrap_or_else(crate::runtime::far_future);
        loop {
            if shared.summary().is_some() {
                break;
            }
            let listener = shared.closed.listen();
            if shared.summary().is_some() {
                break;
            }
            if listener.wait_deadline(backstop).is_none() {
                shared.finish(Ending::Forced, SpillReason::Deadline);
                break;
            }
        }
        self.summary_now()
    }

    /// Ends the reporter now without draining: everything queued or in
    /// flight is spilled synchronously, the summary is returned. What
    /// dropping the last handle does; useful in `Drop` impls and on paths
    /// where waiting is not an option.
    pub fn close_now(&self) -> ShutdownSummary {
        self.shared()
            .finish(Ending::Teardown, SpillReason::Teardown)
    }

    /// The shutdown summary, if the reporter is closed.
    pub fn summary(&self) -> Option<ShutdownSummary> {
        self.shared().summary().cloned()
    }

    /// A read-only view of this reporter's counters that does not count as
    /// a handle: it does not keep the reporter open, so the last-handle
    /// teardown still happens when every [`Reporter`] is dropped.
    pub fn observer(&self) -> Observer {
        Observer {
            shared: self.handle.shared.clone(),
        }
    }

    fn summary_now(&self) -> ShutdownSummary {
        match self.shared().summary() {
            Some(s) => s.clone(),
            None => self.shared().finish(Ending::Forced, SpillReason::Deadline),
        }
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("phase", &self.phase())
            .field("service", &self.shared().config.service)
            .finish()
    }
}

/// Reads a reporter's counters without keeping it open (see
/// [`Reporter::observer`]).
#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
}

impl Observer {
    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Where the reporter is in its life.
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// The shutdown summary, once closed.
    pub fn summary(&self) -> Option<ShutdownSummary> {
        self.shared.summary().cloned()
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("phase", &self.phase())
            .finish()
    }
}

enum Sent {
    Ok,
    Full,
    Closed,
}

/// Offers a clone of `entry` to the queue. A refused clone is dropped
/// before this returns, so the caller's `Arc` is unique again.
fn try_send(shared: &Shared, entry: &Arc<Entry>) -> Sent {
    match shared.tx.try_send(entry.clone()) {
        Ok(()) => Sent::Ok,
        Err(async_channel::TrySendError::Full(_)) => Sent::Full,
        Err(async_channel::TrySendError::Closed(_)) => Sent::Closed,
    }
}

fn unwrap_report(entry: Arc<Entry>) -> Report {
    match Arc::try_unwrap(entry) {
        Ok(e) => e.report,
        // Only reachable if the channel kept a clone, which it does not
        // after refusing; clone rather than panic.
        Err(shared) => shared.report.clone(),
    }
}
