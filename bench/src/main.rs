//! `tidings-bench`: tidings side by side with the raw clients, in one run,
//! printed as Markdown tables (progress goes to stderr).
//!
//! ```text
//! cargo run --release -p tidings-bench --bin tidings-bench -- --all > results.md
//! cargo run --release -p tidings-bench --bin tidings-bench -- --e2e --runs 5
//! ```
//!
//! Sections: `--e2e` (throughput), `--drain` (shutdown drain), `--rss` (peak
//! memory during an outage, one child process per configuration),
//! `--teardown` (reports lost when the runtime is dropped), `--storm` (a
//! million identical errors, folding on and off, NATS up and down, and the
//! rare reports of a mixed storm; one child process per run), `--all`.
//! `--runs N` (default 3) sets the runs per configuration, interleaved
//! (raw, tidings, raw, tidings, …) so load changes hit both alike; tables
//! show medians. `--e2e-runs N` (default: `--runs`) sets them for the
//! throughput section alone, the noisiest and the cheapest to repeat; its
//! table also shows the median of the per-run ratios (tidings' run *i* over
//! raw's run *i*, measured moments apart). `--trials N` (default 20) sets
//! the teardown trials.
//! `--quick` shrinks every size for a smoke run. The storm's size:
//! `--storm-n N` (default 1,000,000; quick 100,000) reports over
//! `--storm-secs S` (10; quick 2) from `--storm-threads T` (8), each rare
//! fingerprint reported `--storm-rare-each K` times (5; quick 2);
//! `--storm-only NAME,..` runs some of its configurations (`up-off`,
//! `up-on`, `down-jsonl-off`, `down-jsonl-on`, `down-spool-off`,
//! `down-spool-on`, `mixed-off`, `mixed-on`, `rare-alone`).

mod drain;
mod e2e;
mod micro;
mod rss;
mod server;
mod storm;
mod teardown;

use std::time::Instant;

