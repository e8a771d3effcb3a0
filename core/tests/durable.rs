//! The spool wired into the reporter: spill to it, replay from it, write
//! ahead to it, survive a teardown through it. On virtual time.

use std::time::Duration;

use tidings_core::spool::{SpoolConfig, SyncPolicy};
use tidings_core::testing::{Behavior, ManualRuntime, MemoryFallback, TestSink};
use tidings_core::{
    BuildError, Overflow, RefusedReason, Report, ReportId, Reporter, ReporterBuilder, RetryPolicy,
    SinkErrorKind, SpoolMode, Stats,
};

fn retry() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_attempts: 3,
        attempt_timeout: Duration::from_secs(5),
        down_after: Duration::from_millis(50),
        probe_interval: Duration::from_millis(200),
    }
}

fn spool(dir: &tempfile::TempDir) -> SpoolConfig {
    SpoolConfig {
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir.path().join("spool"))
    }
}

/// A reporter on `sink` with the spool in `dir` in `mode`, folding off
/// (the tests count reports one by one).
fn spooled(sink: TestSink, dir: &tempfile::TempDir, mode: SpoolMode) -> ReporterBuilder {
    Reporter::builder()
        .folding(tidings_core::Folding::off())
        .sink(sink)
        .spool(spool(dir), mode)
}

#[track_caller]
fn assert_accounted(stats: &Stats) {
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.lost, 0);
}

fn sorted(mut ids: Vec<ReportId>) -> Vec<ReportId> {
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn on_spill_spools_what_fails_and_replays_it_when_the_sink_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ManualRuntime::new();
    let (sink, control) = TestSink::new("mem");
    control.set_behavior(Behavior::Fail(SinkErrorKind::Unavailable));
    let fallback = MemoryFallback::new();
    let reporter = spooled(sink, &dir, SpoolMode::OnSpill)
        .fallback(fallback.clone())
        .retry(retry())
        .log_to_stderr(false)
        .build(rt.handle())
        .unwrap();
    let ids: Vec<ReportId> = (0..20)
        .map(|i| {
            let receipt = reporter
                .report(Report::error("down", i.to_string()))
                .unwrap();
            let id = receipt.id();
            assert!(rt.block_on(receipt).is_spilled());
            id
        })
        .collect();
    let stats = reporter.stats();
    let spool_stats = stats.spool.clone().unwrap();
    assert_eq!(spool_stats.pending, 20, "{spool_stats:?}");
    assert!(fallback.reports().is_empty(), "the spool comes first");
    assert!(stats.spill_location.contains("spool"));

    // The sink comes back; nothing new is reported, yet the replay (which
    // doubles as the probe) delivers everything.
    control.set_behavior(Behavior::Deliver);
    rt.block_on(control.delivered_at_least(20));
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_accounted(&summary.stats);
    let spool_stats = summary.stats.spool.unwrap();
    assert_eq!((spool_stats.pending, spool_stats.replayed), (0, 20));
    // Spilled, then replayed: the report's outcome stays "spilled".
    assert_eq!(summary.stats.spilled, 20);
    assert_eq!(sorted(control.delivered_ids()), sorted(ids));
}

