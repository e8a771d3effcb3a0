//! # tidings-core
//!
//! The runtime-free core of [tidings]: report errors and events from
//! long-running programs, and **never silently lose one**.
//!
//! This crate has no executor and no NATS client. It holds the report model,
//! the [`Reporter`] handle, [`Receipt`]s, the bounded intake with its
//! overflow policies, the worker that drives [`Sink`]s with retry, the local
//! [`Fallback`], the counters, and the shutdown protocol. Adapters
//! (tidings-tokio, tidings-smol, tidings-blocking) implement [`Runtime`] and
//! provide NATS sinks; most programs use the `tidings` facade crate.
//!
//! ## The promise, as an identity
//!
//! Every report accepted by [`Reporter::report`] ends in exactly one state:
//! *delivered* (every sink took it), *spilled* (written to the fallback), or
//! — only if the fallback fails too — *lost*, which is counted and printed to
//! stderr. [`Reporter::stats`] makes that checkable:
//!
//! ```text
//! accepted == delivered + spilled + lost + in_flight
//! ```
//!
//! A report refused at the door ([`Refused`]) is handed back to the caller
//! synchronously and is not part of `accepted`.
//!
//! ## Lifecycle: `Running → Draining → Closed`
//!
//! * **Running** — `report()` enqueues (bounded; when full, the
//!   [`Overflow`] policy decides: block with a timeout, refuse, or spill).
//! * **Draining** — entered by [`Reporter::shutdown`] (async) or
//!   [`Reporter::shutdown_blocking`]. Intake is closed at once: reports
//!   arriving now follow the [`Late`] policy (spill, the default, or
//!   refuse) — never dropped. The worker keeps delivering what was queued
//!   and in flight until the queue is empty or the deadline passes. At the
//!   deadline it abandons sends still running (their futures are dropped, a
//!   sink's thread is detached, never joined) and spills their reports and
//!   whatever is still queued. Then sinks are flushed and closed.
//! * **Closed** — the [`ShutdownSummary`] is fixed; `in_flight == 0`.
//!   Shutdown is idempotent; concurrent callers get the same summary.
//!
//! If the runtime drops the worker, or the last [`Reporter`] handle is
//! dropped, without a shutdown, whatever is queued or in flight is spilled
//! synchronously (no runtime needed for that).
//!
//! ```
//! use std::time::Duration;
//! use tidings_core::{Reporter, Report, Phase, Late, RefusedReason};
//! use tidings_core::testing::{ManualRuntime, TestSink, MemoryFallback};
//!
//! let rt = ManualRuntime::new();
//! let (sink, delivered) = TestSink::new("mem");
//! let spill = MemoryFallback::new();
//! let reporter = Reporter::builder()
//!     .sink(sink)
//!     .fallback(spill.clone())
//!     .late(Late::Refuse)
//!     .build(rt.handle())
//!     .unwrap();
//!
//! for i in 0..100 {
//!     reporter.report(Report::error("job_failed", format!("job {i}"))).unwrap();
//! }
//! // Nothing has run yet: all 100 are in flight.
//! assert_eq!(reporter.stats().in_flight, 100);
//!
//! // Shutdown drains everything that was accepted before it began.
//! let summary = rt.block_on(reporter.shutdown(Duration::from_secs(1)));
//! assert_eq!(summary.stats.delivered, 100);
//! assert_eq!(delivered.delivered().len(), 100);
//! assert_eq!(reporter.phase(), Phase::Closed);
//!
//! // After shutdown, intake is closed: with `Late::Refuse` the report comes back.
//! let refused = reporter.report(Report::error("too_late", "after close")).unwrap_err();
//! assert_eq!(refused.reason(), RefusedReason::Closed);
//! assert_eq!(refused.into_report().kind, "too_late");
//!
//! // Shutdown is idempotent.
//! assert_eq!(rt.block_on(reporter.shutdown(Duration::from_secs(1))), summary);
//! ```
//!
//! A sink that never returns cannot hold shutdown past its deadline; what it
//! held is spilled:
//!
//! ```
//! use std::time::Duration;
//! use tidings_core::{Reporter, Report, Ending};
//! use tidings_core::testing::{Behavior, ManualRuntime, MemoryFallback, TestSink};
//!
//! let rt = ManualRuntime::new();
//! let (sink, control) = TestSink::new("stuck");
//! control.set_behavior(Behavior::Hang);
//! let spill = MemoryFallback::new();
//! let reporter = Reporter::builder().sink(sink).fallback(spill.clone())
//!     .build(rt.handle()).unwrap();
//! let ids: Vec<_> = (0..10)
//!     .map(|i| reporter.report(Report::error("e", i.to_string())).unwrap().id())
//!     .collect();
//!
//! let summary = rt.block_on(reporter.shutdown(Duration::from_secs(2)));
//! assert_eq!(summary.ended_by, Ending::Deadline);
//! assert_eq!(summary.stats.spilled, 10);
//! assert_eq!(summary.stats.in_flight, 0);
//! let mut spilled = spill.ids();
//! spilled.sort();
//! assert_eq!(spilled, ids);
//! ```
//!
//! [tidings]: https://example.invalid/tidings

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod config;
pub mod context;
mod diagnostics;
mod durable;
mod entry;
mod fallback;
mod file_sink;
pub mod fold;
pub mod guard;
mod health;
mod intake;
mod lifecycle;
pub mod nats;
mod replay;
mod report;
mod report_json;
mod reporter;
mod runtime;
pub mod scrub;
mod settings;
mod settle;
mod shared;
mod sink;
mod spill;
pub mod spool;
mod stats;
mod sync;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

pub use builder::{BuildError, ReporterBuilder, DEFAULT_REPORTS_FILE};
pub use config::{ConfigError, Late, Overflow, RetryPolicy};
pub use diagnostics::{Diagnostic, DIAGNOSTICS_TARGET};
pub use durable::{SpoolMode, SpoolSummary};
pub use entry::{Outcome, Receipt, SinkOutcome, SinkResult, SpillReason, Status};
pub use fallback::{Fallback, FallbackError, JsonLinesFile, Stderr, STDERR_PREFIX};
pub use file_sink::JsonLinesSink;
pub use fold::Folding;
pub use guard::{EndSynchronously, Guard};
pub use intake::{Refused, RefusedReason};
pub use lifecycle::Phase;
pub use report::{
    Encoded, Fingerprint, InvalidReportId, Report, ReportId, Severity, Source, Timestamp, TooLarge,
    FINGERPRINT_MESSAGE_BYTES, SCHEMA_VERSION,
};
pub use reporter::{Observer, Reporter};
pub use runtime::{BoxSleep, BoxTask, LiveTask, LiveTasks, Runtime, SpawnError};
pub use settings::Settings;
pub use sink::{Ack, Batch, Sink, SinkError, SinkErrorKind, SinkFuture};
pub use stats::{Ending, ShutdownSummary, SinkStats, SpillDestination, Stats};