use tidings_bench::{load_average, median, min_max, Machine};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    e2e: bool,
    drain: bool,
    rss: bool,
    teardown: bool,
    storm: bool,
    /// `--storm-n`, `--storm-secs`, `--storm-threads`, `--storm-rare-each`
    /// (`None`: the default for the size, quick or not).
    storm_n: Option<u64>,
    storm_secs: Option<f64>,
    storm_threads: usize,
    storm_rare_each: Option<u32>,
    /// `--storm-only NAME,..`: just these storm configurations.
    storm_only: Vec<String>,
    runs: usize,
    e2e_runs: Option<usize>,
    trials: usize,
    quick: bool,
    /// `--only NAME`: just these end-to-end configurations (for profiling).
    only: Vec<String>,
    /// `--criterion run1,run2,run3`: tabulate these saved criterion baselines.
    criterion: Vec<String>,
    criterion_dir: Option<std::path::PathBuf>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tidings-bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        e2e: false,
        drain: false,
        rss: false,
        teardown: false,
        storm: false,
        storm_n: None,
        storm_secs: None,
        storm_threads: 8,
        storm_rare_each: None,
        storm_only: Vec::new(),
        runs: 3,
        e2e_runs: None,
        trials: 20,
        quick: false,
        only: Vec::new(),
        criterion: Vec::new(),
        criterion_dir: None,
    };
    let mut child: Option<String> = None;
    let mut child_storm: Option<String> = None;
    let mut dir = String::new();
    let mut url = String::new();
    let mut n: usize = 1_000_000;
    let mut criterion_dir_arg: Option<String> = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("all") => {
                o.e2e = true;
                o.drain = true;
                o.rss = true;
                o.teardown = true;
                o.storm = true;
            }
            Long("e2e") => o.e2e = true,
            Long("drain") => o.drain = true,
            Long("rss") => o.rss = true,
            Long("teardown") => o.teardown = true,
            Long("storm") => o.storm = true,
            Long("storm-n") => o.storm_n = Some(parser.value()?.parse()?),
            Long("storm-secs") => o.storm_secs = Some(parser.value()?.parse()?),
            Long("storm-threads") => o.storm_threads = parser.value()?.parse::<usize>()?.max(1),
            Long("storm-rare-each") => o.storm_rare_each = Some(parser.value()?.parse()?),
            Long("storm-only") => {
                o.storm = true;
                o.storm_only = parser
                    .value()?
                    .string()?
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            Long("runs") => o.runs = parser.value()?.parse()?,
            Long("e2e-runs") => o.e2e_runs = Some(parser.value()?.parse()?),
            Long("trials") => o.trials = parser.value()?.parse()?,
            Long("quick") => o.quick = true,
            Long("only") => {
                o.e2e = true;
                o.only.push(parser.value()?.string()?);
            }
            Long("criterion") => {
                o.criterion = parser
                    .value()?
                    .string()?
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            Long("criterion-dir") => criterion_dir_arg = Some(parser.value()?.string()?),
            Long("child-rss") => child = Some(parser.value()?.string()?),
            Long("child-storm") => child_storm = Some(parser.value()?.string()?),
            Long("dir") => dir = parser.value()?.string()?,
            Long("url") => url = parser.value()?.string()?,
            Long("n") => n = parser.value()?.parse()?,
            Long("help") | Short('h') => {
                println!(
                    "usage: tidings-bench [--all] [--e2e] [--drain] [--rss] [--teardown] [--storm] \
                     [--storm-n N] [--storm-secs S] [--storm-threads T] [--storm-rare-each K] [--storm-only NAME,..] \
                     [--runs N] [--e2e-runs N] [--trials N] [--quick] [--criterion BASELINE,..] [--criterion-dir DIR] \
                     [--only raw-core|raw-core-pre|tokio-core|raw-js|raw-js-pre|tokio-js|blocking-js|smol-js|tokio-core-sink|tokio-js-sink]"
                );
                return Ok(());
            }
            _ => return Err(arg.unexpected()),
        }
    }
    if let Some(name) = child {
        let config = rss::Config::from_name(&name)
            .ok_or_else(|| lexopt::Error::from(format!("unknown rss configuration {name:?}")))?;
        rss::child(config, &url, n);
        return Ok(());
    }
    if let Some(name) = child_storm {
        let config = storm::Config::from_name(&name)
            .ok_or_else(|| lexopt::Error::from(format!("unknown storm configuration {name:?}")))?;
        storm::child(config, &url, std::path::Path::new(&dir), storm_plan(&o));
        return Ok(());
    }
    for name in &o.storm_only {
        if storm::Config::from_name(name).is_none() {
            return Err(format!("unknown storm configuration {name:?}").into());
        }
    }
    o.criterion_dir = criterion_dir_arg.map(std::path::PathBuf::from);
    if !(o.e2e || o.drain || o.rss || o.teardown || o.storm || !o.criterion.is_empty()) {
        return Err(
            "nothing to do: pass --all or a section (--e2e, --drain, --rss, --teardown, --storm, --criterion)"
                .into(),
        );
    }
    o.runs = o.runs.max(1);
    o.e2e_runs = o.e2e_runs.map(|n| n.max(1));
    header(&o);
    if !o.criterion.is_empty() {
        let dir = o.criterion_dir.clone().unwrap_or_else(micro::default_dir);
        micro::section(&dir, &o.criterion);
    }
    if o.e2e {
        section_e2e(&o);
    }
    if o.drain {
        section_drain(&o);
    }
    if o.rss {
        section_rss(&o);
    }
    if o.teardown {
        section_teardown(&o);
    }
    if o.storm {
        section_storm(&o);
    }
    Ok(())
}

fn load() -> String {
    load_average().map_or_else(|| "?".to_owned(), |l| format!("{l:.2}"))
}

fn header(o: &Options) {
    let m = Machine::detect();
    println!("## Machine\n");
    println!("| cores (`nproc`) | CPU (`/proc/cpuinfo`) | kernel | memory |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} MiB |\n",
        m.cores, m.cpu, m.kernel, m.mem_mib
    );
    println!(
        "nats-server: `{}`; allocator: {}; runs per configuration: {} (median shown){}; 1-minute load average at start: {}.\n",
        nats_version(),
        if cfg!(feature = "mimalloc") { "mimalloc" } else { "the system's (glibc malloc)" },
        o.runs,
        if o.quick { "; QUICK sizes (smoke run, not for comparison)" } else { "" },
        load()
    );
}

