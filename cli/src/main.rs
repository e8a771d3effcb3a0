//! The `tidings` command-line tool: `tail` follows reports live, `check`
//! diagnoses a deployment, `replay` sends a fallback file to NATS, `spool`
//! inspects and replays a spool directory, `demo` shows the guarantees on a
//! simulated service, `completions` prints shell completions.
//!
//! Run `tidings help` (or `tidings help <command>`) for the contract of each
//! command; exit codes are listed in [`EXIT_CODES`].

mod check;
mod conn;
mod demo;
mod output;
mod payload;
mod progress;
mod replay;
mod runtimes;
mod spool;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::conn::ConnectionArgs;

/// The exit codes, as shown at the end of `tidings --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0    success (for tail: --count reached, Ctrl-C, or the output was closed)
  1    a check or verification failed: `check` found a problem, `demo` could
       not verify every report, `replay` could not send every report (they are
       in the failed file), `spool replay` stalled
  2    usage or configuration error: a bad flag or value, a missing file, a
       directory that is not a spool; nothing was sent
  3    (tail, replay) NATS could not be used: the server is unreachable,
       refused the credentials, or has no such stream; nothing was sent
  130  `replay` was interrupted (Ctrl-C); rerunning it is safe within the
       stream's duplicate window";

/// Exit code 1: a check or verification failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code 2: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code 3: NATS unreachable, credentials refused, stream missing.
pub const EXIT_NATS: u8 = 3;
/// Exit code 130: interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A command that could not do its job: the message (never containing a
/// secret) and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// One of the `EXIT_*` codes.
    pub code: u8,
    /// What went wrong, naming the flag at fault where there is one.
    pub message: String,
}

impl Failure {
    /// A usage or configuration error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// NATS could not be used (exit code 3).
    pub fn nats(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_NATS,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::usage(message)
    }
}

/// tidings: report errors to NATS and never silently lose one.
///
/// Connection settings (--server, --user, --password, --token, --creds) are
/// the `nats` CLI's and can come from its environment variables instead
/// (NATS_URL, NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS); passwords
/// and tokens are never printed, not even in errors.
#[derive(Parser, Debug)]
#[command(
    name = "tidings",
    version,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Follow reports live, one line each, from a subject or a JetStream stream.
    Tail(Box<tail::TailArgs>),
    /// Diagnose a deployment: server, credentials, JetStream, stream, a real
    /// publish round trip, payload limit.
    Check(check::CheckArgs),
    /// Send a fallback file's reports (JSON lines) to NATS with their
    /// original ids; the ones that fail go to a new file.
    Replay(replay::ReplayArgs),
    /// Inspect or replay a spool directory.
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// A simulated service reports a burst of errors, part of them during a
    /// transport outage, then shuts down and shows where every report went.
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For example `tidings completions bash > /etc/bash_completion.d/tidings`,
    /// or `tidings completions zsh > "${fpath[1]}/_tidings"`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum SpoolCommand {
    /// What a spool directory holds: segments, live reports, their time
    /// span, damage, the process holding its lock.
    ///
    /// Read-only: works while a program has the spool open, and changes
    /// nothing. A directory that is not a spool (no LOCK file, no segment
    /// files) is an error (exit code 2).
    Inspect {
        /// The spool directory.
        dir: PathBuf,
    },
    /// Deliver what a spool holds to NATS, with progress.
    ///
    /// Opens the spool (taking its lock: the program that owns it must not
    /// be running), delivers every live report with its original id (a
    /// JetStream stream deduplicates what already arrived), and removes
    /// from the spool only what was delivered. Ends when the spool is empty
    /// (exit 0) or when it made no progress for --stall-timeout (exit 1,
    /// the rest stays in the spool for the next run).
    #[command(after_help = EXIT_CODES)]
    Replay(Box<SpoolReplayArgs>),
}

