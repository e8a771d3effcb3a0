//! `tidings demo`: a simulated service reports a burst of errors from
//! several threads, part of them during a (simulated) outage of its
//! transport, then shuts down and shows where every report went.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidings::fold::FOLDED_KEY;
use tidings::nats::NatsConfig;
use tidings::{
    Ack, Batch, Folding, JsonLinesFile, JsonLinesSink, Report, ReportId, Reporter, RetryPolicy,
    Severity, ShutdownSummary, Sink, SinkError, SinkFuture,
};

/// Which adapter runs the demo (`--runtime`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// tidings-blocking: a background thread.
    Blocking,
    /// tidings-tokio: a tokio runtime.
    Tokio,
    /// tidings-smol: smol's executor.
    Smol,
}

/// Demo options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub runtime: RuntimeChoice,
    pub nats: Option<String>,
    pub jetstream: bool,
    pub subject: String,
    pub threads: usize,
    pub reports_per_thread: usize,
    pub dir: PathBuf,
    pub deadline: Duration,
}

/// Wraps a sink and makes it fail, as an unreachable server would, while
/// the outage switch is on.
pub(crate) struct Outage<S> {
    pub(crate) inner: S,
    pub(crate) down: Arc<AtomicBool>,
}

impl<S: Sink> Sink for Outage<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        if self.down.load(Ordering::SeqCst) {
            let e = SinkError::unavailable("simulated outage: server unreachable");
            return Box::pin(std::future::ready(e.for_all(batch.len())));
        }
        self.inner.send(batch)
    }

    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        self.inner.flush()
    }

    fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        self.inner.close()
    }
}

/// What the demo ended with.
pub struct DemoResult {
    /// Whether every accepted report was found where the summary says.
    pub verified: Result<String, String>,
}