fn nats_version() -> String {
    let bin = tidings_conformance::nats_server::nats_server_bin();
    std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| bin.display().to_string())
}

fn fmt_rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

fn section_e2e(o: &Options) {
    let (n_core, n_js) = if o.quick {
        (20_000, 10_000)
    } else {
        (200_000, 100_000)
    };
    if !o.only.is_empty() {
        // Profiling: run the named configurations, print their rates only.
        for run in 0..o.runs {
            for c in e2e::Config::ALL
                .iter()
                .chain(&e2e::Config::PROFILING)
                .filter(|c| o.only.iter().any(|n| n == c.name()))
            {
                let n = if c.is_jetstream() { n_js } else { n_core };
                let s = c.run(n);
                println!(
                    "{} run {}: {:.0}/s arrived {} spilled {}",
                    c.name(),
                    run + 1,
                    s.rate(n),
                    s.arrived,
                    s.spilled
                );
            }
        }
        return;
    }
    let runs = o.e2e_runs.unwrap_or(o.runs);
    let configs = e2e::Config::ALL;
    let load_start = load();
    let started = Instant::now();
    let mut samples: Vec<Vec<e2e::Sample>> = vec![Vec::new(); configs.len()];
    for run in 0..runs {
        for (i, c) in configs.iter().enumerate() {
            let n = if c.is_jetstream() { n_js } else { n_core };
            let s = c.run(n);
            eprintln!(
                "e2e run {}/{}: {:<50} {:>9.0}/s  delivered {} arrived {} spilled {} lost {}",
                run + 1,
                runs,
                c.label(),
                s.rate(n),
                s.delivered,
                s.arrived,
                s.spilled,
                s.lost
            );
            samples[i].push(s);
        }
    }
    let rate = |i: usize| -> Vec<f64> {
        let n = if configs[i].is_jetstream() {
            n_js
        } else {
            n_core
        };
        samples[i].iter().map(|s| s.rate(n)).collect()
    };
    let index = |c: e2e::Config| configs.iter().position(|x| *x == c).expect("listed");
    // Tidings' run i over raw's run i: the two ran moments apart, so a
    // load change between runs moves both.
    let paired = |i: usize, raw: e2e::Config| -> f64 {
        let raw = rate(index(raw));
        median(
            &rate(i)
                .iter()
                .zip(&raw)
                .map(|(t, r)| t / r)
                .collect::<Vec<_>>(),
        )
    };
    let raw_core = median(&rate(index(e2e::Config::RawCore)));
    let raw_core_pre = median(&rate(index(e2e::Config::RawCorePre)));
    let raw_js = median(&rate(index(e2e::Config::RawJetStream)));
    let raw_js_pre = median(&rate(index(e2e::Config::RawJetStreamPre)));
    println!("## End-to-end throughput\n");
    println!(
        "{} reports of {} bytes per run for core NATS, {} for JetStream; a fresh nats-server per run; \
         {} runs per configuration, interleaved; \
         1-minute load average {} at the start, {} at the end ({:.0} s). \
         *× raw* is the median over the median raw rate; *paired* the median of the per-run \
         ratios (run i over the raw loop's run i, measured moments apart).\n",
        n_core,
        tidings_bench::REPORT_BYTES,
        n_js,
        runs,
        load_start,
        load(),
        started.elapsed().as_secs_f64()
    );
    println!("| configuration | reports/s (median) | min – max | × raw (serializing) | paired | × raw (pre-serialized) | arrived at the server (every run) | spilled | lost |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        let r = rate(i);
        let (lo, hi) = min_max(&r);
        let (base, ceiling, raw_config) = if c.is_jetstream() {
            (raw_js, raw_js_pre, e2e::Config::RawJetStream)
        } else {
            (raw_core, raw_core_pre, e2e::Config::RawCore)
        };
        let n = if c.is_jetstream() { n_js } else { n_core };
        let arrived: Vec<String> = samples[i].iter().map(|s| s.arrived.to_string()).collect();
        let all_arrived = samples[i].iter().all(|s| s.arrived >= n as u64);
        println!(
            "| {} | {} | {} – {} | {:.2}× | {:.2}× | {:.2}× | {}{} | {} | {} |",
            c.label(),
            fmt_rate(median(&r)),
            fmt_rate(lo),
            fmt_rate(hi),
            median(&r) / base,
            paired(i, raw_config),
            median(&r) / ceiling,
            arrived.join(" / "),
            if all_arrived { "" } else { " **(short)**" },
            samples[i].iter().map(|s| s.spilled).max().unwrap_or(0),
            samples[i].iter().map(|s| s.lost).max().unwrap_or(0),
        );
    }
    println!();
}

