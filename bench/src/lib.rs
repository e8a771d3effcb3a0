//! # tidings-bench
//!
//! Benchmarks of tidings side by side with the raw clients it wraps. This
//! library holds what the criterion micro-benchmark (`benches/report.rs`)
//! and the `tidings-bench` binary share: the report fixture, a sink that
//! discards and one that serializes, waits for the worker to settle, small
//! statistics, and facts about the machine.
//!
//! Benchmarks measure; tests check behaviour. Nothing here asserts a time.

#![warn(missing_docs)]

use std::time::Duration;

use tidings_core::testing::ManualRuntime;
use tidings_core::{Ack, Batch, Report, Reporter, Sink, SinkError, SinkFuture};

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

/// A sink that serializes every report (as a NATS sink would) and drops
/// the bytes.
#[derive(Debug, Default)]
pub struct SerializeSink;

impl Sink for SerializeSink {
    fn name(&self) -> &str {
        "serialize"
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        let mut buf = Vec::with_capacity(512);
        for r in batch.iter() {
            buf.clear();
            r.write_json(&mut buf);
            std::hint::black_box(&buf);
        }
        let n = batch.len();
        Box::pin(async move { vec![Ok(Ack::Written); n] })
    }
}

/// A 400-byte error message (built once).
pub fn message_400() -> &'static str {
    static MESSAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MESSAGE.get_or_init(|| {
        let head = "primary database unreachable: connection refused by 10.0.0.7:5432 after ";
        format!("{head}{}", "x".repeat(400 - head.len()))
    })
}

/// Runs the manual runtime until the reporter's worker has settled
/// everything (`in_flight == 0`).
pub fn drain_manual(rt: &ManualRuntime, reporter: &Reporter) {
    rt.block_on(std::future::poll_fn(|cx| {
        if reporter.stats().in_flight == 0 {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }));
}

/// Sleeps (200 µs at a time) until a reporter whose worker runs on
/// another thread has settled everything (`in_flight == 0`).
pub fn wait_settled(reporter: &Reporter) {
    while reporter.stats().in_flight > 0 {
        std::thread::sleep(Duration::from_micros(200));
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

/// A latency histogram in nanoseconds, log-linear: exact below 32 ns,
/// then 32 buckets per power of two (each value within 3 % of its bucket's
/// midpoint). Fixed size (about 15 KiB), so a million calls cost a million
/// increments, not a million stored `Instant`s.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 - SUB_BITS as usize + 1) << SUB_BITS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (((shift + 1) as usize) << SUB_BITS) + ((v >> shift) & (SUB - 1)) as usize
    }

    /// The smallest value of bucket `i`, and the bucket's width.
    fn bucket(i: usize) -> (u64, u64) {
        if i < SUB as usize {
            return (i as u64, 1);
        }
        let shift = (i >> SUB_BITS) as u32 - 1;
        let sub = (i as u64) & (SUB - 1);
        ((SUB + sub) << shift, 1 << shift)
    }

    /// Counts one value.
    pub fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Counts one duration.
    pub fn record_duration(&mut self, d: Duration) {
        self.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value counted (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The `q`-quantile (0 ≤ q ≤ 1): the midpoint of the bucket that holds
    /// it, never above the maximum (the maximum itself for the last rank); 0
    /// when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = Self::bucket(i);
                return (low + width / 2).min(self.max);
            }
        }
        self.max
    }
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
    fn message_is_400_bytes() {
        assert_eq!(message_400().len(), 400);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn histogram_quantiles_within_three_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.001, 100.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.03, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.quantile(1.0), 100_000);
        let mut small = Histogram::default();
        small.record(7);
        small.record(u64::MAX);
        assert_eq!(small.quantile(0.5), 7);
        let mut merged = Histogram::default();
        merged.merge(&h);
        merged.merge(&small);
        assert_eq!(merged.len(), 100_002);
    }
}
