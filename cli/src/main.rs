//! The `tidings` command-line tool.
//!
//! ```text
//! tidings demo [--runtime blocking|tokio|smol] [--nats URL] [--jetstream]
//!              [--threads N] [--reports N] [--dir DIR] [--deadline SECS]
//! ```

mod demo;
mod runtimes;
mod spool;

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
tidings — report errors to NATS and never silently lose one

USAGE:
    tidings demo [OPTIONS]     a simulated service reports a burst of errors, part of
                               them during a transport outage, then shuts down and
                               shows where every report went
    tidings spool inspect DIR  what a spool directory holds (read-only)
    tidings spool replay DIR --nats URL [--jetstream] [--subject S] [--stall-timeout SECS]
                               deliver what a spool holds, with progress
    tidings help               this text

DEMO OPTIONS:
    --runtime <blocking|tokio|smol>   adapter to run on (default: blocking)
    --nats <URL>                      send to this NATS server instead of the embedded
                                      default (a JSON-lines file)
    --jetstream                       with --nats: publish to JetStream (stream
                                      TIDINGS_DEMO, created if missing)
    --subject <SUBJECT>               with --nats: subject (default: tidings.demo)
    --threads <N>                     reporting threads (default: 8)
    --reports <N>                     reports per thread (default: 250)
    --dir <DIR>                       where files go (default: ./tidings-demo)
    --deadline <SECS>                 shutdown deadline (default: 5)
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidings: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.string().map_err(|e| e.to_string())?,
        Some(Long("help")) | Some(Short('h')) | None => {
            print!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(other.unexpected().to_string()),
    };
    match command.as_str() {
        "demo" => {
            let mut opts = demo::DemoOptions::default();
            while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
                let flag = match arg {
                    Long(l) => format!("--{l}"),
                    Short(c) => format!("-{c}"),
                    Value(v) => return Err(format!("unexpected argument {v:?}")),
                };
                let mut value = || flag_value(&mut parser, &flag);
                match flag.as_str() {
                    "--runtime" => opts.runtime = value()?.parse()?,
                    "--nats" => opts.nats = Some(value()?),
                    "--jetstream" => opts.jetstream = true,
                    "--subject" => opts.subject = value()?,
                    "--threads" => opts.threads = positive(&flag, &value()?)?,
                    "--reports" => opts.reports_per_thread = positive(&flag, &value()?)?,
                    "--dir" => opts.dir = value()?.into(),
                    "--deadline" => {
                        let secs: f64 = value()?.parse().map_err(|_| {
                            "--deadline: expected seconds, e.g. 5 or 0.5".to_owned()
                        })?;
                        if !(secs > 0.0 && secs < 86_400.0) {
                            return Err("--deadline: must be between 0 and 86400 seconds".into());
                        }
                        opts.deadline = Duration::from_secs_f64(secs);
                    }
                    "--help" | "-h" => {
                        print!("{USAGE}");
                        return Ok(ExitCode::SUCCESS);
                    }
                    other => return Err(format!("unknown option {other}; try `tidings help`")),
                }
            }
            if opts.jetstream && opts.nats.is_none() {
                return Err("--jetstream needs --nats URL".into());
            }
            let result = demo::run(&opts)?;
            Ok(if result.verified.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "spool" => {
            let sub = match parser.next().map_err(|e| e.to_string())? {
                Some(Value(v)) => v
                    .string()
                    .map_err(|e| format!("{e:?} is not valid UTF-8"))?,
                _ => return Err("spool: expected `inspect DIR` or `replay DIR --nats URL`".into()),
            };
            let dir: std::path::PathBuf = match parser.next().map_err(|e| e.to_string())? {
                Some(Value(v)) => v.into(),
                _ => return Err(format!("spool {sub}: expected a spool directory")),
            };
            match sub.as_str() {
                "inspect" => {
                    if let Some(extra) = parser.next().map_err(|e| e.to_string())? {
                        return Err(extra.unexpected().to_string());
                    }
                    spool::inspect(&dir)?;
                    Ok(ExitCode::SUCCESS)
                }
                "replay" => {
                    let mut opts = spool::ReplayOptions {
                        nats: String::new(),
                        subject: "tidings.reports".into(),
                        jetstream: false,
                        stall_timeout: Duration::from_secs(30),
                    };
                    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
                        let flag = match arg {
                            Long(l) => format!("--{l}"),
                            other => return Err(other.unexpected().to_string()),
                        };
                        let mut value = || flag_value(&mut parser, &flag);
                        match flag.as_str() {
                            "--nats" => opts.nats = value()?,
                            "--subject" => opts.subject = value()?,
                            "--jetstream" => opts.jetstream = true,
                            "--stall-timeout" => {
                                opts.stall_timeout =
                                    Duration::from_secs(positive(&flag, &value()?)? as u64)
                            }
                            other => return Err(format!("unknown option {other}")),
                        }
                    }
                    if opts.nats.is_empty() {
                        return Err("spool replay: --nats URL is required".into());
                    }
                    Ok(if spool::replay(&dir, &opts)? {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                other => Err(format!("unknown spool command {other:?} (inspect, replay)")),
            }
        }
        "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}; try `tidings help`")),
    }
}

/// The value after `flag`, as UTF-8; errors name the flag.
fn flag_value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    use lexopt::ValueExt;
    parser
        .value()
        .map_err(|e| format!("{flag}: {e}"))?
        .string()
        .map_err(|e| format!("{flag}: {e:?} is not valid UTF-8"))
}

fn positive(name: &str, v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 && n <= 1_000_000 => Ok(n),
        _ => Err(format!(
            "{name}: expected a whole number from 1 to 1000000, got {v:?}"
        )),
    }
}
