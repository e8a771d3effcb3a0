//! Running the binary, reading what it prints while it runs, and reporting
//! through a real tidings reporter.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tidings::nats::NatsConfig;
use tidings::{Report, ReportId, Reporter, ShutdownSummary};
use tidings_conformance::wait_until;

pub use crate::support::tidings;

/// How long a command that ends by itself may take in these tests.
const RUN_WITHIN: Duration = Duration::from_secs(120);

/// Runs `tidings args...` to the end (killed if it takes longer than
/// [`RUN_WITHIN`]).
pub fn run(args: &[&str]) -> Output {
    let mut cmd = tidings();
    cmd.args(args);
    run_cmd(cmd)
}

/// Runs `cmd` to the end (killed if it takes longer than [`RUN_WITHIN`]).
pub fn run_cmd(cmd: Command) -> Output {
    let (status, lines, stderr) = Running::start_cmd(cmd).wait_exit(RUN_WITHIN);
    let mut stdout = lines.join("\n");
    if !stdout.is_empty() {
        stdout.push('\n');
    }
    Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

/// stdout and stderr as text, for assertion messages.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `tidings` process whose output is collected as it comes;
/// killed (and reaped) when dropped.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts `tidings args...`.
    pub fn start(args: &[&str]) -> Running {
        let mut cmd = tidings();
        cmd.args(args);
        Running::start_cmd(cmd)
    }

    /// Starts `cmd` (made with [`tidings`]).
    pub fn start_cmd(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tidings");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let lines = stdout.clone();
        let text = stderr.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    match line {
                        Ok(l) => lines.lock().unwrap().push(l),
                        Err(_) => return,
                    }
                }
            }),
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut err = err;
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`; panics with the output if it
    /// does not within `within`.
    pub fn wait_for_stderr(&mut self, needle: &str, within: Duration) {
        let found = wait_until(within, || {
            self.stderr().contains(needle) || self.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            found && self.stderr().contains(needle),
            "no {needle:?} on stderr within {within:?}:\n{}\nstdout:\n{}",
            self.stderr(),
            self.lines().join("\n")
        );
    }

    /// Waits until stdout has at least `n` lines.
    pub fn wait_for_lines(&self, n: usize, within: Duration) {
        let ok = wait_until(within, || self.stdout.lock().unwrap().len() >= n);
        assert!(
            ok,
            "only {} of {n} lines within {within:?}:\n{}\nstderr:\n{}",
            self.lines().len(),
            self.lines().join("\n"),
            self.stderr()
        );
    }

    /// Waits for the process to exit by itself; its status and all output.
    pub fn wait_exit(mut self, within: Duration) -> (ExitStatus, Vec<String>, String) {
        let mut status = None;
        let exited = wait_until(within, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        assert!(
            exited,
            "tidings did not exit within {within:?}:\nstdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.stderr()
        );
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status.unwrap(), self.lines(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reports `reports` through a tidings reporter (blocking adapter) with a
/// NATS sink, one batch at a time so that they arrive in order; returns
/// their ids. Ends by checking the summary: every report
/// delivered, `accepted == delivered + spilled + lost + in_flight`, nothing
/// lost.
pub fn report_all(config: NatsConfig, reports: &[Report]) -> Vec<ReportId> {
    let sink = tidings::blocking::NatsSink::connect(config).expect("NATS sink");
    let (reporter, guard) = tidings::blocking::start(
        Reporter::builder()
            .folding(tidings::Folding::off())
            .sink(sink)
            .capacity(reports.len() + 1)
            .max_concurrent_batches(1),
    )
    .expect("start reporter");
    let ids = reports
        .iter()
        .map(|r| reporter.report(r.clone()).expect("accepted").id())
        .collect();
    drop(reporter);
    let summary = guard.shutdown_blocking();
    assert_delivered(&summary, reports.len() as u64);
    ids
}

/// The reporter's promise, checked: all delivered, balanced, none lost.
pub fn assert_delivered(summary: &ShutdownSummary, n: u64) {
    let s = &summary.stats;
    assert_eq!(s.delivered, n, "{summary}");
    assert_eq!(
        s.accepted,
        s.delivered + s.spilled + s.lost + s.in_flight,
        "{summary}"
    );
    assert_eq!(s.lost, 0, "{summary}");
    assert_eq!(s.in_flight, 0, "{summary}");
}

/// Core NATS settings for `url`, subject `subject`.
pub fn core(url: &str, subject: &str) -> NatsConfig {
    NatsConfig::new(url, subject)
}

/// JetStream settings for `url`, subject `subject`, creating `stream`.
pub fn jetstream(url: &str, subject: &str, stream: &str) -> NatsConfig {
    NatsConfig::new(url, subject)
        .jetstream()
        .ensure_stream(stream)
}

/// Parses `--json` output lines.
pub fn parse_lines(lines: &[String]) -> Vec<Report> {
    lines
        .iter()
        .map(|l| Report::from_json(l.as_bytes()).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The numbers of the summary line `accepted A  delivered D  spilled S
/// lost L  in flight F` in `stdout`.
pub fn summary_counts(stdout: &str) -> [u64; 5] {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("accepted "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> u64 {
        let i = words
            .iter()
            .position(|w| *w == key)
            .unwrap_or_else(|| panic!("no {key} in {line}"));
        let at = if key == "in" { i + 2 } else { i + 1 };
        words[at].parse().unwrap()
    };
    [
        after("accepted"),
        after("delivered"),
        after("spilled"),
        after("lost"),
        after("in"),
    ]
}
