//! The scenarios. Each is written once, generic over [`Harness`], and ends by
//! checking the accounting identity with nothing lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tidings_core::testing::{Behavior, MemoryFallback, TestSink, TestSinkHandle};
use tidings_core::{
    Ending, Late, Overflow, RefusedReason, Report, ReportId, Reporter, RetryPolicy, SinkErrorKind,
    SinkResult, SpillReason, Stats, Status,
};

use crate::harness::Harness;

/// Retry policy for scenarios: quick, so failure paths finish fast on real
/// clocks.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        max_attempts: 5,
        attempt_timeout: Duration::from_secs(10),
        down_after: Duration::from_millis(50),
        probe_interval: Duration::from_millis(20),
    }
}

/// The identity `accepted == delivered + spilled + lost + in_flight`, after
/// shutdown: balanced, nothing in flight, nothing lost.
#[track_caller]
pub fn assert_accounted(stats: &Stats) {
    assert!(
        stats.is_balanced(),
        "identity broken: accepted {} != delivered {} + spilled {} + lost {} + in_flight {}",
        stats.accepted,
        stats.delivered,
        stats.spilled,
        stats.lost,
        stats.in_flight
    );
    assert_eq!(stats.in_flight, 0, "in flight after shutdown: {stats:?}");
    assert_eq!(stats.lost, 0, "lost reports: {stats:?}");
    let placed: u64 = stats.spilled_to.iter().map(|d| d.reports).sum();
    assert_eq!(
        placed, stats.spilled,
        "the spill destinations do not add up to spilled: {:?}",
        stats.spilled_to
    );
}

