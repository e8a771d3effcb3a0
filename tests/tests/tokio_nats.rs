//! tidings-tokio's async-nats sinks and guard end to end, against real,
//! throwaway nats-servers on loopback (core publish, JetStream, SIGKILL and
//! restart, down at start, oversized reports, runtime dropped mid-stream,
//! guard dropped inside a runtime, paused time). The conformance suite runs on both tokio flavors
//! from `tokio_multi_thread.rs` and `tokio_current_thread.rs`.
//!
//! Every test ends with the identity (`accepted == delivered + spilled +
//! lost + in_flight`, `in_flight == 0`, `lost == 0`) and counts what really
//! arrived at the server.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tidings_conformance::nats_probe::{stream_arrivals, Subscriber};
use tidings_conformance::nats_server::{NatsServer, ServerOptions};
use tidings_conformance::scenarios::{assert_accounted, quick_retry};
use tidings_core::nats::{Credentials, NatsConfig, Secret, SubjectSuffix};
use tidings_core::testing::{Behavior, MemoryFallback, TestSink};
use tidings_core::{
    Ending, Receipt, Report, ReportId, Reporter, ReporterBuilder, RetryPolicy, Sink, SinkErrorKind,
    SinkResult, Stats,
};
use tidings_tokio::NatsSink;
use tokio::runtime::Runtime;

// ----- helpers ----------------------------------------------------------------

fn runtime(multi_thread: bool) -> Runtime {
    let mut builder = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Retries for as long as a NATS restart takes, without marking the sink
/// down (which would spill instead of waiting).
fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        max_attempts: 10_000,
        attempt_timeout: Duration::from_secs(10),
        down_after: Duration::from_secs(600),
        probe_interval: Duration::from_millis(100),
    }
}

fn report(i: usize) -> Report {
    Report::error("tokio_nats", format!("report {i}")).with_context("i", i)
}

fn report_all(reporter: &Reporter, range: std::ops::Range<usize>) -> Vec<Receipt> {
    range
        .map(|i| reporter.report(report(i)).expect("accepted"))
        .collect()
}

fn jetstream(url: &str, subject: &str, stream: &str) -> NatsConfig {
    let mut config = NatsConfig::new(url, subject)
        .jetstream()
        .ensure_stream(stream);
    if let tidings_core::nats::Delivery::JetStream { ack_timeout, .. } = &mut config.delivery {
        *ack_timeout = Duration::from_secs(2);
    }
    config
}

/// The tests' reporter: `sink`, spilling to `spill`, folding off (every
/// report counted one by one). Retries and the rest are each test's own.
fn builder(sink: impl Sink, spill: &MemoryFallback) -> ReporterBuilder {
    Reporter::builder()
        .folding(tidings_core::Folding::off())
        .sink(sink)
        .fallback(spill.clone())
}

/// Waits (polling, bounded) for a condition the system will reach on its
/// own; fails the test if it does not within `within`.
async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `body` on a thread of its own and fails (instead of hanging the
/// suite) if it does not finish within `within`: for the no-deadlock tests.
fn within<T: Send + 'static>(within: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(within) {
        Ok(v) => {
            thread.join().expect("test thread");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: the test body did not finish within {within:?}")
        }
        Err(_) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body sent no result"),
        },
    }
}

/// Splits receipts by outcome; every receipt must be settled.
fn settled(receipts: &[Receipt]) -> (Vec<ReportId>, Vec<ReportId>) {
    let mut delivered = Vec::new();
    let mut spilled = Vec::new();
    for r in receipts {
        let outcome = r.try_outcome().expect("every accepted report is settled");
        if outcome.is_delivered() {
            delivered.push(r.id());
        } else {
            assert!(
                outcome.is_spilled(),
                "neither delivered nor spilled: {outcome:?}"
            );
            spilled.push(r.id());
        }
    }
    (delivered, spilled)
}

fn as_set(ids: &[ReportId]) -> HashSet<ReportId> {
    ids.iter().copied().collect()
}

/// Delivered + spilled covers every accepted report, the fallback holds each
/// spilled one exactly once, and the counters agree.
#[track_caller]
fn assert_all_somewhere(receipts: &[Receipt], spill: &MemoryFallback, stats: &Stats) {
    assert_accounted(stats);
    assert_eq!(stats.accepted as usize, receipts.len());
    let (delivered, spilled) = settled(receipts);
    assert_eq!(delivered.len() as u64, stats.delivered, "{stats:?}");
    assert_eq!(spilled.len() as u64, stats.spilled, "{stats:?}");
    let in_fallback = spill.ids();
    assert_eq!(in_fallback.len(), spilled.len(), "spilled twice or missing");
    assert_eq!(as_set(&in_fallback), as_set(&spilled));
}

