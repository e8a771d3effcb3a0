//! Reports from [`log`] records: a [`log::Log`] that reports records at or
//! above a level (default `Error`) and hands **every** record to the
//! logger the program already has (`env_logger`, `simple_logger`, …),
//! with the feature `log`.
//!
//! `log` is already in tidings' default dependency tree (the sync NATS
//! client logs through it): this feature adds no crate.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! use log::LevelFilter;
//!
//! /// The logger the program had: here, one that prints.
//! struct Print;
//! impl log::Log for Print {
//!     fn enabled(&self, m: &log::Metadata<'_>) -> bool { m.level() <= log::Level::Info }
//!     fn log(&self, r: &log::Record<'_>) { println!("{} {}", r.level(), r.args()) }
//!     fn flush(&self) {}
//! }
//!
//! let (reporter, guard) = tidings::blocking::init()?;
//! tidings::log::logger(&reporter, Print).install(LevelFilter::Info)?;
//!
//! log::info!("printed, not reported");
//! log::error!(target: "billing", "charge failed for order {}", 7);
//! assert_eq!(guard.shutdown_blocking().stats.delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # From a record to a report
//!
//! | report | from the record |
//! |---|---|
//! | severity | `Error` → `error`, `Warn` → `warning`, `Info` → `info`, `Debug` and `Trace` → `debug` |
//! | kind | the target |
//! | message | the formatted message |
//! | context `log` | `{ target, level, module_path, location }` |
//!
//! tidings' own records (targets `tidings…`) are never reported, nor, by
//! default, those of the NATS clients it publishes with (`nats…`,
//! `async_nats…`): while NATS is down they describe tidings' own failure to
//! deliver. [`TidingsLogger::nats_client_records`] turns those on. Every
//! record, reported or not, still goes to the inner logger when it wants it.

use std::fmt;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::targets::{is_nats_client, is_tidings};
use crate::{Report, Reporter, Severity};

/// A logger reporting `reporter`'s records at `Error`, and forwarding every
/// record to `inner`.
pub fn logger<L: Log>(reporter: &Reporter, inner: L) -> TidingsLogger<L> {
    TidingsLogger {
        reporter: reporter.clone(),
        level: LevelFilter::Error,
        nats_client_records: false,
        inner,
    }
}

/// A [`log::Log`] that reports and forwards; see the [module docs](self).
pub struct TidingsLogger<L> {
    reporter: Reporter,
    level: LevelFilter,
    nats_client_records: bool,
    inner: L,
}

impl<L> TidingsLogger<L> {
    /// Reports records at `level` and above (more severe) instead of `Error`.
    pub fn level(mut self, level: LevelFilter) -> Self {
        self.level = level;
        self
    }

    /// Also reports the records of the NATS clients tidings publishes with.
    pub fn nats_client_records(mut self, yes: bool) -> Self {
        self.nats_client_records = yes;
        self
    }

    /// True when a record of this level and target becomes a report.
    pub fn captures(&self, level: Level, target: &str) -> bool {
        level <= self.level
            && !is_tidings(target)
            && (self.nats_client_records || !is_nats_client(target))
    }
}

impl<L: Log + 'static> TidingsLogger<L> {
    /// Makes this the process's logger, and sets `log`'s maximum level to
    /// `max_level` (the most verbose level the inner logger wants) or the
    /// reporting level, whichever is more verbose. Fails if a logger was
    /// already set.
    pub fn install(self, max_level: LevelFilter) -> Result<(), LoggerAlreadySet> {
        let max = max_level.max(self.level);
        // log's `std` feature (set_boxed_logger) is not in the default
        // tree; a logger lives as long as the process anyway.
        log::set_logger(Box::leak(Box::new(self))).map_err(|_| LoggerAlreadySet)?;
        log::set_max_level(max);
        Ok(())
    }
}

impl<L: Log> Log for TidingsLogger<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level || self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        let target = record.target();
        if self.captures(record.level(), target) {
            let location = match (record.file(), record.line()) {
                (Some(file), Some(line)) => Some(format!("{file}:{line}")),
                _ => None,
            };
            let report = Report::new(
                severity(record.level()),
                target.to_owned(),
                record.args().to_string(),
            )
            .with_context(
                "log",
                serde_json::json!({
                    "target": target,
                    "level": record.level().as_str(),
                    "module_path": record.module_path(),
                    "location": location,
                }),
            );
            // Refused: counted in the reporter's stats.
            let _ = self.reporter.report(report);
        }
        if self.inner.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// [`TidingsLogger::install`] found a logger already set (`log` allows one
/// per process): wrap that logger instead of installing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggerAlreadySet;

impl fmt::Display for LoggerAlreadySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a logger is already set: wrap it in tidings::log::logger(&reporter, it) instead of installing it")
    }
}

impl std::error::Error for LoggerAlreadySet {}

fn severity(level: Level) -> Severity {
    match level {
        Level::Error => Severity::Error,
        Level::Warn => Severity::Warning,
        Level::Info => Severity::Info,
        Level::Debug | Level::Trace => Severity::Debug,
    }
}
