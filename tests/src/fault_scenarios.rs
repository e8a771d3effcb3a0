//! The fault matrix: operational faults at the seams where tidings trusts
//! something outside it — a server's refusal, a stream's limits, a file
//! that vanishes, a slow disk — run on every adapter against real
//! nats-server processes.
//!
//! Each case ends the way every reliability test here ends: the identity
//! with `lost == 0` (and the spill destinations adding up to `spilled`),
//! what actually arrived counted by reading the stream (or a subscriber),
//! every accepted report found exactly once between the server and the
//! fallback file, and the reason for a refusal present in the stats. The
//! same fault gives the same outcome, and the same kind of message, on
//! every adapter: the decisions are core's.

use std::path::PathBuf;
use std::time::Duration;

use tidings_core::nats::{Credentials, NatsConfig, Secret, SubjectSuffix};
use tidings_core::spool::SpoolConfig;
use tidings_core::{
    Ack, Fallback, FallbackError, JsonLinesFile, Report, ReportId, Reporter, RetryPolicy,
    ShutdownSummary, SinkResult, SpoolMode, Stats,
};

use crate::harness::Harness;
use crate::nats_probe::{
    create_stream, create_stream_with, delete_stream, stream_arrivals, stream_arrivals_by_sequence,
    stream_len, stream_subjects, StreamSpec, Subscriber,
};
use crate::nats_scenarios::{
    impatient_retry, nats_builder, nats_builder_with, patient_retry, report, spilled_ids,
};
use crate::nats_server::{NatsServer, ServerOptions};
use crate::scenarios::{assert_accounted, assert_each_exactly_once, shutdown_on_time, sink_reason};

const ADMIN: (&str, &str) = ("admin", "admin-pw-x");
const REPORTER: (&str, &str) = ("reporter", "reporter-pw-x");

/// A server with two users: `admin` may do anything (the probes), and
/// `reporter` (the reporter under test) may not publish on `denied`
/// subjects.
fn server_with_users(denied: &[&str]) -> NatsServer {
    let deny: Vec<String> = denied.iter().map(|s| format!("{s:?}")).collect();
    NatsServer::start_with(ServerOptions {
        config: Some(format!(
            "authorization {{\n  users = [\n    {{user: {}, password: {}}}\n    \
             {{user: {}, password: {}, permissions: {{publish: {{deny: [{}]}}}}}}\n  ]\n}}",
            ADMIN.0,
            ADMIN.1,
            REPORTER.0,
            REPORTER.1,
            deny.join(", ")
        )),
        ..ServerOptions::default()
    })
}

fn as_reporter(config: NatsConfig) -> NatsConfig {
    config.credentials(Credentials::UserPassword {
        user: REPORTER.0.to_owned(),
        password: Secret::new(REPORTER.1),
    })
}

/// A reporter on `h` with `config`'s NATS sink and `retry`, spilling to a
/// JSON-lines file in `dir`, whose path comes back.
fn start_nats<H: Harness>(
    h: &H,
    config: NatsConfig,
    dir: &tempfile::TempDir,
    retry: RetryPolicy,
) -> (Reporter, PathBuf) {
    let sink = h.nats_sink(config).unwrap();
    let (builder, spill) = nats_builder(sink, dir, retry);
    (h.start(builder), spill)
}

/// A core-publish config no server answers: nothing listens on port 1, and
/// the first connection is not waited for long. Every report is spilled.
fn unreachable_nats() -> NatsConfig {
    let mut config = NatsConfig::new("nats://127.0.0.1:1", "faults.nowhere");
    config.connect_timeout = Duration::from_millis(100);
    config
}

/// Reports `n` reports, shuts down within `deadline`, checks the identity.
fn report_then_shut_down<H: Harness>(
    h: &H,
    reporter: &Reporter,
    n: usize,
    deadline: Duration,
) -> (Vec<ReportId>, ShutdownSummary) {
    let ids = (0..n)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    let summary = h.block_on(reporter.shutdown(deadline));
    assert_accounted(&summary.stats);
    (ids, summary)
}

