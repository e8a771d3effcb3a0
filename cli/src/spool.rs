//! `tidings spool inspect DIR` and `tidings spool replay DIR --nats URL`.

use std::path::Path;
use std::time::{Duration, Instant};

use tidings::nats::NatsConfig;
use tidings::spool::{Spool, SpoolConfig};
use tidings::{Reporter, SpoolMode};

use crate::progress::Progress;

/// Refuses a path that is not a spool directory: one holding the spool's
/// `LOCK` file or `NNNNNNNNNNNNNNNNNNNN.seg` segment files.
/// (`Spool::inspect` reads any directory as an empty spool, and opening one
/// would turn it into a spool.)
fn require_spool_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let is_spool_file = |name: &str| {
        name == "LOCK"
            || name
                .strip_suffix(".seg")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(is_spool_file) {
            return Ok(());
        }
    }
    Err(format!(
        "{} is not a spool directory (it has no LOCK file and no NNNNNNNNNNNNNNNNNNNN.seg \
         segment files)",
        dir.display()
    ))
}

/// Prints what a spool directory holds, read-only (works while another
/// process has it open).
pub fn inspect(dir: &Path) -> Result<(), String> {
    require_spool_dir(dir)?;
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
    /// Where to deliver (validated).
    pub config: NatsConfig,
    /// Give up after this long without progress.
    pub stall_timeout: Duration,
}

/// Delivers what the spool holds to NATS (original report ids: a JetStream
/// stream deduplicates what already arrived), showing progress on stderr.
/// True when the spool ended empty.
pub fn replay(dir: &Path, opts: &ReplayOptions) -> Result<bool, String> {
    require_spool_dir(dir)?;
    let sink = tidings::blocking::NatsSink::connect(opts.config.clone())
        .map_err(|e| crate::conn::config_failure(&e, str::to_owned).message)?;
    let (reporter, guard) = tidings::blocking::start(
        Reporter::builder()
            .folding(tidings::Folding::off())
            .service("tidings-spool-replay")
            .sink(sink)
            .spool(SpoolConfig::new(dir), SpoolMode::OnSpill),
    )
    .map_err(|e| e.to_string())?;
    let pending = |r: &Reporter| r.stats().spool.map_or(0, |s| s.pending);
    let total = reporter.stats().spool.map_or(0, |s| s.recovered);
    println!("replaying {total} report(s) from {}", dir.display());
    let mut progress = Progress::new("spool replay", total, "reports");
    let mut last_progress = Instant::now();
    let mut last_left = u64::MAX;
    let done = loop {
        let left = pending(&reporter);
        let sent = total.saturating_sub(left);
        progress.set(sent, "");
        if left == 0 {
            progress.finish(sent, "");
            break true;
        }
        if left < last_left {
            last_left = left;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= opts.stall_timeout {
            progress.finish(sent, "stalled");
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let summary = guard.shutdown_blocking();
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