/// Runs the demo, printing as it goes.
pub fn run(opts: &DemoOptions) -> Result<DemoResult, String> {
    // Refuse bad settings before touching the file system.
    if let Some(url) = &opts.nats {
        NatsConfig::new(url.clone(), opts.subject.clone())
            .validate()
            .map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.dir.display()))?;
    let reports_path = opts.dir.join("reports.jsonl");
    let spill_path = opts.dir.join("spilled.jsonl");
    // A fresh run: the verification below reads these files back.
    for p in [&reports_path, &spill_path] {
        if p.exists() {
            std::fs::remove_file(p).map_err(|e| format!("cannot reset {}: {e}", p.display()))?;
        }
    }

    let host = crate::runtimes::Host::new(opts.runtime)?;
    let down = Arc::new(AtomicBool::new(false));
    let fallback = JsonLinesFile::open(&spill_path).map_err(|e| e.to_string())?;
    let mut builder = Reporter::builder()
        .service("demo-service")
        .instance(format!("pid-{}", std::process::id()))
        .fallback(fallback)
        .capacity(1024)
        // Short windows, so a demo of a second shows repeats folding
        // alongside the outage's spills.
        .folding(Folding {
            threshold: 20,
            window: Duration::from_millis(250),
            ..Folding::default()
        })
        .retry(RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(2),
            down_after: Duration::from_millis(150),
            probe_interval: Duration::from_millis(100),
        })
        .shutdown_deadline(opts.deadline);

    let destination = match &opts.nats {
        None => {
            let sink = JsonLinesSink::open(&reports_path).map_err(|e| e.to_string())?;
            builder = builder.sink(Outage {
                inner: sink,
                down: down.clone(),
            });
            format!("file {}", reports_path.display())
        }
        Some(url) => {
            let mut config = NatsConfig::new(url.clone(), opts.subject.clone());
            if opts.jetstream {
                config = config.jetstream().ensure_stream("TIDINGS_DEMO");
            }
            config.validate().map_err(|e| e.to_string())?;
            let shown = format!(
                "NATS {} subject {}{}",
                config.redacted_servers().join(","),
                config.subject,
                if opts.jetstream {
                    " (JetStream, stream TIDINGS_DEMO)"
                } else {
                    ""
                }
            );
            builder = builder.boxed_sink(host.nats_sink(config, down.clone())?);
            shown
        }
    };

    println!("tidings demo");
    println!("  runtime:      {:?}", opts.runtime);
    println!("  reports to:   {destination}");
    println!("  spills to:    {}", spill_path.display());
    println!(
        "  load:         {} threads x {} reports; a simulated outage of the transport \
         from 40% to 70% of the run",
        opts.threads, opts.reports_per_thread
    );
    println!("  folding:      the first 20 of each kind per 250 ms go out; the rest are counted");

    let started = host.start(builder)?;
    let reporter = started.reporter.clone();

    let total = opts.threads * opts.reports_per_thread;
    let issued = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let refused = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..opts.threads {
            let reporter = reporter.clone();
            let issued = issued.clone();
            let ids = ids.clone();
            let refused = refused.clone();
            let down = down.clone();
            s.spawn(move || {
                for i in 0..opts.reports_per_thread {
                    let n = issued.fetch_add(1, Ordering::SeqCst);
                    // The outage switch follows the run's progress.
                    if n == total * 4 / 10 {
                        down.store(true, Ordering::SeqCst);
                        println!("  .. {n:>5} reports issued: transport DOWN (simulated)");
                    } else if n == total * 7 / 10 {
                        down.store(false, Ordering::SeqCst);
                        println!("  .. {n:>5} reports issued: transport back UP");
                    }
                    let report = demo_report(t, i);
                    match reporter.report(report) {
                        Ok(receipt) => ids.lock().unwrap().push(receipt.id()),
                        Err(r) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            eprintln!("refused: {r}");
                        }
                    }
                    // A service does other work between errors.
                    std::thread::sleep(Duration::from_millis(4));
                }
            });
        }
    });
    println!(
        "  .. {} reports issued in {:.2}s; shutting down (deadline {:?})",
        issued.load(Ordering::SeqCst),
        t0.elapsed().as_secs_f64(),
        opts.deadline
    );
    drop(reporter);
    let summary = started.shutdown();
    println!();
    println!("summary");
    for line in summary.to_string().lines() {
        println!("  {line}");
    }

    let accepted_ids = std::mem::take(&mut *ids.lock().unwrap());
    let verified = verify(opts, &summary, &accepted_ids, &reports_path, &spill_path);
    match &verified {
        Ok(msg) => println!("\nverified: {msg}"),
        Err(msg) => println!("\nNOT VERIFIED: {msg}"),
    }
    Ok(DemoResult { verified })
}

fn demo_report(thread: usize, i: usize) -> Report {
    let (severity, kind, message) = match i % 5 {
        0 => (
            Severity::Critical,
            "database_failure",
            "primary database unreachable",
        ),
        1 => (
            Severity::Error,
            "payment_declined",
            "card processor returned 502",
        ),
        2 => (Severity::Warning, "slow_query", "query took 2.4 s"),
        3 => (
            Severity::Error,
            "cache_miss_storm",
            "cache hit rate fell below 10%",
        ),
        _ => (
            Severity::Info,
            "retry_succeeded",
            "upstream call succeeded on retry",
        ),
    };
    Report::new(severity, kind, message)
        .with_context("worker", thread)
        .with_context("sequence", i)
}