/// Every spilled report is where the summary says: the file the stats name
/// holds exactly `spilled` reports.
#[track_caller]
fn assert_destinations_match(stats: &Stats, file: &std::path::Path) {
    let in_file = spilled_ids(file).len() as u64;
    let counted: u64 = stats
        .spilled_to
        .iter()
        .filter(|d| d.location == file.display().to_string())
        .map(|d| d.reports)
        .sum();
    assert_eq!(counted, in_file, "{:?}", stats.spilled_to);
    assert_eq!(counted, stats.spilled, "{:?}", stats.spilled_to);
}

/// Core publish on a subject the user may not publish to: the server says
/// `Permissions Violation`; every report is refused (not retried), spilled,
/// and the reason is in the stats. Nothing arrives, nothing is "delivered".
pub fn fault_core_publish_denied<H: Harness>() {
    let server = server_with_users(&["faults.denied", "faults.denied.>"]);
    let sub = Subscriber::start(&server.url_as(ADMIN.0, ADMIN.1), "faults.>");
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = as_reporter(NatsConfig::new(server.url(), "faults.denied.reports"));
    let (reporter, spill) = start_nats(&h, config, &dir, impatient_retry());
    let (ids, summary) = report_then_shut_down(&h, &reporter, 300, Duration::from_secs(20));
    let stats = &summary.stats;
    assert_eq!(stats.delivered, 0, "[{}] {summary}", H::NAME);
    assert_eq!(stats.spilled, 300, "[{}] {summary}", H::NAME);
    assert_eq!(stats.sinks[0].refused, 300, "[{}] {summary}", H::NAME);
    let why = sink_reason(stats);
    assert!(
        why.contains("refused publishing") && why.contains("Permissions Violation"),
        "[{}] {why}",
        H::NAME
    );
    // Said once, counted 300 times.
    let said = stats
        .diagnostics
        .iter()
        .find(|d| d.message.contains("refused publishing"))
        .unwrap_or_else(|| panic!("[{}] {:?}", H::NAME, stats.diagnostics));
    assert_eq!(said.count, 300, "[{}]", H::NAME);
    let arrived = sub.wait_for(1, Duration::from_millis(500));
    assert!(arrived.ids.is_empty(), "[{}] {:?}", H::NAME, arrived.ids);
    assert_each_exactly_once(&ids, &[], &spilled_ids(&spill));
    assert_destinations_match(stats, &spill);
}

/// JetStream publish on a subject the user may not publish to: refused
/// with the server's reason (not "timed out"), spilled, nothing stored.
pub fn fault_jetstream_publish_denied<H: Harness>() {
    let server = server_with_users(&["faults.jsdenied", "faults.jsdenied.>"]);
    let admin = server.url_as(ADMIN.0, ADMIN.1);
    create_stream(&admin, "JSDENIED", "faults.jsdenied", 1);
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = as_reporter(NatsConfig::new(server.url(), "faults.jsdenied").jetstream());
    let (reporter, spill) = start_nats(&h, config, &dir, impatient_retry());
    let (ids, summary) = report_then_shut_down(&h, &reporter, 100, Duration::from_secs(30));
    let stats = &summary.stats;
    assert_eq!(stats.delivered, 0, "[{}] {summary}", H::NAME);
    assert_eq!(stats.sinks[0].refused, 100, "[{}] {summary}", H::NAME);
    let why = sink_reason(stats);
    assert!(why.contains("refused publishing"), "[{}] {why}", H::NAME);
    assert_eq!(stream_len(&admin, "JSDENIED"), 0);
    assert_each_exactly_once(&ids, &[], &spilled_ids(&spill));
    assert_destinations_match(stats, &spill);
}

