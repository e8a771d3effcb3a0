//! The quick start on tokio.
//!
//! ```text
//! cargo run -p tidings-tokio --example tokio_basic
//! NATS_URL=nats://127.0.0.1:4222 TIDINGS_JETSTREAM=true cargo run -p tidings-tokio --example tokio_basic
//! ```
//!
//! Without `NATS_URL` reports go to `tidings-reports.jsonl` in the current
//! directory; the first line on stderr says which was chosen.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, guard) = tidings_tokio::init().await?;
    tokio::spawn(async move {
        let _ = reporter.report(tidings_core::Report::error("job_failed", "job 7 failed"));
    })
    .await?;
    println!("{}", guard.shutdown().await); // drain within the deadline, then close
    Ok(())
}
