//! A panic under `panic = "abort"`: the child process (this test binary,
//! run again) reports it through a write-ahead spool while NATS is down,
//! and aborts at the end of its hook chain; the next start replays the
//! report into the real stream.

mod common;

use std::process::Command;
use std::time::Duration;

use tidings::nats::NatsConfig;
use tidings::spool::{SpoolConfig, SyncPolicy};
use tidings::{Reporter, Severity, SpoolMode};
use tidings_conformance::scenarios::assert_accounted;
use tidings_conformance::wait_until;

const CHILD: &str = "TIDINGS_TEST_PANIC_CHILD";

fn spool(dir: &str) -> SpoolConfig {
    SpoolConfig {
        // An abort is a process crash: what write(2) returned survives it.
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir)
    }
}

#[test]
fn a_panic_that_aborts_is_replayed_into_the_stream_by_the_next_start() {
    if let Ok(args) = std::env::var(CHILD) {
        child(&args);
    }
    let mut server = common::server_with_stream("ABORT", "abort.reports");
    server.kill(); // the child cannot deliver: only its spool can keep the report
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap().to_owned();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_that_aborts_is_replayed_into_the_stream_by_the_next_start",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{dir}\n{}", server.url()))
        .status()
        .expect("run the child");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(6),
            "the child aborts (SIGABRT): {status}"
        );
    }
    assert!(!status.success());

    server.restart();
    let (builder, recorded) = common::builder(&server, "abort.reports");
    let (reporter, guard) = tidings::blocking::start(
        builder
            .spool(spool(&dir), SpoolMode::WriteAhead)
            .log_to_stderr(false),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            reporter.stats().spool.is_some_and(|s| s.pending == 0)
        }),
        "{:?}",
        reporter.stats().spool
    );
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    assert_eq!(
        summary.stats.spool.as_ref().unwrap().replayed,
        1,
        "{summary}"
    );

    let reports = recorded.delivered();
    assert_eq!(common::arrived(&server, "ABORT"), common::ids(&reports));
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].severity, Severity::Critical);
    assert_eq!(reports[0].message, "the ledger is corrupt");
    assert_eq!(reports[0].context["thread"], "ledger");
    assert!(reports[0].backtrace.is_some());
}

/// Reports through a write-ahead spool to a server that is down, panics on
/// a thread named `ledger`, and aborts at the end of the hook chain (what
/// `panic = "abort"` does after the hook).
fn child(args: &str) -> ! {
    let (dir, url) = args.split_once('\n').expect("dir and url");
    let mut config = NatsConfig::new(url, "abort.reports").jetstream();
    config.connect_timeout = Duration::from_millis(200);
    let sink = tidings::blocking::NatsSink::connect(config).expect("sink");
    let (reporter, _guard) = tidings::blocking::start(
        Reporter::builder()
            .sink(sink)
            .spool(spool(dir), SpoolMode::WriteAhead)
            .log_to_stderr(false),
    )
    .expect("start");
    tidings::panic::install(&reporter);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        std::process::abort();
    }));
    let _ = std::thread::Builder::new()
        .name("ledger".into())
        .spawn(|| panic!("the ledger is corrupt"))
        .unwrap()
        .join();
    unreachable!("the hook aborts");
}
