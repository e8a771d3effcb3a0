//! `tidings check`: passes on a good setup, and fails with the right line
//! for each mistake.

use tidings_conformance::nats_probe::create_stream;
use tidings_conformance::nats_server::{free_port, NatsServer, ServerOptions};

use crate::common::{run, run_cmd, text, tidings};

/// The ✗ lines of a check's output.
fn failures(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("✗ ")).collect()
}

/// Runs `check` and returns (exit code, stdout), asserting that no line
/// mentions `secret`.
fn check(args: &[&str], secret: Option<&str>) -> (i32, String) {
    let out = run(&[&["check"][..], args].concat());
    let (stdout, stderr) = text(&out);
    if let Some(secret) = secret {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "secret shown:\n{stdout}{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn check_passes_on_a_good_setup() {
    let server = NatsServer::start();
    let url = server.url();
    create_stream(&url, "TIDINGS", "tidings.reports", 1);

    let (code, stdout) = check(&["-s", &url, "--stream", "TIDINGS"], None);
    assert_eq!(code, 0, "{stdout}");
    assert!(failures(&stdout).is_empty(), "{stdout}");
    for name in [
        "reachable",
        "authenticated",
        "TLS",
        "server",
        "JetStream",
        "stream",
        "publish",
        "deduplication",
        "payload",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("✓ {name}: "))),
            "no ✓ {name}:\n{stdout}"
        );
    }
    assert!(stdout.contains("recognised as a duplicate"), "{stdout}");
    assert!(stdout.contains("all 9 checks passed"), "{stdout}");

    // Core NATS only, the URL from the environment.
    let mut cmd = tidings();
    cmd.arg("check").env("NATS_URL", &url);
    let out = run_cmd(cmd);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("✓ publish: "), "{stdout}");
}

#[test]
fn check_without_a_server_fails_at_reachable() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let (code, stdout) = check(&["-s", &url, "--connect-timeout", "2s"], None);
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("✗ reachable: cannot connect"),
        "{stdout}"
    );
    assert!(failed[0].contains("fix: start nats-server"), "{stdout}");
}

#[test]
fn check_with_wrong_credentials_fails_at_authenticated_without_showing_them() {
    let server = NatsServer::start_with(ServerOptions {
        user_password: Some(("alice".into(), "right-pass".into())),
        ..Default::default()
    });
    let url = server.url();
    let (code, stdout) = check(
        &["-s", &url, "--user", "alice", "--password", "wr0ng-pass"],
        Some("wr0ng-pass"),
    );
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].starts_with("✗ authenticated: "), "{stdout}");
    assert!(failed[0].contains("--user and --password"), "{stdout}");
    assert!(stdout.contains("✓ reachable: "), "{stdout}");

    // No credentials at all: the same line.
    let (code, stdout) = check(&["-s", &url], None);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        failures(&stdout)[0].starts_with("✗ authenticated: "),
        "{stdout}"
    );

    // The right ones, from the environment: passes.
    let mut cmd = tidings();
    cmd.args(["check", "-s", &url])
        .env("NATS_USER", "alice")
        .env("NATS_PASSWORD", "right-pass");
    let out = run_cmd(cmd);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("right-pass") && !stderr.contains("right-pass"));
    assert!(stdout.contains("✓ authenticated: the server accepted user \"alice\""));
}

#[test]
fn check_without_jetstream_fails_at_jetstream() {
    let server = NatsServer::start_with(ServerOptions {
        no_jetstream: true,
        ..Default::default()
    });
    let (code, stdout) = check(&["-s", &server.url(), "--stream", "TIDINGS"], None);
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("✗ JetStream: not enabled"),
        "{stdout}"
    );
    assert!(failed[0].contains("-js"), "{stdout}");
    // Without --stream, core NATS is all that is asked for: passes.
    let (code, stdout) = check(&["-s", &server.url()], None);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("- JetStream: not enabled"), "{stdout}");
}

#[test]
fn check_names_the_missing_stream_and_the_ones_that_exist() {
    let server = NatsServer::start();
    let url = server.url();
    create_stream(&url, "EVENTS", "events", 1);
    let (code, stdout) = check(&["-s", &url, "--stream", "TIDINGS"], None);
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("✗ stream: no stream named TIDINGS"),
        "{stdout}"
    );
    assert!(failed[0].contains("EVENTS (events, events.>)"), "{stdout}");
    assert!(failed[0].contains("nats stream add TIDINGS"), "{stdout}");
}

#[test]
fn check_says_when_the_stream_does_not_capture_the_subject() {
    let server = NatsServer::start();
    let url = server.url();
    create_stream(&url, "TIDINGS", "other.reports", 1);
    let (code, stdout) = check(&["-s", &url, "--stream", "TIDINGS"], None);
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("✗ stream: TIDINGS does not capture tidings.reports"),
        "{stdout}"
    );
    assert!(failed[0].contains("nats stream edit TIDINGS"), "{stdout}");
    // The subject it does capture passes.
    let (code, stdout) = check(
        &[
            "-s",
            &url,
            "--stream",
            "TIDINGS",
            "--subject",
            "other.reports",
        ],
        None,
    );
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn check_fails_when_a_typical_report_exceeds_max_payload() {
    let server = NatsServer::start_with(ServerOptions {
        max_payload: Some(512),
        ..Default::default()
    });
    let (code, stdout) = check(&["-s", &server.url()], None);
    assert_eq!(code, 1, "{stdout}");
    let failed = failures(&stdout);
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].starts_with("✗ payload: a typical report"),
        "{stdout}"
    );
    assert!(failed[0].contains("raise max_payload"), "{stdout}");
    assert!(stdout.contains("max_payload 512 bytes"), "{stdout}");
}
