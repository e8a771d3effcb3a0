//! `tidings replay FILE.jsonl`: send a fallback file's reports to NATS with
//! their original ids, through a tidings `Reporter`, so that what cannot be
//! sent is written to a new fallback file and nothing is lost.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use futures::stream::{FuturesUnordered, StreamExt};
use tidings::nats::{stream_covers, NatsConfig, SubjectSuffix, DEFAULT_SUBJECT};
use tidings::{
    Ack, Fallback, JsonLinesFile, Outcome, Overflow, Receipt, Report, Reporter, SinkResult, Status,
    SCHEMA_VERSION,
};

use crate::conn::{self, ConnectionArgs};
use crate::payload::{parse, Parsed};
use crate::progress::Progress;
use crate::{Failure, EXIT_FAILED, EXIT_INTERRUPTED};

/// How long the replay's reporter may take, at the end, to deliver what it
/// still holds before the rest is written to the failed file.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Flags of `tidings replay`.
#[derive(Args, Debug)]
#[command(after_help = "\
What it guarantees:
  * Every report of the file that parses is sent unchanged, with its original
    id (JetStream: as Nats-Msg-Id), or written to a new file next to it,
    FILE.failed-<time>.jsonl (kept only if something failed): nothing is lost.
    The summary's line `accepted ... lost 0 in flight 0` proves it.
  * With JetStream, a report the stream already has (within its duplicate
    window, 2 minutes by default) is recognised and not stored twice; the
    summary counts these duplicates. So an interrupted or failed replay can
    simply be run again within the window. Core NATS (no --jetstream or
    --stream) acknowledges nothing and deduplicates nothing: a rerun sends
    everything again.
  * Malformed lines are counted and skipped, never fatal; a report with a
    newer schema than this tidings reads is skipped (sending it through this
    version would drop its new fields), and counted.
  * The file itself is only read, never changed.

Exit code 0 when every report was sent; 1 when some could not be (they are in
the failed file); 2 on bad flags or an unreadable file; 3 when the server, the
credentials or the stream are not usable (nothing was sent); 130 when
interrupted by Ctrl-C (what was not sent is in the failed file or was never
read: run it again).")]
pub struct ReplayArgs {
    /// The fallback file: JSON lines, one report each (as written by
    /// JsonLinesFile).
    #[arg(value_name = "FILE.jsonl")]
    file: PathBuf,
    /// The subject to publish on.
    #[arg(long, default_value = DEFAULT_SUBJECT, value_name = "SUBJECT")]
    subject: String,
    /// What to append to the subject per report, as the original reporter
    /// did (NatsConfig::subject_suffix).
    #[arg(long, value_enum, default_value = "none", value_name = "SUFFIX")]
    suffix: SuffixArg,
    /// Publish with JetStream (each report acknowledged by the stream that
    /// captures the subject, duplicates recognised).
    #[arg(long)]
    jetstream: bool,
    /// Publish with JetStream and require this stream to capture the
    /// subject (implies --jetstream).
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// Only read and count: reports, malformed lines, newer schemas. Sends
    /// nothing, connects to nothing, writes nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    conn: ConnectionArgs,
}

/// `--suffix`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SuffixArg {
    /// `<subject>`.
    None,
    /// `<subject>.<severity>`.
    Severity,
    /// `<subject>.<severity>.<kind>`.
    SeverityKind,
}

impl From<SuffixArg> for SubjectSuffix {
    fn from(s: SuffixArg) -> SubjectSuffix {
        match s {
            SuffixArg::None => SubjectSuffix::None,
            SuffixArg::Severity => SubjectSuffix::Severity,
            SuffixArg::SeverityKind => SubjectSuffix::SeverityAndKind,
        }
    }
}

/// One line of the file.
enum Line {
    Report(Box<Report>),
    Malformed,
    Newer(u64),
}

fn parse_line(line: &[u8]) -> Line {
    match parse(line) {
        Parsed::Report(r) => Line::Report(r),
        Parsed::Newer { schema, .. } => Line::Newer(schema),
        Parsed::Invalid(_) => Line::Malformed,
    }
}

