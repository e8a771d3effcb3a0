//! Error storms on every adapter: repeats folded into counted aggregates,
//! never dropped, and the `before_send` hook.
//!
//! Every case ends with the identity, now with its folding term
//! (`accepted == delivered + spilled + lost + folded + in_flight`, checked
//! by `assert_accounted` through `Stats::is_balanced`), and with the
//! aggregates' counts adding up to `folded` exactly.

use std::time::Duration;

use tidings_core::fold::FOLDED_KEY;
use tidings_core::nats::NatsConfig;
use tidings_core::testing::{MemoryFallback, TestSink};
use tidings_core::{Folding, RefusedReason, Report, ReportId, Reporter, ReporterBuilder, Status};

use crate::harness::Harness;
use crate::nats_probe::{create_stream, stream_reports};
use crate::nats_scenarios::patient_retry;
use crate::nats_server::NatsServer;
use crate::scenarios::{assert_accounted, quick_retry};

/// One window for the whole test: every fold is emitted at shutdown.
fn folding(threshold: u32) -> Folding {
    Folding {
        threshold,
        window: Duration::from_secs(600),
        ..Folding::default()
    }
}

/// The test-sink storms' reporter: `sink`, spilling to `spill`, quick
/// retries, quiet. Folding and hooks are each case's own.
fn storm_builder(sink: TestSink, spill: &MemoryFallback) -> ReporterBuilder {
    Reporter::builder()
        .sink(sink)
        .fallback(spill.clone())
        .retry(quick_retry())
        .log_to_stderr(false)
}

/// The count an aggregate report carries, or `None` for a plain report.
fn folded_count(report: &Report) -> Option<u64> {
    report.context.get(FOLDED_KEY)?.get("count")?.as_u64()
}

/// 100,000 identical reports from 8 threads, with one rare report in the
/// middle: the stream holds the first `threshold` individually, the rare
/// one, and aggregates whose counts add up to the rest exactly.
pub fn storm_folds_repeats_into_counted_aggregates<H: Harness>() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    const THRESHOLD: u32 = 50;
    let server = NatsServer::start();
    create_stream(&server.url(), "STORM", "storm.reports", 1);
    let h = H::new();
    let sink = h
        .nats_sink(NatsConfig::new(server.url(), "storm.reports").jetstream())
        .unwrap();
    let spill = MemoryFallback::new();
    let reporter = h.start(
        Reporter::builder()
            .service("storm")
            .boxed_sink(sink)
            .fallback(spill.clone())
            .retry(patient_retry())
            .folding(folding(THRESHOLD))
            .log_to_stderr(false),
    );
    let rare = std::thread::scope(|s| {
        for _ in 0..THREADS {
            let reporter = reporter.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    reporter
                        .report(Report::error("db_down", format!("connection {i} refused")))
                        .unwrap();
                }
            });
        }
        reporter
            .report(Report::critical("disk_full", "the rare one"))
            .unwrap()
    });
    // Quiescent (every report() returned): the identity holds mid-window.
    let mid = reporter.stats();
    assert!(mid.is_balanced(), "[{}] {mid:?}", H::NAME);
    assert_eq!(mid.accepted, (THREADS * PER_THREAD) as u64 + 1);
    assert_eq!(
        mid.folded,
        (THREADS * PER_THREAD) as u64 - u64::from(THRESHOLD)
    );
    let rare_outcome = h.block_on(rare);
    assert!(rare_outcome.is_delivered(), "[{}] {rare_outcome}", H::NAME);

    let summary = h.block_on(reporter.shutdown(Duration::from_secs(30)));
    assert_accounted(&summary.stats);
    let stats = &summary.stats;
    assert!(stats.aggregates >= 1, "[{}] {summary}", H::NAME);
    let stored = stream_reports(&server.url(), "STORM");
    let mut singles = 0u64;
    let mut counted = 0u64;
    let mut rare_seen = 0;
    for r in &stored {
        match folded_count(r) {
            Some(n) => counted += n,
            None if r.kind == "disk_full" => rare_seen += 1,
            None => singles += 1,
        }
    }
    for r in spill.reports() {
        counted += folded_count(&r).unwrap_or(0);
    }
    assert_eq!(
        rare_seen,
        1,
        "[{}] the rare report goes out on its own",
        H::NAME
    );
    assert_eq!(singles, u64::from(THRESHOLD), "[{}] {summary}", H::NAME);
    assert_eq!(
        counted,
        stats.folded,
        "[{}] aggregates count every fold",
        H::NAME
    );
    assert_eq!(
        singles + counted + 1,
        (THREADS * PER_THREAD) as u64 + 1,
        "[{}] every occurrence is accounted for",
        H::NAME
    );
    // The stream holds a handful of messages, not 100,001.
    assert!(stored.len() < 60, "[{}] {} messages", H::NAME, stored.len());
}

