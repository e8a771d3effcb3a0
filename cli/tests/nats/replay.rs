//! `tidings replay FILE.jsonl`: every valid report ends in the stream
//! exactly once; malformed lines are skipped; --dry-run sends nothing.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Output;

use tidings::{Report, ReportId};
use tidings_conformance::nats_probe::{create_stream, stream_arrivals, stream_len};
use tidings_conformance::nats_server::{free_port, NatsServer, ServerOptions};

use crate::common::{jetstream, report_all, run, summary_counts, text};

/// Writes `reports` as a fallback file, with a malformed line after every
/// `malformed_every`-th report and a blank line; returns the file's path.
fn write_file(dir: &Path, reports: &[Report], malformed_every: usize) -> std::path::PathBuf {
    let path = dir.join("spill.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (i, r) in reports.iter().enumerate() {
        f.write_all(&r.to_json()).unwrap();
        f.write_all(b"\n").unwrap();
        if (i + 1) % malformed_every == 0 {
            // A line torn by a crash, and one that is JSON but no report.
            if i % 2 == 0 {
                f.write_all(br#"{"schema":1,"id":"0192"#).unwrap();
            } else {
                f.write_all(br#"{"not":"a report"}"#).unwrap();
            }
            f.write_all(b"\n").unwrap();
        }
    }
    f.write_all(b"\n").unwrap();
    f.flush().unwrap();
    path
}

/// `tidings replay FILE -s URL --stream STREAM EXTRA…`, and its stdout and
/// stderr.
fn replay(file: &Path, url: &str, stream: &str, extra: &[&str]) -> (Output, String, String) {
    let file = file.to_str().unwrap();
    let mut args = vec!["replay", file, "-s", url, "--stream", stream];
    args.extend_from_slice(extra);
    let out = run(&args);
    let (stdout, stderr) = text(&out);
    (out, stdout, stderr)
}

fn reports(n: usize) -> Vec<Report> {
    (0..n)
        .map(|i| {
            Report::error("payment_declined", format!("order {i}"))
                .with_service("billing")
                .with_context("order", i)
        })
        .collect()
}

#[test]
fn replay_of_10k_reports_puts_each_valid_one_in_the_stream_exactly_once() {
    let server = NatsServer::start();
    let url = server.url();
    let all = reports(10_000);
    // The first 1000 already reached the stream (as if the program
    // delivered them before it spilled the rest, or a replay was cut short).
    report_all(jetstream(&url, "tidings.reports", "TIDINGS"), &all[..1000]);
    assert_eq!(stream_len(&url, "TIDINGS"), 1000);

    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &all, 1500);
    let (out, stdout, stderr) = replay(&file, &url, "TIDINGS", &[]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("10007 lines: 10000 reports, 6 malformed lines skipped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("outcome: 9000 stored, 1000 duplicates the stream already had, 0 failed"),
        "{stdout}"
    );
    let [accepted, delivered, spilled, lost, in_flight] = summary_counts(&stdout);
    assert_eq!(accepted, delivered + spilled + lost + in_flight, "{stdout}");
    assert_eq!(
        (accepted, delivered, lost, in_flight),
        (10_000, 10_000, 0, 0)
    );

    let arrivals = stream_arrivals(&url, "TIDINGS");
    assert_eq!(arrivals.unparsable, 0);
    assert!(arrivals.duplicates().is_empty());
    let stored: HashSet<ReportId> = arrivals.ids.iter().copied().collect();
    let expected: HashSet<ReportId> = all.iter().map(|r| r.id).collect();
    assert_eq!(arrivals.ids.len(), 10_000);
    assert_eq!(stored, expected);

    // Nothing failed: no failed file was left next to the file.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["spill.jsonl".to_owned()]);

    // Run again: every report is recognised as a duplicate, none stored twice.
    let again = run(&["replay", file.to_str().unwrap(), "-s", &url, "--jetstream"]);
    let (stdout, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outcome: 0 stored, 10000 duplicates"),
        "{stdout}"
    );
    let [accepted, delivered, spilled, lost, in_flight] = summary_counts(&stdout);
    assert_eq!(accepted, delivered + spilled + lost + in_flight, "{stdout}");
    assert_eq!(lost, 0);
    assert_eq!(stream_len(&url, "TIDINGS"), 10_000);
}

#[test]
fn dry_run_reads_and_counts_but_sends_nothing() {
    let server = NatsServer::start();
    let url = server.url();
    create_stream(&url, "TIDINGS", "tidings.reports", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &reports(50), 10);
    let (out, stdout, stderr) = replay(&file, &url, "TIDINGS", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing sent"), "{stdout}");
    assert!(
        stdout
            .contains("56 lines: 50 reports, 5 malformed lines skipped (line 11, 22, 33, 44, 55)"),
        "{stdout}"
    );
    assert_eq!(stream_len(&url, "TIDINGS"), 0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn replay_without_a_usable_server_or_stream_sends_nothing_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &reports(5), 100);
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "-s",
        &nowhere,
        "--connect-timeout",
        "2s",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot connect to"), "{stderr}");

    let server = NatsServer::start();
    let (out, stdout, stderr) = replay(&file, &server.url(), "MISSING", &[]);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot use stream MISSING"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn reports_that_cannot_be_sent_go_to_the_failed_file_and_none_is_lost() {
    // A 512-byte max_payload: a report whose kind alone is larger cannot be
    // cut to fit (kind is kept whole), so the stream refuses it for good.
    let server = NatsServer::start_with(ServerOptions {
        max_payload: Some(512),
        ..Default::default()
    });
    let url = server.url();
    create_stream(&url, "TIDINGS", "tidings.reports", 1);
    let mut all = reports(100);
    let oversized: Vec<Report> = (0..5)
        .map(|i| Report::error("k".repeat(1000), format!("too large {i}")))
        .collect();
    for (i, r) in oversized.iter().enumerate() {
        all.insert(i * 20, r.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), &all, 1000);
    let (out, stdout, stderr) = replay(&file, &url, "TIDINGS", &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outcome: 100 stored, 0 duplicates the stream already had, 5 failed"),
        "{stdout}"
    );
    let [accepted, delivered, spilled, lost, in_flight] = summary_counts(&stdout);
    assert_eq!(accepted, delivered + spilled + lost + in_flight, "{stdout}");
    assert_eq!((accepted, delivered, spilled, lost), (105, 100, 5, 0));

    // The failed file holds exactly the five, unchanged.
    let failed: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("spill.failed-"))
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        stdout.contains(&failed[0].display().to_string()),
        "{stdout}"
    );
    let (back, bad) = tidings::JsonLinesFile::read(&failed[0]).unwrap();
    assert_eq!(bad, 0);
    let back: HashSet<ReportId> = back.iter().map(|r| r.id).collect();
    let want: HashSet<ReportId> = oversized.iter().map(|r| r.id).collect();
    assert_eq!(back, want);
    assert_eq!(stream_len(&url, "TIDINGS"), 100);
}
