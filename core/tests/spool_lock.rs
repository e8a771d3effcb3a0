//! The spool's directory lock across processes: a second process is
//! refused, and the lock of a process that was killed is taken over.
//!
//! In a test binary of its own on purpose: spawning a child forks this
//! process, and between fork and exec the child holds a copy of every open
//! file description, spool locks included. Other spool tests running on
//! other threads of the same binary could then briefly see their own,
//! just-closed spool as locked.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use tidings_core::spool::{Spool, SpoolConfig, SpoolError, SyncPolicy};

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir)
    }
}

const CHILD_ENV: &str = "TIDINGS_SPOOL_LOCK_CHILD_DIR";

/// Not a test on its own: the child process of the next test. It opens the
/// spool named by the environment, says so, and holds it until killed.
#[test]
fn lock_holding_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (_spool, _) = Spool::open(config(Path::new(&dir))).unwrap();
    let mut out = std::io::stdout();
    out.write_all(b"\nlocked\n").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn another_process_is_refused_and_a_killed_owners_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holding_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "locked" => break,
            Some(Ok(_)) => continue,
            other => panic!("child ended before locking: {other:?}"),
        }
    }
    let err = Spool::open(config(dir.path())).unwrap_err();
    assert!(
        matches!(err, SpoolError::Locked { pid: Some(pid), .. } if pid == child.id()),
        "{err:?}"
    );
    assert_eq!(
        Spool::inspect(dir.path()).unwrap().lock_pid,
        Some(child.id())
    );

    // A crash (SIGKILL on Unix) leaves the lock file naming a dead process;
    // the OS has released the lock, so the next open takes it over.
    child.kill().unwrap();
    child.wait().unwrap();
    let (_spool, _) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(
        Spool::inspect(dir.path()).unwrap().lock_pid,
        Some(std::process::id())
    );
}
