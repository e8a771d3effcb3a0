//! Reports panics: [`install`] a panic hook that reports each panic as a
//! [`Critical`](crate::Severity::Critical) report, then calls the hook
//! that was there before.
//!
//! Always available: it needs no dependency, and nothing happens until
//! [`install`] is called.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! let (reporter, guard) = tidings::blocking::init()?;
//! tidings::panic::install(&reporter);
//!
//! let worker = std::thread::Builder::new().name("payments".into());
//! let crashed = worker.spawn(|| panic!("card processor exploded"))?.join();
//! assert!(crashed.is_err());
//!
//! let summary = guard.shutdown_blocking();
//! assert_eq!(summary.stats.delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The report
//!
//! | field | value |
//! |---|---|
//! | severity | `critical` |
//! | kind | `panic` |
//! | message | the payload (a `&str` or `String`; anything else: `Box<dyn Any>`) |
//! | context `location` | `file:line:column` |
//! | context `thread` | the thread's name (`<unnamed>` without one) |
//! | backtrace | captured in the hook, whatever `RUST_BACKTRACE` says |
//!
//! # Surviving `panic = "abort"`
//!
//! The hook runs before the process aborts, but the reporter's worker may
//! not get to send the report. With a write-ahead spool
//! ([`SpoolMode::WriteAhead`](crate::SpoolMode::WriteAhead)) the report is
//! in the spool before `report()` returns, so before the hook returns: the
//! next start of the program replays it. With
//! [`SyncPolicy::None`](crate::spool::SyncPolicy::None) or `Interval` it
//! survives the process (the kernel has it); with `Always` also a crash of
//! the machine. Without a write-ahead spool, a panic that aborts the
//! process loses the report unless the worker happened to send it first.
//!
//! # No loops
//!
//! A panic is not reported when it happens on one of tidings' own threads
//! (named `tidings-…`), inside tidings' delivery path (a sink's `send`,
//! which tidings catches and counts as
//! [`sink_panics`](crate::Stats::sink_panics), on any runtime's thread), or
//! while this hook is already reporting on the same thread: a panicking
//! sink would otherwise receive a report of its own panic, panic again,
//! and so on. The previous hook is still called for those.

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::panic::PanicHookInfo;

use crate::{Report, Reporter};

thread_local! {
    /// This thread is inside the hook's reporting.
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

/// Frames of tidings' delivery path: a panic under one of them was raised
/// by a sink (or tidings itself) and is caught and counted there.
const DELIVERY_FRAMES: [&str; 4] = [
    "tidings_core::worker::",
    "tidings_core::replay::",
    "tidings_nats_sync::",
    "tidings_tokio::nats::",
];

/// Installs the hook: each panic is reported through `reporter` (see the
/// [module docs](self)), then the previous hook runs (by default, the
/// message on stderr). Installing twice reports each panic twice.
pub fn install(reporter: &Reporter) {
    let reporter = reporter.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report_panic(&reporter, info);
        previous(info);
    }));
}

/// The report a panic hook makes of `info`, with a backtrace captured
/// here. What [`install`]'s hook reports.
pub fn panic_report(info: &PanicHookInfo<'_>) -> Report {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned());
    let mut report = Report::critical("panic", message).with_context(
        "thread",
        std::thread::current().name().unwrap_or("<unnamed>"),
    );
    if let Some(location) = info.location() {
        report = report.with_context(
            "location",
            format!(
                "{}:{}:{}",
                location.file(),
                location.line(),
                location.column()
            ),
        );
    }
    report.with_backtrace(Backtrace::force_capture())
}

fn report_panic(reporter: &Reporter, info: &PanicHookInfo<'_>) {
    let tidings_thread = std::thread::current()
        .name()
        .is_some_and(|name| name.starts_with("tidings-"));
    if tidings_thread {
        return;
    }
    // try_with: the thread may be tearing down its locals.
    let entered = REPORTING.try_with(|r| !r.replace(true)).unwrap_or(false);
    if !entered {
        return;
    }
    let report = panic_report(info);
    let in_delivery = report
        .backtrace
        .as_deref()
        .is_some_and(|bt| DELIVERY_FRAMES.iter().any(|frame| bt.contains(frame)));
    if !in_delivery {
        // Refused (Reject, Late::Refuse): counted in the stats; the
        // previous hook still prints the panic.
        let _ = reporter.report(report);
    }
    let _ = REPORTING.try_with(|r| r.set(false));
}
