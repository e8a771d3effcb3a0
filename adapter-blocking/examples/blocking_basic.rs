//! tidings in a program with no async at all.
//!
//! ```text
//! cargo run -p tidings-blocking --example blocking_basic                 # no server needed
//! cargo run -p tidings-blocking --example blocking_basic -- --nats nats://127.0.0.1:4222 [--jetstream]
//! ```
//!
//! Without `--nats` no sink is configured, so reports go to the embedded
//! default, `tidings-reports.jsonl` in the current directory. Reports that
//! cannot be delivered are spilled to `tidings-spill.jsonl`.

use std::time::Duration;

use tidings_blocking::NatsSink;
use tidings_core::nats::NatsConfig;
use tidings_core::{JsonLinesFile, Report, Reporter, DEFAULT_REPORTS_FILE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut nats_url = None;
    let mut jetstream = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nats" => nats_url = Some(args.next().ok_or("--nats needs a URL")?),
            "--jetstream" => jetstream = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let mut builder = Reporter::builder()
        .service("blocking-basic")
        .fallback(JsonLinesFile::open("tidings-spill.jsonl")?)
        .shutdown_deadline(Duration::from_secs(5));
    match nats_url {
        Some(url) => {
            let mut config = NatsConfig::new(url, "tidings.examples");
            if jetstream {
                config = config.jetstream().ensure_stream("TIDINGS_EXAMPLES");
            }
            // Returns at once, even if the server is down.
            builder = builder.sink(NatsSink::connect(config)?);
        }
        None => println!("no --nats given: reports go to {DEFAULT_REPORTS_FILE}"),
    }
    // `_guard` runs the shutdown protocol when main returns.
    let (reporter, guard) = tidings_blocking::start(builder)?;

    // Worker threads report; one waits for its outcome.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let reporter = reporter.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let err =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
                    let report = Report::from_error(&err)
                        .with_kind("upstream_timeout")
                        .with_context("thread", t)
                        .with_context("attempt", i);
                    if let Err(refused) = reporter.report(report) {
                        eprintln!("{refused}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reporting thread");
    }
    let receipt = reporter.report(Report::critical("shutdown", "example finished"))?;
    match receipt.wait(Duration::from_secs(10)) {
        Ok(outcome) => println!("last report: {outcome}"),
        Err(receipt) => println!("report {} still pending after 10 s", receipt.id()),
    }

    let summary = guard.shutdown_blocking();
    println!("{summary}");
    Ok(())
}