/// Flags of `tidings spool replay`.
#[derive(Args, Debug)]
struct SpoolReplayArgs {
    /// The spool directory.
    dir: PathBuf,
    /// Publish with JetStream (acknowledged, deduplicated by report id);
    /// a stream must capture the subject.
    #[arg(long)]
    jetstream: bool,
    /// The subject to publish on.
    #[arg(long, default_value = tidings::nats::DEFAULT_SUBJECT, value_name = "SUBJECT")]
    subject: String,
    /// Give up after this many seconds without progress.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = positive_u64)]
    stall_timeout: u64,
    #[command(flatten)]
    conn: ConnectionArgs,
}

/// Flags of `tidings demo`.
#[derive(Args, Debug)]
#[command(after_help = "\
Guarantee: every accepted report is found exactly once, delivered or in the
spill file; the run ends with `verified: ...` (exit 0) or `NOT VERIFIED: ...`
(exit 1). Without --nats it needs nothing installed.")]
struct DemoArgs {
    /// Adapter to run on.
    #[arg(long, value_enum, default_value = "blocking")]
    runtime: demo::RuntimeChoice,
    /// Send to this NATS server instead of the embedded default (a
    /// JSON-lines file in --dir).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// With --nats: publish to JetStream (stream TIDINGS_DEMO, created if
    /// missing).
    #[arg(long)]
    jetstream: bool,
    /// With --nats: the subject.
    #[arg(long, default_value = "tidings.demo", value_name = "SUBJECT")]
    subject: String,
    /// Reporting threads.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = positive_usize)]
    threads: usize,
    /// Reports per thread.
    #[arg(long, default_value_t = 250, value_name = "N", value_parser = positive_usize)]
    reports: usize,
    /// Where the files go.
    #[arg(long, default_value = "tidings-demo", value_name = "DIR")]
    dir: PathBuf,
    /// Shutdown deadline in seconds (e.g. 5 or 0.5).
    #[arg(long, default_value = "5", value_name = "SECS", allow_hyphen_values = true,
          value_parser = deadline_secs)]
    deadline: Duration,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if !e.use_stderr() {
                // --help, --version: to stdout, success.
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(EXIT_USAGE);
            }
            let text = e.render().to_string();
            eprint!("tidings: {}", text.strip_prefix("error: ").unwrap_or(&text));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("tidings: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Demo(args) => {
            if args.jetstream && args.nats.is_none() {
                return Err(Failure::usage("--jetstream needs --nats URL"));
            }
            let opts = demo::DemoOptions {
                runtime: args.runtime,
                nats: args.nats,
                jetstream: args.jetstream,
                subject: args.subject,
                threads: args.threads,
                reports_per_thread: args.reports,
                dir: args.dir,
                deadline: args.deadline,
            };
            let result = demo::run(&opts)?;
            Ok(if result.verified.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Command::Spool(SpoolCommand::Inspect { dir }) => {
            spool::inspect(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Spool(SpoolCommand::Replay(args)) => {
            let server = args.conn.server.clone().ok_or_else(|| {
                Failure::usage("spool replay: --nats URL (or --server, NATS_URL) is required")
            })?;
            let opts = spool::ReplayOptions {
                config: args
                    .conn
                    .nats_config(&server, &args.subject, args.jetstream)?,
                stall_timeout: Duration::from_secs(args.stall_timeout),
            };
            Ok(if spool::replay(&args.dir, &opts)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            })
        }
        Command::Tail(args) => tail::run(*args),
        Command::Check(args) => check::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "tidings", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A whole number from 1 to 1,000,000.
fn positive_usize(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 && n <= 1_000_000 => Ok(n),
        _ => Err(format!(
            "expected a whole number from 1 to 1000000, got {v:?}"
        )),
    }
}

/// A whole number from 1 to 1,000,000.
fn positive_u64(v: &str) -> Result<u64, String> {
    positive_usize(v).map(|n| n as u64)
}

/// Seconds, more than 0 and less than a day.
fn deadline_secs(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| format!("expected seconds, e.g. 5 or 0.5, got {v:?}"))?;
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err("must be between 0 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