/// A stream full with `discard: new` refuses new messages: what it took is
/// delivered, the rest is retried, then spilled; the reason says the
/// stream is full.
pub fn fault_stream_full_discard_new<H: Harness>() {
    let server = NatsServer::start();
    create_stream_with(
        &server.url(),
        StreamSpec {
            name: "FULL".to_owned(),
            subjects: vec!["faults.full".to_owned()],
            max_msgs: Some(20),
            discard_new: true,
            ..StreamSpec::default()
        },
    );
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "faults.full").jetstream())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (builder, spill) = nats_builder(sink, &dir, impatient_retry());
    let reporter = h.start(builder.max_batch(10));
    let (ids, summary) = report_then_shut_down(&h, &reporter, 60, Duration::from_secs(30));
    let stats = &summary.stats;
    assert_eq!(stats.delivered, 20, "[{}] {summary}", H::NAME);
    assert_eq!(stats.spilled, 40, "[{}] {summary}", H::NAME);
    let said: Vec<&str> = stats
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .chain(stats.sinks[0].last_error.as_deref())
        .collect();
    assert!(
        said.iter().any(|m| m.contains("stream is full")),
        "[{}] {said:?}",
        H::NAME
    );
    let stream = stream_arrivals(&server.url(), "FULL");
    assert!(stream.duplicates().is_empty());
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill));
    assert_destinations_match(stats, &spill);
}

/// A stream whose `max_msg_size` is below some reports: those are refused
/// as too large (spilled, said why), the others delivered.
pub fn fault_stream_max_msg_size<H: Harness>() {
    let server = NatsServer::start();
    create_stream_with(
        &server.url(),
        StreamSpec {
            name: "SMALLMSG".to_owned(),
            subjects: vec!["faults.small".to_owned()],
            max_msg_size: Some(2048),
            ..StreamSpec::default()
        },
    );
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = NatsConfig::new(server.url(), "faults.small").jetstream();
    let (reporter, spill) = start_nats(&h, config, &dir, impatient_retry());
    let mut ids = Vec::new();
    for i in 0..30 {
        let r = if i % 3 == 0 {
            Report::error("big", "x".repeat(4000))
        } else {
            report(i)
        };
        ids.push(reporter.report(r).unwrap().id());
    }
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    let stats = &summary.stats;
    assert_accounted(stats);
    assert_eq!(stats.delivered, 20, "[{}] {summary}", H::NAME);
    assert_eq!(stats.sinks[0].refused, 10, "[{}] {summary}", H::NAME);
    let why = sink_reason(stats);
    assert!(why.contains("max_msg_size"), "[{}] {why}", H::NAME);
    let stream = stream_arrivals(&server.url(), "SMALLMSG");
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill));
    assert_destinations_match(stats, &spill);
}

/// With `ensure_stream`, a stream deleted while running is created again,
/// and every report after the deletion is stored exactly once.
pub fn fault_stream_deleted_mid_run<H: Harness>() {
    let server = NatsServer::start();
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = NatsConfig::new(server.url(), "faults.deleted")
        .jetstream()
        .ensure_stream("DELETED");
    let (reporter, spill) = start_nats(&h, config, &dir, patient_retry());
    let mut last = None;
    for i in 0..50 {
        last = Some(reporter.report(report(i)).unwrap());
    }
    assert!(h.block_on(last.take().unwrap()).is_delivered());
    delete_stream(&server.url(), "DELETED");
    let after: Vec<ReportId> = (50..150)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    let stats = &summary.stats;
    assert_accounted(stats);
    assert_eq!(stats.delivered, 150, "[{}] {summary}", H::NAME);
    let stream = stream_arrivals(&server.url(), "DELETED");
    assert!(stream.duplicates().is_empty());
    // What was stored before the operator deleted the stream is gone with
    // it; everything after is in the new stream.
    assert_each_exactly_once(&after, &stream.ids, &spilled_ids(&spill));
}

/// `ensure_stream` names a stream that exists but captures other subjects:
/// tidings does not change it; reports are spilled with an error that says
/// which subjects it captures and what to add.
pub fn fault_stream_captures_other_subjects<H: Harness>() {
    let server = NatsServer::start();
    create_stream(&server.url(), "WRONGSUBJ", "elsewhere", 1);
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = NatsConfig::new(server.url(), "faults.wrongsubj")
        .jetstream()
        .ensure_stream("WRONGSUBJ");
    let (reporter, spill) = start_nats(&h, config, &dir, impatient_retry());
    let (ids, summary) = report_then_shut_down(&h, &reporter, 20, Duration::from_secs(30));
    let stats = &summary.stats;
    assert_eq!(stats.delivered, 0, "[{}] {summary}", H::NAME);
    let why = sink_reason(stats);
    assert!(
        why.contains("captures") && why.contains("elsewhere"),
        "[{}] {why}",
        H::NAME
    );
    assert_eq!(stream_len(&server.url(), "WRONGSUBJ"), 0);
    assert_eq!(
        stream_subjects(&server.url(), "WRONGSUBJ").unwrap(),
        ["elsewhere", "elsewhere.>"],
        "the stream was changed"
    );
    assert_each_exactly_once(&ids, &[], &spilled_ids(&spill));
    assert_destinations_match(stats, &spill);
}

