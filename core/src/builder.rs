//! [`ReporterBuilder`]: configuration checked once, at build time, with
//! errors that name the field; and what a reporter starts with when nothing
//! is configured (the embedded default: a JSON-lines file).

use std::fmt;
use std::time::Duration;

use crate::config::{BeforeSend, Config, ConfigError, Late, Overflow, RetryPolicy};
use crate::durable::{Durable, SpoolMode};
use crate::entry::SpillReason;
use crate::fallback::{Fallback, FallbackError, Stderr};
use crate::file_sink::JsonLinesSink;
use crate::fold::Folding;
use crate::report::Report;
use crate::reporter::Reporter;
use crate::runtime::{Runtime, SpawnError};
use crate::shared::Shared;
use crate::sink::Sink;
use crate::spool::{SpoolConfig, SpoolError};
use crate::stats::Ending;
use crate::sync::Arc;

/// Where reports go when no sink is configured (relative to the current
/// directory).
pub const DEFAULT_REPORTS_FILE: &str = "tidings-reports.jsonl";

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
        self.config.service = crate::report::intern(&service.into());
        self
    }

    /// The instance name filled into reports that do not set one.
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.config.instance = crate::report::intern(&instance.into());
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

    /// How repeats of one fingerprint are folded into counted aggregate
    /// reports (default: on, the first 100 per fingerprint per 10 s go out
    /// one by one; see [`crate::fold`]). [`Folding::off`] sends every
    /// report on its own.
    pub fn folding(mut self, folding: Folding) -> Self {
        self.config.folding = folding;
        self
    }

    /// A hook that sees every report before it is accepted (after the
    /// source is filled in and before folding), and may change it or drop
    /// it: return `false` to drop. A dropped report is never accepted:
    /// `report()` hands it back
    /// ([`RefusedReason::Filtered`](crate::RefusedReason::Filtered)) and it is
    /// counted in `filtered`. A hook that panics lets the report through
    /// unchanged; the panic is counted (`before_send_panics`) and said once,
    /// never passed on to the caller.
    ///
    /// ```
    /// use tidings_core::testing::{ManualRuntime, TestSink};
    /// use tidings_core::{RefusedReason, Report, Reporter};
    ///
    /// let rt = ManualRuntime::new();
    /// let (sink, _) = TestSink::new("mem");
    /// let reporter = Reporter::builder()
    ///     .sink(sink)
    ///     .before_send(|report| {
    ///         report.context.remove("session");
    ///         report.kind != "noise"
    ///     })
    ///     .build(rt.handle())
    ///     .unwrap();
    /// let dropped = reporter.report(Report::info("noise", "tick")).unwrap_err();
    /// assert_eq!(dropped.reason(), RefusedReason::Filtered);
    /// assert_eq!(reporter.stats().filtered, 1);
    /// assert_eq!(reporter.stats().accepted, 0);
    /// ```
    pub fn before_send(
        mut self,
        hook: impl Fn(&mut Report) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config.before_send = Some(BeforeSend(std::sync::Arc::new(hook)));
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
        Ok(Reporter::from_shared(shared))
    }
}
