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
//! `--teardown` (reports lost when the runtime is dropped), `--all`.
//! `--runs N` (default 3) sets the runs per configuration, interleaved
//! (raw, tidings, raw, tidings, …) so load changes hit both alike; tables
//! show medians. `--e2e-runs N` (default: `--runs`) sets them for the
//! throughput section alone, the noisiest and the cheapest to repeat; its
//! table also shows the median of the per-run ratios (tidings' run *i* over
//! raw's run *i*, measured moments apart). `--trials N` (default 20) sets
//! the teardown trials.
//! `--quick` shrinks every size for a smoke run.

mod drain;
mod e2e;
mod micro;
mod rss;
mod server;
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
        runs: 3,
        e2e_runs: None,
        trials: 20,
        quick: false,
        only: Vec::new(),
        criterion: Vec::new(),
        criterion_dir: None,
    };
    let mut child: Option<String> = None;
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
            }
            Long("e2e") => o.e2e = true,
            Long("drain") => o.drain = true,
            Long("rss") => o.rss = true,
            Long("teardown") => o.teardown = true,
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
            Long("url") => url = parser.value()?.string()?,
            Long("n") => n = parser.value()?.parse()?,
            Long("help") | Short('h') => {
                println!(
                    "usage: tidings-bench [--all] [--e2e] [--drain] [--rss] [--teardown] \
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
    o.criterion_dir = criterion_dir_arg.map(std::path::PathBuf::from);
    if !(o.e2e || o.drain || o.rss || o.teardown || !o.criterion.is_empty()) {
        return Err(
            "nothing to do: pass --all or a section (--e2e, --drain, --rss, --teardown, --criterion)"
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
