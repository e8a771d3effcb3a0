//! Storms (issue #14): one error reported a million times in about ten
//! seconds from eight threads, folding on and off, NATS up and NATS down;
//! and a mixed storm, where 100 rare errors are reported during the noisy
//! one and the time until each is stored is measured.
//!
//! Each run is a child process of its own (this binary, invoked with
//! `--child-storm NAME`), as in `rss.rs`, so its peak RSS (`VmHWM`) and
//! CPU time (user + system, from `/proc/self/stat`: getrusage's accounting,
//! read without `unsafe`) are that run's and nothing else's. The parent
//! starts a nats-server with a JetStream stream, the child connects with
//! tidings-tokio (`NatsSink`, JetStream; a 2-worker multi-thread runtime)
//! and says `connected`; for "NATS down" the parent SIGKILLs the server
//! then. On `go` the child storms, shuts down, measures itself, then checks
//! its accounts (the identity, `lost == 0`, every report where the counters
//! say it is, the aggregates' counts adding up to `folded`) and prints the
//! result. The parent counts the stream's messages (stream info) and the
//! bytes of the fallback file and the spool (file sizes).
//!
//! The storm: `n` copies of the fixture report (a fresh id and timestamp
//! each, built outside the timing) from `threads` threads, each paced to
//! `n / threads` reports over `secs` by a deadline checked every
//! [`PACE_EVERY`] reports (so a thread that falls behind catches up
//! without sleeping, and one that cannot keep up runs flat out; it stops
//! at 3 × `secs` whatever it reached). Every `report()` call is timed with
//! `Instant` (the receipt dropped inside the timing, as `let _ =
//! reporter.report(r)` does) into a histogram per thread.
//!
//! The rare reports (mixed storm and its baseline): [`RARE_FINGERPRINTS`]
//! kinds, each reported `rare_each` times, evenly spread over `secs` from a
//! thread of their own; a waiter thread awaits each receipt and takes the
//! time from just before `report()` until the receipt says delivered (the
//! JetStream ack).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use tidings_bench::{peak_rss_kib, Histogram};
use tidings_conformance::nats_probe;
use tidings_core::fold::FOLDED_KEY;
use tidings_core::nats::NatsConfig;
use tidings_core::spool::{Spool, SpoolConfig};
use tidings_core::{
    Folding, JsonLinesFile, Outcome, Receipt, Report, ReportId, Reporter, RetryPolicy, SpoolMode,
    Stats, Timestamp,
};

use crate::e2e::{STREAM, SUBJECT};
use crate::rss::{connected_wait_go, wait_disconnected, ChildRun};
use crate::server::Server;

/// Distinct rare fingerprints in the mixed storm.
pub const RARE_FINGERPRINTS: u32 = 100;
/// A storm thread checks its deadline every this many reports.
pub const PACE_EVERY: u64 = 32;
/// The fallback file, in the run's directory.
const FALLBACK: &str = "spill.jsonl";
/// The spool directory, in the run's directory.
const SPOOL: &str = "spool";
/// Linux's `USER_HZ`: the unit of `/proc/*/stat` CPU times.
const CLOCK_TICKS: f64 = 100.0;

/// "NATS down": retried briefly, then the sink is marked down and its
/// reports spilled at once (probed every second).
pub const DOWN_RETRY: RetryPolicy = RetryPolicy {
    initial_backoff: Duration::from_millis(10),
    max_backoff: Duration::from_millis(100),
    max_attempts: 3,
    attempt_timeout: Duration::from_secs(1),
    down_after: Duration::from_millis(200),
    probe_interval: Duration::from_secs(1),
};

/// What is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `n` identical reports from `threads` threads.
    Storm,
    /// The storm, plus the rare reports from a thread of their own.
    Mixed,
    /// The rare reports alone (the baseline of the mixed storm).
    RareAlone,
}

/// One configuration of the section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub name: &'static str,
    pub load: Load,
    /// NATS killed after the client connected.
    pub down: bool,
    /// A spool in `SpoolMode::OnSpill` before the JSON-lines fallback.
    pub spool: bool,
    pub folding: bool,
}

