//! # tidings
//!
//! Report errors and events from long-running programs to NATS, and never
//! silently lose one.
//!
//! Programs that report errors by spawning a fire-and-forget task on
//! whatever event loop is running lose those reports whenever the loop
//! closes, leak tasks under load and hide failures. tidings tracks every
//! report from `report()` to a final state — *delivered*, *spilled* to a
//! local fallback, or (only if the fallback fails too) *lost*, counted and
//! printed — and makes that checkable:
//! `accepted == delivered + spilled + lost + in_flight`.
//!
//! This crate is the facade: the core ([`Reporter`], [`Report`],
//! [`Receipt`], sinks, fallback, shutdown protocol) plus the adapter chosen
//! by feature:
//!
//! | feature | module | runtime | NATS client |
//! |---|---|---|---|
//! | `blocking` (default) | [`blocking`] | a background thread | sync `nats`, on its own thread |
//! | `tokio` | `tokio` | tokio (multi- or current-thread) | `async-nats` |
//! | `smol` | `smol` | smol | sync `nats`, off the executor |
//!
//! ## Quick start
//!
//! `init()` reads the environment (`NATS_URL`, `TIDINGS_STREAM`, … — see
//! [`Settings`]); with no `NATS_URL` reports go to `./tidings-reports.jsonl`.
//! It says which it chose through tidings' diagnostics.
//!
//! A sync program (the default feature, `blocking`):
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap(); std::env::set_current_dir(dir.path()).unwrap();
//! # let err = std::io::Error::other("primary db unreachable");
//! let (reporter, guard) = tidings::blocking::init()?;
//! reporter.report(tidings::Report::from_error(&err).with_kind("database_failure"))?;
//! guard.shutdown_blocking(); // or let the guard drop at the end of main
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! tokio (`default-features = false, features = ["tokio"]`):
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap(); std::env::set_current_dir(dir.path()).unwrap();
//! # let err = std::io::Error::other("primary db unreachable");
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let (reporter, guard) = tidings::tokio::init().await?;
//! reporter.report(tidings::Report::from_error(&err).with_kind("database_failure"))?;
//! guard.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! smol (`default-features = false, features = ["smol"]`):
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap(); std::env::set_current_dir(dir.path()).unwrap();
//! # let err = std::io::Error::other("primary db unreachable");
//! # smol::block_on(async {
//! let (reporter, guard) = tidings::smol::init()?;
//! reporter.report(tidings::Report::from_error(&err).with_kind("database_failure"))?;
//! guard.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Configured in code instead (sinks, fallback, spool, policies): build a
//! [`ReporterBuilder`] and `start` it with the adapter; the summary holds
//! the identity:
//!
//! ```
//! use tidings::{JsonLinesFile, Report, Reporter};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! let (reporter, guard) = tidings::blocking::start(
//!     Reporter::builder()
//!         .service("billing")
//!         // No sink configured: reports go to ./tidings-reports.jsonl.
//!         .fallback(JsonLinesFile::open("tidings-spill.jsonl").unwrap()),
//! )
//! .unwrap();
//!
//! let err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "primary db unreachable");
//! reporter.report(Report::from_error(&err).with_kind("database_failure")).unwrap();
//!
//! let summary = guard.shutdown_blocking(); // drain, spill what is left at the deadline, close
//! assert_eq!(summary.stats.accepted, summary.stats.delivered + summary.stats.spilled);
//! assert_eq!(summary.stats.lost, 0);
//! ```
//!
//! ## Integrations
//!
//! | feature | module | what |
//! |---|---|---|
//! | `tracing` | `tidings::tracing` | a `tracing_subscriber::Layer`: events at ERROR (or a level you choose) become reports, with fields, spans and the error's cause chain |
//! | `log` | `tidings::log` | a `log::Log` that reports records at `Error` and forwards every record to your logger |
//! | — (always) | [`panic`](mod@crate::panic) | a panic hook: each panic a Critical report; with a write-ahead spool it survives `panic = "abort"` |
//! | `metrics` | `tidings::metrics` | the counters through the `metrics` facade |
//! | — (always) | [`Settings`] | configuration from the environment or a TOML/YAML section; each adapter's `init()` |
//!
//! ## Errors from anyhow and eyre
//!
//! [`Report::from_error`] takes any `dyn Error`, and `anyhow::Error` and
//! `eyre::Report` dereference to one: the report keeps the whole chain of
//! contexts and causes.
//!
//! ```
//! use anyhow::Context;
//!
//! let io = std::io::Error::new(std::io::ErrorKind::NotFound, "config.toml not found");
//! let err = Err::<(), _>(io).context("loading settings").context("starting billing").unwrap_err();
//! let report = tidings::Report::from_error(&*err).with_kind("startup_failed");
//! assert_eq!(report.message, "starting billing");
//! assert_eq!(report.chain, ["loading settings", "config.toml not found"]);
//!
//! let eyre_err = eyre::eyre!("disk full").wrap_err("writing the export");
//! let report = tidings::Report::from_error(&*eyre_err);
//! assert_eq!(report.message, "writing the export");
//! assert_eq!(report.chain, ["disk full"]);
//! ```
//!
//! See the [`tidings_core`] docs for the lifecycle (`Running → Draining →
//! Closed`), close and drain semantics, and the guarantees.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// What a program reporting errors uses.
pub use tidings_core::{
    Ack, Diagnostic, Ending, Fingerprint, Folding, Observer, Outcome, Phase, Receipt, Refused,
    RefusedReason, Report, ReportId, Reporter, ReporterBuilder, Severity, ShutdownSummary,
    SinkOutcome, SinkResult, SinkStats, Source, SpillDestination, SpillReason, Stats, Status,
    Timestamp, DEFAULT_REPORTS_FILE, SCHEMA_VERSION,
};
// Configuration and its errors.
pub use tidings_core::{BuildError, ConfigError, Late, Overflow, RetryPolicy, Settings, SpoolMode};
// tidings' own messages: tracing events of this target (else stderr).
pub use tidings_core::DIAGNOSTICS_TARGET;
// Where reports go: sinks, the local fallback, the spool.
pub use tidings_core::{
    Batch, Fallback, FallbackError, JsonLinesFile, JsonLinesSink, Sink, SinkError, SinkErrorKind,
    SinkFuture, SpoolSummary, Stderr, STDERR_PREFIX,
};
// Report encoding limits.
pub use tidings_core::{Encoded, InvalidReportId, TooLarge};
// For writing an adapter of your own: the runtime trait and the guard.
pub use tidings_core::{context, fold, guard, nats, spool};
pub use tidings_core::{
    BoxSleep, BoxTask, EndSynchronously, Guard, LiveTask, LiveTasks, Runtime, SpawnError,
};

/// Test doubles (recording, failing, hanging sinks; an in-memory fallback;
/// a manual runtime), with the `test-util` feature.
#[cfg(feature = "test-util")]
pub use tidings_core::testing;

/// The blocking-thread adapter: [`blocking::start`] runs the worker on a
/// background thread; [`blocking::NatsSink`] publishes with the sync client.
#[cfg(feature = "blocking")]
pub use tidings_blocking as blocking;

/// The tokio adapter.
#[cfg(feature = "tokio")]
pub use tidings_tokio as tokio;

/// The smol adapter.
#[cfg(feature = "smol")]
pub use tidings_smol as smol;

pub mod panic;

#[cfg(any(feature = "tracing", feature = "log"))]
mod targets;

#[cfg(feature = "tracing")]
pub mod tracing;

#[cfg(feature = "log")]
pub mod log;

#[cfg(feature = "metrics")]
pub mod metrics;
