//! The `tidings` binary: the README's first command works on a fresh
//! machine, bad input is a clear error, not a panic, and every command
//! explains itself.

mod support;

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::tidings;

fn run(args: &[&str]) -> Output {
    output(tidings().args(args))
}

/// Kills and reaps the child when dropped (a test that fails while it runs
/// leaves nothing behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to the end, within two minutes (else it is killed and the
/// test fails), collecting its output.
fn output(cmd: &mut Command) -> Output {
    let mut child = KillOnDrop(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tidings"),
    );
    let read_all = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read_all(Box::new(child.0.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.0.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tidings did not exit within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

#[test]
fn demo_runs_on_the_embedded_default_and_verifies_every_report() {
    let dir = tempfile::tempdir().unwrap();
    for runtime in ["blocking", "tokio", "smol"] {
        let out = output(
            tidings()
                .args([
                    "demo",
                    "--threads",
                    "3",
                    "--reports",
                    "40",
                    "--runtime",
                    runtime,
                    "--dir",
                ])
                .arg(dir.path().join(runtime)),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{runtime}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 120 receipts, and the aggregates of the repeats the demo folds.
        assert!(stdout.contains("  accepted 12"), "{stdout}");
        assert!(stdout.contains("  lost 0  folded "), "{stdout}");
        assert!(stdout.contains("  in flight 0\n"), "{stdout}");
        assert!(
            stdout.contains("verified: all 120 accepted reports found exactly once"),
            "{stdout}"
        );
    }
}

#[test]
fn bad_arguments_are_errors_with_exit_code_2() {
    for args in [
        &["demo", "--threads", "0"][..],
        &["demo", "--runtime", "async-std"],
        &["demo", "--nats", "http://127.0.0.1:4222"],
        &["demo", "--jetstream"],
        &["demo", "--deadline", "-1"],
        &["spool", "inspect", "/nonexistent/tidings-spool"],
        &["spool", "replay", "/tmp"],
        &["frobnicate"],
        &["spool", "replay", "/tmp", "--stall-timeout", "0"],
        &["tail", "--since", "10m"],
        &["tail", "--stream", "S", "--last", "3", "--all"],
        &["tail", "--severity", "fatal"],
        &["tail", "--subject", "a..b"],
        &["tail", "--server", "http://127.0.0.1:4222"],
        &["check", "--subject", "tidings.*"],
        &["check", "--password", "only-a-password"],
        &["check", "--user", "u", "--password", "p", "--token", "t"],
        &["check", "--stream", "bad.name"],
        &["replay", "/nonexistent/spill.jsonl"],
        &["replay", "/nonexistent/spill.jsonl", "--dry-run"],
        &["completions", "tcsh"],
        &["tail", "--connect-timeout", "soon"],
    ] {
        let cwd = tempfile::tempdir().unwrap();
        let out = output(tidings().args(args).current_dir(cwd.path()));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("tidings: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "{args:?} wrote files before failing: {left:?}"
        );
    }
}

#[test]
fn spool_inspect_reads_a_spool_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) =
            tidings::spool::Spool::open(tidings::spool::SpoolConfig::new(dir.path())).unwrap();
        let r = tidings::Report::error("k", "m");
        spool.append(&[&r]).unwrap();
    }
    let out = output(tidings().args(["spool", "inspect"]).arg(dir.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 live"), "{stdout}");
}

#[test]
fn spool_inspect_says_when_a_directory_is_not_a_spool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    for args in [
        &["inspect"][..],
        &["replay", "--nats", "nats://127.0.0.1:1"],
    ] {
        let sub = args[0];
        let out = output(tidings().arg("spool").args(args).arg(dir.path()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {stderr}");
        assert!(
            stderr.contains("is not a spool directory"),
            "{sub}: {stderr}"
        );
    }
    // Nothing was created in it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);
}

#[test]
fn version_help_and_completions_answer_with_exit_code_0() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tidings {}", env!("CARGO_PKG_VERSION"))
    );

    let top = run(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success());
    assert!(text.contains("Exit codes:"), "{text}");

    for cmd in [
        &["tail"][..],
        &["check"],
        &["replay"],
        &["spool"],
        &["spool", "inspect"],
        &["spool", "replay"],
        &["demo"],
        &["completions"],
    ] {
        let usage = format!("Usage: tidings {}", cmd.join(" "));
        for style in ["--help", "-h", "help"] {
            let args: Vec<&str> = if style == "help" {
                std::iter::once("help").chain(cmd.iter().copied()).collect()
            } else {
                cmd.iter().copied().chain(std::iter::once(style)).collect()
            };
            let out = run(&args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(&usage), "{args:?}: {stdout}");
        }
    }
    // --help after a positional argument too (it used to be "unknown option").
    let out = run(&["spool", "replay", "/tmp", "--help"]);
    assert!(out.status.success());

    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(
            script.contains("tidings") && script.contains("--stream"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn secrets_from_the_environment_are_not_shown_in_help_or_errors() {
    let out = output(
        tidings()
            .args(["check", "--help"])
            .env("NATS_PASSWORD", "hunter2-env")
            .env("NATS_TOKEN", "t0ken-env")
            .env("NATS_URL", "nats://alice:pw-in-url@127.0.0.1:1"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for secret in ["hunter2-env", "t0ken-env", "pw-in-url"] {
        assert!(!text.contains(secret), "{secret} in --help:\n{text}");
    }
    // Nothing listens on port 1: the error names the server, not the secrets.
    let out = output(
        tidings()
            .args(["tail", "--connect-timeout", "1s"])
            .env("NATS_URL", "nats://alice:pw-in-url@127.0.0.1:1"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("alice:***@127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("pw-in-url"), "{stderr}");
}