impl Config {
    const fn new(name: &'static str, load: Load, down: bool, spool: bool, folding: bool) -> Self {
        Config {
            name,
            load,
            down,
            spool,
            folding,
        }
    }

    pub const ALL: [Config; 9] = [
        Config::new("up-off", Load::Storm, false, false, false),
        Config::new("up-on", Load::Storm, false, false, true),
        Config::new("down-jsonl-off", Load::Storm, true, false, false),
        Config::new("down-jsonl-on", Load::Storm, true, false, true),
        Config::new("down-spool-off", Load::Storm, true, true, false),
        Config::new("down-spool-on", Load::Storm, true, true, true),
        Config::new("mixed-off", Load::Mixed, false, false, false),
        Config::new("mixed-on", Load::Mixed, false, false, true),
        Config::new("rare-alone", Load::RareAlone, false, false, true),
    ];

    pub fn from_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name == name)
    }

    pub fn label(self) -> String {
        let what = match self.load {
            Load::Storm => "storm",
            Load::Mixed => "mixed storm",
            Load::RareAlone => "rare reports alone (baseline)",
        };
        let nats = if self.down {
            "NATS down"
        } else {
            "NATS up (JetStream)"
        };
        let store = if self.spool {
            "spool OnSpill + JsonLinesFile"
        } else {
            "JsonLinesFile"
        };
        let folding = if self.folding {
            "folding on"
        } else {
            "folding off"
        };
        format!("{what}, {nats}, {store}, {folding}")
    }

    fn storms(self) -> bool {
        self.load != Load::RareAlone
    }

    fn rare(self) -> bool {
        self.load != Load::Storm
    }
}

/// The size of a run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Storm reports, in all.
    pub n: u64,
    /// Over how long.
    pub secs: f64,
    pub threads: usize,
    /// Times each rare fingerprint is reported.
    pub rare_each: u32,
}

impl Plan {
    pub fn args(&self) -> Vec<String> {
        vec![
            "--storm-n".into(),
            self.n.to_string(),
            "--storm-secs".into(),
            self.secs.to_string(),
            "--storm-threads".into(),
            self.threads.to_string(),
            "--storm-rare-each".into(),
            self.rare_each.to_string(),
        ]
    }
}

/// What one run measured; `failure` says why when the run failed its
/// accounts.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub reported: u64,
    pub storm_secs: f64,
    pub shutdown_secs: f64,
    pub accepted: u64,
    pub delivered: u64,
    pub spilled: u64,
    pub lost: u64,
    pub folded: u64,
    pub aggregates: u64,
    pub overflowed: u64,
    pub peak_kib: u64,
    pub cpu_secs: f64,
    pub server_cpu_secs: Option<f64>,
    pub calls: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub timer_ns: u64,
    pub rare_sent: u64,
    pub rare_delivered: u64,
    pub rare_p50_us: f64,
    pub rare_p99_us: f64,
    pub rare_max_us: f64,
    /// Messages in the stream (NATS up).
    pub stream_msgs: Option<u64>,
    pub fallback_bytes: u64,
    pub spool_bytes: u64,
    pub failure: Option<String>,
}

impl Sample {
    pub fn disk_bytes(&self) -> u64 {
        self.fallback_bytes + self.spool_bytes
    }

    pub fn rate(&self) -> f64 {
        self.reported as f64 / self.storm_secs
    }
}

/// Runs `config` in a child process; see the module docs.
pub fn measure(config: Config, plan: Plan) -> Sample {
    let mut server = Server::start();
    let url = server.url();
    nats_probe::create_stream(&url, STREAM, SUBJECT, 1);
    let dir = tempfile::Builder::new()
        .prefix("tidings-bench-storm-")
        .tempdir()
        .expect("temp dir");
    let mut child = ChildRun::start(config.name, |c| {
        c.args(["--child-storm", config.name, "--url", &url, "--dir"])
            .arg(dir.path())
            .args(plan.args())
    });
    if config.down {
        server.nats.kill();
    }
    let server_cpu = || server.nats.pid().and_then(|p| cpu_secs(&p.to_string()));
    let cpu_before = server_cpu();
    child.go();
    let measured = child.line_after("measured ");
    let server_cpu_secs = cpu_before.zip(server_cpu()).map(|(a, b)| b - a);
    let checked = child.line_after("result ");
    child.wait();
    let mut sample = parse(&measured);
    sample.server_cpu_secs = server_cpu_secs;
    sample.failure = match checked.strip_prefix("check=") {
        Some("ok") => None,
        Some(why) => Some(why.to_owned()),
        None => Some(format!("unreadable result: {checked}")),
    };
    if !config.down {
        sample.stream_msgs = Some(nats_probe::stream_len(&url, STREAM));
    }
    sample.fallback_bytes = std::fs::metadata(dir.path().join(FALLBACK)).map_or(0, |m| m.len());
    sample.spool_bytes = dir_bytes(&dir.path().join(SPOOL));
    sample
}

