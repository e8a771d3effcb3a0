//! The panic hook on a real pipeline: a panic arrives in a real stream as
//! a Critical report; a panicking sink, on a tidings thread or on a tokio
//! worker thread, is not reported over and over.
//! One test in this binary: the hook is process-wide.

mod common;

use std::time::Duration;

use tidings::testing::{Behavior, MemoryFallback, TestSink};
use tidings::{Reporter, Severity};
use tidings_conformance::scenarios::{assert_accounted, quick_retry};
use tidings_conformance::wait_until;

#[test]
fn panics_are_reported_once_and_a_panicking_sink_never_loops() {
    // 1. A panic in the program: one Critical report in the stream.
    let server = common::server_with_stream("PANIC", "panic.reports");
    let (builder, recorded) = common::builder(&server, "panic.reports");
    let (reporter, guard) = tidings::blocking::start(builder.log_to_stderr(false)).unwrap();
    tidings::panic::install(&reporter);
    let thread = std::thread::Builder::new().name("importer".into());
    let crashed = thread
        .spawn(|| panic!("row {} has no id", 17))
        .unwrap()
        .join();
    assert!(crashed.is_err());
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(summary.stats.delivered, 1, "{summary}");
    let reports = recorded.delivered();
    assert_eq!(common::arrived(&server, "PANIC"), common::ids(&reports));
    let panic = &reports[0];
    assert_eq!(panic.severity, Severity::Critical);
    assert_eq!(panic.kind, "panic");
    assert_eq!(panic.message, "row 17 has no id");
    assert_eq!(panic.context["thread"], "importer");
    let source = include_str!("panic_hook.rs");
    let line = 1 + source
        .lines()
        .position(|l| l.contains("panic!(\"row {} has no id\""))
        .unwrap();
    let location = panic.context["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("tests/panic_hook.rs:{line}:")),
        "{location}"
    );
    assert!(panic
        .backtrace
        .as_deref()
        .is_some_and(|b| b.contains("panic_hook")));

    // 2. A sink that panics on every attempt, on the blocking adapter's
    //    worker thread and on tokio's worker threads, with the hook (now
    //    installed for these reporters too): each sink panic is caught and
    //    counted by tidings, never reported.
    let blocking = |reporter_builder| tidings::blocking::start(reporter_builder).unwrap();
    let (reporter, guard) = blocking(panicking_sink_builder());
    tidings::panic::install(&reporter);
    no_loop(&reporter, || guard.shutdown_blocking());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (reporter, guard) = rt
        .block_on(async { tidings::tokio::start(panicking_sink_builder()) })
        .unwrap();
    tidings::panic::install(&reporter);
    no_loop(&reporter, || rt.block_on(guard.shutdown()));
}

fn panicking_sink_builder() -> tidings::ReporterBuilder {
    let (sink, control) = TestSink::new("panicking");
    control.set_behavior(Behavior::Panic);
    Reporter::builder()
        .sink(sink)
        .fallback(MemoryFallback::new())
        .retry(quick_retry())
        .log_to_stderr(false)
}

fn no_loop(reporter: &Reporter, shutdown: impl FnOnce() -> tidings::ShutdownSummary) {
    reporter
        .report(tidings::Report::error("job_failed", "one report"))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || reporter.stats().spilled == 1),
        "{:?}",
        reporter.stats()
    );
    let summary = shutdown();
    assert_accounted(&summary.stats);
    assert!(summary.stats.sink_panics >= 1, "{summary}");
    assert_eq!(
        summary.stats.accepted, 1,
        "a sink's panic was reported: {summary}"
    );
}
