//! A reporting process for the crash tests: reports continuously with a
//! write-ahead spool and prints `accepted <report id>` for every report
//! `report()` accepted, until it is killed.
//!
//! ```text
//! spool-child <spool-dir> <nats-url> <subject> [storm]
//! ```
//!
//! With `storm`, every report is the same error, so all but the first
//! hundred of each fold window are folded (the default folding).

use std::io::Write;

use tidings_core::nats::NatsConfig;
use tidings_core::spool::{SpoolConfig, SyncPolicy};
use tidings_core::{Report, Reporter, SpoolMode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, url, subject, storm) = match args.as_slice() {
        [dir, url, subject] => (dir, url, subject, false),
        [dir, url, subject, mode] if mode == "storm" => (dir, url, subject, true),
        _ => {
            eprintln!("usage: spool-child <spool-dir> <nats-url> <subject> [storm]");
            std::process::exit(2);
        }
    };
    let sink = tidings_blocking::NatsSink::connect(
        NatsConfig::new(url.clone(), subject.clone()).jetstream(),
    )
    .expect("sink");
    let spool = SpoolConfig {
        // A SIGKILL is a process crash: what write(2) returned survives it.
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir)
    };
    let (reporter, _guard) = tidings_blocking::start(
        Reporter::builder()
            .service("spool-child")
            .sink(sink)
            .spool(spool, SpoolMode::WriteAhead)
            .log_to_stderr(false),
    )
    .expect("start");
    let stdout = std::io::stdout();
    for i in 0u64.. {
        let report = if storm {
            Report::error("crash_storm", "the same error, again")
        } else {
            Report::error("crash_test", format!("report {i}")).with_context("i", i)
        };
        let receipt = reporter
            .report(report)
            .expect("the default overflow policy never refuses");
        let mut out = stdout.lock();
        // After report() returned: the record is in the spool.
        writeln!(out, "accepted {}", receipt.id()).expect("stdout");
        out.flush().expect("stdout");
    }
}