fn section_drain(o: &Options) {
    use drain::Config::*;
    let n = if o.quick { 10_000 } else { 100_000 };
    let configs = [
        RawCore,
        RawCorePre,
        TidingsCore,
        RawJetStream,
        RawJetStreamPre,
        TidingsJetStream,
    ];
    let load_start = load();
    let mut samples: Vec<Vec<drain::Sample>> = vec![Vec::new(); configs.len()];
    for run in 0..o.runs {
        for (i, c) in configs.iter().enumerate() {
            let s = c.run(n);
            eprintln!(
                "drain run {}/{}: {:<60} {:>8.3} s  arrived {} delivered {} spilled {}",
                run + 1,
                o.runs,
                c.label(),
                s.secs,
                s.arrived,
                s.delivered,
                s.spilled
            );
            samples[i].push(s);
        }
    }
    let secs = |i: usize| -> Vec<f64> { samples[i].iter().map(|s| s.secs).collect() };
    println!("## Shutdown drain\n");
    println!(
        "{n} reports, all queued when `shutdown()` starts; tokio current-thread runtime for both; \
         a fresh nats-server per run; load average {load_start} at the start, {} at the end.\n",
        load()
    );
    println!("| configuration | time (median) | min – max | × raw (serializing) | arrived at the server (every run) | spilled | drained fully |");
    println!("|---|---|---|---|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        let base = if c.is_jetstream() {
            median(&secs(3))
        } else {
            median(&secs(0))
        };
        let (lo, hi) = min_max(&secs(i));
        let arrived: Vec<String> = samples[i].iter().map(|s| s.arrived.to_string()).collect();
        println!(
            "| {} | {:.0} ms | {:.0} – {:.0} ms | {:.2}× | {} | {} | {} |",
            c.label(),
            median(&secs(i)) * 1e3,
            lo * 1e3,
            hi * 1e3,
            median(&secs(i)) / base,
            arrived.join(" / "),
            samples[i].iter().map(|s| s.spilled).max().unwrap_or(0),
            if samples[i].iter().all(|s| s.drained) {
                "yes"
            } else {
                "**no**"
            },
        );
    }
    println!();
}

fn section_rss(o: &Options) {
    let n = if o.quick { 100_000 } else { 1_000_000 };
    let configs = rss::Config::ALL;
    let load_start = load();
    let mut samples: Vec<Vec<rss::Sample>> = vec![Vec::new(); configs.len()];
    for run in 0..o.runs {
        for (i, c) in configs.iter().enumerate() {
            let s = rss::measure(*c, n);
            eprintln!(
                "rss run {}/{}: {:<24} peak {:>8.1} MiB  {:.1} s  accepted {} delivered {} spilled {} lost {}",
                run + 1,
                o.runs,
                c.name(),
                s.peak_kib as f64 / 1024.0,
                s.secs,
                s.accepted,
                s.delivered,
                s.spilled,
                s.lost
            );
            samples[i].push(s);
        }
    }
    println!("## Peak memory during a NATS outage\n");
    println!(
        "{n} reports of {} bytes reported by one thread as fast as it can while the server is down \
         (SIGKILLed after the client connected), then `shutdown` (5 s deadline); `VmHWM` of a child \
         process per configuration; load average {load_start} at the start, {} at the end.\n",
        tidings_bench::REPORT_BYTES,
        load(),
    );
    println!("| configuration | peak RSS (median) | min – max | accepted | delivered | spilled | lost | unaccounted at exit | time |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        let peaks: Vec<f64> = samples[i]
            .iter()
            .map(|s| s.peak_kib as f64 / 1024.0)
            .collect();
        let (lo, hi) = min_max(&peaks);
        let last = samples[i].last().cloned().unwrap_or_default();
        let secs: Vec<f64> = samples[i].iter().map(|s| s.secs).collect();
        println!(
            "| {} | {:.1} MiB | {:.1} – {:.1} | {} | {} | {} | {} | {} | {:.1} s |",
            c.label(),
            median(&peaks),
            lo,
            hi,
            last.accepted,
            last.delivered,
            last.spilled,
            last.lost,
            last.in_flight,
            median(&secs),
        );
    }
    println!();
}

