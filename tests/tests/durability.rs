//! The durable spool end to end, against real nats-servers: a process
//! SIGKILLed at a random moment, NATS down for a whole run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tidings_conformance::nats_probe::{create_stream, stream_arrivals};
use tidings_conformance::nats_server::NatsServer;
use tidings_conformance::scenarios::assert_accounted;
use tidings_conformance::wait_until;
use tidings_core::nats::NatsConfig;
use tidings_core::spool::{SpoolConfig, SyncPolicy};
use tidings_core::{Report, ReportId, Reporter, RetryPolicy, SpoolMode};

/// Kills the child by PID when dropped, whatever happened.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spool(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig {
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir)
    }
}

/// Starts a reporter on the spool in `dir`, waits until it has replayed
/// everything, shuts it down, and returns how many it replayed.
fn replay_everything(dir: &std::path::Path, url: &str, subject: &str) -> u64 {
    let sink =
        tidings_blocking::NatsSink::connect(NatsConfig::new(url, subject).jetstream()).unwrap();
    let (reporter, guard) = tidings_blocking::start(
        Reporter::builder()
            .folding(tidings_core::Folding::off())
            .sink(sink)
            .spool(spool(dir), SpoolMode::WriteAhead)
            .log_to_stderr(false),
    )
    .expect("the next process opens the spool");
    let replayed = wait_until(Duration::from_secs(60), || {
        reporter.stats().spool.is_some_and(|s| s.pending == 0)
    });
    assert!(
        replayed,
        "replay did not finish: {:?}",
        reporter.stats().spool
    );
    let summary = guard.shutdown_blocking();
    assert_accounted(&summary.stats);
    summary.stats.spool.unwrap().replayed
}

#[test]
fn a_sigkilled_process_loses_nothing_it_accepted() {
    sigkill_trials(false, 5);
}

/// The same error over and over: all but the first hundred of the window
/// are folded, their aggregate not yet sent when the process is killed.
/// Their write-ahead records outlive the process: the next start delivers
/// every one of them.
#[test]
fn a_sigkilled_storm_loses_no_folded_report() {
    sigkill_trials(true, 3);
}

fn sigkill_trials(storm: bool, trials: usize) {
    let server = NatsServer::start();
    for trial in 0..trials {
        let stream = format!("CRASH{trial}{}", if storm { "S" } else { "" });
        let subject = format!("crash.t{trial}{}", if storm { "s" } else { "" });
        create_stream(&server.url(), &stream, &subject, 1);
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_spool-child"));
        command.arg(dir.path()).arg(server.url()).arg(&subject);
        if storm {
            command.arg("storm");
        }
        let mut child = ChildGuard(
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the child"),
        );
        // A random moment: after a random number of accepted reports (in a
        // storm, well past the folding threshold).
        let kill_after = if storm {
            fastrand::usize(300..4000)
        } else {
            fastrand::usize(20..4000)
        };
        let lines = BufReader::new(child.0.stdout.take().unwrap());
        let mut accepted: Vec<ReportId> = Vec::new();
        let mut killed = false;
        for line in lines.lines() {
            let Ok(line) = line else { break };
            // A line cut by the kill is not a complete acceptance notice.
            if let Some(id) = line.strip_prefix("accepted ").and_then(|s| s.parse().ok()) {
                accepted.push(id);
            }
            if !killed && accepted.len() >= kill_after {
                child.0.kill().expect("SIGKILL the child");
                killed = true;
            }
        }
        assert!(killed, "trial {trial}: the child ended by itself");
        let _ = child.0.wait();

        let replayed = replay_everything(dir.path(), &server.url(), &subject);
        let arrivals = stream_arrivals(&server.url(), &stream);
        assert!(
            arrivals.duplicates().is_empty(),
            "trial {trial}: duplicates in the stream"
        );
        let in_stream: std::collections::HashSet<ReportId> = arrivals.ids.iter().copied().collect();
        let missing: Vec<&ReportId> = accepted
            .iter()
            .filter(|id| !in_stream.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "trial {trial}: {} of {} accepted reports missing from the stream (replayed {replayed})",
            missing.len(),
            accepted.len()
        );
        if storm {
            // Most were folded in the killed run: they came back from the
            // spool, one by one.
            assert!(
                replayed as usize >= accepted.len().saturating_sub(100),
                "trial {trial}: replayed {replayed} of {} accepted",
                accepted.len()
            );
        }
        eprintln!(
            "trial {trial}: killed after {} accepted; {} in the stream; {replayed} replayed by the next process",
            accepted.len(),
            arrivals.ids.len()
        );
    }
}

#[test]
fn nats_down_for_a_whole_run_then_the_next_run_delivers_everything() {
    let mut server = NatsServer::start();
    create_stream(&server.url(), "DOWNRUN", "downrun.reports", 1);
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<ReportId> = {
        let sink = tidings_blocking::NatsSink::connect(
            NatsConfig::new(server.url(), "downrun.reports").jetstream(),
        )
        .unwrap();
        let (reporter, guard) = tidings_blocking::start(
            Reporter::builder()
                .folding(tidings_core::Folding::off())
                .sink(sink)
                .spool(spool(dir.path()), SpoolMode::OnSpill)
                .retry(RetryPolicy {
                    initial_backoff: Duration::from_millis(5),
                    max_backoff: Duration::from_millis(20),
                    max_attempts: 2,
                    down_after: Duration::from_millis(50),
                    ..RetryPolicy::default()
                })
                .log_to_stderr(false),
        )
        .unwrap();
        let ids = (0..300)
            .map(|i| {
                reporter
                    .report(Report::error("down", i.to_string()))
                    .unwrap()
                    .id()
            })
            .collect();
        let summary = guard.shutdown_blocking_within(Duration::from_secs(20));
        assert_accounted(&summary.stats);
        assert_eq!(summary.stats.spilled, 300, "{summary}");
        assert_eq!(summary.stats.spool.unwrap().pending, 300);
        ids
    };
    server.restart();
    let replayed = replay_everything(dir.path(), &server.url(), "downrun.reports");
    assert_eq!(replayed, 300);
    let arrivals = stream_arrivals(&server.url(), "DOWNRUN");
    assert!(arrivals.duplicates().is_empty());
    let mut got = arrivals.ids.clone();
    got.sort();
    let mut want = ids;
    want.sort();
    assert_eq!(
        got, want,
        "every report of the run without NATS, exactly once"
    );
}
