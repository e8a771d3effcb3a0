//! Profiling aid (not a benchmark): 200k reports built with
//! `Report::error(..).with_context(..)` and handed to `report()` on one
//! thread while a tokio worker drains into a serializing sink. Run under
//! `valgrind --tool=callgrind --separate-threads=yes` to see where the
//! caller's instructions go (`folding` as the argument: with folding on, so
//! all but the first 100 are folded; `passing`: folding on with no
//! threshold, so every report is fingerprinted and looked up, none folded).

use std::time::Duration;

use tidings_bench::{message_400, SerializeSink};
use tidings_core::{Folding, Overflow, Report, Reporter};

fn main() {
    let folding = match std::env::args().nth(1).as_deref() {
        Some("folding") => Folding::default(),
        Some("passing") => Folding {
            threshold: u32::MAX,
            ..Folding::default()
        },
        _ => Folding::off(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (reporter, guard) = tidings_tokio::start_on(
        rt.handle().clone(),
        Reporter::builder()
            .service("bench")
            .folding(folding)
            .sink(SerializeSink)
            .capacity(1 << 18)
            .overflow(Overflow::Reject)
            .log_to_stderr(false),
    )
    .unwrap();
    let message = message_400();
    for i in 0..200_000u64 {
        let report = Report::error("database_failure", message).with_context("attempt", i);
        let _ = std::hint::black_box(reporter.report(report));
    }
    let s = guard.shutdown_blocking_within(Duration::from_secs(30));
    assert_eq!(s.stats.refused, 0);
}
