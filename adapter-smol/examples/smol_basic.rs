//! The quick start on smol.
//!
//! ```text
//! cargo run -p tidings-smol --example smol_basic
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p tidings-smol --example smol_basic
//! ```
//!
//! Without `NATS_URL` reports go to `tidings-reports.jsonl` in the current
//! directory; the first line on stderr says which was chosen.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let (reporter, guard) = tidings_smol::init()?;
        let outcome = reporter.report(tidings_core::Report::error("job_failed", "job 7 failed"))?;
        println!("{}", outcome.await); // a receipt may be awaited, or dropped
        println!("{}", guard.shutdown().await);
        Ok(())
    })
}