fn section_teardown(o: &Options) {
    let n = if o.quick { 2_000 } else { 10_000 };
    let trials = if o.quick { o.trials.min(3) } else { o.trials };
    let load_start = load();
    let server = server::Server::start();
    println!("## Runtime dropped without shutdown\n");
    let mut rows = Vec::new();
    for flavor in [
        teardown::Flavor::MultiThread,
        teardown::Flavor::CurrentThread,
    ] {
        let mut naive = Vec::new();
        let mut tidings = Vec::new();
        for t in 0..trials {
            let tag = match flavor {
                teardown::Flavor::MultiThread => "mt",
                teardown::Flavor::CurrentThread => "ct",
            };
            let a = teardown::naive(
                &server,
                flavor,
                &format!("bench.teardown.{tag}.naive.{t}"),
                n,
            );
            let b = teardown::tidings(
                &server,
                flavor,
                &format!("bench.teardown.{tag}.tidings.{t}"),
                n,
            );
            eprintln!(
                "teardown {} trial {}/{}: naive lost {} (arrived {}, server got {}); tidings lost {} of {} (delivered {}, spilled {}, arrived {}, server got {}, delivered but never arrived {})",
                flavor.label(),
                t + 1,
                trials,
                a.lost,
                a.arrived,
                a.server_received,
                b.lost,
                b.reported,
                b.delivered,
                b.spilled,
                b.arrived,
                b.server_received,
                b.missing
            );
            naive.push(a);
            tidings.push(b);
        }
        rows.push((
            flavor,
            "naive `tokio::spawn(client.publish(..))` per report",
            naive,
        ));
        rows.push((flavor, "tidings-tokio (`NatsSink`, core NATS)", tidings));
    }
    println!(
        "{n} reports per trial, {trials} trials per row, the runtime dropped right after the last \
         report; load average {load_start} at the start, {} at the end.\n",
        load()
    );
    println!("| pattern | runtime | lost per trial (median) | min – max | trials with loss | mean lost | delivered (median) | spilled (median) | arrived (median) | server received (median) | counted delivered, never arrived (all trials) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (flavor, label, trials) in rows {
        let lost: Vec<f64> = trials.iter().map(|t| t.lost as f64).collect();
        let (lo, hi) = min_max(&lost);
        let with_loss = trials.iter().filter(|t| t.lost > 0).count();
        let mean = lost.iter().sum::<f64>() / lost.len() as f64;
        let med = |f: fn(&teardown::Trial) -> u64| {
            median(&trials.iter().map(|t| f(t) as f64).collect::<Vec<_>>())
        };
        println!(
            "| {label} | {} | {:.0} | {lo:.0} – {hi:.0} | {with_loss} / {} | {:.1}% | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            flavor.label(),
            median(&lost),
            trials.len(),
            100.0 * mean / n as f64,
            med(|t| t.delivered),
            med(|t| t.spilled),
            med(|t| t.arrived),
            med(|t| t.server_received),
            trials.iter().map(|t| t.missing).sum::<u64>(),
        );
    }
    println!();
}

