//! Peak memory while reports arrive during a NATS outage.
//!
//! Each configuration runs in a child process of its own (this binary,
//! invoked with `--child-rss CONFIG`), so `VmHWM` from `/proc/self/status`
//! is that configuration's peak and nothing else's. The parent starts a
//! nats-server, the child connects, says `connected`, the parent SIGKILLs
//! the server and says `go`, and the child reports `n` reports as fast as
//! one thread can, shuts down (5 s deadline) and prints its peak RSS and
//! its counters.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_bench::{peak_rss_kib, report, rss_kib};
use tidings_core::nats::NatsConfig;
use tidings_core::spool::SpoolConfig;
use tidings_core::{JsonLinesFile, Reporter, ReporterBuilder, SpoolMode};

use crate::server::Server;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// Runtime and a connected client, no reports: the floor.
    Idle,
    /// The naive pattern: `tokio::spawn(client.publish(..))` per report.
    NaiveSpawn,
    /// tidings-tokio, JetStream sink, JSON-lines file fallback.
    TidingsJsonLines,
    /// tidings-tokio, JetStream sink, `ReporterBuilder::spool` in
    /// `SpoolMode::OnSpill`.
    TidingsSpoolOnSpill,
    /// tidings-tokio, JetStream sink, `ReporterBuilder::spool` in
    /// `SpoolMode::WriteAhead`.
    TidingsSpoolWriteAhead,
}

impl Config {
    pub const ALL: [Config; 5] = [
        Config::Idle,
        Config::NaiveSpawn,
        Config::TidingsJsonLines,
        Config::TidingsSpoolOnSpill,
        Config::TidingsSpoolWriteAhead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::Idle => "idle",
            Config::NaiveSpawn => "naive-spawn",
            Config::TidingsJsonLines => "tidings-jsonl",
            Config::TidingsSpoolOnSpill => "tidings-spool-on-spill",
            Config::TidingsSpoolWriteAhead => "tidings-spool-write-ahead",
        }
    }

    pub fn from_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn label(self) -> &'static str {
        match self {
            Config::Idle => "floor: tokio runtime + connected async-nats client, no reports",
            Config::NaiveSpawn => "naive: tokio::spawn(client.publish(..)) per report",
            Config::TidingsJsonLines => "tidings-tokio, JetStream sink, fallback JsonLinesFile",
            Config::TidingsSpoolOnSpill => {
                "tidings-tokio, JetStream sink, spool in SpoolMode::OnSpill (sync: Interval 1 s)"
            }
            Config::TidingsSpoolWriteAhead => {
                "tidings-tokio, JetStream sink, spool in SpoolMode::WriteAhead (sync: Interval 1 s)"
            }
        }
    }
}

/// What one child process reported.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub peak_kib: u64,
    pub secs: f64,
    pub accepted: u64,
    pub delivered: u64,
    pub spilled: u64,
    pub lost: u64,
    pub in_flight: u64,
}

/// Runs `config` in a child process against a server killed after the
/// child connected.
pub fn measure(config: Config, n: usize) -> Sample {
    let mut server = Server::start();
    let mut child = ChildRun::start(config.name(), |c| {
        c.args([
            "--child-rss",
            config.name(),
            "--url",
            &server.url(),
            "--n",
            &n.to_string(),
        ])
    });
    server.nats.kill();
    child.go();
    let result = child.line_after("result ");
    child.wait();
    parse(&result)
}