/// What the sinks said: each one's last error, joined by `" | "` (for the
/// checks on the reason a report was refused or spilled).
pub fn sink_reason(stats: &Stats) -> String {
    stats
        .sinks
        .iter()
        .filter_map(|s| s.last_error.clone())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// After a teardown (runtime or last handle gone while sends were running)
/// a report may have reached a sink *and* been spilled, since nobody can
/// know whether an abandoned send got through: at-least-once, deduplicated
/// downstream by report id. Checked: every accepted id is somewhere,
/// the fallback holds each spilled report once, and the counters match.
#[track_caller]
pub fn assert_each_at_least_once(
    accepted: &[ReportId],
    delivered: &[ReportId],
    spilled: &[ReportId],
    stats: &Stats,
) {
    let spilled_set: HashSet<ReportId> = spilled.iter().copied().collect();
    assert_eq!(
        spilled_set.len(),
        spilled.len(),
        "a report was spilled twice"
    );
    assert_eq!(
        spilled.len() as u64,
        stats.spilled,
        "spilled count differs from the fallback"
    );
    let delivered_only: HashSet<ReportId> = delivered
        .iter()
        .copied()
        .filter(|id| !spilled_set.contains(id))
        .collect();
    assert_eq!(
        delivered_only.len() as u64,
        stats.delivered,
        "delivered count differs from the sink"
    );
    let everywhere: HashSet<ReportId> = delivered_only.union(&spilled_set).copied().collect();
    let accepted: HashSet<ReportId> = accepted.iter().copied().collect();
    assert_eq!(
        everywhere, accepted,
        "some accepted report is neither delivered nor spilled"
    );
}

/// Shuts `reporter` down with `deadline` and checks the contract's
/// deadline: it returned within deadline + 250 ms.
#[track_caller]
pub fn shutdown_on_time<H: Harness>(
    h: &H,
    reporter: &Reporter,
    deadline: Duration,
) -> tidings_core::ShutdownSummary {
    let started = Instant::now();
    let summary = h.block_on(reporter.shutdown(deadline));
    let took = started.elapsed();
    assert!(
        took <= deadline + Duration::from_millis(250),
        "[{}] shutdown took {took:?} with a {deadline:?} deadline: {summary}",
        H::NAME
    );
    summary
}

/// Every id in `accepted` is in exactly one of `delivered` / `spilled`, and
/// nothing else is in either.
#[track_caller]
pub fn assert_each_exactly_once(
    accepted: &[ReportId],
    delivered: &[ReportId],
    spilled: &[ReportId],
) {
    let mut seen = HashSet::new();
    for id in delivered.iter().chain(spilled) {
        assert!(seen.insert(*id), "report {id} settled twice");
    }
    let accepted: HashSet<ReportId> = accepted.iter().copied().collect();
    assert_eq!(
        seen.len(),
        accepted.len(),
        "settled {} of {} accepted",
        seen.len(),
        accepted.len()
    );
    assert_eq!(seen, accepted, "settled ids differ from accepted ids");
}

/// The end of a test-sink scenario: the identity with nothing lost, and
/// every accepted id either delivered to the sink or in the fallback, once.
#[track_caller]
fn assert_settled(stats: &Stats, ids: &[ReportId], sink: &TestSinkHandle, spill: &MemoryFallback) {
    assert_accounted(stats);
    assert_each_exactly_once(ids, &sink.delivered_ids(), &spill.ids());
}

/// The scenarios count reports one by one: folding (tested on its own in
/// `storm_scenarios`) is off.
fn builder(sink: TestSink, fallback: &MemoryFallback) -> tidings_core::ReporterBuilder {
    Reporter::builder()
        .folding(tidings_core::Folding::off())
        .service("conformance")
        .sink(sink)
        .fallback(fallback.clone())
        .retry(quick_retry())
        .log_to_stderr(false)
}

fn report(i: usize) -> Report {
    Report::error("conformance", format!("report {i}")).with_context("i", i)
}

/// The accepted report count is tracked while the sink holds them.
pub fn in_flight_is_tracked<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    control.close_gate();
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill).max_batch(4));
    let ids: Vec<ReportId> = (0..10)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    h.block_on(control.started_at_least(1));
    let stats = reporter.stats();
    assert_eq!(stats.accepted, 10, "[{}]", H::NAME);
    assert_eq!(stats.in_flight, 10, "[{}] {stats:?}", H::NAME);
    assert_eq!(stats.delivered, 0);
    assert!(stats.is_balanced());

    control.open_gate();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_eq!(summary.stats.delivered, 10, "[{}] {summary}", H::NAME);
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// Shutdown delivers everything accepted before it began, closes the
/// sinks, and ends `Drained`.
pub fn graceful_drain<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill));
    let ids: Vec<ReportId> = (0..500)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_eq!(summary.ended_by, Ending::Drained, "[{}] {summary}", H::NAME);
    assert_eq!(summary.stats.delivered, 500);
    assert!(control.was_closed(), "sinks are closed at shutdown");
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// A receipt can be awaited, or waited on from a thread; both give the
/// per-sink outcome. A failed report's receipt says spilled and why.
pub fn receipts_await_and_wait<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill));

    let awaited = h.block_on(reporter.report(report(1)).unwrap());
    assert!(awaited.is_delivered(), "[{}] {awaited}", H::NAME);
    assert!(matches!(
        awaited.sink("mem"),
        Some(SinkResult::Delivered(_))
    ));

    // Blocking wait from another OS thread while this one drives the runtime.
    let receipt = reporter.report(report(2)).unwrap();
    let (tx, rx) = async_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send_blocking(receipt.wait(Duration::from_secs(30)));
    });
    let waited = h.block_on(rx.recv()).unwrap().expect("settled within 30 s");
    assert!(waited.is_delivered(), "[{}] {waited}", H::NAME);

    // A permanent failure: the receipt says spilled, and which sink failed.
    control.set_behavior(Behavior::Fail(SinkErrorKind::Rejected));
    let failed = h.block_on(reporter.report(report(3)).unwrap());
    match &failed.status {
        Status::Spilled { reason, .. } => assert_eq!(*reason, SpillReason::SinkFailed),
        other => panic!("[{}] expected spilled, got {other:?}", H::NAME),
    }
    assert!(
        matches!(failed.sink("mem"), Some(SinkResult::Failed(e)) if e.kind() == SinkErrorKind::Rejected)
    );

    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_eq!((summary.stats.delivered, summary.stats.spilled), (2, 1));
    assert_accounted(&summary.stats);
}