#[test]
fn write_ahead_survives_a_teardown_and_the_next_run_replays_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<ReportId>;
    {
        let rt = ManualRuntime::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
            .fallback(MemoryFallback::new())
            .retry(retry())
            .log_to_stderr(false)
            .build(rt.handle())
            .unwrap();
        ids = (0..100)
            .map(|i| {
                reporter
                    .report(Report::error("wal", i.to_string()))
                    .unwrap()
                    .id()
            })
            .collect();
        assert_eq!(reporter.stats().spool.unwrap().pending, 100);
        let observer = reporter.observer();
        // The runtime goes away without a shutdown: every report is spilled,
        // and "spilled" here means: still in the spool.
        drop(rt);
        let stats = observer.stats();
        assert_accounted(&stats);
        assert_eq!(stats.spilled, 100);
        assert_eq!(stats.spool.unwrap().pending, 100);
        drop(reporter);
    }
    // The next run on the same spool replays them first, same ids.
    let rt = ManualRuntime::new();
    let (sink, control) = TestSink::new("mem");
    let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
        .retry(retry())
        .log_to_stderr(false)
        .build(rt.handle())
        .unwrap();
    assert_eq!(reporter.stats().spool.unwrap().recovered, 100);
    rt.block_on(control.delivered_at_least(100));
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_accounted(&summary.stats);
    let spool_stats = summary.stats.spool.unwrap();
    assert_eq!((spool_stats.replayed, spool_stats.pending), (100, 0));
    assert_eq!(
        control.delivered_ids(),
        ids,
        "replayed oldest first, original ids"
    );
}

#[test]
fn write_ahead_delivered_reports_are_acknowledged_and_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = ManualRuntime::new();
        let (sink, _control) = TestSink::new("mem");
        let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
            .build(rt.handle())
            .unwrap();
        for i in 0..50 {
            reporter.report(Report::info("ok", i.to_string())).unwrap();
        }
        let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
        assert_eq!(summary.stats.delivered, 50);
        let spool_stats = summary.stats.spool.unwrap();
        assert_eq!((spool_stats.appended, spool_stats.pending), (50, 0));
    }
    let rt = ManualRuntime::new();
    let (sink, control) = TestSink::new("mem");
    let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
        .build(rt.handle())
        .unwrap();
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_eq!(summary.stats.spool.unwrap().recovered, 0);
    assert!(control.delivered().is_empty());
}

#[test]
fn a_refused_report_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = ManualRuntime::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
            .capacity(1)
            .max_batch(1)
            .max_concurrent_batches(1)
            .overflow(Overflow::Reject)
            .build(rt.handle())
            .unwrap();
        reporter
            .report(Report::error("a", "held by the sink"))
            .unwrap();
        rt.block_on(control.started_at_least(1));
        reporter.report(Report::error("b", "queued")).unwrap();
        let refused = reporter.report(Report::error("c", "refused")).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::Full);
        assert_eq!(reporter.stats().spool.unwrap().pending, 2);
        control.open_gate();
        let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
        assert_eq!(summary.stats.delivered, 2);
        assert_eq!(summary.stats.spool.unwrap().pending, 0);
    }
}