fn storm_plan(o: &Options) -> storm::Plan {
    storm::Plan {
        n: o.storm_n
            .unwrap_or(if o.quick { 100_000 } else { 1_000_000 }),
        secs: o.storm_secs.unwrap_or(if o.quick { 2.0 } else { 10.0 }),
        threads: o.storm_threads,
        rare_each: o.storm_rare_each.unwrap_or(if o.quick { 2 } else { 5 }),
    }
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// `median (min – max)` of `xs`, each shown with `f`.
fn spread(xs: &[f64], f: impl Fn(f64) -> String) -> String {
    let (lo, hi) = min_max(xs);
    format!("{} ({} – {})", f(median(xs)), f(lo), f(hi))
}

/// off ÷ on of two medians; "∞" when `on` is 0.
fn ratio(off: f64, on: f64) -> String {
    if on == 0.0 {
        if off == 0.0 {
            "—".to_owned()
        } else {
            "∞ (on: 0)".to_owned()
        }
    } else {
        format!("{:.0}×", off / on)
    }
}

fn section_storm(o: &Options) {
    let plan = storm_plan(o);
    let configs: Vec<storm::Config> = storm::Config::ALL
        .into_iter()
        .filter(|c| o.storm_only.is_empty() || o.storm_only.iter().any(|n| n == c.name))
        .collect();
    let load_start = load();
    let started = Instant::now();
    let mut samples: Vec<Vec<storm::Sample>> = vec![Vec::new(); configs.len()];
    for run in 0..o.runs {
        for (i, c) in configs.iter().enumerate() {
            let s = storm::measure(*c, plan);
            eprintln!(
                "storm run {}/{}: {:<15} reported {} in {:.1} s ({:.0}/s), accepted {} lost {}, stream {}, disk {}, spilled {}, folded {} into {}, \
                 peak {:.1} MiB, cpu {:.1} s, report() p50 {} p99 {}, rare {}/{} p50 {:.0} µs p99 {:.0} µs, check {}",
                run + 1,
                o.runs,
                c.name,
                s.reported,
                s.storm_secs,
                s.rate(),
                s.accepted,
                s.lost,
                s.stream_msgs.map_or("-".to_owned(), |m| m.to_string()),
                fmt_bytes(s.disk_bytes() as f64),
                s.spilled,
                s.folded,
                s.aggregates,
                s.peak_kib as f64 / 1024.0,
                s.cpu_secs,
                fmt_ns(s.p50_ns as f64),
                fmt_ns(s.p99_ns as f64),
                s.rare_delivered,
                s.rare_sent,
                s.rare_p50_us,
                s.rare_p99_us,
                match &s.failure {
                    None => "ok".to_owned(),
                    Some(e) => format!("FAILED: {e}"),
                }
            );
            samples[i].push(s);
        }
    }
    let col = |i: usize, f: &dyn Fn(&storm::Sample) -> f64| -> Vec<f64> {
        samples[i].iter().map(f).collect()
    };
    let med = |i: usize, f: &dyn Fn(&storm::Sample) -> f64| median(&col(i, f));
    let timer = median(
        &samples
            .iter()
            .flatten()
            .map(|s| s.timer_ns as f64)
            .collect::<Vec<_>>(),
    );
    println!("## Storms: folding\n");
    println!(
        "{} identical reports ({} bytes of JSON, a fresh id and timestamp each, built outside the timing) from {} threads, \
         each paced by a deadline to {:.0}/s ({:.0}/s in all) for {} s; the rare reports of the mixed storm: {} fingerprints \
         × {} from a thread of their own, spread over the same {} s. tidings-tokio (2-worker runtime), `NatsSink` on \
         JetStream (a stream capturing the subject), fallback `JsonLinesFile`, defaults otherwise (capacity 8192, \
         `Overflow::Spill`); folding on = `Folding::default()` (the first 100 per fingerprint per 10 s window one by \
         one), off = `Folding::off()`. NATS down = the server SIGKILLed after the client connected, with \
         `RetryPolicy {{ initial_backoff: 10 ms, max_backoff: 100 ms, max_attempts: 3, attempt_timeout: 1 s, \
         down_after: 200 ms, probe_interval: 1 s }}`. One child process per run (peak RSS = its `VmHWM`, CPU = its \
         user + system time), `shutdown` (60 s deadline) included in CPU, RSS and the checks; {} runs per \
         configuration, interleaved; 1-minute load average {} at the start, {} at the end ({:.0} s). Each `report()` \
         is timed with two `Instant::now()` (their own cost, included: {:.0} ns median).\n",
        plan.n,
        tidings_bench::REPORT_BYTES,
        plan.threads,
        plan.n as f64 / plan.threads as f64 / plan.secs,
        plan.n as f64 / plan.secs,
        plan.secs,
        storm::RARE_FINGERPRINTS,
        plan.rare_each,
        plan.secs,
        o.runs,
        load_start,
        load(),
        started.elapsed().as_secs_f64(),
        timer,
    );
    let stormy: Vec<usize> = (0..configs.len())
        .filter(|&i| configs[i].load != storm::Load::RareAlone)
        .collect();

    println!("### Messages in the stream and bytes on disk\n");
    println!("Medians (min – max) over the runs. *reported*: storm reports handed to `report()` (all of them unless the storm hit its 3 × duration cap) and the rate the threads reached; *on disk*: the fallback file plus the spool directory, file sizes after shutdown.\n");
    println!("| configuration | reported | rate | messages in the stream | spilled (reports) | on disk | folded → aggregates |");
    println!("|---|---|---|---|---|---|---|");
    for &i in &stormy {
        let c = configs[i];
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {} | {:.0} → {:.0} |",
            c.label(),
            med(i, &|s| s.reported as f64),
            fmt_rate(med(i, &storm::Sample::rate)),
            if c.down {
                "— (server down)".to_owned()
            } else {
                spread(&col(i, &|s| s.stream_msgs.unwrap_or(0) as f64), |x| {
                    format!("{x:.0}")
                })
            },
            med(i, &|s| s.spilled as f64),
            spread(&col(i, &|s| s.disk_bytes() as f64), fmt_bytes),
            med(i, &|s| s.folded as f64),
            med(i, &|s| s.aggregates as f64),
        );
    }
    println!();
    let pairs: Vec<(usize, usize)> = stormy
        .iter()
        .filter(|&&i| !configs[i].folding)
        .filter_map(|&off| {
            let c = configs[off];
            configs
                .iter()
                .position(|d| {
                    d.folding && d.load == c.load && d.down == c.down && d.spool == c.spool
                })
                .map(|on| (off, on))
        })
        .collect();
    if !pairs.is_empty() {
        println!("Folding off ÷ on (ratio of the medians above):\n");
        println!("| storm | messages in the stream | bytes on disk | reports stored one by one (stream + spilled) |");
        println!("|---|---|---|---|");
        for (off, on) in pairs {
            let c = configs[off];
            let stored = |i: usize| med(i, &|s| (s.delivered + s.spilled) as f64);
            println!(
                "| {} | {} | {} | {} |",
                c.label().replace(", folding off", ""),
                if c.down {
                    "—".to_owned()
                } else {
                    ratio(
                        med(off, &|s| s.stream_msgs.unwrap_or(0) as f64),
                        med(on, &|s| s.stream_msgs.unwrap_or(0) as f64),
                    )
                },
                ratio(
                    med(off, &|s| s.disk_bytes() as f64),
                    med(on, &|s| s.disk_bytes() as f64)
                ),
                ratio(stored(off), stored(on)),
            );
        }
        println!();
    }

    println!("### Peak RSS and CPU\n");
    println!("| configuration | peak RSS | CPU seconds (user + sys) | nats-server CPU seconds | storm wall time | shutdown |");
    println!("|---|---|---|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | {:.1} s | {} |",
            c.label(),
            spread(&col(i, &|s| s.peak_kib as f64 / 1024.0), |x| format!(
                "{x:.1} MiB"
            )),
            spread(&col(i, &|s| s.cpu_secs), |x| format!("{x:.1}")),
            if c.down {
                "— (killed)".to_owned()
            } else {
                spread(&col(i, &|s| s.server_cpu_secs.unwrap_or(f64::NAN)), |x| {
                    format!("{x:.1}")
                })
            },
            med(i, &|s| s.storm_secs),
            spread(&col(i, &|s| s.shutdown_secs), |x| format!("{x:.2} s")),
        );
    }
    println!();

    println!("### `report()` during the storm\n");
    println!("Per call, on the storm threads (every call of every thread in one histogram per run; ≤ 3 % bucket error). Median of the runs (min – max over the runs). *spilled at the door*: calls that found the queue full and wrote their report to the fallback on the caller's thread (`Overflow::Spill`).\n");
    println!("| configuration | calls | median | p99 | p99.9 | max | spilled at the door |");
    println!("|---|---|---|---|---|---|---|");
    for &i in &stormy {
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {:.0} |",
            configs[i].label(),
            med(i, &|s| s.calls as f64),
            spread(&col(i, &|s| s.p50_ns as f64), fmt_ns),
            spread(&col(i, &|s| s.p99_ns as f64), fmt_ns),
            fmt_ns(med(i, &|s| s.p999_ns as f64)),
            fmt_ns(med(i, &|s| s.max_ns as f64)),
            med(i, &|s| s.overflowed as f64),
        );
    }
    println!();

    let rare: Vec<usize> = (0..configs.len())
        .filter(|&i| configs[i].load != storm::Load::Storm)
        .collect();
    if !rare.is_empty() {
        println!("### The rare reports: from `report()` to stored\n");
        println!("Each rare report's time from just before `report()` until its receipt resolves as delivered (the JetStream ack), awaited on a thread of its own. Percentiles over the delivered ones of each run; median of the runs (min – max). A rare report not delivered was spilled (to the fallback file).\n");
        println!("| configuration | delivered / sent (each run) | median | p99 | max |");
        println!("|---|---|---|---|---|");
        for i in rare {
            let us = |x: f64| fmt_ns(x * 1e3);
            println!(
                "| {} | {} | {} | {} | {} |",
                configs[i].label(),
                samples[i]
                    .iter()
                    .map(|s| format!("{}/{}", s.rare_delivered, s.rare_sent))
                    .collect::<Vec<_>>()
                    .join(", "),
                spread(&col(i, &|s| s.rare_p50_us), us),
                spread(&col(i, &|s| s.rare_p99_us), us),
                us(med(i, &|s| s.rare_max_us)),
            );
        }
        println!();
    }

    println!("### `report()` alone: what folding adds to a call\n");
    let rounds = 3;
    let hot = storm::hot_path(rounds, if o.quick { 3 } else { 10 });
    let off = median(&hot[1]);
    println!(
        "One thread, prebuilt fixture reports, the worker idle while timed (a `ManualRuntime` drained between chunks of \
         32,768 calls, as the criterion bench's `tidings/idle_worker`), so no storm and no overflow: each case's cost per \
         call, median of {rounds} rounds (min – max), the cases in turn within each round, after a warm-up round. \
         1-minute load average {}.\n",
        load()
    );
    println!("| case | ns per call | × `Folding::off()` |");
    println!("|---|---|---|");
    for (case, ns) in storm::HotCase::ALL.iter().zip(&hot) {
        println!(
            "| {} | {} | {:.2}× |",
            case.label(),
            spread(ns, |x| format!("{x:.0}")),
            median(ns) / off
        );
    }
    println!();

    println!("### Accounts\n");
    println!("Checked in each child after shutdown: `accepted == delivered + spilled + lost + folded + in_flight` with `in_flight == 0`, `lost == 0`, the stream holding `delivered` messages, the fallback file and the spool holding `spilled` reports, and the aggregate reports found there (`tidings.folded`) as many as `aggregates` with counts adding up to `folded`.\n");
    println!("| configuration | runs that pass | failures |");
    println!("|---|---|---|");
    for (i, c) in configs.iter().enumerate() {
        let failures: Vec<String> = samples[i]
            .iter()
            .enumerate()
            .filter_map(|(run, s)| s.failure.as_ref().map(|e| format!("run {}: {e}", run + 1)))
            .collect();
        println!(
            "| {} | {} / {} | {} |",
            c.label(),
            samples[i].len() - failures.len(),
            samples[i].len(),
            if failures.is_empty() {
                "—".to_owned()
            } else {
                failures.join("; ")
            }
        );
    }
    println!();
}
