//! What the caller pays per error, side by side in one run: building a
//! complete report **and** handing it over, against the closest peer and
//! the bare floor.
//!
//! * `tidings/build_report` — `Report::error(kind, message)` with a
//!   400-byte message and one integer of context, then `report()`, while
//!   the worker drains concurrently (a tokio thread) into a sink that
//!   serializes each report and drops it. Folding off: every report is
//!   queued.
//! * `tidings/build_report_folding` — the same with folding on (the
//!   default), the same error each time: after the first hundred of the
//!   window, every report is folded (counted, not queued) — the storm path.
//! * `appender/format_write` — tracing-appender's `non_blocking` writer (a
//!   worker thread writing to `io::sink()`): `format!` of the same JSON line
//!   (time, level, kind, message, the integer) and one `write_all`.
//! * `raw/format_channel` — `format!` of that line into a `Box<String>` and
//!   an `async_channel` `try_send` to a consumer thread that drops it: the
//!   floor for any queue-based reporter that builds its record.
//!
//! Each at 1 and 2 producer threads (time per call on each thread). Calls
//! run in chunks; between chunks (untimed) the consumers catch up, so the
//! queue is never full: this measures the call, never an overflow policy.
//! `cargo bench -p tidings-bench --bench caller`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::io::Write;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use tidings_bench::{message_400, wait_settled, SerializeSink};
use tidings_core::{Folding, Overflow, Report, Reporter, Timestamp};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Calls per timed chunk and per thread; the queues hold two chunks.
const CHUNK: usize = 16_384;
const CAPACITY: usize = 2 * CHUNK;

/// Runs `call(i)` `iters` times on each of `threads` threads (started
/// together), in chunks with `between()` untimed after each; returns the
/// mean time per call on one thread, times `iters`.
fn timed<C>(iters: u64, threads: usize, call: C, mut between: impl FnMut()) -> Duration
where
    C: Fn(u64) + Send + Sync,
{
    let mut left = iters;
    let mut total = Duration::ZERO;
    let mut base = 0u64;
    while left > 0 {
        let n = left.min(CHUNK as u64);
        let barrier = Barrier::new(threads);
        let sum: Duration = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = &barrier;
                    let call = &call;
                    s.spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        for i in base..base + n {
                            call(i);
                        }
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread"))
                .sum()
        });
        total += sum / threads as u32;
        between();
        left -= n;
        base += n;
    }
    total
}

/// The same line without the time (formatting a timestamp is a good part
/// of a log line's cost; tidings formats it later, on the worker).
fn json_line_untimed(i: u64) -> String {
    format!(
        "{{\"level\":\"error\",\"kind\":\"database_failure\",\"message\":\"{}\",\"attempt\":{i}}}\n",
        message_400()
    )
}

/// The JSON line the peers format: what a log line of this error is.
fn json_line(i: u64) -> String {
    format!(
        "{{\"time\":\"{}\",\"level\":\"error\",\"kind\":\"database_failure\",\"message\":\"{}\",\"attempt\":{i}}}\n",
        Timestamp::now(),
        message_400()
    )
}

fn tidings_reporter(folding: Folding) -> (tokio::runtime::Runtime, Reporter, tidings_tokio::Guard) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (reporter, guard) = tidings_tokio::start_on(
        rt.handle().clone(),
        Reporter::builder()
            .service("bench")
            .folding(folding)
            .sink(SerializeSink)
            .capacity(CAPACITY * 2)
            .overflow(Overflow::Reject)
            .log_to_stderr(false),
    )
    .expect("reporter");
    (rt, reporter, guard)
}

fn bench_caller(c: &mut Criterion) {
    let mut group = c.benchmark_group("caller");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    for threads in [1usize, 2] {
        for (name, folding) in [
            ("tidings/build_report", Folding::off()),
            ("tidings/build_report_folding", Folding::default()),
        ] {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                let (_rt, reporter, guard) = tidings_reporter(folding);
                b.iter_custom(|iters| {
                    timed(
                        iters,
                        threads,
                        |i| {
                            let report = Report::error("database_failure", message_400())
                                .with_context("attempt", i);
                            let _ = std::hint::black_box(reporter.report(report));
                        },
                        || wait_settled(&reporter),
                    )
                });
                let s = guard.shutdown_blocking();
                assert_eq!(s.stats.refused, 0, "the queue overflowed: not the call");
            });
        }

        // The same bench with and without the time in the line.
        for (name, json_line) in [
            ("appender/format_write", json_line as fn(u64) -> String),
            ("appender/format_write_untimed", json_line_untimed),
        ] {
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                let (writer, _guard) =
                    tracing_appender::non_blocking::NonBlockingBuilder::default()
                        .buffered_lines_limit(CAPACITY * 2)
                        .lossy(false)
                        .finish(std::io::sink());
                b.iter_custom(|iters| {
                    timed(
                        iters,
                        threads,
                        |i| {
                            let line = json_line(i);
                            let _ = std::hint::black_box(writer.clone().write_all(line.as_bytes()));
                        },
                        // Its worker drains a channel we cannot see: give it
                        // the time a chunk takes it (far below a millisecond).
                        || std::thread::sleep(Duration::from_millis(20)),
                    )
                });
            });
        }

        group.bench_function(BenchmarkId::new("raw/format_channel", threads), |b| {
            let (tx, rx) = async_channel::bounded::<Box<String>>(CAPACITY * 2);
            let consumer = std::thread::spawn(move || {
                while let Ok(line) = rx.recv_blocking() {
                    drop(line);
                }
            });
            let tx2 = tx.clone();
            b.iter_custom(|iters| {
                timed(
                    iters,
                    threads,
                    |i| {
                        let _ = std::hint::black_box(tx.try_send(Box::new(json_line(i))));
                    },
                    || {
                        while !tx2.is_empty() {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    },
                )
            });
            drop((tx, tx2));
            consumer.join().expect("consumer thread");
        });
    }
    group.finish();
}

/// The pipeline's ceiling: prebuilt reports through `report()` and the
/// worker into a sink that takes them and does nothing, one producer
/// thread, timed until every report is settled. Time per report; its
/// inverse is reports per second.
fn bench_pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("null_sink", |b| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (reporter, guard) = tidings_tokio::start_on(
            rt.handle().clone(),
            Reporter::builder()
                .service("bench")
                .folding(Folding::off())
                .sink(tidings_bench::NopSink)
                .capacity(CAPACITY)
                .overflow(Overflow::Block {
                    timeout: Duration::from_secs(60),
                })
                .log_to_stderr(false),
        )
        .expect("reporter");
        let template = tidings_bench::report(0);
        b.iter_custom(|iters| {
            let reports: Vec<Report> = (0..iters).map(|_| template.clone()).collect();
            let start = Instant::now();
            for r in reports {
                let _ = std::hint::black_box(reporter.report(r));
            }
            while reporter.stats().in_flight > 0 {
                std::hint::spin_loop();
            }
            start.elapsed()
        });
        let s = guard.shutdown_blocking();
        assert_eq!(s.stats.refused, 0);
    });
    group.finish();
}

criterion_group!(benches, bench_caller, bench_pipeline);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