/// `ensure_stream("MINE")` while another stream already captures the
/// subject: creating MINE fails (subjects overlap); reports are stored by
/// the other stream, and each acknowledgement names it.
pub fn fault_another_stream_captures_the_subject<H: Harness>() {
    let server = NatsServer::start();
    create_stream(&server.url(), "THEIRS", "faults.theirs", 1);
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = NatsConfig::new(server.url(), "faults.theirs")
        .jetstream()
        .ensure_stream("MINE");
    let (reporter, spill) = start_nats(&h, config, &dir, patient_retry());
    let receipts: Vec<_> = (0..50)
        .map(|i| reporter.report(report(i)).unwrap())
        .collect();
    let ids: Vec<ReportId> = receipts.iter().map(|r| r.id()).collect();
    let last = h.block_on(receipts.into_iter().last().unwrap());
    match last.sinks.first().map(|s| &s.result) {
        Some(SinkResult::Delivered(Ack::Stored { stream, .. })) => {
            assert_eq!(stream, "THEIRS", "[{}]", H::NAME)
        }
        other => panic!("[{}] {other:?}", H::NAME),
    }
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 50, "[{}] {summary}", H::NAME);
    assert!(stream_subjects(&server.url(), "MINE").is_none());
    let stream = stream_arrivals(&server.url(), "THEIRS");
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill));
}

/// A kind of 5,000 characters with the kind in the subject: the subject's
/// kind token is cut, every report is delivered, the connection stays up.
pub fn fault_over_long_subject<H: Harness>() {
    let server = NatsServer::start();
    create_stream(&server.url(), "LONGSUBJ", "faults.long", 1);
    let h = H::new();
    let dir = tempfile::tempdir().unwrap();
    let config = NatsConfig::new(server.url(), "faults.long")
        .jetstream()
        .subject_suffix(SubjectSuffix::SeverityAndKind);
    let (reporter, spill) = start_nats(&h, config, &dir, impatient_retry());
    let long_kind = "k".repeat(5000);
    let ids: Vec<ReportId> = (0..60)
        .map(|i| {
            let r = if i % 2 == 0 {
                report(i).with_kind(long_kind.clone())
            } else {
                report(i)
            };
            reporter.report(r).unwrap().id()
        })
        .collect();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 60, "[{}] {summary}", H::NAME);
    // By sequence: the messages are on suffixed subjects, below the
    // stream's first one, which an ordered consumer would filter on.
    let stream = stream_arrivals_by_sequence(&server.url(), "LONGSUBJ");
    assert!(stream.duplicates().is_empty());
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill));
}

/// The fallback file's directory is removed while reports are being
/// spilled (NATS unreachable): the path is restored with everything the
/// deleted file held, so the summary's file holds every spilled report.
pub fn fault_fallback_directory_removed<H: Harness>() {
    let h = H::new();
    let sink = h.nats_sink(unreachable_nats()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spill_dir = dir.path().join("spill");
    let path = spill_dir.join("spilled.jsonl");
    let fallback = JsonLinesFile::open(&path).unwrap();
    let reporter = h.start(nats_builder_with(sink, fallback, impatient_retry()));
    let mut ids = Vec::new();
    for i in 0..50 {
        let receipt = reporter.report(report(i)).unwrap();
        ids.push(receipt.id());
        if i == 49 {
            assert!(h.block_on(receipt).is_spilled());
        }
    }
    std::fs::remove_dir_all(&spill_dir).unwrap();
    for i in 50..100 {
        ids.push(reporter.report(report(i)).unwrap().id());
    }
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.spilled, 100, "[{}] {summary}", H::NAME);
    assert!(
        summary.to_string().contains(&path.display().to_string()),
        "[{}] {summary}",
        H::NAME
    );
    assert_each_exactly_once(&ids, &[], &spilled_ids(&path));
    assert_destinations_match(&summary.stats, &path);
}

