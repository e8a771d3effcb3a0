//! The cost of `Reporter::report()` for a prebuilt report, side by side with
//! the raw hand-off it is built on (`async_channel::bounded` `try_send`).
//!
//! * `raw/try_send` — a bare `try_send` of the report into a bounded
//!   channel: the floor for any queue-based reporter.
//! * `raw/arc_try_send` — the same with the `Arc::new` tidings needs to
//!   track the report after hand-off.
//! * `raw/arc_try_send_live` — the same while a consumer thread takes the
//!   reports off concurrently, 512 at a time, and drops them (as tidings'
//!   worker does): the floor for a hand-off to a live consumer, with the
//!   queue's cache lines and the allocator shared between two threads.
//! * `tidings/idle_worker` — `report()` on a reporter whose worker does not
//!   run while the loop is timed (a `ManualRuntime`, driven between timed
//!   chunks): the hot path alone.
//! * `tidings/live_worker` — `report()` while the worker drains the queue
//!   concurrently on a tokio worker thread (real contention on the queue).
//!
//! Each at 1 and 2 producer threads; with 2 the figure is time per call on
//! each thread. The queue is large enough for a whole timed chunk and is
//! drained between chunks, outside the timing, so this measures the hot
//! path, never the overflow policy. Run with `cargo bench -p tidings-bench`
//! (or `bash bench/run.sh`, which saves three runs and tabulates them).

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use tidings_bench::{drain_manual, wait_settled, NopSink};
use tidings_core::testing::ManualRuntime;
use tidings_core::{Overflow, Report, Reporter};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reports per timed chunk and per thread; the queue holds two chunks.
const CHUNK: usize = 32_768;
const CAPACITY: usize = 2 * CHUNK;

fn chunk_of(template: &Report, n: usize) -> Vec<Report> {
    (0..n).map(|_| template.clone()).collect()
}

/// Runs `iters` timed calls in chunks: `timed(chunk)` returns the time its
/// calls took on each thread (summed over threads), `between()` runs
/// untimed after each chunk (draining the queue). Returns the mean time
/// per call on one thread, times `iters`.
fn chunked(
    iters: u64,
    threads: usize,
    template: &Report,
    mut timed: impl FnMut(Vec<Vec<Report>>) -> Duration,
    mut between: impl FnMut(),
) -> Duration {
    let mut left = iters as usize;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(CHUNK);
        let work: Vec<Vec<Report>> = (0..threads).map(|_| chunk_of(template, n)).collect();
        total += timed(work) / threads as u32;
        between();
        left -= n;
    }
    total
}