#[test]
fn a_second_reporter_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = ManualRuntime::new();
    let (sink, _c) = TestSink::new("mem");
    let _first = spooled(sink, &dir, SpoolMode::OnSpill)
        .build(rt.handle())
        .unwrap();
    let (sink, _c) = TestSink::new("mem");
    match spooled(sink, &dir, SpoolMode::OnSpill).build(rt.handle()) {
        Err(BuildError::Spool(e)) => assert!(e.to_string().contains("spool"), "{e}"),
        other => panic!("expected a lock error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn damaged_spool_records_are_skipped_and_counted_and_every_intact_one_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<ReportId>;
    {
        let rt = ManualRuntime::new();
        let (sink, control) = TestSink::new("mem");
        control.close_gate();
        let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
            .log_to_stderr(false)
            .build(rt.handle())
            .unwrap();
        ids = (0..100)
            .map(|i| {
                reporter
                    .report(Report::error("wal", format!("report {i:03}")))
                    .unwrap()
                    .id()
            })
            .collect();
        drop(rt); // teardown: all 100 stay in the spool
        drop(reporter);
    }
    // Damage the segment: flip bytes inside a record in the middle, cut the
    // last record short (a torn write), then append garbage.
    let segment = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes
        .windows(b"report 050".len())
        .position(|w| w == b"report 050")
        .expect("record 50 is in the segment");
    bytes[middle] ^= 0xFF;
    bytes[middle + 3] ^= 0x55;
    bytes.truncate(bytes.len() - 7);
    bytes.extend_from_slice(&[0xF7, b't', b'd', b'r', 1, 2, 3, 4, 5, 6, 7, 8, 0xAA, 0xBB]);
    bytes.extend(std::iter::repeat_n(0x42u8, 300));
    std::fs::write(&segment, bytes).unwrap();

    let rt = ManualRuntime::new();
    let (sink, control) = TestSink::new("mem");
    let reporter = spooled(sink, &dir, SpoolMode::WriteAhead)
        .log_to_stderr(false)
        .build(rt.handle())
        .expect("a damaged spool never stops the reporter");
    let spool_stats = reporter.stats().spool.unwrap();
    assert_eq!(spool_stats.recovered, 98, "{spool_stats:?}");
    assert!(spool_stats.corrupt_skipped >= 2, "{spool_stats:?}");
    rt.block_on(control.delivered_at_least(98));
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_accounted(&summary.stats);
    let mut expected: Vec<ReportId> = ids.clone();
    expected.remove(99); // torn
    expected.remove(50); // flipped
    assert_eq!(
        control.delivered_ids(),
        expected,
        "every intact record, in order"
    );
    assert_eq!(summary.stats.spool.unwrap().pending, 0);
}

/// A spooled report a sink refuses for good (a poison report) must not
/// stay in the spool for ever, holding up what is behind it and pinning
/// disk space: a replay moves it to the fallback, and delivers the rest.
#[test]
fn a_report_refused_for_good_leaves_the_spool_for_the_fallback() {
    use tidings_core::Runtime;
    for mode in [SpoolMode::OnSpill, SpoolMode::WriteAhead] {
        let dir = tempfile::tempdir().unwrap();
        let rt = ManualRuntime::new();
        let (sink, control) = TestSink::new("mem");
        control.set_behavior(Behavior::Fail(SinkErrorKind::Unavailable));
        let fallback = MemoryFallback::new();
        let reporter = spooled(sink, &dir, mode)
            .fallback(fallback.clone())
            .retry(retry())
            .max_batch(64)
            .log_to_stderr(false)
            .build(rt.handle())
            .unwrap();
        // The poison report first, then enough for several replay batches,
        // all spooled while the sink is down.
        let poison = reporter.report(Report::error("poison", "x")).unwrap();
        let poison_id = poison.id();
        assert!(rt.block_on(poison).is_spilled(), "{mode:?}");
        let receipts: Vec<_> = (0..200)
            .map(|i| {
                reporter
                    .report(Report::error("fine", i.to_string()))
                    .unwrap()
            })
            .collect();
        let ids: Vec<ReportId> = receipts.iter().map(|r| r.id()).collect();
        for receipt in receipts {
            assert!(rt.block_on(receipt).is_spilled(), "{mode:?}");
        }
        assert_eq!(reporter.stats().spool.unwrap().pending, 201, "{mode:?}");

        // The sink is back but refuses the poison report for good.
        control.set_behavior(Behavior::RejectKind("poison"));
        let handle = rt.handle();
        rt.block_on(async {
            for _ in 0..10_000 {
                let spool = reporter.stats().spool.unwrap();
                if spool.pending == 0 && control.delivered().len() == 200 {
                    return;
                }
                handle.sleep(Duration::from_millis(10)).await;
            }
            panic!("{mode:?}: the spool never emptied: {:?}", reporter.stats());
        });
        assert_eq!(sorted(control.delivered_ids()), sorted(ids), "{mode:?}");
        assert_eq!(fallback.ids(), vec![poison_id], "{mode:?}");
        let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
        assert_accounted(&summary.stats);
        assert_eq!(summary.stats.spilled, 201, "{mode:?}");
        let spool = summary.stats.spool.clone().unwrap();
        assert_eq!(
            (spool.pending, spool.replayed, spool.moved_to_fallback),
            (0, 200, 1),
            "{mode:?}"
        );
        // Named where it went: the fallback, not the spool (spill_location).
        let moved = format!(
            "1 report(s) no sink will ever take, moved to {}",
            tidings_core::Fallback::location(&fallback)
        );
        assert!(summary.to_string().contains(&moved), "{summary}");
    }
}

/// Write-ahead with a spool that fills up part way: the reports written
/// ahead stay in the spool when the sink is down, the ones that found it
/// full go to the fallback, and no report ends up in both (it would be
/// delivered twice: from the fallback, and from the spool at the next start).
#[test]
fn write_ahead_with_a_full_spool_sends_each_report_one_way_only() {
    let dir = tempfile::tempdir().unwrap();
    let small = SpoolConfig {
        max_bytes: 2 * SpoolConfig::MIN_SEGMENT_BYTES,
        segment_bytes: SpoolConfig::MIN_SEGMENT_BYTES,
        ..spool(&dir)
    };
    let fallback = MemoryFallback::new();
    let (ids, pending) = {
        let rt = ManualRuntime::new();
        let (sink, control) = TestSink::new("mem");
        control.set_behavior(Behavior::Fail(SinkErrorKind::Unavailable));
        let reporter = Reporter::builder()
            .folding(tidings_core::Folding::off())
            .sink(sink)
            .fallback(fallback.clone())
            .retry(retry())
            .spool(small.clone(), SpoolMode::WriteAhead)
            .log_to_stderr(false)
            .build(rt.handle())
            .unwrap();
        let ids: Vec<ReportId> = (0..200)
            .map(|i| {
                reporter
                    .report(Report::error("full", format!("report {i}")))
                    .unwrap()
                    .id()
            })
            .collect();
        let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
        assert_accounted(&summary.stats);
        assert_eq!(summary.stats.spilled, 200);
        let spool_stats = summary.stats.spool.clone().unwrap();
        // The spool took some but not all: the case under test.
        assert!(
            spool_stats.pending > 0 && spool_stats.pending < 200,
            "{spool_stats:?}"
        );
        // The summary names every place with its count: a user who trusts
        // it finds every report (it used to say "spool" for all 200).
        let counted = |location: &str| {
            summary
                .stats
                .spilled_to
                .iter()
                .find(|d| d.location == location)
                .map_or(0, |d| d.reports)
        };
        let spool_location = format!("spool {}", dir.path().join("spool").display());
        assert_eq!(counted(&spool_location), spool_stats.pending, "{summary}");
        assert_eq!(counted("memory"), 200 - spool_stats.pending, "{summary}");
        let shown = summary.to_string();
        assert!(
            shown.contains(&format!("{spool_location} ({})", spool_stats.pending))
                && shown.contains(&format!("memory ({})", 200 - spool_stats.pending)),
            "{shown}"
        );
        // The spool's refusals are said once, and counted.
        assert!(
            summary
                .stats
                .diagnostics
                .iter()
                .any(|d| d.source == "spool" && d.count > 1),
            "{:?}",
            summary.stats.diagnostics
        );
        (ids, spool_stats.pending)
    };
    let in_fallback = fallback.ids();
    assert_eq!(in_fallback.len() as u64, 200 - pending);

    let rt = ManualRuntime::new();
    let (sink, control) = TestSink::new("mem");
    let reporter = Reporter::builder()
        .folding(tidings_core::Folding::off())
        .sink(sink)
        .retry(retry())
        .spool(small, SpoolMode::WriteAhead)
        .log_to_stderr(false)
        .build(rt.handle())
        .unwrap();
    assert_eq!(reporter.stats().spool.unwrap().recovered, pending);
    rt.block_on(control.delivered_at_least(pending as usize));
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.spool.unwrap().pending, 0);
    let replayed = control.delivered_ids();
    assert_eq!(replayed.len() as u64, pending);
    assert!(
        replayed.iter().all(|id| !in_fallback.contains(id)),
        "a report went both to the fallback and to the spool"
    );
    let mut both = replayed;
    both.extend(in_fallback);
    assert_eq!(sorted(both), sorted(ids), "every report exactly one way");
}
