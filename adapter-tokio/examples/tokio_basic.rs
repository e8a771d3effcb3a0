//! tidings on tokio, end to end.
//!
//! ```text
//! cargo run -p tidings-tokio --example tokio_basic                      # no server needed
//! cargo run -p tidings-tokio --example tokio_basic -- --nats nats://127.0.0.1:4222
//! cargo run -p tidings-tokio --example tokio_basic -- --nats nats://127.0.0.1:4222 --jetstream
//! ```
//!
//! Without `--nats` no sink is configured, so core uses its default sink:
//! JSON lines appended to `tidings-reports.jsonl` in the current directory.
//! With `--nats` reports are published on `tidings.examples` (with
//! `--jetstream`, into the stream `TIDINGS_EXAMPLES`, created if missing).
//! If the server is down, reports are retried and then spilled to stderr:
//! the summary at the end says where every report went.

use std::fmt;
use std::time::Duration;

use tidings_core::nats::NatsConfig;
use tidings_core::{Report, Reporter, DEFAULT_REPORTS_FILE};
use tidings_tokio::NatsSink;

/// A stand-in for an application error with a cause.
#[derive(Debug)]
struct JobFailed {
    job: u32,
    cause: std::io::Error,
}

impl fmt::Display for JobFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {} failed", self.job)
    }
}

impl std::error::Error for JobFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
        .service("tokio-basic")
        .shutdown_deadline(Duration::from_secs(5));
    match nats_url {
        Some(url) => {
            let mut config = NatsConfig::new(url, "tidings.examples");
            if jetstream {
                config = config.jetstream().ensure_stream("TIDINGS_EXAMPLES");
            }
            // Returns at once, even if the server is down.
            builder = builder.sink(NatsSink::connect(config).await?);
        }
        None => println!("no --nats given: reports go to {DEFAULT_REPORTS_FILE}"),
    }
    let (reporter, guard) = tidings_tokio::start(builder)?;

    // Report from several tasks; each waits for its own outcome.
    let mut tasks = Vec::new();
    for job in 0..8 {
        let reporter = reporter.clone();
        tasks.push(tokio::spawn(async move {
            let error = JobFailed {
                job,
                cause: std::io::Error::new(std::io::ErrorKind::TimedOut, "database timed out"),
            };
            let report = Report::from_error(&error)
                .with_kind("job_failed")
                .with_context("job", job);
            match reporter.report(report) {
                Ok(receipt) => {
                    let outcome = receipt.await;
                    println!("job {job}: {:?}", outcome.status);
                }
                Err(refused) => println!("job {job}: refused: {refused}"),
            }
        }));
    }
    for task in tasks {
        task.await?;
    }

    // The recommended ending: drain within the deadline, then close.
    let summary = guard.shutdown().await;
    println!("{summary}");
    Ok(())
}
