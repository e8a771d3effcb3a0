//! The log integration on a real pipeline: records at the level are
//! reported into a real stream, every record reaches the inner logger.
//! One test in this binary: it owns the process's logger.

mod common;

use std::sync::{Arc, Mutex};

use log::{Level, LevelFilter, Log, Metadata, Record};
use tidings::Severity;
use tidings_conformance::scenarios::assert_accounted;

/// The program's own logger: keeps what it is given (Info and up).
#[derive(Clone, Default)]
struct Inner(Arc<Mutex<Vec<String>>>);

impl Log for Inner {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Info
    }
    fn log(&self, record: &Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

#[test]
fn records_at_the_level_are_reported_and_every_record_is_forwarded() {
    let server = common::server_with_stream("LOG", "log.reports");
    let (builder, recorded) = common::builder(&server, "log.reports");
    let (reporter, guard) = tidings::blocking::start(builder.log_to_stderr(false)).unwrap();
    let inner = Inner::default();
    tidings::log::logger(&reporter, inner.clone())
        .level(LevelFilter::Warn)
        .install(LevelFilter::Info)
        .unwrap();
    assert_eq!(
        tidings::log::logger(&reporter, Inner::default()).install(LevelFilter::Info),
        Err(tidings::log::LoggerAlreadySet)
    );

    log::error!(target: "billing", "charge failed for order {}", 7);
    log::warn!("retrying the export");
    log::info!("a quiet day");
    log::debug!("not even the inner logger wants this");
    log::error!(target: "tidings::spool", "tidings' own");
    log::error!(target: "nats::client", "the sync client's reconnect noise");

    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 2, "{summary}");
    // Before the probe reads the stream: its client logs too.
    let forwarded = inner.0.lock().unwrap().clone();
    let reports = recorded.delivered();
    assert_eq!(common::arrived(&server, "LOG"), common::ids(&reports));
    assert_eq!(reports[0].severity, Severity::Error);
    assert_eq!(reports[0].kind, "billing");
    assert_eq!(reports[0].message, "charge failed for order 7");
    assert_eq!(reports[0].context["log"]["target"], "billing");
    assert_eq!(reports[1].severity, Severity::Warning);
    assert_eq!(reports[1].message, "retrying the export");

    assert_eq!(
        forwarded,
        [
            "ERROR charge failed for order 7",
            "WARN retrying the export",
            "INFO a quiet day",
            "ERROR tidings' own",
            "ERROR the sync client's reconnect noise",
        ]
    );
}
