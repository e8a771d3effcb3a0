//! `tidings tail`: exactly what was reported, filtered right, from a
//! subject or a stream, across a server restart.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tidings::{Report, ReportId, Severity};
use tidings_conformance::nats_server::NatsServer;

use crate::common::{core, jetstream, parse_lines, report_all, Running};

const WAIT: Duration = Duration::from_secs(60);

fn numbered(n: usize, tag: &str) -> Vec<Report> {
    (0..n)
        .map(|i| {
            Report::error("job_failed", format!("{tag} {i}"))
                .with_service("worker")
                .with_context("i", i)
        })
        .collect()
}

#[test]
fn tail_of_a_subject_shows_exactly_the_reports_sent_and_json_round_trips() {
    let server = NatsServer::start();
    let url = server.url();
    let mut tail = Running::start(&["tail", "-s", &url, "--json", "--count", "25"]);
    tail.wait_for_stderr("following subject tidings.>", WAIT);
    let reports = numbered(25, "core");
    report_all(core(&url, "tidings.reports"), &reports);
    let (status, lines, stderr) = tail.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    let shown = parse_lines(&lines);
    // Unchanged, in order: the payload is the report as reported.
    assert_eq!(shown, reports);
}

#[test]
fn tail_of_a_stream_sees_what_the_stream_holds_and_filters_select_the_right_subset() {
    let server = NatsServer::start();
    let url = server.url();
    let mut reports = Vec::new();
    for (i, (service, severity, kind)) in [
        ("billing", Severity::Error, "db_timeout"),
        ("billing", Severity::Warning, "db_slow"),
        ("billing", Severity::Info, "db_connected"),
        ("billing", Severity::Critical, "cache_down"),
        ("search", Severity::Critical, "db_down"),
        ("billing", Severity::Critical, "db_down"),
        ("billing", Severity::Debug, "db_trace"),
    ]
    .into_iter()
    .cycle()
    .take(35)
    .enumerate()
    {
        reports.push(Report::new(severity, kind, format!("report {i}")).with_service(service));
    }
    report_all(jetstream(&url, "tidings.reports", "TIDINGS"), &reports);

    // Everything, in stream order.
    let all = Running::start(&[
        "tail", "-s", &url, "--stream", "TIDINGS", "--all", "--json", "--count", "35",
    ]);
    let (status, lines, stderr) = all.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(parse_lines(&lines), reports);

    // billing, at least warning, kind db_*: the error, the warning and the
    // critical db_down of each cycle of seven.
    let wanted: Vec<ReportId> = reports
        .iter()
        .filter(|r| {
            r.source.service == "billing"
                && r.severity >= Severity::Warning
                && r.kind.starts_with("db_")
        })
        .map(|r| r.id)
        .collect();
    assert_eq!(wanted.len(), 15);
    let filtered = Running::start(&[
        "tail",
        "-s",
        &url,
        "--stream",
        "TIDINGS",
        "--all",
        "--json",
        "--service",
        "billing",
        "--severity",
        "warning",
        "--kind",
        "db_*",
        "--count",
        "15",
    ]);
    let (status, lines, stderr) = filtered.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    let got: Vec<ReportId> = parse_lines(&lines).iter().map(|r| r.id).collect();
    assert_eq!(got, wanted);

    // Pretty lines: one per report, with severity, service, kind, message.
    let pretty = Running::start(&[
        "tail",
        "-s",
        &url,
        "--stream",
        "TIDINGS",
        "--all",
        "--count",
        "2",
        "--kind",
        "cache_*",
        "--service",
        "billing",
        "-v",
    ]);
    let (status, lines, stderr) = pretty.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    let heads: Vec<&String> = lines.iter().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(heads.len(), 2, "{lines:#?}");
    assert!(
        heads[0].contains("CRITICAL billing cache_down: report 3"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("id ")),
        "-v adds details: {lines:#?}"
    );
}