/// A storm that ends with the runtime dropped mid-window (no shutdown):
/// the open window's aggregate is spilled with the rest, its count exact.
pub fn storm_runtime_dropped_mid_window_spills_the_aggregate<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let reporter = h.start(storm_builder(sink, &spill).folding(folding(10)));
    for i in 0..1000 {
        reporter
            .report(Report::error("storm", format!("timeout after {i} ms")))
            .unwrap();
    }
    let observer = reporter.observer();
    drop(reporter);
    h.drop_runtime();
    let summary = observer
        .summary()
        .expect("the teardown closed the reporter");
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.folded, 990);
    let counted: u64 = spill
        .reports()
        .iter()
        .chain(control.delivered().iter())
        .filter_map(folded_count)
        .sum();
    assert_eq!(counted, 990, "[{}] {summary}", H::NAME);
}

/// A folded report's receipt says it was folded, and into which aggregate;
/// the aggregate is delivered with the count.
pub fn folded_receipts_name_their_aggregate<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let reporter = h.start(storm_builder(sink, &spill).folding(folding(2)));
    let receipts: Vec<_> = (0..5)
        .map(|i| {
            reporter
                .report(Report::warning("slow", format!("took {i} s")))
                .unwrap()
        })
        .collect();
    let outcomes: Vec<_> = receipts.into_iter().map(|r| h.block_on(r)).collect();
    assert!(outcomes[0].is_delivered() && outcomes[1].is_delivered());
    let into: Vec<ReportId> = outcomes[2..]
        .iter()
        .map(|o| match o.status {
            Status::Folded { into } => into,
            ref other => panic!("[{}] {other:?}", H::NAME),
        })
        .collect();
    assert!(into.windows(2).all(|w| w[0] == w[1]), "one aggregate");
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_accounted(&summary.stats);
    let aggregate = control
        .delivered()
        .into_iter()
        .find(|r| r.id == into[0])
        .unwrap_or_else(|| panic!("[{}] the aggregate was delivered", H::NAME));
    assert_eq!(folded_count(&aggregate), Some(3));
}

/// `before_send` drops (handed back, counted as filtered, not accepted),
/// modifies (what is delivered is the modified report), and a panicking
/// hook lets the report through unchanged, counted, without reaching the
/// caller.
pub fn before_send_drops_modifies_and_survives_panics<H: Harness>() {
    let h = H::new();
    let (sink, control) = TestSink::new("mem");
    let spill = MemoryFallback::new();
    let builder: ReporterBuilder = storm_builder(sink, &spill).before_send(|report| {
        if report.kind == "panic" {
            report.message.push_str(" (touched before the panic)");
            panic!("a buggy hook");
        }
        report.context.remove("session");
        report.kind != "noise"
    });
    let reporter = h.start(builder);
    let dropped = reporter.report(Report::info("noise", "tick")).unwrap_err();
    assert_eq!(dropped.reason(), RefusedReason::Filtered);
    assert_eq!(dropped.into_report().kind, "noise");
    let kept = reporter
        .report(Report::error("login", "failed").with_context("session", "s3cr3t"))
        .unwrap();
    let survived = reporter
        .report(Report::error("panic", "original message"))
        .unwrap();
    let kept = h.block_on(kept);
    let survived = h.block_on(survived);
    assert!(kept.is_delivered() && survived.is_delivered());
    let summary = h.block_on(reporter.shutdown(Duration::from_secs(10)));
    assert_accounted(&summary.stats);
    let s = &summary.stats;
    assert_eq!((s.filtered, s.before_send_panics, s.accepted), (1, 1, 2));
    let delivered = control.delivered();
    let login = delivered.iter().find(|r| r.kind == "login").unwrap();
    assert!(!login.context.contains_key("session"), "modified");
    let panicked = delivered.iter().find(|r| r.kind == "panic").unwrap();
    assert_eq!(panicked.message, "original message", "unchanged");
}
