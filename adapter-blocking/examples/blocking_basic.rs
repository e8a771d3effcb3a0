//! The quick start, in a program with no async at all.
//!
//! ```text
//! cargo run -p tidings-blocking --example blocking_basic
//! NATS_URL=nats://127.0.0.1:4222 TIDINGS_STREAM=TIDINGS cargo run -p tidings-blocking --example blocking_basic
//! ```
//!
//! Without `NATS_URL` reports go to `tidings-reports.jsonl` in the current
//! directory; the first line on stderr says which was chosen.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, guard) = tidings_blocking::init()?;
    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
    reporter.report(tidings_core::Report::from_error(&err).with_kind("upstream_timeout"))?;
    println!("{}", guard.shutdown_blocking()); // or let the guard drop at the end of main
    Ok(())
}