/// What was read.
#[derive(Default)]
struct Read {
    lines: u64,
    reports: u64,
    malformed: u64,
    /// The first few malformed line numbers.
    malformed_at: Vec<u64>,
    newer: u64,
    /// The newest schema among them.
    newest: u64,
}

impl Read {
    fn describe(&self) -> String {
        let mut s = format!("{} lines: {} reports", self.lines, self.reports);
        if self.malformed > 0 {
            let at: Vec<String> = self.malformed_at.iter().map(u64::to_string).collect();
            let more = if self.malformed > self.malformed_at.len() as u64 {
                ", ..."
            } else {
                ""
            };
            s.push_str(&format!(
                ", {} malformed lines skipped (line {}{more})",
                self.malformed,
                at.join(", ")
            ));
        }
        if self.newer > 0 {
            s.push_str(&format!(
                ", {} reports with a newer schema (up to {}) than this tidings reads \
                 ({SCHEMA_VERSION}) skipped: replay them with a newer tidings",
                self.newer, self.newest
            ));
        }
        s
    }
}

/// Reads `path` line by line, handing each parsed line and the bytes read so
/// far to `each`; stops early, before reading a line, when `stop` says so.
fn read_lines(
    path: &Path,
    read: &mut Read,
    stop: &dyn Fn() -> bool,
    mut each: impl FnMut(Line, u64),
) -> Result<(), Failure> {
    let file = File::open(path)
        .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::with_capacity(1024);
    let mut offset = 0u64;
    loop {
        if stop() {
            return Ok(());
        }
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
        read.lines += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = parse_line(&buf);
        match &line {
            Line::Report(_) => read.reports += 1,
            Line::Malformed => {
                read.malformed += 1;
                if read.malformed_at.len() < 10 {
                    read.malformed_at.push(read.lines);
                }
            }
            Line::Newer(schema) => {
                read.newer += 1;
                read.newest = read.newest.max(*schema);
            }
        }
        each(line, offset);
    }
}

