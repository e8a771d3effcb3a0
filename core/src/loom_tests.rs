//! Model checks of the lifecycle races, explored exhaustively by loom:
//! `report()` against the worker taking and settling reports, against
//! `close_now()` / last-handle teardown, against a concurrent shutdown.
//!
//! Run (release, bounded preemptions; its own target dir because
//! `--cfg loom` rebuilds every dependency):
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p tidings-core --lib --release --target-dir target/loom -- loom_tests
//! ```
//!
//! Invariants checked at the end of every explored interleaving:
//! `accepted == delivered + spilled + lost + in_flight`, `in_flight == 0`,
//! `lost == 0`, every accepted report settled exactly once, nothing left in
//! the queue, and refused reports handed back.

use loom::thread;

use crate::entry::Entry;
use crate::shared::Shared;
use crate::sink::Batch;
use crate::sync::Arc;
use crate::testing::{ManualRuntime, MemoryFallback, TestSink};
use crate::{Late, Report, Reporter, ReporterBuilder};

fn reporter(late: Late, fallback: &MemoryFallback) -> (Reporter, ManualRuntime) {
    // The ManualRuntime is never driven: the real worker never runs, and a
    // model thread plays the worker's steps below instead.
    let rt = ManualRuntime::new();
    let (sink, _control) = TestSink::new("mem");
    let reporter = ReporterBuilder::default()
        .sink(sink)
        .fallback(fallback.clone())
        .late(late)
        .capacity(4)
        // The models are about intake, the worker, close and teardown;
        // folding's table would only multiply the interleavings.
        .folding(crate::Folding::off())
        .log_to_stderr(false)
        .build(rt.handle())
        .unwrap();
    (reporter, rt)
}

/// One step of the worker: take what is queued, register it, settle it
/// delivered — exactly the calls `worker::start_batch` / `deliver_batch`
/// make, without a sink in between.
fn worker_step(shared: &Arc<Shared>) {
    let taken: Vec<Arc<Entry>> = std::iter::from_fn(|| shared.queue.try_take()).collect();
    if taken.is_empty() {
        return;
    }
    shared.queue.took(taken.len());
    if let Some(in_flight) = Shared::register(shared, Batch::new(taken)) {
        let batch = &in_flight.batch;
        shared.settle_delivered(batch, 0..batch.len(), &|_| Vec::new());
    }
}

fn check(reporter: &Reporter, fallback: &MemoryFallback, accepted: usize) {
    let stats = reporter.stats();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.in_flight, 0, "{stats:?}");
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.accepted as usize, accepted, "{stats:?}");
    assert_eq!(stats.spilled as usize, fallback.reports().len());
    assert!(reporter.handle_shared().queue.try_take().is_none());
}

#[test]
fn report_races_close_now() {
    loom::model(|| {
        let fallback = MemoryFallback::new();
        let (reporter, _rt) = reporter(Late::Spill, &fallback);
        let r2 = reporter.clone();
        let t = thread::spawn(move || r2.report(Report::error("race", "one")).is_ok());
        reporter.close_now();
        let accepted = t.join().unwrap();
        assert!(accepted, "Late::Spill never refuses");
        // The summary was taken first or last; either way nothing is left.
        check(&reporter, &fallback, 1);
    });
}

#[test]
fn report_races_worker_and_teardown() {
    loom::model(|| {
        let fallback = MemoryFallback::new();
        let (reporter, _rt) = reporter(Late::Refuse, &fallback);
        let shared = reporter.handle_shared().clone();
        let r2 = reporter.clone();
        let producer = thread::spawn(move || r2.report(Report::error("race", "one")).is_ok());
        let worker = thread::spawn(move || worker_step(&shared));
        reporter.close_now();
        let accepted = producer.join().unwrap();
        worker.join().unwrap();
        let stats = reporter.stats();
        // Accepted: settled exactly once (delivered by the worker, or
        // spilled by the teardown). Refused: handed back, not counted.
        assert_eq!(stats.refused as usize, usize::from(!accepted));
        assert_eq!(stats.delivered + stats.spilled, u64::from(accepted));
        check(&reporter, &fallback, usize::from(accepted));
    });
}

#[test]
fn two_reporters_race_shutdown_begin() {
    loom::model(|| {
        let fallback = MemoryFallback::new();
        let (reporter, _rt) = reporter(Late::Spill, &fallback);
        let shared = reporter.handle_shared().clone();
        let a = reporter.clone();
        let b = reporter.clone();
        let ta = thread::spawn(move || a.report(Report::error("a", "1")).is_ok());
        let tb = thread::spawn(move || b.report(Report::error("b", "2")).is_ok());
        // Shutdown begins (intake closes) while they report; the worker
        // drains; then the reporter finishes.
        shared.begin_shutdown(std::time::Duration::from_secs(1));
        worker_step(&shared);
        assert!(ta.join().unwrap() && tb.join().unwrap());
        worker_step(&shared);
        reporter.close_now();
        check(&reporter, &fallback, 2);
    });
}
