//! The `tidings` binary: the README's first command works on a fresh
//! machine, and bad input is a clear error, not a panic.

use std::process::Command;

fn tidings() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
}

#[test]
fn demo_runs_on_the_embedded_default_and_verifies_every_report() {
    let dir = tempfile::tempdir().unwrap();
    for runtime in ["blocking", "tokio", "smol"] {
        let out = tidings()
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
            .arg(dir.path().join(runtime))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{runtime}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("accepted 120"), "{stdout}");
        assert!(stdout.contains("lost 0  in flight 0"), "{stdout}");
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
    ] {
        let cwd = tempfile::tempdir().unwrap();
        let out = tidings()
            .args(args)
            .current_dir(cwd.path())
            .output()
            .unwrap();
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
    let out = tidings()
        .args(["spool", "inspect"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 live"), "{stdout}");
}
