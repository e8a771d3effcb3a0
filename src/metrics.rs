//! tidings' counters through the [`metrics`] facade, with the feature
//! `metrics`: the program's exporter (Prometheus, OpenTelemetry, StatsD…)
//! decides where they go.
//!
//! The values are samples of [`Reporter::stats`]: [`publish`] sets every
//! metric once, now; [`Publisher::start`] does it on a thread of its own
//! every `interval` (and once more when the reporter has closed, with the
//! final counts). A metric is as fresh as the last sample: at most
//! `interval` old while the publisher runs. Counters are set to the
//! reporter's running totals (`absolute`), so a late or missed sample
//! loses nothing.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! use std::time::Duration;
//!
//! let (reporter, guard) = tidings::blocking::init()?;
//! let publisher = tidings::metrics::Publisher::start(&reporter, Duration::from_secs(10));
//! reporter.report(tidings::Report::error("db", "primary unreachable"))?;
//! guard.shutdown_blocking();
//! publisher.stop(); // publishes the final counts, then ends the thread
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The metrics
//!
//! | name | type | unit | labels | what |
//! |---|---|---|---|---|
//! | `tidings_reports_accepted_total` | counter | count | | reports `report()` took ([`Stats::accepted`]) |
//! | `tidings_reports_delivered_total` | counter | count | | reports every sink took |
//! | `tidings_reports_spilled_total` | counter | count | | reports written to the spool or a fallback instead |
//! | `tidings_reports_lost_total` | counter | count | | reports the fallback could not store either (alert on any) |
//! | `tidings_reports_refused_total` | counter | count | | reports handed back to the caller (not accepted) |
//! | `tidings_reports_in_flight` | gauge | count | | accepted, not yet settled |
//! | `tidings_delivery_retries_total` | counter | count | | delivery attempts that were retries |
//! | `tidings_sink_delivered_total` | counter | count | `sink` | reports this sink took |
//! | `tidings_sink_failed_attempts_total` | counter | count | `sink` | failed delivery attempts (per report) |
//! | `tidings_sink_refused_total` | counter | count | `sink` | reports this sink refused for good |
//! | `tidings_sink_up` | gauge | — | `sink` | 1 while the sink is up, 0 while it is marked down |
//! | `tidings_spool_records` | gauge | count | | records waiting in the spool (with a spool) |
//! | `tidings_spool_bytes` | gauge | bytes | | size of the spool's segment files on disk, as the spool tracks it ([`SpoolSummary::total_bytes`](crate::SpoolSummary::total_bytes); with a spool) |
//!
//! `accepted == delivered + spilled + lost + in_flight` holds between the
//! counters of one sample, as in [`Stats`].

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

use crate::{Observer, Phase, Reporter, Stats};

/// Sets every metric from `reporter`'s counters now.
pub fn publish(reporter: &Reporter) {
    publish_stats(&reporter.stats());
}

/// Sets every metric from a [`Stats`] snapshot.
pub fn publish_stats(stats: &Stats) {
    describe();
    let totals = [
        ("tidings_reports_accepted_total", stats.accepted),
        ("tidings_reports_delivered_total", stats.delivered),
        ("tidings_reports_spilled_total", stats.spilled),
        ("tidings_reports_lost_total", stats.lost),
        ("tidings_reports_refused_total", stats.refused),
        ("tidings_delivery_retries_total", stats.retries),
    ];
    for (name, value) in totals {
        counter!(name).absolute(value);
    }
    gauge!("tidings_reports_in_flight").set(stats.in_flight as f64);
    for sink in &stats.sinks {
        let label = [("sink", sink.name.clone())];
        counter!("tidings_sink_delivered_total", &label).absolute(sink.delivered);
        counter!("tidings_sink_failed_attempts_total", &label).absolute(sink.failed_attempts);
        counter!("tidings_sink_refused_total", &label).absolute(sink.refused);
        gauge!("tidings_sink_up", &label).set(if sink.down { 0.0 } else { 1.0 });
    }
    if let Some(spool) = &stats.spool {
        gauge!("tidings_spool_records").set(spool.pending as f64);
        gauge!("tidings_spool_bytes").set(spool.total_bytes as f64);
    }
}

fn describe() {
    let counters = [
        ("tidings_reports_accepted_total", "Reports report() took."),
        (
            "tidings_reports_delivered_total",
            "Reports every sink took.",
        ),
        (
            "tidings_reports_spilled_total",
            "Reports written to the spool or a fallback instead.",
        ),
        (
            "tidings_reports_lost_total",
            "Reports the fallback could not store either.",
        ),
        (
            "tidings_reports_refused_total",
            "Reports handed back to the caller.",
        ),
        (
            "tidings_delivery_retries_total",
            "Delivery attempts that were retries.",
        ),
        ("tidings_sink_delivered_total", "Reports this sink took."),
        (
            "tidings_sink_failed_attempts_total",
            "Failed delivery attempts, per report.",
        ),
        (
            "tidings_sink_refused_total",
            "Reports this sink refused for good.",
        ),
    ];
    for (name, what) in counters {
        describe_counter!(name, Unit::Count, what);
    }
    describe_gauge!(
        "tidings_reports_in_flight",
        Unit::Count,
        "Accepted reports not yet settled."
    );
    describe_gauge!(
        "tidings_sink_up",
        "1 while the sink is up, 0 while it is marked down."
    );
    describe_gauge!(
        "tidings_spool_records",
        Unit::Count,
        "Records waiting in the spool."
    );
    describe_gauge!(
        "tidings_spool_bytes",
        Unit::Bytes,
        "Size of the spool's segment files."
    );
}

/// Publishes a reporter's counters every `interval` on a thread named
/// `tidings-metrics`, until [`stop`](Publisher::stop) (or drop), or until
/// the reporter closes; either way one last sample is published. Holds an
/// [`Observer`], so it does not keep the reporter open.
#[derive(Debug)]
pub struct Publisher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts publishing `reporter`'s counters every `interval`.
    pub fn start(reporter: &Reporter, interval: Duration) -> Publisher {
        let observer = reporter.observer();
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tidings-metrics".into())
            .spawn(move || run(&observer, &signal, interval))
            .ok();
        if thread.is_none() {
            // No thread: publish what can be published now.
            publish_stats(&reporter.stats());
        }
        Publisher { stop, thread }
    }

    /// Publishes one last sample and ends the thread.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.end();
    }
}

fn run(observer: &Observer, stop: &(Mutex<bool>, Condvar), interval: Duration) {
    let (stopped, wake) = stop;
    let mut stopped = stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // Read before the sample: a sample taken after Closed is final.
        let closed = observer.phase() == Phase::Closed;
        publish_stats(&observer.stats());
        if *stopped || closed {
            return;
        }
        stopped = wake
            .wait_timeout(stopped, interval)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}
