//! The metrics on a real pipeline: delivered to a real stream, then NATS
//! killed (the sink goes down, reports spill into the spool), each step
//! read back through metrics-util's debugging recorder.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tidings::spool::SpoolConfig;
use tidings::SpoolMode;
use tidings_conformance::scenarios::{assert_accounted, quick_retry};
use tidings_conformance::wait_until;

/// name{sink} → value, from one snapshot.
fn sample(recorder: &DebuggingRecorder, reporter: &tidings::Reporter) -> HashMap<String, f64> {
    metrics::with_local_recorder(recorder, || tidings::metrics::publish(reporter));
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let name = match key.labels().find(|l| l.key() == "sink") {
                Some(sink) => format!("{}{{{}}}", key.name(), sink.value()),
                None => key.name().to_owned(),
            };
            let value = match value {
                DebugValue::Counter(c) => c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            };
            (name, value)
        })
        .collect()
}

#[test]
fn the_counters_follow_the_reporter_through_an_outage() {
    let mut server = common::server_with_stream("METRICS", "metrics.reports");
    let (builder, _recorded) = common::builder(&server, "metrics.reports");
    let dir = tempfile::tempdir().unwrap();
    let (reporter, guard) = tidings::blocking::start(
        builder
            .spool(SpoolConfig::new(dir.path()), SpoolMode::OnSpill)
            .retry(quick_retry())
            .log_to_stderr(false),
    )
    .unwrap();
    let recorder = DebuggingRecorder::new();

    for i in 0..20 {
        reporter
            .report(tidings::Report::error("m", i.to_string()))
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(30), || reporter
        .stats()
        .delivered
        == 20));
    let m = sample(&recorder, &reporter);
    assert_eq!(m["tidings_reports_accepted_total"], 20.0);
    assert_eq!(m["tidings_reports_delivered_total"], 20.0);
    assert_eq!(m["tidings_reports_in_flight"], 0.0);
    assert_eq!(m["tidings_sink_delivered_total{jetstream}"], 20.0);
    assert_eq!(m["tidings_sink_up{jetstream}"], 1.0);
    assert_eq!(m["tidings_spool_records"], 0.0);

    server.kill();
    for i in 0..10 {
        reporter
            .report(tidings::Report::error("m", i.to_string()))
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(30), || {
        let s = reporter.stats();
        s.spilled == 10 && s.sinks.iter().any(|k| k.down)
    }));
    let m = sample(&recorder, &reporter);
    assert_eq!(m["tidings_reports_accepted_total"], 30.0);
    assert_eq!(m["tidings_reports_spilled_total"], 10.0);
    assert_eq!(m["tidings_reports_lost_total"], 0.0);
    assert_eq!(m["tidings_sink_up{jetstream}"], 0.0);
    assert!(m["tidings_sink_failed_attempts_total{jetstream}"] > 0.0);
    assert!(m["tidings_delivery_retries_total"] > 0.0);
    assert_eq!(m["tidings_spool_records"], 10.0);
    assert!(m["tidings_spool_bytes"] > 0.0);

    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    // The identity holds between the counters of one sample.
    let m = sample(&recorder, &reporter);
    assert_eq!(
        m["tidings_reports_accepted_total"],
        m["tidings_reports_delivered_total"]
            + m["tidings_reports_spilled_total"]
            + m["tidings_reports_lost_total"]
            + m["tidings_reports_in_flight"]
    );
    assert_eq!(
        common::arrived(
            &{
                server.restart();
                server
            },
            "METRICS"
        )
        .len(),
        20
    );
}

#[test]
fn the_publisher_ends_with_the_final_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let (sink, _) = tidings::testing::TestSink::new("mem");
    let (reporter, guard) =
        tidings::blocking::start(tidings::Reporter::builder().sink(sink)).unwrap();
    // An hour: only the final sample can be seen within this test.
    let publisher = tidings::metrics::Publisher::start(&reporter, Duration::from_secs(3600));
    for i in 0..7 {
        reporter
            .report(tidings::Report::error("m", i.to_string()))
            .unwrap();
    }
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    publisher.stop();
    let delivered = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == "tidings_reports_delivered_total")
        .map(|(.., v)| v);
    assert_eq!(delivered, Some(DebugValue::Counter(7)));
}
