//! # tidings-bench
//!
//! Benchmarks of tidings side by side with the raw clients it wraps. This
//! library holds what the criterion micro-benchmark (`benches/report.rs`)
//! and the `tidings-bench` binary share: the report fixture, a sink that
//! discards, small statistics, and facts about the machine.
//!
//! Benchmarks measure; tests check behaviour. Nothing here asserts a time.

#![warn(missing_docs)]

use std::time::Duration;

use tidings_core::{Ack, Batch, Report, Sink, SinkError, SinkFuture};

/// Size of every benchmark report's JSON, in bytes (a realistic error
/// report: kind, message, source, two context entries).
pub const REPORT_BYTES: usize = 401;

/// The service name the fixture reports carry (set explicitly, so the
/// reporter does not change their size by filling it in).
pub const SERVICE: &str = "bench";

/// A fresh report (new id, current time) whose JSON is exactly
/// [`REPORT_BYTES`] long.
pub fn report(i: u64) -> Report {
    let base = base_report(i);
    let pad = REPORT_BYTES.saturating_sub(base.to_json().len());
    let mut r = base;
    r.message.push_str(&"x".repeat(pad));
    r
}

fn base_report(i: u64) -> Report {
    Report::error("database_failure", "primary database unreachable: ")
        .with_service(SERVICE)
        .with_context("db", "primary")
        // Fixed width, so every report has the same size.
        .with_context("request", format!("{:012}", i % 1_000_000_000_000))
}

/// `n` fresh reports (distinct ids: JetStream deduplicates by id).
pub fn reports(n: usize) -> Vec<Report> {
    let template = report(0);
    (0..n as u64)
        .map(|i| {
            let mut r = template.clone();
            r.id = tidings_core::ReportId::new();
            r.context.insert(
                "request".to_owned(),
                serde_json::Value::String(format!("{:012}", i % 1_000_000_000_000)),
            );
            r
        })
        .collect()
}

/// A sink that takes everything and does nothing: measures tidings' own
/// cost, not a transport's.
#[derive(Debug, Default)]
pub struct NopSink;

impl Sink for NopSink {
    fn name(&self) -> &str {
        "nop"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        let n = batch.len();
        Box::pin(async move { vec![Ok(Ack::Written); n] })
    }
}

/// The median of `xs` (mean of the middle two for an even count); NaN when
/// empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Smallest and largest of `xs`.
pub fn min_max(xs: &[f64]) -> (f64, f64) {
    xs.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// `n` per `elapsed`, per second.
pub fn per_sec(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The machine the numbers come from: cores, CPU model, kernel, and the
/// load average when asked.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// Total memory, MiB.
    pub mem_mib: u64,
}

impl Machine {
    /// Reads the facts from `/proc`.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let mem_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu,
            kernel,
            mem_mib,
        }
    }
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's peak resident set size (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// This process's current resident set size (`VmRSS`), in KiB.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_reports_have_the_advertised_size() {
        for r in reports(3).iter().chain([report(7)].iter()) {
            assert_eq!(r.to_json().len(), REPORT_BYTES);
        }
        let rs = reports(2);
        assert_ne!(rs[0].id, rs[1].id);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