#[test]
fn since_and_last_start_at_the_right_message_and_then_follow() {
    let server = NatsServer::start();
    let url = server.url();
    let config = jetstream(&url, "tidings.reports", "TIDINGS");
    let before = numbered(6, "before");
    report_all(config.clone(), &before);
    // Every report of `before` was acknowledged (stored) before this.
    let cut = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let after = numbered(4, "after");
    report_all(config.clone(), &after);

    let since = Running::start(&[
        "tail", "-s", &url, "--stream", "TIDINGS", "--since", &cut, "--json", "--count", "4",
    ]);
    let (status, lines, stderr) = since.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(parse_lines(&lines), after);

    let hour = Running::start(&[
        "tail", "-s", &url, "--stream", "TIDINGS", "--since", "1h", "--json", "--count", "10",
    ]);
    let (status, lines, stderr) = hour.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    let both: Vec<Report> = before.iter().chain(&after).cloned().collect();
    assert_eq!(parse_lines(&lines), both);

    // The last 3, then what comes next: nothing older in between.
    let mut last = Running::start(&[
        "tail", "-s", &url, "--stream", "TIDINGS", "--last", "3", "--json", "--count", "5",
    ]);
    last.wait_for_stderr("following stream TIDINGS", WAIT);
    last.wait_for_lines(3, WAIT);
    let next = numbered(2, "next");
    report_all(config, &next);
    let (status, lines, stderr) = last.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    let expected: Vec<Report> = after[1..].iter().chain(&next).cloned().collect();
    assert_eq!(parse_lines(&lines), expected);
}

#[test]
fn a_server_restart_mid_follow_loses_and_repeats_nothing() {
    let mut server = NatsServer::start();
    let url = server.url();
    let config = jetstream(&url, "tidings.reports", "TIDINGS");
    // The stream exists before tail starts (created by the first report).
    let first = numbered(20, "first");
    report_all(config.clone(), &first);

    let mut tail = Running::start(&[
        "tail", "-s", &url, "--stream", "TIDINGS", "--all", "--json", "--count", "60",
    ]);
    tail.wait_for_stderr("following stream TIDINGS", WAIT);
    let second = numbered(20, "second");
    report_all(config.clone(), &second);
    tail.wait_for_lines(40, WAIT);

    server.kill();
    server.restart();
    let third = numbered(20, "third");
    report_all(config, &third);

    let (status, lines, stderr) = tail.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{stderr}");
    let shown = parse_lines(&lines);
    let ids: Vec<ReportId> = shown.iter().map(|r| r.id).collect();
    let unique: HashSet<ReportId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "repeated: {stderr}");
    let expected: HashSet<ReportId> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|r| r.id)
        .collect();
    assert_eq!(unique, expected, "{stderr}");
    // What came before the restart, in order.
    let before: Vec<Report> = first.iter().chain(&second).cloned().collect();
    assert_eq!(shown[..40], before[..]);
}

#[test]
fn messages_that_are_not_reports_are_shown_as_such() {
    let server = NatsServer::start();
    let url = server.url();
    let mut tail = Running::start(&["tail", "-s", &url, "--count", "2"]);
    tail.wait_for_stderr("following subject", WAIT);

    let mut newer =
        serde_json::to_value(Report::warning("future", "from a newer tidings")).expect("JSON");
    newer["schema"] = serde_json::json!(tidings::SCHEMA_VERSION + 1);
    newer["new_field"] = serde_json::json!({"x": 1});
    let valid = Report::error("db_down", "after the odd ones");
    let payloads: Vec<Vec<u8>> = vec![
        b"plain text, not JSON".to_vec(),
        br#"{"hello":"world"}"#.to_vec(),
        serde_json::to_vec(&newer).unwrap(),
        valid.to_json(),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        for p in payloads {
            client
                .publish("tidings.raw", p.into())
                .await
                .expect("publish");
        }
        client.flush().await.expect("flush");
    });
    let (status, lines, stderr) = tail.wait_exit(WAIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].starts_with("-- not a report on tidings.raw (not valid JSON"));
    assert!(lines[1].starts_with("-- not a report on tidings.raw (JSON, but not a report"));
    assert!(
        lines[2].contains("WARNING") && lines[2].contains("from a newer tidings"),
        "{lines:#?}"
    );
    assert!(lines[2].contains("[schema 2: newer"), "{lines:#?}");
    assert!(
        lines[3].contains("db_down: after the odd ones"),
        "{lines:#?}"
    );
}
