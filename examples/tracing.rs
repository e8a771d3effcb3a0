//! tracing events at ERROR become reports; every event is still printed.
//!
//! ```text
//! cargo run --example tracing --features tracing
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example tracing --features tracing
//! ```

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, guard) = tidings::blocking::init()?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(tidings::tracing::layer(&reporter))
        .init();

    let span = tracing::info_span!("checkout", order = 7, customer = "c-42");
    let _entered = span.enter();
    tracing::info!("charging the card"); // printed, not reported
    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "card processor timed out");
    tracing::error!(
        kind = "payment_failed",
        error = &err as &dyn std::error::Error,
        amount_cents = 1250,
        "payment failed"
    );

    println!("{}", guard.shutdown_blocking());
    Ok(())
}
