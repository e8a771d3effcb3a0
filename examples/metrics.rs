//! tidings' counters through the `metrics` facade; here into metrics-util's
//! debugging recorder, printed (a real program installs its exporter:
//! Prometheus, OpenTelemetry, …).
//!
//! ```text
//! cargo run --example metrics --features metrics
//! ```

use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install()?;

    let (reporter, guard) = tidings::blocking::init()?;
    let publisher = tidings::metrics::Publisher::start(&reporter, Duration::from_secs(5));
    for i in 0..3 {
        reporter.report(tidings::Report::error(
            "job_failed",
            format!("job {i} failed"),
        ))?;
    }
    guard.shutdown_blocking();
    publisher.stop(); // one last sample, with the final counts

    for (key, _unit, _description, value) in snapshotter.snapshot().into_vec() {
        println!("{} {:?}", key.key(), value);
    }
    Ok(())
}