/// 8 threads and 1000 tasks report at once; every report is delivered
/// exactly once.
pub fn concurrent_reporters<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill).capacity(4096));
    let (tx, rx) = async_channel::unbounded::<ReportId>();

    let threads: Vec<_> = (0..8)
        .map(|t| {
            let reporter = reporter.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let id = reporter.report(report(t * 1000 + i)).unwrap().id();
                    tx.send_blocking(id).unwrap();
                }
            })
        })
        .collect();
    for task in 0..1000 {
        let reporter = reporter.clone();
        let tx = tx.clone();
        h.spawn(Box::pin(async move {
            let receipt = reporter.report(report(100_000 + task)).unwrap();
            let id = receipt.id();
            let outcome = receipt.await;
            assert!(outcome.is_delivered() || outcome.is_spilled());
            tx.send(id).await.unwrap();
        }));
    }
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let ids: Vec<ReportId> = h.block_on(async {
        let mut ids = Vec::new();
        while let Ok(id) = rx.recv().await {
            ids.push(id);
        }
        ids
    });
    assert_eq!(ids.len(), 8 * 200 + 1000);
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_eq!(summary.stats.accepted, 2600, "[{}] {summary}", H::NAME);
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// A sink that never returns: shutdown still returns within deadline +
/// 250 ms, and the reports it held are spilled.
pub fn hung_sink_shutdown_on_time<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("stuck");
    control.set_behavior(Behavior::Hang);
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill));
    let ids: Vec<ReportId> = (0..100)
        .map(|i| reporter.report(report(i)).unwrap().id())
        .collect();
    h.block_on(control.started_at_least(1));

    let summary = shutdown_on_time(&h, &reporter, Duration::from_millis(500));
    assert_eq!(
        summary.ended_by,
        Ending::Deadline,
        "[{}] {summary}",
        H::NAME
    );
    assert!(summary.deadline_reached);
    assert_eq!(summary.stats.spilled, 100);
    assert!(summary.stats.abandoned >= 1);
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// A sink that fails and then recovers: retried reports are delivered; a
/// sink down for good has its reports spilled; once it works again a probe
/// brings it back.
pub fn failing_then_recovering_sink<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("flaky");
    control.set_behavior(Behavior::FailTimes(3));
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill));
    let mut ids = Vec::new();

    // Three failed attempts, then delivered by retry.
    let receipt = reporter.report(report(0)).unwrap();
    ids.push(receipt.id());
    let outcome = h.block_on(receipt);
    assert!(outcome.is_delivered(), "[{}] {outcome}", H::NAME);
    assert!(reporter.stats().retries >= 3);

    // Down for good: retries exhausted, spilled; failing for longer than
    // `down_after`, the sink is marked down.
    control.set_behavior(Behavior::Fail(SinkErrorKind::Unavailable));
    let give_up = Instant::now() + Duration::from_secs(10);
    while !reporter.stats().sinks[0].down {
        let receipt = reporter.report(report(ids.len())).unwrap();
        ids.push(receipt.id());
        assert!(h.block_on(receipt).is_spilled());
        assert!(
            Instant::now() < give_up,
            "[{}] the sink was never marked down",
            H::NAME
        );
    }
    assert!(reporter.stats().sinks[0].last_error.is_some());
    // While down it is skipped: reports are spilled without an attempt.
    let attempts = control.attempts();
    let skipped = h.block_on(reporter.report(report(ids.len())).unwrap());
    ids.push(skipped.id);
    if matches!(skipped.sink("flaky"), Some(SinkResult::Skipped)) {
        assert_eq!(control.attempts(), attempts);
        assert!(matches!(
            skipped.status,
            Status::Spilled {
                reason: SpillReason::SinkDown,
                ..
            }
        ));
    }

    // Recovered: a probe succeeds within a bounded number of tries.
    control.set_behavior(Behavior::Deliver);
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let receipt = reporter.report(report(ids.len())).unwrap();
        ids.push(receipt.id());
        if h.block_on(receipt).is_delivered() {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "[{}] the sink never came back",
            H::NAME
        );
    }
    assert!(!reporter.stats().sinks[0].down);

    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// Reports during the drain and after shutdown follow the late policy:
/// spilled (default) or refused with the report handed back.
pub fn reports_during_and_after_shutdown<H: Harness>() {
    for late in [Late::Spill, Late::Refuse] {
        let h = H::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let spill = MemoryFallback::new();
        let reporter = h.start(builder(sink, &spill).late(late));
        let mut ids: Vec<ReportId> = (0..20)
            .map(|i| reporter.report(report(i)).unwrap().id())
            .collect();
        h.block_on(control.started_at_least(1));

        // Shutdown runs on another thread; the sink holds the drain open.
        let closing = reporter.clone();
        let shutdown =
            std::thread::spawn(move || closing.shutdown_blocking(Duration::from_secs(30)));
        let give_up = Instant::now() + Duration::from_secs(10);
        while reporter.phase() == tidings_core::Phase::Running {
            assert!(Instant::now() < give_up);
            std::thread::yield_now();
        }
        let during = reporter.report(report(1000));
        match (late, during) {
            (Late::Spill, Ok(receipt)) => {
                ids.push(receipt.id());
                let o = receipt.try_outcome().expect("spilled synchronously");
                assert!(matches!(
                    o.status,
                    Status::Spilled {
                        reason: SpillReason::Closed,
                        ..
                    }
                ));
            }
            (Late::Refuse, Err(refused)) => {
                assert_eq!(refused.reason(), RefusedReason::Closed);
                assert_eq!(refused.into_report().message, "report 1000");
            }
            (late, other) => panic!("[{}] {late:?}: unexpected {other:?}", H::NAME),
        }
        control.open_gate();
        // Drive the runtime until the shutdown thread has its summary.
        let (tx, rx) = async_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send_blocking(shutdown.join().unwrap());
        });
        let summary = h.block_on(rx.recv()).unwrap();
        assert_eq!(summary.stats.delivered, 20, "[{}] {summary}", H::NAME);

        let after = reporter.report(report(2000));
        match (late, after) {
            (Late::Spill, Ok(receipt)) => ids.push(receipt.id()),
            (Late::Refuse, Err(refused)) => assert_eq!(refused.reason(), RefusedReason::Closed),
            (late, other) => panic!("[{}] {late:?} after close: unexpected {other:?}", H::NAME),
        }
        let stats = reporter.stats();
        assert_eq!(stats.late, 2);
        assert_settled(&stats, &ids, &control, &spill);
    }
}

