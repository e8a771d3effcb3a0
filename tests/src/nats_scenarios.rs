//! Scenarios against a real nats-server, through each adapter's own NATS
//! sink. Each counts what actually arrived (a subscriber or the stream) as
//! well as checking the identity.

use std::time::{Duration, Instant};

use tidings_core::nats::NatsConfig;
use tidings_core::{
    Fallback, JsonLinesFile, Report, ReportId, Reporter, ReporterBuilder, RetryPolicy, Sink,
};

use crate::harness::Harness;
use crate::nats_probe::{create_stream, stream_arrivals, stream_leader, Subscriber};
use crate::nats_server::{NatsCluster, NatsServer, ServerOptions};
use crate::scenarios::{assert_accounted, assert_each_exactly_once};

pub(crate) fn report(i: usize) -> Report {
    Report::error("nats_conformance", format!("report {i}")).with_context("i", i)
}

/// Patient enough to ride out a server restart without spilling.
pub(crate) fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(250),
        max_attempts: 400,
        attempt_timeout: Duration::from_secs(3),
        down_after: Duration::from_secs(120),
        probe_interval: Duration::from_millis(100),
    }
}

/// Gives up quickly, so an unreachable server means spilled reports.
pub(crate) fn impatient_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_attempts: 3,
        attempt_timeout: Duration::from_secs(2),
        down_after: Duration::from_millis(100),
        probe_interval: Duration::from_millis(50),
    }
}

/// The scenarios' reporter: `sink`, spilling to a JSON-lines file in `dir`
/// (whose path comes back, to count what was spilled), `retry`, quiet.
pub(crate) fn nats_builder(
    sink: Box<dyn Sink>,
    dir: &tempfile::TempDir,
    retry: RetryPolicy,
) -> (ReporterBuilder, std::path::PathBuf) {
    let path = dir.path().join("spill.jsonl");
    let builder = nats_builder_with(sink, JsonLinesFile::open(&path).unwrap(), retry);
    (builder, path)
}

/// [`nats_builder`] spilling to `fallback` instead.
pub(crate) fn nats_builder_with(
    sink: Box<dyn Sink>,
    fallback: impl Fallback,
    retry: RetryPolicy,
) -> ReporterBuilder {
    // These scenarios count reports one by one: folding is off.
    Reporter::builder()
        .folding(tidings_core::Folding::off())
        .boxed_sink(sink)
        .fallback(fallback)
        .retry(retry)
        .log_to_stderr(false)
}

pub(crate) fn spilled_ids(path: &std::path::Path) -> Vec<ReportId> {
    if !path.exists() {
        return Vec::new();
    }
    let (reports, bad) = JsonLinesFile::read(path).unwrap();
    assert_eq!(bad, 0, "torn lines in the spill file");
    reports.into_iter().map(|r| r.id).collect()
}

/// Core publish: every report reaches a subscriber.
pub fn nats_core_publish_arrives<H: Harness>() {
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "conformance.core.>");
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "conformance.core.reports"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder);
    let ids: Vec<ReportId> = (0..500)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 500, "[{}] {summary}", H::NAME);
    let arrived = sub.wait_for(500, Duration::from_secs(20));
    assert!(arrived.duplicates().is_empty());
    assert_eq!(arrived.unparsable, 0);
    assert_each_exactly_once(&ids, &arrived.ids, &spilled_ids(&spill_path));
}

/// JetStream: every report stored exactly once, acks say so.
pub fn jetstream_exactly_once<H: Harness>() {
    let server = NatsServer::start();
    create_stream(&server.url(), "CONF", "conformance.js", 1);
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "conformance.js").jetstream())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder);
    let receipts: Vec<_> = (0..2000)
        .map(|i| reporter.report(report(i)).unwrap())
        .collect();
    let ids: Vec<ReportId> = receipts.iter().map(|r| r.id()).collect();
    // One receipt says what JetStream acknowledged.
    let last = h.block_on(receipts.into_iter().last().unwrap());
    assert!(
        matches!(
            last.sinks.first().map(|s| &s.result),
            Some(tidings_core::SinkResult::Delivered(
                tidings_core::Ack::Stored { .. }
            ))
        ),
        "[{}] {last}",
        H::NAME
    );
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 2000, "[{}] {summary}", H::NAME);
    let stream = stream_arrivals(&server.url(), "CONF");
    assert!(stream.duplicates().is_empty(), "duplicates in the stream");
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill_path));
}

/// The server is SIGKILLed mid-stream and restarted: with JetStream every
/// report ends in the stream exactly once (retries reuse the id; the stream
/// deduplicates).
pub fn nats_killed_and_restarted_mid_stream<H: Harness>() {
    let mut server = NatsServer::start();
    create_stream(&server.url(), "CONFKILL", "conformance.kill", 1);
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "conformance.kill").jetstream())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder.capacity(10_000));
    let mut ids = Vec::new();
    let mut receipts = Vec::new();
    for i in 0..1000 {
        let r = reporter.report(report(i)).unwrap();
        ids.push(r.id());
        receipts.push(r);
    }
    // Half of them are through; kill the server while the rest are sent.
    let half = receipts.swap_remove(499);
    assert!(h.block_on(half).is_delivered());
    server.kill();
    for i in 1000..2000 {
        ids.push(reporter.report(report(i)).unwrap().id());
    }
    server.restart();
    for i in 2000..2500 {
        ids.push(reporter.report(report(i)).unwrap().id());
    }
    drop(receipts);
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(60)));
    assert_accounted(&summary.stats);
    let stream = stream_arrivals(&server.url(), "CONFKILL");
    assert!(
        stream.duplicates().is_empty(),
        "[{}] duplicates in the stream: {}",
        H::NAME,
        stream.duplicates().len()
    );
    assert_eq!(summary.stats.delivered, 2500, "[{}] {summary}", H::NAME);
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill_path));
}