/// Reports with context nested far beyond what a JSON reader takes are
/// spilled to the spool while NATS is down, then replayed by the next run
/// into the stream: none is dropped as "damaged"; the cut is marked.
pub fn fault_deep_context_spooled_then_replayed<H: Harness>() {
    let mut server = NatsServer::start();
    create_stream(&server.url(), "DEEP", "faults.deep", 1);
    let url = server.url();
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let deep = |i: usize| {
        let mut v = serde_json::Value::from(i);
        for _ in 0..200 {
            v = serde_json::Value::Array(vec![v]);
        }
        let mut r = report(i);
        r.context.insert("deep".to_owned(), v);
        r
    };
    let ids: Vec<ReportId> = {
        let h = H::new();
        let mut config = NatsConfig::new(url.clone(), "faults.deep").jetstream();
        config.connect_timeout = Duration::from_millis(200);
        let sink = h.nats_sink(config).unwrap();
        let (builder, _spill) = nats_builder(sink, &dir, impatient_retry());
        let reporter = h.start(builder.spool(SpoolConfig::new(&spool_dir), SpoolMode::OnSpill));
        let ids = (0..20)
            .map(|i| reporter.report(deep(i)).unwrap().id())
            .collect();
        let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
        assert_accounted(&summary.stats);
        assert_eq!(
            summary.stats.spool.as_ref().map(|s| s.pending),
            Some(20),
            "[{}] {summary}",
            H::NAME
        );
        ids
    };
    server.restart();
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(url.clone(), "faults.deep").jetstream())
        .unwrap();
    let (builder, spill) = nats_builder(sink, &dir, patient_retry());
    let reporter = h.start(builder.spool(SpoolConfig::new(&spool_dir), SpoolMode::OnSpill));
    let replayed = h.wait_for(Duration::from_secs(30), || {
        reporter.stats().spool.as_ref().map(|s| s.replayed) == Some(20)
    });
    assert!(
        replayed,
        "[{}] replay stalled: {:?}",
        H::NAME,
        reporter.stats().spool
    );
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(20)));
    assert_accounted(&summary.stats);
    let spool = summary.stats.spool.as_ref().unwrap();
    assert_eq!(spool.corrupt_skipped, 0, "[{}] {summary}", H::NAME);
    assert_eq!(spool.pending, 0, "[{}] {summary}", H::NAME);
    let stream = stream_arrivals(&url, "DEEP");
    assert_each_exactly_once(&ids, &stream.ids, &spilled_ids(&spill));
}

/// A fallback whose final sync takes far longer than the deadline:
/// shutdown still returns within deadline + 250 ms, and says the sync had
/// not finished.
pub fn fault_slow_syncing_fallback<H: Harness>() {
    let h = H::new();
    let sink = h.nats_sink(unreachable_nats()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.jsonl");
    let fallback = SlowSync(JsonLinesFile::open(&path).unwrap());
    let reporter = h.start(nats_builder_with(sink, fallback, impatient_retry()));
    let ids: Vec<ReportId> = (0..50)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    let summary = shutdown_on_time(&h, &reporter, Duration::from_millis(500));
    assert_accounted(&summary.stats);
    assert_eq!(
        summary.unsynced,
        [path.display().to_string()],
        "[{}] {summary}",
        H::NAME
    );
    assert_each_exactly_once(&ids, &[], &spilled_ids(&path));
}

/// A JSON-lines fallback on a disk whose sync takes 3 s.
struct SlowSync(JsonLinesFile);

impl Fallback for SlowSync {
    fn location(&self) -> String {
        self.0.location()
    }

    fn spill(&self, reports: &[&Report]) -> Result<(), FallbackError> {
        self.0.spill(reports)
    }

    fn flush(&self) -> Result<(), FallbackError> {
        std::thread::sleep(Duration::from_secs(3));
        self.0.flush()
    }
}