fn parse(line: &str) -> Sample {
    let kv: HashMap<&str, &str> = line
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect();
    let u = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let f = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    Sample {
        reported: u("reported"),
        storm_secs: f("storm_secs"),
        shutdown_secs: f("shutdown_secs"),
        accepted: u("accepted"),
        delivered: u("delivered"),
        spilled: u("spilled"),
        lost: u("lost"),
        folded: u("folded"),
        aggregates: u("aggregates"),
        overflowed: u("overflowed"),
        peak_kib: u("peak_kib"),
        cpu_secs: f("cpu_secs"),
        calls: u("calls"),
        p50_ns: u("p50_ns"),
        p99_ns: u("p99_ns"),
        p999_ns: u("p999_ns"),
        max_ns: u("max_ns"),
        timer_ns: u("timer_ns"),
        rare_sent: u("rare_sent"),
        rare_delivered: u("rare_delivered"),
        rare_p50_us: f("rare_p50_us"),
        rare_p99_us: f("rare_p99_us"),
        rare_max_us: f("rare_max_us"),
        ..Sample::default()
    }
}

/// The child's side: connect, say so, wait for `go`, storm, shut down,
/// measure, check.
pub fn child(config: Config, url: &str, dir: &Path, plan: Plan) {
    let rt = crate::e2e::tokio_rt();
    let sink = rt
        .block_on(tidings_tokio::NatsSink::connect(
            NatsConfig::new(url, SUBJECT).jetstream(),
        ))
        .expect("sink");
    let client = sink.client().clone();
    let mut builder = Reporter::builder()
        .folding(if config.folding {
            Folding::default()
        } else {
            Folding::off()
        })
        .service(tidings_bench::SERVICE)
        .log_to_stderr(false)
        .sink(sink)
        .fallback(JsonLinesFile::open(dir.join(FALLBACK)).expect("open the fallback file"));
    if config.down {
        builder = builder.retry(DOWN_RETRY);
    }
    if config.spool {
        builder = builder.spool(SpoolConfig::new(dir.join(SPOOL)), SpoolMode::OnSpill);
    }
    let (reporter, guard) = tidings_tokio::start_on(rt.handle().clone(), builder).expect("start");
    connected_wait_go();
    if config.down {
        wait_disconnected(|| client.connection_state() == async_nats::connection::State::Connected);
    }

    let timer_ns = timer_overhead();
    // Every thread starts on the same instant, a moment from now.
    let start = Instant::now() + Duration::from_millis(50);
    let cap = start + Duration::from_secs_f64(plan.secs * 3.0);
    let storm: Vec<_> = if config.storms() {
        (0..plan.threads)
            .map(|t| {
                let count = plan.n / plan.threads as u64
                    + u64::from((t as u64) < plan.n % plan.threads as u64);
                let reporter = reporter.clone();
                std::thread::spawn(move || storm_thread(&reporter, count, start, plan.secs, cap))
            })
            .collect()
    } else {
        Vec::new()
    };
    let (tx, rx) = async_channel::unbounded();
    let rare = config.rare().then(|| {
        let reporter = reporter.clone();
        let total = RARE_FINGERPRINTS * plan.rare_each;
        (
            std::thread::spawn(move || rare_thread(&reporter, total, start, plan.secs, tx)),
            std::thread::spawn(move || await_receipts(rx)),
        )
    });
    let mut calls = Histogram::default();
    let mut reported = 0;
    for t in storm {
        let (h, n) = t.join().expect("storm thread");
        calls.merge(&h);
        reported += n;
    }
    let waiter = rare.map(|(sender, waiter)| {
        sender.join().expect("rare thread");
        waiter
    });
    let storm_secs = start.elapsed().as_secs_f64();

    let t = Instant::now();
    let summary = rt.block_on(guard.shutdown_within(Duration::from_secs(60)));
    let shutdown_secs = t.elapsed().as_secs_f64();
    let rare_outcomes = waiter
        .map(|w| w.join().expect("receipt waiter"))
        .unwrap_or_default();
    drop(reporter);
    let peak_kib = peak_rss_kib().unwrap_or(0);
    let cpu = cpu_secs("self").unwrap_or(f64::NAN);

    let s = &summary.stats;
    let mut rare_us: Vec<f64> = rare_outcomes
        .iter()
        .filter(|(_, o)| o.is_delivered())
        .map(|(d, _)| d.as_secs_f64() * 1e6)
        .collect();
    rare_us.sort_by(f64::total_cmp);
    let rank = |q: f64| -> f64 {
        if rare_us.is_empty() {
            return f64::NAN;
        }
        let i = ((q * rare_us.len() as f64).ceil() as usize).clamp(1, rare_us.len()) - 1;
        rare_us[i]
    };
    println!(
        "measured reported={reported} storm_secs={storm_secs:.3} shutdown_secs={shutdown_secs:.3} \
         accepted={} delivered={} spilled={} lost={} folded={} aggregates={} overflowed={} \
         peak_kib={peak_kib} cpu_secs={cpu:.2} calls={} p50_ns={} p99_ns={} p999_ns={} max_ns={} \
         timer_ns={timer_ns} rare_sent={} rare_delivered={} rare_p50_us={:.0} rare_p99_us={:.0} \
         rare_max_us={:.0}",
        s.accepted,
        s.delivered,
        s.spilled,
        s.lost,
        s.folded,
        s.aggregates,
        s.overflowed,
        calls.len(),
        calls.quantile(0.5),
        calls.quantile(0.99),
        calls.quantile(0.999),
        calls.max(),
        rare_outcomes.len(),
        rare_us.len(),
        rank(0.5),
        rank(0.99),
        rank(1.0),
    );
    let _ = std::io::stdout().flush();
    drop(rt);
    let check = match check(config, url, dir, s) {
        Ok(()) => "ok".to_owned(),
        Err(problems) => problems,
    };
    println!("result check={check}");
    let _ = std::io::stdout().flush();
}