/// The runtime is dropped right after 10,000 reports, without shutdown,
/// 20 times: every report is delivered or spilled, none lost.
pub fn runtime_dropped_without_shutdown<H: Harness>() {
    for trial in 0..20 {
        let h = H::new();
        let (sink, control) = TestSink::new("mem");
        let spill = MemoryFallback::new();
        let reporter = h.start(builder(sink, &spill).capacity(16_384));
        let observer = reporter.observer();
        let ids: Vec<ReportId> = (0..10_000)
            .map(|i| reporter.report(report(i)).unwrap().id())
            .collect();
        if H::HAS_RUNTIME {
            h.drop_runtime();
            // The handle outlives the runtime: reports still are not lost.
            let late = reporter.report(report(10_000)).unwrap();
            assert!(late.try_outcome().is_some_and(|o| o.is_spilled()));
            drop(reporter);
        } else {
            // No runtime to drop: the equivalent is the last handle going.
            h.drop_runtime();
            drop(reporter);
        }
        let stats = observer.stats();
        assert_accounted(&stats);
        let mut all = ids;
        if H::HAS_RUNTIME {
            all.extend(spill.ids().last().copied());
        }
        assert_eq!(
            stats.accepted as usize,
            all.len(),
            "[{}] trial {trial}",
            H::NAME
        );
        assert_each_at_least_once(&all, &control.delivered_ids(), &spill.ids(), &stats);
    }
}

/// Dropping the last handle without shutdown spills what is queued and in
/// flight, synchronously.
pub fn last_handle_dropped<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    control.close_gate();
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill).max_batch(8));
    let observer = reporter.observer();
    let clones: Vec<Reporter> = (0..4).map(|_| reporter.clone()).collect();
    let ids: Vec<ReportId> = (0..100)
        .map(|i| clones[i % 4].report(report(i)).unwrap().id())
        .collect();
    h.block_on(control.started_at_least(1));
    h.detach_guards();
    drop(clones);
    drop(reporter);
    let stats = observer.stats();
    assert_eq!(
        observer.summary().map(|s| s.ended_by),
        Some(Ending::Teardown)
    );
    assert_eq!(stats.spilled, 100, "[{}] {stats:?}", H::NAME);
    assert_accounted(&stats);
    control.open_gate();
    assert_each_at_least_once(&ids, &control.delivered_ids(), &spill.ids(), &stats);
}

/// A sink that panics: the panic is caught and counted; retries deliver
/// when it stops; a sink that always panics has its reports spilled.
pub fn panicking_sink<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("panicky");
    control.set_behavior(Behavior::PanicTimes(2));
    let spill = MemoryFallback::new();
    let reporter = h.start(builder(sink, &spill));
    let first = reporter.report(report(0)).unwrap();
    let mut ids = vec![first.id()];
    assert!(h.block_on(first).is_delivered());
    assert_eq!(reporter.stats().sink_panics, 2);

    control.set_behavior(Behavior::Panic);
    let second = reporter.report(report(1)).unwrap();
    ids.push(second.id());
    assert!(h.block_on(second).is_spilled());

    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert!(summary.stats.sink_panics >= 3);
    assert_settled(&summary.stats, &ids, &control, &spill);
}

/// Fills the queue of a reporter whose sink is gated: `capacity` queued,
/// `max_batch` in the sink. Returns the ids accepted.
fn fill<H: Harness>(h: &H, reporter: &Reporter, control: &TestSinkHandle) -> Vec<ReportId> {
    let mut ids = vec![reporter.report(report(0)).unwrap().id()];
    h.block_on(control.started_at_least(1)); // the worker holds one batch
    for i in 1..=10 {
        ids.push(reporter.report(report(i)).unwrap().id());
    }
    ids
}