/// Runs `tidings replay`.
pub fn run(args: ReplayArgs) -> Result<ExitCode, Failure> {
    let size = std::fs::metadata(&args.file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", args.file.display())))?
        .len();
    if !args.file.is_file() {
        return Err(Failure::usage(format!(
            "{} is not a file",
            args.file.display()
        )));
    }
    let jetstream = args.jetstream || args.stream.is_some();
    let config = args
        .conn
        .nats_config(&args.conn.server_or_default(), &args.subject, jetstream)?
        .subject_suffix(args.suffix.into());
    if args.dry_run {
        return dry_run(&args.file);
    }
    let rt = conn::runtime()?;
    let window = rt.block_on(preflight(&config, &args))?;

    let failed_path = failed_path(&args.file);
    let fallback = JsonLinesFile::open(&failed_path).map_err(|e| {
        Failure::usage(format!(
            "cannot create the file for failed reports: {e} (replay writes it next to {})",
            args.file.display()
        ))
    })?;
    // For reports handed back by the reporter (it never should: Block
    // waits long): the same file, appended to with whole-line writes.
    let refused_to =
        JsonLinesFile::open(&failed_path).map_err(|e| Failure::usage(e.to_string()))?;

    println!(
        "replaying {} ({size} bytes) to {} subject {}{}",
        args.file.display(),
        config.redacted_servers().join(","),
        config.subject,
        match &window {
            Some((stream, w)) => format!(
                " (JetStream: stream {stream}, duplicate window {})",
                humantime::format_duration(*w)
            ),
            None => " (core NATS: no acknowledgement, no deduplication)".to_owned(),
        }
    );
    println!(
        "reports that cannot be sent go to {}",
        failed_path.display()
    );

    let sink = rt
        .block_on(tidings::tokio::NatsSink::connect(config.clone()))
        .map_err(|e| conn::config_failure(&e, str::to_owned))?;
    let builder = Reporter::builder()
        .folding(tidings::Folding::off())
        .sink(sink)
        .fallback(fallback)
        .capacity(4096)
        .overflow(Overflow::Block {
            timeout: Duration::from_secs(60),
        })
        .shutdown_deadline(SHUTDOWN_DEADLINE);
    let (reporter, guard) = tidings::tokio::start_on(rt.handle().clone(), builder)
        .map_err(|e| Failure::usage(e.to_string()))?;

    let counts = Arc::new(Counts::default());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Receipt>();
    let tally = rt.spawn(tally(rx, counts.clone()));
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        rt.spawn(async move {
            crate::tail::wait_for_signal().await;
            interrupted.store(true, Ordering::SeqCst);
        });
    }

    let mut read = Read::default();
    let mut progress = Progress::new("replay", size, "bytes");
    let mut refused = 0u64;
    let mut refused_lost = 0u64;
    let mut position = 0;
    let stop = || interrupted.load(Ordering::SeqCst);
    read_lines(&args.file, &mut read, &stop, |line, offset| {
        position = offset;
        if let Line::Report(report) = line {
            match reporter.report(*report) {
                Ok(receipt) => {
                    let _ = tx.send(receipt);
                }
                Err(handed_back) => {
                    refused += 1;
                    if refused_to.spill(&[handed_back.report()]).is_err() {
                        refused_lost += 1;
                        eprintln!(
                            "{}{}",
                            tidings::STDERR_PREFIX,
                            String::from_utf8_lossy(&handed_back.report().to_json())
                        );
                    }
                }
            }
        }
        progress.set(offset, &counts.describe());
    })?;
    drop(tx);
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("tidings replay: interrupted; delivering what was already handed over");
    }
    drop(reporter);
    let summary = rt.block_on(guard.shutdown());
    let _ = rt.block_on(tally);
    progress.finish(position, &counts.describe());
    drop(refused_to);

    let c = counts.snapshot();
    let failed = c.failed + refused;
    println!("read {}", read.describe());
    println!(
        "outcome: {} stored, {} duplicates the stream already had, {} failed{}",
        c.stored,
        c.duplicates,
        failed,
        if c.lost + refused_lost > 0 {
            format!(", {} LOST (printed to stderr)", c.lost + refused_lost)
        } else {
            String::new()
        }
    );
    println!("summary");
    for line in summary.to_string().lines() {
        println!("  {line}");
    }
    let failed_file_empty = std::fs::metadata(&failed_path).is_ok_and(|m| m.len() == 0);
    if failed_file_empty {
        let _ = std::fs::remove_file(&failed_path);
    } else {
        println!(
            "the {failed} reports that could not be sent are in {}; replay that file once the \
             problem is fixed",
            failed_path.display()
        );
    }
    let interrupted = interrupted.load(Ordering::SeqCst);
    if interrupted {
        println!(
            "interrupted after {} of {size} bytes: run the same command again{}",
            position,
            if window.is_some() {
                " (the stream recognises the reports it already has, within its duplicate window)"
            } else {
                " (core NATS: what was sent is sent again)"
            }
        );
    }
    let s = &summary.stats;
    let balanced = s.is_balanced() && s.in_flight == 0;
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if failed > 0 || s.lost > 0 || refused_lost > 0 || !balanced {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn dry_run(path: &Path) -> Result<ExitCode, Failure> {
    let mut read = Read::default();
    let mut ids = std::collections::HashSet::new();
    read_lines(path, &mut read, &|| false, |line, _| {
        if let Line::Report(r) = line {
            ids.insert(r.id);
        }
    })?;
    println!("dry run of {}: nothing sent", path.display());
    println!("read {}", read.describe());
    if (ids.len() as u64) < read.reports {
        println!(
            "{} distinct report ids ({} reports appear more than once; a stream stores each once)",
            ids.len(),
            read.reports - ids.len() as u64
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects once to say early, and clearly, when the server, the
/// credentials or the stream are not usable. With JetStream: the stream
/// that will store the reports and its duplicate window.
async fn preflight(
    config: &NatsConfig,
    args: &ReplayArgs,
) -> Result<Option<(String, Duration)>, Failure> {
    let client = conn::connect(config, &args.conn, None)
        .await?
        .map_err(|e| e.into_failure(config, &args.conn))?;
    if !config.is_jetstream() {
        let _ = client.drain().await;
        return Ok(None);
    }
    let subject = match config.subject_suffix {
        SubjectSuffix::None => config.subject.clone(),
        _ => format!("{}.>", config.subject),
    };
    let js = async_nats::jetstream::new(client.clone());
    let name = match &args.stream {
        Some(name) => name.clone(),
        None => js.stream_by_subject(subject.clone()).await.map_err(|e| {
            Failure::nats(format!(
                "no JetStream stream captures {subject} ({e}); create one, or name it with \
                 --stream (`tidings check --stream NAME` says what is missing)"
            ))
        })?,
    };
    let stream = js.get_stream(&name).await.map_err(|e| {
        Failure::nats(format!(
            "cannot use stream {name}: {e} (`tidings check --stream {name}` says what is missing)"
        ))
    })?;
    let cfg = &stream.cached_info().config;
    if !stream_covers(&cfg.subjects, &subject) {
        return Err(Failure::nats(format!(
            "stream {name} does not capture {subject} (its subjects: {}); \
             `tidings check --stream {name}` says what to change",
            cfg.subjects.join(", ")
        )));
    }
    let window = cfg.duplicate_window;
    let _ = client.drain().await;
    Ok(Some((name, window)))
}

/// `FILE.failed-<UTC time>.jsonl` next to `file` (`.jsonl` of `file`
/// replaced), not an existing file.
fn failed_path(file: &Path) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| *c != ':' && *c != '-')
        .collect();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replay".to_owned());
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut path = dir.join(format!("{stem}.failed-{stamp}.jsonl"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}.failed-{stamp}-{n}.jsonl"));
        n += 1;
    }
    path
}

/// The receipts' outcomes so far.
#[derive(Default)]
struct Counts {
    stored: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
}

#[derive(Clone, Copy)]
struct CountsNow {
    stored: u64,
    duplicates: u64,
    failed: u64,
    lost: u64,
}

impl Counts {
    fn record(&self, outcome: &Outcome) {
        let counter = match &outcome.status {
            Status::Delivered => {
                let duplicate = outcome.sinks.iter().any(|s| {
                    matches!(
                        s.result,
                        SinkResult::Delivered(Ack::Stored {
                            duplicate: true,
                            ..
                        })
                    )
                });
                if duplicate {
                    &self.duplicates
                } else {
                    &self.stored
                }
            }
            Status::Lost { .. } => &self.lost,
            // Spilled, or anything else not in the stream (replay turns
            // folding off, so nothing is folded): written to the failed file.
            _ => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CountsNow {
        CountsNow {
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    fn describe(&self) -> String {
        let c = self.snapshot();
        format!(
            "{} stored, {} duplicates, {} failed",
            c.stored, c.duplicates, c.failed
        )
    }
}

/// Awaits every receipt sent to `rx` and counts its outcome.
async fn tally(mut rx: tokio::sync::mpsc::UnboundedReceiver<Receipt>, counts: Arc<Counts>) {
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            receipt = rx.recv(), if open => match receipt {
                Some(r) => pending.push(r),
                None => open = false,
            },
            Some(outcome) = pending.next(), if !pending.is_empty() => counts.record(&outcome),
            else => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_files_sit_next_to_the_replayed_file() {
        let p = failed_path(Path::new("/var/lib/app/spill.jsonl"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("spill.failed-"), "{name}");
        assert!(name.ends_with("Z.jsonl"), "{name}");
        assert!(!name.contains(':'), "{name}");
        assert_eq!(p.parent(), Some(Path::new("/var/lib/app")));
    }

    #[test]
    fn lines_are_reports_malformed_or_newer() {
        let r = Report::error("k", "m");
        assert!(matches!(parse_line(&r.to_json()), Line::Report(_)));
        assert!(matches!(parse_line(b"{\"torn"), Line::Malformed));
        let mut v = serde_json::to_value(&r).unwrap();
        v["schema"] = serde_json::Value::from(SCHEMA_VERSION + 1);
        assert!(matches!(
            parse_line(&serde_json::to_vec(&v).unwrap()),
            Line::Newer(_)
        ));
        v["severity"] = serde_json::Value::from("catastrophic");
        assert!(matches!(
            parse_line(&serde_json::to_vec(&v).unwrap()),
            Line::Newer(_)
        ));
    }
}
