//! The tracing layer on a real pipeline: events in, reports in a real
//! JetStream stream out, with their fields, spans and cause chains.

mod common;

use std::time::Duration;

use tidings::testing::TestSink;
use tidings::{Reporter, Severity};
use tidings_conformance::scenarios::assert_accounted;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("charge declined")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn events_at_the_level_become_reports_in_the_stream() {
    let server = common::server_with_stream("TRACING", "tracing.reports");
    let (builder, recorded) = common::builder(&server, "tracing.reports");
    let (reporter, guard) = tidings::blocking::start(builder.log_to_stderr(false)).unwrap();
    let subscriber =
        tracing_subscriber::registry().with(tidings::tracing::layer(&reporter).level(Level::WARN));

    tracing::subscriber::with_default(subscriber, || {
        let checkout = tracing::info_span!("checkout", order = 7_u64);
        let _c = checkout.enter();
        let payment =
            tracing::info_span!("payment", provider = "acme", amount = tracing::field::Empty);
        let _p = payment.enter();
        payment.record("amount", 12.5);
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "gateway timed out",
        ));
        tracing::error!(
            kind = "payment_failed",
            error = &err as &dyn std::error::Error,
            attempt = 3_i64,
            retry = false,
            "payment failed"
        );
        tracing::warn!(target: "billing::ledger", entries = 2_u64, "ledger out of balance");
        // Not reported: below the level, tidings' own targets, the NATS clients'.
        tracing::info!("charging");
        tracing::debug!(kind = "noise", "details");
        tracing::error!(target: "tidings", "a diagnostic");
        tracing::error!(target: "tidings::spool", "another");
        tracing::error!(target: "tidings_core::worker", "and another");
        tracing::error!(target: "async_nats::connector", "connection refused");
        // Without a message, the error's own message is the report's.
        tracing::error!(error = &err as &dyn std::error::Error);
    });

    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 3, "{summary}");
    let reports = recorded.delivered();
    assert_eq!(common::arrived(&server, "TRACING"), common::ids(&reports));

    let failed = &reports[0];
    assert_eq!(failed.severity, Severity::Error);
    assert_eq!(failed.kind, "payment_failed");
    assert_eq!(failed.message, "payment failed");
    assert_eq!(failed.chain, ["charge declined", "gateway timed out"]);
    assert_eq!(failed.context["attempt"], 3);
    assert_eq!(failed.context["retry"], false);
    assert_eq!(failed.source.service, "integration-test");
    let t = &failed.context["tracing"];
    assert_eq!(t["target"], "tracing_layer");
    assert_eq!(t["level"], "ERROR");
    assert!(t["location"]
        .as_str()
        .unwrap()
        .starts_with("tests/tracing_layer.rs:"));
    assert_eq!(
        t["spans"],
        serde_json::json!([
            { "name": "checkout", "fields": { "order": 7 } },
            { "name": "payment", "fields": { "provider": "acme", "amount": 12.5 } },
        ])
    );

    let ledger = &reports[1];
    assert_eq!(ledger.severity, Severity::Warning);
    assert_eq!(ledger.kind, "billing::ledger", "no kind field: the target");
    assert_eq!(ledger.message, "ledger out of balance");
    assert_eq!(ledger.context["entries"], 2);

    let bare = &reports[2];
    assert_eq!(bare.message, "charge declined");
    assert_eq!(bare.chain, ["gateway timed out"]);
}

#[test]
fn the_layer_is_filterable_like_any_layer() {
    let (sink, recorded) = TestSink::new("recorder");
    let (reporter, guard) = tidings::blocking::start(Reporter::builder().sink(sink)).unwrap();
    let only_billing = Targets::new().with_target("billing", Level::ERROR);
    let subscriber = tracing_subscriber::registry()
        .with(tidings::tracing::layer(&reporter).with_filter(only_billing));
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(target: "billing::invoices", "kept");
        tracing::error!(target: "shipping", "filtered out");
    });
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    let kinds: Vec<String> = recorded
        .delivered()
        .into_iter()
        .map(|r| r.message)
        .collect();
    assert_eq!(kinds, ["kept"]);
}

#[test]
fn the_layer_never_disables_an_event_for_the_other_layers() {
    let (sink, recorded) = TestSink::new("recorder");
    let (reporter, guard) = tidings::blocking::start(Reporter::builder().sink(sink)).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_fmt = seen.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tidings::tracing::layer(&reporter))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || Capture(seen_by_fmt.clone()))
                .without_time(),
        );
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("an info the layer does not take");
        tracing::error!("an error it does");
    });
    let summary = guard.shutdown_blocking_within(Duration::from_secs(5));
    assert_accounted(&summary.stats);
    assert_eq!(recorded.delivered().len(), 1);
    let printed = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
    assert!(
        printed.contains("an info the layer does not take"),
        "{printed}"
    );
    assert!(printed.contains("an error it does"), "{printed}");
}

struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
