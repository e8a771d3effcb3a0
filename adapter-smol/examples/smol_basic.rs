//! tidings on smol.
//!
//! ```text
//! cargo run -p tidings-smol --example smol_basic                 # no server needed
//! cargo run -p tidings-smol --example smol_basic -- --nats nats://127.0.0.1:4222 [--jetstream]
//! ```
//!
//! Without `--nats`, reports go to the embedded default,
//! `tidings-reports.jsonl` in the current directory.

use std::time::Duration;

use tidings_core::nats::NatsConfig;
use tidings_core::{Report, Reporter, DEFAULT_REPORTS_FILE};
use tidings_smol::NatsSink;

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
    smol::block_on(async {
        let mut builder = Reporter::builder()
            .service("smol-basic")
            .shutdown_deadline(Duration::from_secs(5));
        match nats_url {
            Some(url) => {
                let mut config = NatsConfig::new(url, "tidings.examples");
                if jetstream {
                    config = config.jetstream().ensure_stream("TIDINGS_EXAMPLES");
                }
                builder = builder.sink(NatsSink::connect(config)?);
            }
            None => println!("no --nats given: reports go to {DEFAULT_REPORTS_FILE}"),
        }
        let (reporter, guard) = tidings_smol::start(builder)?;

        // Tasks report and await their outcome.
        let tasks: Vec<_> = (0..8)
            .map(|job| {
                let reporter = reporter.clone();
                smol::spawn(async move {
                    let report = Report::error("job_failed", format!("job {job} failed"))
                        .with_context("job", job);
                    match reporter.report(report) {
                        Ok(receipt) => println!("{}", receipt.await),
                        Err(refused) => eprintln!("{refused}"),
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let summary = guard.shutdown().await;
        println!("{summary}");
        Ok(())
    })
}
