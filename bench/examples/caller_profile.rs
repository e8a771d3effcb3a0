//! Profiling aid (not a benchmark): 200k reports built with
//! `Report::error(..).with_context(..)` and handed to `report()` on one
//! thread while a tokio worker drains into a serializing sink. Run under
//! `valgrind --tool=callgrind --separate-threads=yes` to see where the
//! caller's instructions go (`folding` as the argument: with folding on, so
//! all but the first 100 are folded; `passing`: folding on with no
//! threshold, so every report is fingerprinted and looked up, none folded).

use std::time::Duration;

use tidings_core::{Ack, Batch, Folding, Overflow, Report, Reporter, Sink, SinkError, SinkFuture};

struct SerializeSink;

impl Sink for SerializeSink {
    fn name(&self) -> &str {
        "serialize"
    }
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        let mut buf = Vec::with_capacity(512);
        for r in batch.iter() {
            buf.clear();
            r.write_json(&mut buf);
            std::hint::black_box(&buf);
        }
        let n = batch.len();
        Box::pin(async move { vec![Ok(Ack::Written); n] })
    }
}

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
    let head = "primary database unreachable: connection refused by 10.0.0.7:5432 after ";
    let message = format!("{head}{}", "x".repeat(400 - head.len()));
    for i in 0..200_000u64 {
        let report = Report::error("database_failure", message.as_str()).with_context("attempt", i);
        let _ = std::hint::black_box(reporter.report(report));
    }
    let s = guard.shutdown_blocking_within(Duration::from_secs(30));
    assert_eq!(s.stats.refused, 0);
}