/// A child run of this binary (`--child-rss`, `--child-storm`) that has
/// said `connected` (see [`connected_wait_go`]): the parent tells it `go`
/// and reads the lines it prints.
pub(crate) struct ChildRun {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ChildRun {
    /// Runs this binary with the arguments `args` adds, its stdin and
    /// stdout piped, and waits until it says `connected`.
    pub(crate) fn start(name: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> ChildRun {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = args(&mut Command::new(exe))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let stdin = child.stdin.take().expect("child stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(first, "connected", "child {name}: {first:?}");
        ChildRun {
            name: name.to_owned(),
            child,
            stdin,
            lines,
        }
    }

    /// Tells the child to go.
    pub(crate) fn go(&mut self) {
        writeln!(self.stdin, "go").expect("tell the child to go");
    }

    /// The rest of the next line the child prints that starts with
    /// `prefix`.
    pub(crate) fn line_after(&mut self, prefix: &str) -> String {
        let name = &self.name;
        self.lines
            .by_ref()
            .find_map(|l| {
                l.ok()
                    .and_then(|l| l.strip_prefix(prefix).map(str::to_owned))
            })
            .unwrap_or_else(|| panic!("child {name} printed no {prefix:?} line"))
    }

    /// Waits for the child to exit; panics unless it succeeded.
    pub(crate) fn wait(mut self) {
        let status = self.child.wait().expect("child exit");
        assert!(status.success(), "child {} failed: {status}", self.name);
    }
}

/// The child's side of the handshake: says `connected`, waits for `go`.
pub(crate) fn connected_wait_go() {
    println!("connected");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("read go");
}

fn parse(line: &str) -> Sample {
    let kv: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect();
    let u = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Sample {
        peak_kib: u("peak_kib"),
        secs: kv.get("secs").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        accepted: u("accepted"),
        delivered: u("delivered"),
        spilled: u("spilled"),
        lost: u("lost"),
        in_flight: u("in_flight"),
    }
}

/// The child's side: connect, say so, wait for the outage, report `n`.
pub fn child(config: Config, url: &str, n: usize) {
    let rt = crate::e2e::tokio_rt();
    let dir = tempfile::Builder::new()
        .prefix("tidings-bench-rss-")
        .tempdir()
        .expect("temp dir");
    let template = report(0);

    let sample = match config {
        Config::Idle | Config::NaiveSpawn => {
            let client = rt.block_on(async_nats::connect(url)).expect("connect");
            connected_wait_go();
            wait_disconnected(|| {
                client.connection_state() == async_nats::connection::State::Connected
            });
            let t = Instant::now();
            if config == Config::NaiveSpawn {
                let _entered = rt.enter();
                for _ in 0..n {
                    let mut r = template.clone();
                    r.id = tidings_core::ReportId::new();
                    let client = client.clone();
                    tokio::spawn(async move {
                        let _ = client
                            .publish(crate::e2e::SUBJECT, Bytes::from(r.to_json()))
                            .await;
                    });
                }
                // Let the tasks run until they park on the client.
                std::thread::sleep(Duration::from_secs(1));
            } else {
                std::thread::sleep(Duration::from_secs(1));
            }
            Sample {
                secs: t.elapsed().as_secs_f64(),
                accepted: if config == Config::NaiveSpawn {
                    n as u64
                } else {
                    0
                },
                // The naive pattern has no accounting: what it holds is lost
                // when the process ends.
                in_flight: if config == Config::NaiveSpawn {
                    n as u64
                } else {
                    0
                },
                ..Sample::default()
            }
        }
        Config::TidingsJsonLines | Config::TidingsSpoolOnSpill | Config::TidingsSpoolWriteAhead => {
            let sink = rt
                .block_on(tidings_tokio::NatsSink::connect(
                    NatsConfig::new(url, crate::e2e::SUBJECT).jetstream(),
                ))
                .expect("sink");
            let client = sink.client().clone();
            let builder = Reporter::builder()
                .folding(tidings_core::Folding::off())
                .service(tidings_bench::SERVICE)
                .log_to_stderr(false)
                .sink(sink);
            let builder = with_storage(config, builder, dir.path());
            let (reporter, guard) =
                tidings_tokio::start_on(rt.handle().clone(), builder).expect("start");
            connected_wait_go();
            wait_disconnected(|| {
                client.connection_state() == async_nats::connection::State::Connected
            });
            let t = Instant::now();
            for _ in 0..n {
                let mut r = template.clone();
                r.id = tidings_core::ReportId::new();
                let _ = reporter.report(r);
            }
            let summary = rt.block_on(guard.shutdown_within(Duration::from_secs(5)));
            let s = summary.stats;
            Sample {
                secs: t.elapsed().as_secs_f64(),
                accepted: s.accepted,
                delivered: s.delivered,
                spilled: s.spilled,
                lost: s.lost,
                in_flight: s.in_flight,
                ..Sample::default()
            }
        }
    };
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "result peak_kib={peak} rss_kib={} secs={:.3} accepted={} delivered={} spilled={} lost={} in_flight={}",
        rss_kib().unwrap_or(0),
        sample.secs,
        sample.accepted,
        sample.delivered,
        sample.spilled,
        sample.lost,
        sample.in_flight
    );
    let _ = std::io::stdout().flush();
    // The naive configuration leaves a million parked tasks: do not wait
    // for the runtime to drop them.
    std::process::exit(0);
}

/// Waits (up to 10 s) until `connected` says the client lost the server.
pub(crate) fn wait_disconnected(connected: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn with_storage(
    config: Config,
    builder: ReporterBuilder,
    dir: &std::path::Path,
) -> ReporterBuilder {
    let spool = || SpoolConfig::new(dir.join("spool"));
    match config {
        Config::TidingsJsonLines => builder.fallback(
            JsonLinesFile::open(dir.join("spill.jsonl")).expect("open the fallback file"),
        ),
        Config::TidingsSpoolOnSpill => builder.spool(spool(), SpoolMode::OnSpill),
        Config::TidingsSpoolWriteAhead => builder.spool(spool(), SpoolMode::WriteAhead),
        Config::Idle | Config::NaiveSpawn => builder,
    }
}