/// NATS down at start: reports are retried then spilled (nothing lost);
/// once the server is back, a probe finds it and reports are delivered.
pub fn nats_down_at_start<H: Harness>() {
    let mut server = NatsServer::start();
    create_stream(&server.url(), "CONFDOWN", "conformance.down", 1);
    server.kill();
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "conformance.down").jetstream())
        .expect("a sink can be created while the server is down");
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, impatient_retry());
    let reporter = h.start(builder);
    let mut ids = Vec::new();
    for i in 0..50 {
        let receipt = reporter.report(report(i)).unwrap();
        ids.push(receipt.id());
        assert!(
            h.block_on(receipt).is_spilled(),
            "[{}] server is down",
            H::NAME
        );
    }
    let down = reporter.stats();
    assert!(down.sinks[0].down, "[{}] {down:?}", H::NAME);
    assert!(down.sinks[0].last_error.is_some());

    server.restart();
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let receipt = reporter.report(report(ids.len())).unwrap();
        ids.push(receipt.id());
        if h.block_on(receipt).is_delivered() {
            break;
        }
        assert!(Instant::now() < give_up, "[{}] never reconnected", H::NAME);
    }
    for i in 0..50 {
        ids.push(reporter.report(report(10_000 + i)).unwrap().id());
    }
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_accounted(&summary.stats);
    assert!(summary.stats.spilled >= 50);
    let stream = stream_arrivals(&server.url(), "CONFDOWN");
    assert!(stream.duplicates().is_empty());
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill_path));
}

/// A report larger than the server's max_payload is truncated with a
/// marker (never a closed connection or a panic); later reports still go.
pub fn oversized_report<H: Harness>() {
    let server = NatsServer::start_with(ServerOptions {
        max_payload: Some(4096),
        ..ServerOptions::default()
    });
    let sub = Subscriber::start(&server.url(), "conformance.big.>");
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "conformance.big.reports"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder);
    let big = Report::error("huge", "x".repeat(100_000)).with_context("blob", "y".repeat(50_000));
    let big_id = big.id;
    let first = h.block_on(reporter.report(big).unwrap());
    assert!(first.is_delivered(), "[{}] {first}", H::NAME);
    let small = h.block_on(reporter.report(report(1)).unwrap());
    assert!(
        small.is_delivered(),
        "[{}] connection survived: {small}",
        H::NAME
    );
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
    assert_accounted(&summary.stats);
    let arrived = sub.wait_for(2, Duration::from_secs(20));
    assert_each_exactly_once(&[big_id, small.id], &arrived.ids, &spilled_ids(&spill_path));
}

/// Invalid NATS settings fail when the sink is built, naming the field.
pub fn nats_bad_config_names_the_field<H: Harness>() {
    let h = H::new();
    for (config, field) in [
        (NatsConfig::new("http://127.0.0.1:4222", "a.b"), "nats.url"),
        (NatsConfig::new("nats://127.0.0.1:0", "a.b"), "nats.url"),
        (
            NatsConfig::new("nats://127.0.0.1:4222", "a..b"),
            "nats.subject",
        ),
        (
            NatsConfig::new("nats://127.0.0.1:4222", "a.*"),
            "nats.subject",
        ),
        (
            NatsConfig::new("nats://127.0.0.1:4222", "a.b").ensure_stream("S"),
            "nats.ensure_stream",
        ),
    ] {
        match h.nats_sink(config) {
            Err(e) => assert_eq!(e.field(), field, "[{}] {e}", H::NAME),
            Ok(_) => panic!("[{}] accepted a bad {field}", H::NAME),
        }
    }
    // Credentials never show in Debug output.
    let secret = "hunter2-do-not-print";
    let config = NatsConfig::new(format!("nats://alice:{secret}@127.0.0.1:4222"), "a.b");
    assert!(!format!("{config:?}").contains(secret));
}

/// A 3-node JetStream cluster with an R3 stream: the stream leader is
/// SIGKILLed mid-stream; reporting carries on; the stream ends with every
/// report exactly once.
pub fn jetstream_cluster_leader_killed<H: Harness>() {
    let mut cluster = NatsCluster::start();
    let urls = cluster.urls();
    create_stream(&urls[0], "CONFR3", "conformance.r3", 3);
    let mut config = NatsConfig::new(urls[0].clone(), "conformance.r3").jetstream();
    config.servers = urls.clone();
    let h = H::new();
    let sink = h.nats_sink(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill_path) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder.capacity(10_000));
    let mut ids = Vec::new();
    let mut last = None;
    for i in 0..500 {
        let r = reporter.report(report(i)).unwrap();
        ids.push(r.id());
        last = Some(r);
    }
    assert!(h.block_on(last.take().unwrap()).is_delivered());
    let leader = stream_leader(&urls[0], "CONFR3").expect("the R3 stream has a leader");
    let survivor = {
        let node = cluster.node_named(&leader).expect("leader is a node");
        node.kill();
        cluster
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .map(NatsServer::url)
            .expect("two nodes survive")
    };
    for i in 500..1500 {
        ids.push(reporter.report(report(i)).unwrap().id());
    }
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(60)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 1500, "[{}] {summary}", H::NAME);
    let stream = stream_arrivals(&survivor, "CONFR3");
    assert!(
        stream.duplicates().is_empty(),
        "[{}] duplicates in the stream",
        H::NAME
    );
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill_path));
}