/// One storm thread: `count` reports paced over `secs` (see the module
/// docs); returns the calls' histogram and how many it reported.
fn storm_thread(
    reporter: &Reporter,
    count: u64,
    start: Instant,
    secs: f64,
    cap: Instant,
) -> (Histogram, u64) {
    let template = tidings_bench::report(0);
    let period = Duration::from_secs_f64(secs / count.max(1) as f64);
    let mut calls = Histogram::default();
    let mut reported = 0;
    for i in 0..count {
        if i % PACE_EVERY == 0 {
            let due = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if now >= cap {
                break;
            }
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut r = template.clone();
        r.id = ReportId::new();
        r.timestamp = Timestamp::now();
        let t = Instant::now();
        let _ = reporter.report(r);
        calls.record_duration(t.elapsed());
        reported += 1;
    }
    (calls, reported)
}

/// The rare reports: `total` of them, [`RARE_FINGERPRINTS`] kinds in turn,
/// evenly spread over `secs`; each receipt goes to the waiter with the
/// instant just before its `report()`.
fn rare_thread(
    reporter: &Reporter,
    total: u32,
    start: Instant,
    secs: f64,
    waiter: async_channel::Sender<(Instant, Receipt)>,
) {
    for j in 0..total {
        let due = start + Duration::from_secs_f64(secs * (f64::from(j) + 0.5) / f64::from(total));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut r = tidings_bench::report(u64::from(j));
        // The kind is not masked in the fingerprint (the message's digits are).
        r.kind = format!("rare_{:03}", j % RARE_FINGERPRINTS).into();
        let t = Instant::now();
        if let Ok(receipt) = reporter.report(r) {
            let _ = waiter.send_blocking((t, receipt));
        }
    }
}

/// Awaits every receipt on a thread of its own, each as a task, so one
/// slow report does not delay the time taken of the others.
fn await_receipts(rx: async_channel::Receiver<(Instant, Receipt)>) -> Vec<(Duration, Outcome)> {
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let mut tasks = Vec::new();
        while let Ok((t, receipt)) = rx.recv().await {
            tasks.push(ex.spawn(async move {
                let outcome = receipt.await;
                (t.elapsed(), outcome)
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await);
        }
        out
    }))
}

