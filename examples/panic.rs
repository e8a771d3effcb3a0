//! A panic becomes a Critical report (payload, location, thread, backtrace);
//! the previous hook still prints it.
//!
//! ```text
//! cargo run --example panic
//! ```
//!
//! With `panic = "abort"`, add a write-ahead spool so the report is on disk
//! before the hook returns: `TIDINGS_SPOOL_DIR=spool TIDINGS_SPOOL_MODE=write-ahead`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, guard) = tidings::blocking::init()?;
    tidings::panic::install(&reporter);

    let worker = std::thread::Builder::new().name("importer".into());
    let outcome = worker.spawn(|| panic!("row 17 has no id"))?.join();
    println!(
        "the importer thread ended: {}",
        if outcome.is_err() { "panicked" } else { "ok" }
    );

    println!("{}", guard.shutdown_blocking());
    Ok(())
}