fn overflow_builder(
    sink: TestSink,
    spill: &MemoryFallback,
    policy: Overflow,
) -> tidings_core::ReporterBuilder {
    builder(sink, spill)
        .capacity(10)
        .max_batch(1)
        .max_concurrent_batches(1)
        .overflow(policy)
}

/// Each overflow policy, with the queue full: `Reject` hands the report
/// back, `Spill` spills it at once, `Block` waits for room or times out.
pub fn overflow_policies<H: Harness>() {
    // Reject.
    {
        let h = H::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let spill = MemoryFallback::new();
        let reporter = h.start(overflow_builder(sink, &spill, Overflow::Reject));
        let ids = fill(&h, &reporter, &control);
        let refused = reporter.report(report(99)).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::Full);
        assert_eq!(refused.report().message, "report 99");
        let stats = reporter.stats();
        assert_eq!((stats.refused, stats.overflowed), (1, 1), "[{}]", H::NAME);
        control.open_gate();
        let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
        assert_eq!(summary.stats.delivered, 11);
        assert_settled(&summary.stats, &ids, &control, &spill);
    }
    // Spill.
    {
        let h = H::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let spill = MemoryFallback::new();
        let reporter = h.start(overflow_builder(sink, &spill, Overflow::Spill));
        let mut ids = fill(&h, &reporter, &control);
        let receipt = reporter.report(report(99)).unwrap();
        ids.push(receipt.id());
        let outcome = receipt
            .try_outcome()
            .expect("spilled on the caller's thread");
        assert!(matches!(
            outcome.status,
            Status::Spilled {
                reason: SpillReason::Overflow,
                ..
            }
        ));
        control.open_gate();
        let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
        assert_eq!((summary.stats.delivered, summary.stats.spilled), (11, 1));
        assert_eq!(summary.stats.overflowed, 1);
        assert_settled(&summary.stats, &ids, &control, &spill);
    }
    // Block: times out while the sink is stuck, succeeds once room appears.
    {
        let h = H::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let spill = MemoryFallback::new();
        let timeout = Duration::from_secs(1);
        let reporter = h.start(overflow_builder(sink, &spill, Overflow::Block { timeout }));
        let mut ids = fill(&h, &reporter, &control);
        let started = Instant::now();
        let refused = reporter.report(report(98)).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::Timeout);
        assert!(started.elapsed() >= timeout);

        // A reporter blocked on another thread gets in once room appears.
        let blocked = reporter.clone();
        let (tx, rx) = async_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send_blocking(blocked.report(report(99)).map(|r| r.id()));
        });
        let give_up = Instant::now() + Duration::from_secs(10);
        while reporter.stats().blocked < 2 {
            assert!(
                Instant::now() < give_up,
                "the second reporter never blocked"
            );
            std::thread::yield_now();
        }
        control.open_gate();
        let got_in = h.block_on(rx.recv()).unwrap();
        ids.push(got_in.expect("room appeared well within the block timeout"));
        let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
        let stats = &summary.stats;
        assert_eq!(stats.blocked, 2, "[{}] {stats:?}", H::NAME);
        assert_eq!(stats.refused, 1);
        assert_eq!(stats.delivered, 12);
        assert_settled(stats, &ids, &control, &spill);
    }
}

/// After shutdown nothing the adapter started is still running.
pub fn no_tasks_left<H: Harness>() {
    let h = H::new();
    let spill = MemoryFallback::new();
    let reporters: Vec<Reporter> = (0..3)
        .map(|_| {
            let (sink, _control) = TestSink::new("mem");
            h.start(builder(sink, &spill))
        })
        .collect();
    for r in &reporters {
        for i in 0..100 {
            r.report(report(i)).unwrap();
        }
    }
    for r in &reporters {
        let summary = h.block_on(r.shutdown(Duration::from_secs(10)));
        assert_accounted(&summary.stats);
    }
    h.detach_guards();
    // Workers return right after their summary; let the runtime retire them.
    let give_up = Instant::now() + Duration::from_secs(5);
    h.block_on(async {
        while h.live_tasks() > 0 && Instant::now() < give_up {
            futures_lite::future::yield_now().await;
        }
    });
    assert_eq!(
        h.live_tasks(),
        0,
        "[{}] tasks or threads left after shutdown",
        H::NAME
    );
}
