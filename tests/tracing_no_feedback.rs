//! The layer installed globally, a sink that fails and says so through
//! tidings' diagnostics (tracing events, target `tidings`): those events
//! reach the program's other layers, and never come back as reports.
//! One test in this binary: it owns the global subscriber.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings::testing::{Behavior, MemoryFallback, TestSink};
use tidings::{Reporter, SinkErrorKind};
use tidings_conformance::scenarios::{assert_accounted, quick_retry};
use tidings_conformance::wait_until;
use tracing::Level;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Counts the events of tidings' diagnostics target it is shown.
#[derive(Clone, Default)]
struct Diagnostics(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Diagnostics {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == tidings::DIAGNOSTICS_TARGET {
            let mut text = String::new();
            event.record(&mut |f: &tracing::field::Field, v: &dyn std::fmt::Debug| {
                if f.name() == "message" {
                    text = format!("{v:?}");
                }
            });
            self.0.lock().unwrap().push(text);
        }
    }
}

#[test]
fn a_failing_sink_says_so_through_tracing_and_nothing_loops_back() {
    let (refusing, refusals) = TestSink::new("refusing");
    refusals.set_behavior(Behavior::Fail(SinkErrorKind::Rejected));
    let (down, downs) = TestSink::new("down");
    downs.set_behavior(Behavior::Fail(SinkErrorKind::Unavailable));
    let spill = MemoryFallback::new();
    let (reporter, guard) = tidings::blocking::start(
        Reporter::builder()
            .sink(refusing)
            .sink(down)
            .fallback(spill.clone())
            .retry(quick_retry()),
    )
    .unwrap();

    let diagnostics = Diagnostics::default();
    // The layer takes everything from TRACE up: only its own rules keep
    // tidings' events out.
    tracing_subscriber::registry()
        .with(tidings::tracing::layer(&reporter).level(Level::TRACE))
        .with(diagnostics.clone())
        .init();

    for i in 0..5 {
        tracing::error!(job = i, "job failed");
    }
    assert!(
        wait_until(Duration::from_secs(30), || reporter.stats().spilled == 5),
        "{:?}",
        reporter.stats()
    );
    // Later failures, the sink marked down: more diagnostics, still no report.
    for i in 5..10 {
        tracing::error!(job = i, "job failed");
    }
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(
        summary.stats.accepted, 10,
        "only the program's events: {summary}"
    );
    assert_eq!(summary.stats.spilled, 10);
    assert_eq!(spill.ids().len(), 10);

    let said = diagnostics.0.lock().unwrap().clone();
    assert!(
        said.iter().any(|m| m.contains("sink 'refusing'")),
        "the refusal went through tracing: {said:?}"
    );
}
