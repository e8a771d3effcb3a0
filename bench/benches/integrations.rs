//! What the tracing layer costs (issue #11):
//!
//! * `layer/error_through_layer` — `tracing::error!` with two fields inside
//!   a span with one field, through a subscriber whose only layer is
//!   tidings': the event becomes a report (fields, span stack, target) and
//!   goes to `report()`;
//! * `layer/report_direct` — the same report built by hand and given to
//!   `report()`: what the layer adds is the difference;
//! * `layer/info_without_layer` and `layer/info_with_layer` — a
//!   `tracing::info!` with two fields, which the layer does not take
//!   (below ERROR), through the registry alone and through the registry
//!   with the layer: the cost the layer adds to an event it ignores.
//!
//! The reporter's worker is idle while a chunk of calls is timed (a
//! `ManualRuntime`, driven between chunks, outside the timing), as in the
//! `report` bench's `tidings/idle_worker`: this is the caller's cost, not
//! the sink's. Run with `cargo bench -p tidings-bench --bench integrations`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tidings::testing::ManualRuntime;
use tidings::{Overflow, Report, Reporter};
use tidings_bench::{drain_manual, NopSink};
use tracing_subscriber::prelude::*;

/// Calls per timed chunk; the queue holds two chunks.
const CHUNK: u64 = 8192;

/// Times `iters` calls of `call` in chunks, running the worker between
/// chunks (untimed) until it has settled everything.
fn timed(rt: &ManualRuntime, reporter: &Reporter, iters: u64, mut call: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let start = Instant::now();
        for _ in 0..n {
            call();
        }
        total += start.elapsed();
        left -= n;
        drain_manual(rt, reporter);
    }
    total
}

fn bench_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.measurement_time(Duration::from_secs(4));
    let rt = ManualRuntime::new();
    let reporter = Reporter::builder()
        .sink(NopSink)
        .capacity(2 * CHUNK as usize)
        .overflow(Overflow::Reject)
        .log_to_stderr(false)
        .build(rt.handle())
        .expect("reporter");

    let with_layer = tracing_subscriber::registry().with(tidings::tracing::layer(&reporter));
    tracing::subscriber::with_default(with_layer, || {
        let span = tracing::error_span!("checkout", order = 7_u64);
        let _entered = span.enter();
        group.bench_function("error_through_layer", |b| {
            b.iter_custom(|iters| {
                timed(&rt, &reporter, iters, || {
                    tracing::error!(kind = "payment_failed", attempt = 3_u64, "payment failed")
                })
            })
        });
        group.bench_function("info_with_layer", |b| {
            b.iter(|| tracing::info!(attempt = 3_u64, order = 7_u64, "charging"))
        });
    });
    group.bench_function("report_direct", |b| {
        b.iter_custom(|iters| {
            timed(&rt, &reporter, iters, || {
                let report = Report::error("payment_failed", "payment failed")
                    .with_context("attempt", 3_u64)
                    .with_context(
                        "tracing",
                        serde_json::json!({
                            "target": "integrations",
                            "level": "ERROR",
                            "location": "bench/benches/integrations.rs:1",
                            "spans": [{ "name": "checkout", "fields": { "order": 7 } }],
                        }),
                    );
                let _ = std::hint::black_box(reporter.report(report));
            })
        })
    });
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        let span = tracing::error_span!("checkout", order = 7_u64);
        let _entered = span.enter();
        group.bench_function("info_without_layer", |b| {
            b.iter(|| tracing::info!(attempt = 3_u64, order = 7_u64, "charging"))
        });
    });
    group.finish();
    let summary = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
    assert_eq!(
        summary.stats.refused, 0,
        "the queue overflowed: not the hot path"
    );
    assert!(summary.stats.is_balanced() && summary.stats.lost == 0);
}

criterion_group!(benches, bench_layer);
criterion_main!(benches);