/// The run's accounts: the identity with nothing in flight, nothing lost,
/// every report where the counters say it is (the stream holds `delivered`,
/// the fallback file and the spool `spilled`), and the aggregates found
/// there as many as `aggregates`, their counts adding up to `folded`.
fn check(config: Config, url: &str, dir: &Path, s: &Stats) -> Result<(), String> {
    let mut problems = Vec::new();
    if !s.is_balanced() || s.in_flight != 0 {
        problems.push(format!(
            "identity: accepted {} vs delivered {} + spilled {} + lost {} + folded {} + in flight {}",
            s.accepted, s.delivered, s.spilled, s.lost, s.folded, s.in_flight
        ));
    }
    if s.lost != 0 {
        problems.push(format!("lost {}", s.lost));
    }
    let file = dir.join(FALLBACK);
    let lines = count_lines(&file);
    let spool = config.spool.then(|| open_spool(&dir.join(SPOOL)));
    let spooled = spool.as_ref().map_or(0, |(_, pending)| *pending);
    if lines + spooled != s.spilled {
        problems.push(format!(
            "spilled {} but the fallback file holds {lines} lines and the spool {spooled} records",
            s.spilled
        ));
    }
    if !config.down {
        let stream = nats_probe::stream_len(url, STREAM);
        if stream != s.delivered {
            problems.push(format!(
                "delivered {} but the stream holds {stream}",
                s.delivered
            ));
        }
    }
    if s.folded > 0 || s.aggregates > 0 {
        let mut found: Vec<Report> = Vec::new();
        if !config.down {
            found.extend(nats_probe::stream_arrivals(url, STREAM).reports);
        }
        if lines > 0 {
            found.extend(
                JsonLinesFile::read(&file)
                    .map(|(r, _)| r)
                    .unwrap_or_default(),
            );
        }
        if let Some((spool, _)) = &spool {
            let mut after = None;
            loop {
                let page = spool.pending_after(after, 4096);
                let Some((last, _)) = page.last() else { break };
                after = Some(*last);
                found.extend(page.into_iter().map(|(_, r)| r));
            }
        }
        let counts: Vec<u64> = found
            .iter()
            .filter_map(|r| r.context.get(FOLDED_KEY))
            .map(|f| f["count"].as_u64().unwrap_or(0))
            .collect();
        let sum: u64 = counts.iter().sum();
        if counts.len() as u64 != s.aggregates || sum != s.folded {
            problems.push(format!(
                "{} aggregates counting {sum} found, the counters say {} counting {}",
                counts.len(),
                s.aggregates,
                s.folded
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The spool the reporter left (its lock is released once the reporter is
/// gone), with the number of records it holds.
fn open_spool(dir: &Path) -> (Spool, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Spool::open(SpoolConfig::new(dir)) {
            Ok((spool, recovery)) => return (spool, recovery.pending_records),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("open the spool {}: {e}", dir.display()),
        }
    }
}

fn count_lines(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64,
        }
    }
}

/// Total size of the files under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// User + system CPU seconds of process `pid` (`self` for this one), from
/// `/proc/PID/stat` (fields 14 and 15; exited threads included).
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / CLOCK_TICKS)
}

/// The median cost of timing one call: two `Instant::now()` around
/// nothing.
fn timer_overhead() -> u64 {
    let mut h = Histogram::default();
    for _ in 0..10_000 {
        let t = Instant::now();
        h.record_duration(t.elapsed());
    }
    h.quantile(0.5)
}

/// One case of [`hot_path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotCase {
    /// `Fingerprint::of` on the fixture report, alone.
    FingerprintOnly,
    Off,
    /// 100 fingerprints in turn, none ever folded (threshold `u32::MAX`).
    OnPassing,
    /// One fingerprint: all but the first 100 folded.
    OnFolded,
    /// The same, the fingerprint given (`with_fingerprint`): no hashing.
    OnFoldedGiven,
    /// A new fingerprint every report, past `max_fingerprints` (10,000).
    OnTableFull,
}

