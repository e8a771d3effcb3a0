//! log records at Error become reports; every record still goes to the
//! logger the program had (here a tiny one that prints to stderr).
//!
//! ```text
//! cargo run --example log --features log
//! ```

use log::{LevelFilter, Log, Metadata, Record};

/// The program's own logger (env_logger, simple_logger, … in real life).
struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &Record<'_>) {
        eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
    }
    fn flush(&self) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (reporter, guard) = tidings::blocking::init()?;
    tidings::log::logger(&reporter, Stderr).install(LevelFilter::Info)?;

    log::info!("starting the nightly export"); // printed, not reported
    log::error!(target: "export", "export of batch {} failed: disk full", 12);

    println!("{}", guard.shutdown_blocking());
    Ok(())
}