// ----- core publish ----------------------------------------------------------

fn core_publish_end_to_end(multi_thread: bool) {
    const N: usize = 5_000;
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "tidings.e2e.>");
    let spill = MemoryFallback::new();
    let rt = runtime(multi_thread);
    let (receipts, summary) = rt.block_on(async {
        let config = NatsConfig::new(server.url(), "tidings.e2e")
            .subject_suffix(SubjectSuffix::SeverityAndKind);
        let sink = NatsSink::connect(config).await.expect("connect");
        assert!(
            sink.is_connected(),
            "connect waits for the first connection"
        );
        let (reporter, guard) =
            tidings_tokio::start(builder(sink, &spill).retry(patient_retry())).expect("start");
        let receipts = report_all(&reporter, 0..N);
        (
            receipts,
            guard.shutdown_within(Duration::from_secs(60)).await,
        )
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert_eq!(summary.ended_by, Ending::Drained);
    assert_eq!((stats.delivered, stats.spilled), (N as u64, 0), "{stats:?}");
    for r in &receipts {
        let outcome = r.try_outcome().unwrap();
        assert!(matches!(
            outcome.sink("nats"),
            Some(SinkResult::Delivered(tidings_core::Ack::Sent))
        ));
    }

    let arrived = sub.wait_for(N, Duration::from_secs(30));
    assert_eq!(arrived.unparsable, 0);
    assert!(
        arrived.duplicates().is_empty(),
        "duplicates on a healthy server"
    );
    let ids: Vec<ReportId> = receipts.iter().map(Receipt::id).collect();
    assert_eq!(
        as_set(&arrived.ids),
        as_set(&ids),
        "every report arrived once"
    );
}

#[test]
fn core_publish_end_to_end_multi_thread() {
    core_publish_end_to_end(true);
}

#[test]
fn core_publish_end_to_end_current_thread() {
    core_publish_end_to_end(false);
}

// ----- JetStream ---------------------------------------------------------------

#[test]
fn jetstream_stores_every_report_exactly_once() {
    const N: usize = 5_000;
    let server = NatsServer::start();
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let (receipts, summary) = rt.block_on(async {
        let sink = NatsSink::connect(jetstream(&server.url(), "tidings.js", "JS_ONCE"))
            .await
            .expect("connect");
        let (reporter, guard) =
            tidings_tokio::start(builder(sink, &spill).retry(patient_retry())).expect("start");
        let receipts = report_all(&reporter, 0..N);
        (
            receipts,
            guard.shutdown_within(Duration::from_secs(60)).await,
        )
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert_eq!((stats.delivered, stats.spilled), (N as u64, 0), "{stats:?}");
    let mut sequences = HashSet::new();
    for r in &receipts {
        match r.try_outcome().unwrap().sink("jetstream") {
            Some(SinkResult::Delivered(tidings_core::Ack::Stored {
                stream, sequence, ..
            })) => {
                assert_eq!(stream, "JS_ONCE");
                assert!(sequences.insert(*sequence), "sequence {sequence} twice");
            }
            other => panic!("not stored: {other:?}"),
        }
    }

    let arrived = stream_arrivals(&server.url(), "JS_ONCE");
    assert_eq!(arrived.ids.len(), N, "messages in the stream");
    assert!(arrived.duplicates().is_empty());
    let ids: Vec<ReportId> = receipts.iter().map(Receipt::id).collect();
    assert_eq!(as_set(&arrived.ids), as_set(&ids));
}

#[test]
fn jetstream_without_a_stream_is_retried_then_spilled() {
    let server = NatsServer::start();
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let (receipts, summary) = rt.block_on(async {
        let mut config = jetstream(&server.url(), "tidings.nostream", "UNUSED");
        config.ensure_stream = None;
        let sink = NatsSink::connect(config).await.expect("connect");
        let (reporter, guard) = tidings_tokio::start(
            builder(sink, &spill)
                .retry(RetryPolicy {
                    initial_backoff: Duration::from_millis(5),
                    max_backoff: Duration::from_millis(20),
                    max_attempts: 3,
                    ..patient_retry()
                })
                .log_to_stderr(false),
        )
        .expect("start");
        let receipts = report_all(&reporter, 0..20);
        (
            receipts,
            guard.shutdown_within(Duration::from_secs(30)).await,
        )
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert_eq!(stats.spilled, 20);
    // No responders may be a leader election: retried, within the budget.
    assert!(stats.retries > 0, "{stats:?}");
    match receipts[0].try_outcome().unwrap().sink("jetstream") {
        Some(SinkResult::Failed(e)) => assert_eq!(e.kind(), SinkErrorKind::Unavailable, "{e}"),
        other => panic!("{other:?}"),
    }
}

// ----- NATS killed and restarted ---------------------------------------------

#[test]
fn jetstream_survives_sigkill_and_restart_with_every_report_once() {
    const N: usize = 10_000;
    let mut server = NatsServer::start();
    let url = server.url();
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let (receipts, summary, failed_while_down) = rt.block_on(async {
        let sink = NatsSink::connect(jetstream(&url, "tidings.kill", "KILL"))
            .await
            .expect("connect");
        let (reporter, guard) = tidings_tokio::start(
            builder(sink, &spill)
                // Room for everything reported while the server is down.
                .capacity(16_384)
                .max_batch(256)
                .retry(patient_retry())
                .log_to_stderr(false),
        )
        .expect("start");
        let mut receipts = report_all(&reporter, 0..N / 2);
        until("some reports stored", Duration::from_secs(30), || {
            reporter.stats().delivered >= 500
        })
        .await;

        server.kill();
        let failed_before = reporter.stats().failed_attempts;
        receipts.extend(report_all(&reporter, N / 2..N));
        until("the sink to notice", Duration::from_secs(30), || {
            reporter.stats().failed_attempts > failed_before
        })
        .await;
        let failed_while_down = reporter.stats().failed_attempts - failed_before;

        tokio::task::block_in_place(|| server.restart());
        let summary = guard.shutdown_within(Duration::from_secs(120)).await;
        (receipts, summary, failed_while_down)
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert!(failed_while_down > 0);
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(summary.ended_by, Ending::Drained, "{summary}");
    assert_eq!((stats.delivered, stats.spilled), (N as u64, 0), "{summary}");

    let arrived = stream_arrivals(&server.url(), "KILL");
    assert_eq!(arrived.unparsable, 0);
    assert!(
        arrived.duplicates().is_empty(),
        "{} duplicates in the stream",
        arrived.duplicates().len()
    );
    let ids: Vec<ReportId> = receipts.iter().map(Receipt::id).collect();
    assert_eq!(arrived.ids.len(), N);
    assert_eq!(as_set(&arrived.ids), as_set(&ids));
}

#[test]
fn nats_down_at_start_retries_then_delivers_after_restart() {
    const N: usize = 500;
    let mut server = NatsServer::start();
    let url = server.url();
    server.kill();
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let (receipts, summary, delivered_while_down) = rt.block_on(async {
        let mut config = jetstream(&url, "tidings.late", "LATE");
        config.connect_timeout = Duration::from_millis(200);
        // The server is down: connect still succeeds.
        let sink = NatsSink::connect(config).await.expect("connect");
        assert!(!sink.is_connected());
        let (reporter, guard) = tidings_tokio::start(
            builder(sink, &spill)
                .retry(patient_retry())
                .log_to_stderr(false),
        )
        .expect("start");
        let receipts = report_all(&reporter, 0..N);
        until(
            "retries while the server is down",
            Duration::from_secs(30),
            || {
                let s = reporter.stats();
                s.retries > 0 && s.failed_attempts > 0
            },
        )
        .await;
        let stats = reporter.stats();
        let error = stats.sinks[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("not connected"), "{error}");
        let delivered_while_down = stats.delivered;

        tokio::task::block_in_place(|| server.restart());
        let summary = guard.shutdown_within(Duration::from_secs(60)).await;
        (receipts, summary, delivered_while_down)
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert_eq!(delivered_while_down, 0);
    assert_eq!(stats.delivered, N as u64, "{summary}");

    let arrived = stream_arrivals(&server.url(), "LATE");
    assert!(arrived.duplicates().is_empty());
    let (delivered, _) = settled(&receipts);
    assert_eq!(as_set(&arrived.ids), as_set(&delivered));
}

#[test]
fn wrong_credentials_surface_in_stats_and_reports_are_spilled() {
    let server = NatsServer::start_with(ServerOptions {
        user_password: Some(("tidings".into(), "right-password".into())),
        ..ServerOptions::default()
    });
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let (receipts, summary) = rt.block_on(async {
        let mut config =
            NatsConfig::new(server.url(), "tidings.auth").credentials(Credentials::UserPassword {
                user: "tidings".into(),
                password: Secret::new("wrong-password"),
            });
        config.connect_timeout = Duration::from_millis(500);
        let sink = NatsSink::connect(config).await.expect("connect");
        let (reporter, guard) = tidings_tokio::start(
            builder(sink, &spill)
                .retry(quick_retry())
                .log_to_stderr(false),
        )
        .expect("start");
        let receipts = report_all(&reporter, 0..10);
        until("every report to settle", Duration::from_secs(30), || {
            receipts.iter().all(|r| r.try_outcome().is_some())
        })
        .await;
        let stats = reporter.stats();
        let error = stats.sinks[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("authorization"), "{error}");
        assert!(!error.contains("wrong-password"), "{error}");
        (
            receipts,
            guard.shutdown_within(Duration::from_secs(10)).await,
        )
    });
    assert_all_somewhere(&receipts, &spill, &summary.stats);
    assert_eq!(summary.stats.spilled, 10);
}

// ----- oversized reports -------------------------------------------------------

#[test]
fn oversized_reports_are_truncated_or_spilled_never_sent_over_max_payload() {
    let server = NatsServer::start_with(ServerOptions {
        max_payload: Some(4096),
        ..ServerOptions::default()
    });
    let sub = Subscriber::start(&server.url(), "tidings.big.core");
    let spill = MemoryFallback::new();
    let rt = runtime(true);
    let small = Report::error("small", "fits");
    let long = Report::error("long", "x".repeat(20_000)).with_context("blob", "y".repeat(20_000));
    // The kind is never cut, so this one cannot be made to fit.
    let giant = Report::error("k".repeat(5_000), "unfixable");
    let (small_id, long_id, giant_id) = (small.id, long.id, giant.id);
    let (receipts, summary) = rt.block_on(async {
        let core = NatsSink::connect(NatsConfig::new(server.url(), "tidings.big.core"))
            .await
            .expect("connect core");
        let js = NatsSink::connect(jetstream(&server.url(), "tidings.big.js", "BIG"))
            .await
            .expect("connect jetstream");
        let (reporter, guard) = tidings_tokio::start(
            builder(core, &spill)
                .sink(js)
                .retry(patient_retry())
                .log_to_stderr(false),
        )
        .expect("start");
        let receipts: Vec<Receipt> = [small, long, giant]
            .into_iter()
            .map(|r| reporter.report(r).unwrap())
            .collect();
        (
            receipts,
            guard.shutdown_within(Duration::from_secs(30)).await,
        )
    });
    let stats = &summary.stats;
    assert_all_somewhere(&receipts, &spill, stats);
    assert_eq!((stats.delivered, stats.spilled), (2, 1), "{summary}");
    assert_eq!(stats.retries, 0, "too large is final: {stats:?}");
    let giant_outcome = receipts[2].try_outcome().unwrap();
    for sink in ["nats", "jetstream"] {
        match giant_outcome.sink(sink) {
            Some(SinkResult::Failed(e)) => assert_eq!(e.kind(), SinkErrorKind::TooLarge),
            other => panic!("{sink}: {other:?}"),
        }
    }
    assert_eq!(spill.ids(), vec![giant_id]);

    let arrived = sub.wait_for(2, Duration::from_secs(30));
    assert_eq!(as_set(&arrived.ids), as_set(&[small_id, long_id]));
    let stored = stream_arrivals(&server.url(), "BIG");
    assert_eq!(as_set(&stored.ids), as_set(&[small_id, long_id]));
    // The server is still serving: the oversized report never reached it
    // (the server closes connections that exceed max_payload).
    assert_eq!(arrived.unparsable + stored.unparsable, 0);
}

// ----- runtime dropped without shutdown ------------------------------------

fn runtime_dropped_right_after_reporting(multi_thread: bool) {
    const N: usize = 10_000;
    let server = NatsServer::start();
    let sub = Subscriber::start(&server.url(), "tidings.drop");
    let spill = MemoryFallback::new();
    let rt = runtime(multi_thread);
    let (reporter, guard, receipts) = rt.block_on(async {
        let sink = NatsSink::connect(NatsConfig::new(server.url(), "tidings.drop"))
            .await
            .expect("connect");
        let (reporter, guard) = tidings_tokio::start(
            builder(sink, &spill)
                .capacity(16_384)
                .retry(patient_retry())
                .log_to_stderr(false),
        )
        .expect("start");
        let receipts = report_all(&reporter, 0..N);
        (reporter, guard, receipts)
    });
    // No shutdown: the runtime goes, with the worker and async-nats in it.
    drop(rt);

    let summary = reporter
        .summary()
        .expect("the teardown closed the reporter");
    assert_eq!(summary.ended_by, Ending::Teardown);
    assert_all_somewhere(&receipts, &spill, &summary.stats);
    // The handle outlives the runtime: a late report is spilled, not lost.
    let late = reporter.report(report(N)).unwrap();
    assert!(late.try_outcome().is_some_and(|o| o.is_spilled()));
    // Dropping the guard now has nothing left to do (and must not panic).
    drop(guard);

    // Everything flushed before the teardown reached the server.
    let (delivered, spilled) = settled(&receipts);
    let arrived = sub.wait_for_all(&delivered, Duration::from_secs(30));
    let arrived = as_set(&arrived.ids);
    assert!(as_set(&delivered).is_subset(&arrived));
    let everywhere: HashSet<ReportId> = arrived.union(&as_set(&spilled)).copied().collect();
    let ids: Vec<ReportId> = receipts.iter().map(Receipt::id).collect();
    assert_eq!(
        everywhere,
        as_set(&ids),
        "a report is neither at the server nor spilled"
    );
}

#[test]
fn runtime_dropped_right_after_10k_reports_multi_thread() {
    runtime_dropped_right_after_reporting(true);
}

#[test]
fn runtime_dropped_right_after_10k_reports_current_thread() {
    runtime_dropped_right_after_reporting(false);
}

// ----- the guard dropped inside a runtime -----------------------------------

fn guard_dropped_inside(multi_thread: bool) -> (Ending, Stats) {
    const N: usize = 2_000;
    within(Duration::from_secs(120), move || {
        let server = NatsServer::start();
        let sub = Subscriber::start(&server.url(), "tidings.guard");
        let spill = MemoryFallback::new();
        let rt = runtime(multi_thread);
        let (reporter, receipts) = rt.block_on(async {
            let sink = NatsSink::connect(NatsConfig::new(server.url(), "tidings.guard"))
                .await
                .expect("connect");
            let (reporter, guard) = tidings_tokio::start(
                builder(sink, &spill)
                    .retry(patient_retry())
                    .log_to_stderr(false),
            )
            .expect("start");
            let receipts = report_all(&reporter, 0..N);
            drop(guard); // inside the runtime, on its thread
            (reporter, receipts)
        });
        let summary = reporter.summary().expect("the guard closed the reporter");
        assert_all_somewhere(&receipts, &spill, &summary.stats);
        let (delivered, _) = settled(&receipts);
        let arrived = sub.wait_for_all(&delivered, Duration::from_secs(30));
        assert!(as_set(&delivered).is_subset(&as_set(&arrived.ids)));
        drop(rt);
        (summary.ended_by, summary.stats)
    })
}

#[test]
fn guard_dropped_inside_a_current_thread_runtime_spills_without_deadlock() {
    let (ending, stats) = guard_dropped_inside(false);
    // The worker needs the thread the guard was dropped on: nothing is
    // waited for, everything not yet delivered is spilled.
    assert_eq!(ending, Ending::Teardown);
    assert_eq!(stats.delivered + stats.spilled, 2_000);
}

#[test]
fn guard_dropped_inside_a_multi_thread_runtime_drains() {
    let (ending, stats) = guard_dropped_inside(true);
    assert_eq!(ending, Ending::Drained);
    assert_eq!((stats.delivered, stats.spilled), (2_000, 0));
}

// ----- paused time -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn hung_sink_shutdown_returns_at_the_virtual_deadline_with_everything_spilled() {
    let (sink, control) = TestSink::new("stuck");
    control.set_behavior(Behavior::Hang);
    let spill = MemoryFallback::new();
    let close_grace = Duration::from_millis(100);
    let (reporter, guard) = tidings_tokio::start(
        builder(sink, &spill)
            .close_grace(close_grace)
            // One attempt that hangs past the deadline: no attempt timeout,
            // no marking down (which would spill early and drain).
            .retry(RetryPolicy {
                attempt_timeout: Duration::from_secs(3600),
                down_after: Duration::from_secs(3600),
                ..RetryPolicy::default()
            })
            .log_to_stderr(false),
    )
    .expect("start");
    let receipts = report_all(&reporter, 0..100);

    let deadline = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let summary = guard.shutdown_within(deadline).await;
    let elapsed = started.elapsed();

    // On the virtual clock: at the deadline, within the contract's epsilon
    // (twice the close grace), never before it.
    assert!(elapsed >= deadline, "returned early: {elapsed:?}");
    assert!(
        elapsed <= deadline + 2 * close_grace + Duration::from_millis(50),
        "returned late: {elapsed:?}"
    );
    assert_eq!(summary.ended_by, Ending::Deadline);
    assert!(summary.deadline_reached);
    assert_all_somewhere(&receipts, &spill, &summary.stats);
    assert_eq!(summary.stats.spilled, 100);
    assert!(control.started() >= 1);
}