/// Reads back where the reports went and checks each accepted report is
/// accounted for.
fn verify(
    opts: &DemoOptions,
    summary: &ShutdownSummary,
    accepted: &[ReportId],
    reports_path: &std::path::Path,
    spill_path: &std::path::Path,
) -> Result<String, String> {
    let s = &summary.stats;
    if !(s.is_balanced() && s.in_flight == 0 && s.lost == 0) {
        return Err(format!("identity does not hold: {s:?}"));
    }
    // The reporter's own aggregate reports (folded repeats) are accepted
    // too, but have no receipt here.
    if s.accepted != accepted.len() as u64 + s.aggregates {
        return Err(format!(
            "{} receipts and {} aggregates but {} accepted",
            accepted.len(),
            s.aggregates,
            s.accepted
        ));
    }
    let read = |p: &std::path::Path| -> Result<Vec<Report>, String> {
        if !p.exists() {
            return Ok(Vec::new());
        }
        let (reports, bad) = JsonLinesFile::read(p).map_err(|e| e.to_string())?;
        if bad > 0 {
            return Err(format!("{bad} unreadable lines in {}", p.display()));
        }
        Ok(reports)
    };
    // Individual reports, and the folds counted by aggregates.
    let split = |reports: Vec<Report>| -> (Vec<ReportId>, u64, u64) {
        let mut ids = Vec::new();
        let (mut aggregates, mut folded) = (0, 0);
        for r in reports {
            match r.context.get(FOLDED_KEY).and_then(|f| f["count"].as_u64()) {
                Some(count) => {
                    aggregates += 1;
                    folded += count;
                }
                None => ids.push(r.id),
            }
        }
        (ids, aggregates, folded)
    };
    let spilled_reports = read(spill_path)?;
    if spilled_reports.len() as u64 != s.spilled {
        return Err(format!(
            "{} lines in {} but {} spilled",
            spilled_reports.len(),
            spill_path.display(),
            s.spilled
        ));
    }
    let (spilled, spilled_aggregates, spilled_folds) = split(spilled_reports);
    let spilled_set: HashSet<ReportId> = spilled.iter().copied().collect();
    if spilled_set.len() != spilled.len() {
        return Err(format!("duplicates in {}", spill_path.display()));
    }
    let accepted_set: HashSet<ReportId> = accepted.iter().copied().collect();
    if opts.nats.is_some() {
        // Delivered reports are on the server; check what we can locally.
        let not_spilled = accepted_set
            .iter()
            .filter(|id| !spilled_set.contains(id))
            .count() as u64;
        let expected = s.delivered + s.folded - (s.aggregates - spilled_aggregates);
        if not_spilled != expected {
            return Err(format!(
                "{not_spilled} reports not spilled but {} delivered and {} folded",
                s.delivered, s.folded
            ));
        }
        return Ok(format!(
            "{} spilled reports are in {}; the other {} were delivered to NATS or folded \
             ({} folded into {} aggregate reports)",
            spilled.len(),
            spill_path.display(),
            not_spilled,
            s.folded,
            s.aggregates
        ));
    }
    let (delivered, delivered_aggregates, delivered_folds) = split(read(reports_path)?);
    let delivered_set: HashSet<ReportId> = delivered.iter().copied().collect();
    if delivered_set.len() != delivered.len() {
        return Err(format!("duplicates in {}", reports_path.display()));
    }
    if delivered_set.intersection(&spilled_set).next().is_some() {
        return Err("a report is both delivered and spilled".to_owned());
    }
    let folds = delivered_folds + spilled_folds;
    if folds != s.folded || delivered_aggregates + spilled_aggregates != s.aggregates {
        return Err(format!(
            "aggregates in the files count {folds} folded reports in {} aggregates; the \
             summary says {} in {}",
            delivered_aggregates + spilled_aggregates,
            s.folded,
            s.aggregates
        ));
    }
    let individual: HashSet<ReportId> = delivered_set.union(&spilled_set).copied().collect();
    if !individual.is_subset(&accepted_set)
        || individual.len() as u64 + folds != accepted_set.len() as u64
    {
        return Err(format!(
            "{} reports found one by one and {folds} folded, {} accepted",
            individual.len(),
            accepted_set.len()
        ));
    }
    let folded_note = if folds > 0 {
        format!(
            "; {folds} repeats folded into {} aggregate reports whose counts add up",
            s.aggregates
        )
    } else {
        String::new()
    };
    Ok(format!(
        "all {} accepted reports found exactly once: {} in {}, {} in {}{folded_note}",
        accepted.len(),
        delivered.len(),
        reports_path.display(),
        spilled.len(),
        spill_path.display()
    ))
}
