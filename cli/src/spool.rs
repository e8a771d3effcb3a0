//! `tidings spool inspect DIR` and `tidings spool replay DIR --nats URL`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tidings::nats::NatsConfig;
use tidings::spool::{Spool, SpoolConfig};
use tidings::{Reporter, SpoolMode};

/// Prints what a spool directory holds, read-only (works while another
/// process has it open).
pub fn inspect(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let inspection = Spool::inspect(dir).map_err(|e| e.to_string())?;
    print!("{inspection}");
    for seg in &inspection.segments {
        println!(
            "  {}: {} bytes, {} reports ({} live), {} acks{}{}",
            seg.path.display(),
            seg.bytes,
            seg.reports,
            seg.live,
            seg.acks,
            if seg.header_ok {
                ""
            } else {
                ", DAMAGED HEADER"
            },
            if seg.corrupt_records > 0 {
                format!(", {} damaged regions", seg.corrupt_records)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Options of `tidings spool replay`.
pub struct ReplayOptions {
    pub nats: String,
    pub subject: String,
    pub jetstream: bool,
    pub stall_timeout: Duration,
}

/// Delivers what the spool holds to NATS (original report ids: a JetStream
/// stream deduplicates what already arrived), showing progress.
pub fn replay(dir: &Path, opts: &ReplayOptions) -> Result<bool, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut config = NatsConfig::new(opts.nats.clone(), opts.subject.clone());
    if opts.jetstream {
        config = config.jetstream();
    }
    let sink = tidings::blocking::NatsSink::connect(config).map_err(|e| e.to_string())?;
    let (reporter, guard) = tidings::blocking::start(
        Reporter::builder()
            .service("tidings-spool-replay")
            .sink(sink)
            .spool(SpoolConfig::new(dir), SpoolMode::OnSpill),
    )
    .map_err(|e| e.to_string())?;
    let pending = |r: &Reporter| r.stats().spool.map_or(0, |s| s.pending);
    let total = reporter.stats().spool.map_or(0, |s| s.recovered);
    println!("replaying {total} report(s) from {}", dir.display());
    let mut last_progress = Instant::now();
    let mut last_left = u64::MAX;
    let done = loop {
        let left = pending(&reporter);
        let sent = total.saturating_sub(left);
        draw(sent, total);
        if left == 0 {
            break true;
        }
        if left < last_left {
            last_left = left;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= opts.stall_timeout {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!();
    let summary = guard.shutdown();
    let spool = summary.stats.spool.clone().unwrap_or_default();
    if done {
        println!(
            "done: {} replayed, {} left in the spool",
            spool.replayed, spool.pending
        );
    } else {
        println!(
            "stalled: no progress for {:?}; {} left in the spool ({})",
            opts.stall_timeout,
            spool.pending,
            summary
                .stats
                .sinks
                .first()
                .and_then(|s| s.last_error.clone())
                .unwrap_or_else(|| "no error recorded".into())
        );
    }
    Ok(done)
}

fn draw(sent: u64, total: u64) {
    const WIDTH: u64 = 40;
    let filled = (sent * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let pct = (sent * 100).checked_div(total).unwrap_or(100);
    let bar: String = (0..WIDTH)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    print!("\r  [{bar}] {sent}/{total} ({pct}%)");
    let _ = std::io::stdout().flush();
}
