//! What the facade's integration tests share: a reporter on the blocking
//! adapter delivering to a real nats-server's stream and to a recording
//! sink (to read back what was reported), and counting what arrived.
#![allow(dead_code)]

use std::time::Duration;

use tidings::nats::NatsConfig;
use tidings::testing::{TestSink, TestSinkHandle};
use tidings::{Report, ReportId, Reporter, ReporterBuilder};
use tidings_conformance::nats_probe::{create_stream, stream_arrivals};
use tidings_conformance::nats_server::NatsServer;

/// A nats-server with the stream `stream` capturing `subject`.
pub fn server_with_stream(stream: &str, subject: &str) -> NatsServer {
    let server = NatsServer::start();
    create_stream(&server.url(), stream, subject, 1);
    server
}

/// A builder delivering to `subject` on `server` by JetStream and to a
/// recording sink; diagnostics silenced unless the test wants them.
pub fn builder(server: &NatsServer, subject: &str) -> (ReporterBuilder, TestSinkHandle) {
    let (recorder, recorded) = TestSink::new("recorder");
    let nats =
        tidings::blocking::NatsSink::connect(NatsConfig::new(server.url(), subject).jetstream())
            .expect("nats sink");
    let builder = Reporter::builder()
        .service("integration-test")
        .sink(nats)
        .sink(recorder)
        .shutdown_deadline(Duration::from_secs(10));
    (builder, recorded)
}

/// The report ids in `stream`, sorted, asserting none arrived twice.
pub fn arrived(server: &NatsServer, stream: &str) -> Vec<ReportId> {
    let arrivals = stream_arrivals(&server.url(), stream);
    assert!(arrivals.duplicates().is_empty(), "duplicates in {stream}");
    assert_eq!(arrivals.unparsable, 0);
    let mut ids = arrivals.ids;
    ids.sort();
    ids
}

/// The ids of `reports`, sorted.
pub fn ids(reports: &[Report]) -> Vec<ReportId> {
    let mut ids: Vec<ReportId> = reports.iter().map(|r| r.id).collect();
    ids.sort();
    ids
}