impl HotCase {
    pub const ALL: [HotCase; 6] = [
        HotCase::FingerprintOnly,
        HotCase::Off,
        HotCase::OnPassing,
        HotCase::OnFolded,
        HotCase::OnFoldedGiven,
        HotCase::OnTableFull,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HotCase::FingerprintOnly => "`Fingerprint::of` alone (no `report()`)",
            HotCase::Off => "`Folding::off()`",
            HotCase::OnPassing => "folding on, 100 fingerprints in turn, none folded",
            HotCase::OnFolded => "folding on, one fingerprint: folded",
            HotCase::OnFoldedGiven => {
                "folding on, one fingerprint given (`with_fingerprint`, no hashing): folded"
            }
            HotCase::OnTableFull => {
                "folding on, a new fingerprint every report, past `max_fingerprints` (table full)"
            }
        }
    }

    fn folding(self) -> Folding {
        match self {
            HotCase::FingerprintOnly | HotCase::Off => Folding::off(),
            HotCase::OnPassing => Folding {
                threshold: u32::MAX,
                ..Folding::default()
            },
            HotCase::OnFolded | HotCase::OnFoldedGiven | HotCase::OnTableFull => Folding::default(),
        }
    }

    /// The `i`-th report of a run of this case.
    fn report(self, template: &Report, i: usize) -> Report {
        let mut r = template.clone();
        match self {
            HotCase::Off | HotCase::OnPassing => r.kind = format!("kind_{:03}", i % 100).into(),
            HotCase::OnFoldedGiven => r = r.with_fingerprint("storm"),
            HotCase::OnTableFull => r.kind = format!("kind_{i}").into(),
            HotCase::FingerprintOnly | HotCase::OnFolded => {}
        }
        r
    }
}

/// `report()` alone, one thread, the worker idle while timed (a
/// `ManualRuntime` drained between chunks of 32,768 calls, as the
/// criterion bench's `tidings/idle_worker`, prebuilt reports): what
/// folding adds to a call, apart from any storm. Every case runs in turn,
/// `rounds + 1` times (the first round, which also pays the heap's first
/// growth, is dropped); a round's figure is its median chunk, in ns per
/// call.
pub fn hot_path(rounds: usize, chunks: usize) -> Vec<Vec<f64>> {
    use tidings_core::testing::ManualRuntime;
    use tidings_core::{Fingerprint, Overflow};
    const CHUNK: usize = 32_768;
    let template = tidings_bench::report(0);
    let mut out = vec![Vec::new(); HotCase::ALL.len()];
    for round in 0..=rounds {
        for (k, case) in HotCase::ALL.into_iter().enumerate() {
            let rt = ManualRuntime::new();
            let reporter = Reporter::builder()
                .folding(case.folding())
                .sink(tidings_bench::NopSink)
                .capacity(2 * CHUNK)
                .overflow(Overflow::Reject)
                .log_to_stderr(false)
                .build(rt.handle())
                .expect("reporter");
            let mut per_call = Vec::with_capacity(chunks);
            for c in 0..chunks {
                let work: Vec<Report> = (0..CHUNK)
                    .map(|i| case.report(&template, c * CHUNK + i))
                    .collect();
                let t = Instant::now();
                if case == HotCase::FingerprintOnly {
                    for r in &work {
                        std::hint::black_box(Fingerprint::of(std::hint::black_box(r)));
                    }
                } else {
                    for r in work {
                        let _ = std::hint::black_box(reporter.report(r));
                    }
                }
                per_call.push(t.elapsed().as_nanos() as f64 / CHUNK as f64);
                tidings_bench::drain_manual(&rt, &reporter);
            }
            let s = rt.block_on(reporter.shutdown(Duration::from_secs(5)));
            assert_eq!(s.stats.refused, 0, "the queue overflowed: not the hot path");
            if round > 0 {
                out[k].push(tidings_bench::median(&per_call));
            }
        }
    }
    out
}