/// Runs `each(reports)` on one thread per vector, started together;
/// returns the sum of the threads' own timings.
fn on_threads<F>(work: Vec<Vec<Report>>, each: F) -> Duration
where
    F: Fn(Vec<Report>) -> Duration + Send + Sync,
{
    if work.len() == 1 {
        let mut work = work;
        return each(work.pop().expect("one"));
    }
    let barrier = Barrier::new(work.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|reports| {
                let barrier = &barrier;
                let each = &each;
                s.spawn(move || {
                    barrier.wait();
                    each(reports)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum()
    })
}

/// Times `call` on each of `iters` prebuilt reports per thread, chunk by
/// chunk ([`chunked`]), the threads started together ([`on_threads`]).
fn time_calls<C>(
    iters: u64,
    threads: usize,
    template: &Report,
    call: C,
    between: impl FnMut(),
) -> Duration
where
    C: Fn(Report) + Send + Sync,
{
    chunked(
        iters,
        threads,
        template,
        |work| {
            on_threads(work, |reports| {
                let start = Instant::now();
                for r in reports {
                    call(r);
                }
                start.elapsed()
            })
        },
        between,
    )
}

fn bench_report(c: &mut Criterion) {
    let template = tidings_bench::report(0);
    let mut group = c.benchmark_group("report");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    for threads in [1usize, 2] {
        // Raw: a bare bounded channel of reports.
        group.bench_function(BenchmarkId::new("raw/try_send", threads), |b| {
            let (tx, rx) = async_channel::bounded::<Report>(CAPACITY);
            b.iter_custom(|iters| {
                time_calls(
                    iters,
                    threads,
                    &template,
                    |r| {
                        let _ = std::hint::black_box(tx.try_send(r));
                    },
                    || while rx.try_recv().is_ok() {},
                )
            });
        });

        // Raw plus the allocation tidings needs to track a report.
        group.bench_function(BenchmarkId::new("raw/arc_try_send", threads), |b| {
            let (tx, rx) = async_channel::bounded::<Arc<Report>>(CAPACITY);
            b.iter_custom(|iters| {
                time_calls(
                    iters,
                    threads,
                    &template,
                    |r| {
                        let _ = std::hint::black_box(tx.try_send(Arc::new(r)));
                    },
                    || while rx.try_recv().is_ok() {},
                )
            });
        });

        // Raw with a live consumer: what a hand-off costs when the other
        // side is taking reports off (and freeing them) at the same time.
        group.bench_function(BenchmarkId::new("raw/arc_try_send_live", threads), |b| {
            let (tx, rx) = async_channel::bounded::<Arc<Report>>(CAPACITY);
            let consumer = std::thread::spawn(move || {
                let mut taken = Vec::with_capacity(512);
                while let Ok(first) = rx.recv_blocking() {
                    taken.push(first);
                    while taken.len() < 512 {
                        match rx.try_recv() {
                            Ok(r) => taken.push(r),
                            Err(_) => break,
                        }
                    }
                    taken.clear();
                }
            });
            b.iter_custom(|iters| {
                time_calls(
                    iters,
                    threads,
                    &template,
                    |r| {
                        let _ = std::hint::black_box(tx.try_send(Arc::new(r)));
                    },
                    || {
                        while !tx.is_empty() {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    },
                )
            });
            drop(tx);
            consumer.join().expect("consumer thread");
        });

        // tidings, the worker idle while timed: the hot path alone.
        group.bench_function(BenchmarkId::new("tidings/idle_worker", threads), |b| {
            let rt = ManualRuntime::new();
            let reporter = Reporter::builder()
                .folding(tidings_core::Folding::off())
                .sink(NopSink)
                .capacity(CAPACITY)
                .overflow(Overflow::Reject)
                .build(rt.handle())
                .expect("reporter");
            b.iter_custom(|iters| {
                time_calls(
                    iters,
                    threads,
                    &template,
                    |r| {
                        let _ = std::hint::black_box(reporter.report(r));
                    },
                    || drain_manual(&rt, &reporter),
                )
            });
            let s = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
            assert_eq!(s.stats.refused, 0, "the queue overflowed: not the hot path");
        });

        // tidings, the worker draining concurrently on a tokio thread.
        group.bench_function(BenchmarkId::new("tidings/live_worker", threads), |b| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime");
            let (reporter, guard) = tidings_tokio::start_on(
                rt.handle().clone(),
                Reporter::builder()
                    .folding(tidings_core::Folding::off())
                    .sink(NopSink)
                    .capacity(CAPACITY)
                    .overflow(Overflow::Reject),
            )
            .expect("reporter");
            b.iter_custom(|iters| {
                time_calls(
                    iters,
                    threads,
                    &template,
                    |r| {
                        let _ = std::hint::black_box(reporter.report(r));
                    },
                    || wait_settled(&reporter),
                )
            });
            let s = guard.shutdown_blocking();
            assert_eq!(s.stats.refused, 0, "the queue overflowed: not the hot path");
        });
    }
    group.finish();
}

criterion_group!(benches, bench_report);

/// Set (to anything) once the process has re-executed itself with the
/// allocator settings below.
const REEXEC: &str = "TIDINGS_BENCH_REEXEC";

fn main() {
    // Between timed chunks a whole chunk of reports is freed at once, and
    // glibc then trims the heap and page-faults it back in during the next
    // timed chunk: an artifact of chunked timing (it doubled the raw
    // `Arc` hand-off here), not a cost of `report()`. A high trim threshold
    // keeps the pages. Tunables are read at start-up, hence the re-exec.
    if cfg!(all(target_os = "linux", target_env = "gnu")) && std::env::var_os(REEXEC).is_none() {
        let tunables = match std::env::var("GLIBC_TUNABLES") {
            Ok(t) if !t.is_empty() => format!("{t}:glibc.malloc.trim_threshold=1073741824"),
            _ => "glibc.malloc.trim_threshold=1073741824".to_owned(),
        };
        let exe = std::env::current_exe().expect("the bench's own path");
        let status = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("GLIBC_TUNABLES", tunables)
            .env(REEXEC, "1")
            .status()
            .expect("re-execute the bench");
        std::process::exit(status.code().unwrap_or(1));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
