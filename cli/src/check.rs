//! `tidings check`: diagnose a deployment, one line per check, with the
//! fix for each that fails.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream as JsStream;
use async_nats::jetstream::Context;
use async_nats::Client;
use clap::Args;
use futures::StreamExt;
use tidings::nats::{
    stream_covers, NatsConfig, DEFAULT_SUBJECT, MSG_ID_HEADER_ROOM, STREAM_DUPLICATE_WINDOW,
};
use tidings::Report;

use crate::conn::{self, ConnectProblem, ConnectionArgs};
use crate::output::{paint, stdout_colour, Style};
use crate::Failure;

/// Flags of `tidings check`.
#[derive(Args, Debug)]
#[command(after_help = "\
Checks, in order, one line each (✓ passed, ✗ failed with the fix, - not
applicable or skipped because an earlier check failed):
  reachable       the server answers at --server
  authenticated   it accepts the credentials given (or needs none)
  TLS             encrypted when the URL is tls:// (or the server requires it)
  server          its version and max_payload
  JetStream       enabled for the account (required with --stream)
  stream          --stream exists and captures --subject (else which streams
                  and subjects exist, and what to change)
  publish         a real test report is published on --subject: with --stream
                  it must be acknowledged by that stream (then it is deleted
                  from it again); without, it must come back to a subscriber
  deduplication   with --stream: re-publishing the same Nats-Msg-Id (the
                  report id) is recognised as a duplicate within the stream's
                  duplicate window
  payload         a typical report fits the server's max_payload (less the
                  room for the Nats-Msg-Id header with JetStream)

The test report has kind `tidings_check` and service `tidings-check`;
subscribers of the subject see it. Exit code 0 when every check passed, 1
when any failed, 2 on bad flags.")]
pub struct CheckArgs {
    /// The subject reporters publish on.
    #[arg(long, default_value = DEFAULT_SUBJECT, value_name = "SUBJECT")]
    subject: String,
    /// The JetStream stream that should store the reports; without it,
    /// core NATS delivery is checked.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    #[command(flatten)]
    conn: ConnectionArgs,
}

/// Runs `tidings check`.
pub fn run(args: CheckArgs) -> Result<ExitCode, Failure> {
    let server = args.conn.server_or_default();
    let config = args
        .conn
        .nats_config(&server, &args.subject, args.stream.is_some())?;
    if let Some(stream) = &args.stream {
        config
            .clone()
            .ensure_stream(stream.clone())
            .validate()
            .map_err(|e| Failure::usage(format!("--stream: {}", e.problem())))?;
    }
    let rt = conn::runtime()?;
    let mut checks = Checks::new();
    println!(
        "tidings check: server {}, subject {}{}",
        config.redacted_servers().join(","),
        config.subject,
        args.stream
            .as_ref()
            .map_or(String::new(), |s| format!(", stream {s}"))
    );
    rt.block_on(check(&args, &config, &mut checks))?;
    let total = checks.passed + checks.failed;
    if checks.failed == 0 {
        println!("all {total} checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} of {total} checks failed", checks.failed);
        Ok(ExitCode::from(crate::EXIT_FAILED))
    }
}

/// Prints check lines and counts them.
struct Checks {
    colour: bool,
    passed: u32,
    failed: u32,
}

impl Checks {
    fn new() -> Checks {
        Checks {
            colour: stdout_colour(),
            passed: 0,
            failed: 0,
        }
    }

    fn ok(&mut self, name: &str, text: impl AsRef<str>) {
        self.passed += 1;
        println!(
            "{} {name}: {}",
            paint(self.colour, Style::Green, "✓"),
            text.as_ref()
        );
    }

    fn fail(&mut self, name: &str, text: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failed += 1;
        println!(
            "{} {name}: {}; fix: {}",
            paint(self.colour, Style::Red, "✗"),
            text.as_ref(),
            fix.as_ref()
        );
    }

    fn skip(&mut self, name: &str, text: impl AsRef<str>) {
        println!(
            "{} {name}: {}",
            paint(self.colour, Style::Dim, "-"),
            text.as_ref()
        );
    }

    fn skip_all(&mut self, names: &[&str], why: &str) {
        for name in names {
            self.skip(name, format!("skipped ({why})"));
        }
    }
}

const AFTER_CONNECT: [&str; 6] = [
    "server",
    "JetStream",
    "stream",
    "publish",
    "deduplication",
    "payload",
];

async fn check(args: &CheckArgs, config: &NatsConfig, checks: &mut Checks) -> Result<(), Failure> {
    let servers = config.redacted_servers().join(",");
    let tls_url = config.servers.iter().any(|u| u.starts_with("tls://"));
    let started = Instant::now();
    let client = match conn::connect(config, &args.conn, None).await? {
        Ok(client) => client,
        Err(failure) => {
            match failure.problem {
                ConnectProblem::Unreachable => {
                    checks.fail(
                        "reachable",
                        format!("cannot connect to {servers}: {}", failure.message),
                        "start nats-server there, or point --server (NATS_URL) at the right \
                         host and port",
                    );
                    checks.skip_all(&["authenticated", "TLS"], "not connected");
                }
                ConnectProblem::Auth => {
                    checks.ok("reachable", format!("{servers} answered"));
                    let fix = "give the credentials the server expects: --user and --password \
                               (NATS_USER, NATS_PASSWORD), --token (NATS_TOKEN) or --creds \
                               (NATS_CREDS)";
                    checks.fail(
                        "authenticated",
                        format!(
                            "the server refused {} ({})",
                            args.conn.auth_description(),
                            failure.message
                        ),
                        fix,
                    );
                    checks.skip_all(&["TLS"], "not connected");
                }
                ConnectProblem::Tls => {
                    checks.ok("reachable", format!("{servers} answered"));
                    checks.skip_all(&["authenticated"], "not connected");
                    checks.fail(
                        "TLS",
                        format!("the TLS handshake failed ({})", failure.message),
                        "use tls:// only with a server that has TLS configured, and make sure \
                         its certificate is trusted by this machine",
                    );
                }
            }
            checks.skip_all(&AFTER_CONNECT, "not connected");
            return Ok(());
        }
    };
    let connected_in = started.elapsed();
    let info = client.server_info();
    checks.ok(
        "reachable",
        format!("connected to {servers} in {} ms", connected_in.as_millis()),
    );
    let creds = args.conn.auth_description();
    if info.auth_required {
        checks.ok("authenticated", format!("the server accepted {creds}"));
    } else if creds == "no credentials" {
        checks.ok("authenticated", "the server requires no authentication");
    } else {
        checks.ok(
            "authenticated",
            format!("the server requires no authentication ({creds} not needed)"),
        );
    }
    if tls_url || info.tls_required {
        checks.ok("TLS", "the connection is encrypted");
    } else {
        checks.ok(
            "TLS",
            "not used (nats:// URL, and the server does not require it)",
        );
    }
    let jetstream = args.stream.is_some();
    if jetstream && !info.headers {
        checks.fail(
            "server",
            format!(
                "nats-server {} does not support message headers, which Nats-Msg-Id needs",
                info.version
            ),
            "upgrade nats-server to 2.2 or later",
        );
    } else {
        let name = if info.server_name.is_empty() || info.server_name == info.server_id {
            String::new()
        } else {
            format!(" ({})", info.server_name)
        };
        checks.ok(
            "server",
            format!(
                "nats-server {}{name}, max_payload {}",
                info.version,
                bytes(info.max_payload)
            ),
        );
    }

    let js = async_nats::jetstream::new(client.clone());
    let account = jetstream_account(&client).await;
    let stream = match (&args.stream, account) {
        (None, Ok(_)) => {
            let by = match js.stream_by_subject(config.subject.clone()).await {
                Ok(name) => format!(
                    "; stream {name} stores {} (check it with --stream {name})",
                    config.subject
                ),
                Err(_) => format!("; no stream stores {}", config.subject),
            };
            checks.ok("JetStream", format!("enabled{by}"));
            checks.skip(
                "stream",
                "not checked (no --stream): checking core NATS delivery",
            );
            None
        }
        (None, Err(_)) => {
            checks.skip(
                "JetStream",
                "not enabled (fine for core NATS delivery, which stores nothing)",
            );
            checks.skip("stream", "not checked (no --stream)");
            None
        }
        (Some(_), Err(e)) => {
            checks.fail(
                "JetStream",
                format!("not enabled for this account ({e})"),
                "start nats-server with -js (or a `jetstream {}` block in its configuration), \
                 or enable JetStream for this account",
            );
            checks.skip("stream", "skipped (no JetStream)");
            None
        }
        (Some(name), Ok(account)) => {
            let streams = account
                .get("streams")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            checks.ok(
                "JetStream",
                format!("enabled ({streams} streams in this account)"),
            );
            check_stream(&js, name, config, checks).await
        }
    };

    match (&args.stream, stream) {
        (Some(_), Some(stream)) => publish_jetstream(&js, stream, &config.subject, checks).await,
        (Some(_), None) => checks.skip_all(&["publish", "deduplication"], "no usable stream"),
        (None, _) => {
            publish_core(&client, &config.subject, checks).await;
            checks.skip(
                "deduplication",
                "not applicable to core NATS (use --stream)",
            );
        }
    }

    check_payload(config, info.max_payload, jetstream, checks);
    let _ = client.drain().await;
    Ok(())
}

/// The account's JetStream information (`$JS.API.INFO`), read as plain
/// JSON so that servers older or newer than the client library answer alike;
/// why not when JetStream is not available.
async fn jetstream_account(client: &Client) -> Result<serde_json::Value, String> {
    use async_nats::client::RequestErrorKind;
    let request = client.request("$JS.API.INFO", bytes::Bytes::new());
    let reply = match tokio::time::timeout(Duration::from_secs(5), request).await {
        Err(_) => return Err("no answer within 5s".to_owned()),
        Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => {
            return Err("nothing answers JetStream requests".to_owned())
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(reply)) => reply,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| format!("unreadable answer: {e}"))?;
    match value.get("error") {
        Some(error) => Err(error
            .get("description")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("error")
            .to_owned()),
        None => Ok(value),
    }
}

/// `--dupe-window` for `nats stream add/edit`: the window of the streams
/// tidings creates ([`STREAM_DUPLICATE_WINDOW`], `2m`).
fn dupe_window() -> humantime::FormattedDuration {
    humantime::format_duration(STREAM_DUPLICATE_WINDOW)
}

/// The stream check; the stream when it exists and captures the subject.
async fn check_stream(
    js: &Context,
    name: &str,
    config: &NatsConfig,
    checks: &mut Checks,
) -> Option<JsStream> {
    let subject = config.subject.as_str();
    let wanted = config.stream_subjects().join(",");
    let stream = match js.get_stream(name).await {
        Ok(stream) => stream,
        Err(e) => {
            if !conn::stream_not_found(&e) {
                checks.fail(
                    "stream",
                    format!("cannot read stream {name} ({e})"),
                    "check that this user may use the JetStream API ($JS.API.>)",
                );
                return None;
            }
            let existing = list_streams(js).await;
            let here = if existing.is_empty() {
                "the server has no streams".to_owned()
            } else {
                format!("streams here: {}", existing.join("; "))
            };
            checks.fail(
                "stream",
                format!("no stream named {name} ({here})"),
                format!(
                    "create it: nats stream add {name} --subjects '{wanted}' --dupe-window {} \
                     --defaults (or let the reporter create it: NatsConfig::ensure_stream), or \
                     name an existing one with --stream",
                    dupe_window()
                ),
            );
            return None;
        }
    };
    let cfg = &stream.cached_info().config;
    let subjects = cfg.subjects.join(", ");
    let window = humantime::format_duration(cfg.duplicate_window);
    let captures = stream_covers(&cfg.subjects, subject);
    if !captures {
        let other = match js.stream_by_subject(subject.to_owned()).await {
            Ok(other) => format!("; stream {other} does"),
            Err(_) => "; no stream does".to_owned(),
        };
        let mut fixed = cfg.subjects.clone();
        fixed.extend(config.stream_subjects());
        checks.fail(
            "stream",
            format!("{name} does not capture {subject} (its subjects: {subjects}){other}"),
            format!(
                "add the subjects to the stream: nats stream edit {name} --subjects '{}', or \
                 publish on a subject it captures (--subject), or name the stream that \
                 captures it",
                fixed.join(",")
            ),
        );
        return None;
    }
    let below = format!("{subject}.>");
    let suffix_note = if stream_covers(&cfg.subjects, &below) {
        format!(" and {below}")
    } else {
        format!(
            " (not {below}: reporters that add the severity or kind to the subject would not \
             be stored)"
        )
    };
    checks.ok(
        "stream",
        format!(
            "{name} captures {subject}{suffix_note}; subjects {subjects}; duplicate window \
             {window}"
        ),
    );
    Some(stream)
}

/// `NAME (subjects)` for every stream.
async fn list_streams(js: &Context) -> Vec<String> {
    let mut out = Vec::new();
    let mut streams = js.streams();
    while let Some(Ok(info)) = streams.next().await {
        out.push(format!(
            "{} ({})",
            info.config.name,
            info.config.subjects.join(", ")
        ));
    }
    out.sort();
    out
}

/// A test report: small, and recognisable as a check.
fn test_report() -> Report {
    Report::info(
        "tidings_check",
        "tidings check: a test report, safe to ignore",
    )
    .with_service("tidings-check")
}

async fn publish_jetstream(js: &Context, stream: JsStream, subject: &str, checks: &mut Checks) {
    let name = stream.cached_info().config.name.clone();
    let window = stream.cached_info().config.duplicate_window;
    let report = test_report();
    let publish = || async {
        let message = PublishMessage::build()
            .payload(report.to_json().into())
            .message_id(report.id.to_string());
        let ack = js
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .map_err(|_| "no acknowledgement within 10s".to_owned())?
            .map_err(|e| e.to_string())
    };
    let started = Instant::now();
    let first = match publish().await {
        Ok(ack) => ack,
        Err(e) => {
            checks.fail(
                "publish",
                format!("a test report on {subject} was not stored ({e})"),
                "check the stream's limits and that this user may publish on the subject",
            );
            checks.skip("deduplication", "skipped (the publish failed)");
            return;
        }
    };
    let took = started.elapsed();
    let second = publish().await;
    let deleted = stream.delete_message(first.sequence).await.is_ok();
    checks.ok(
        "publish",
        format!(
            "test report {} stored in {} at sequence {} in {} ms ({})",
            report.id,
            first.stream,
            first.sequence,
            took.as_millis(),
            if deleted {
                "deleted again"
            } else {
                "left in the stream"
            }
        ),
    );
    match second {
        Ok(ack) if ack.duplicate => checks.ok(
            "deduplication",
            format!(
                "re-publishing Nats-Msg-Id {} was recognised as a duplicate (window {})",
                report.id,
                humantime::format_duration(window)
            ),
        ),
        Ok(ack) => {
            let _ = stream.delete_message(ack.sequence).await;
            checks.fail(
                "deduplication",
                format!(
                    "re-publishing the same Nats-Msg-Id was stored again (sequence {}); the \
                     duplicate window of {name} is {}",
                    ack.sequence,
                    humantime::format_duration(window)
                ),
                format!(
                    "give the stream a duplicate window: nats stream edit {name} --dupe-window {}",
                    dupe_window()
                ),
            )
        }
        Err(e) => checks.fail(
            "deduplication",
            format!("the re-publish failed ({e})"),
            "run the check again; if it persists, check the stream's limits",
        ),
    }
}

async fn publish_core(client: &Client, subject: &str, checks: &mut Checks) {
    let report = test_report();
    let id = report.id;
    let result = async {
        let mut sub = client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        client
            .publish(subject.to_owned(), report.to_json().into())
            .await
            .map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())?;
        let wait = async {
            while let Some(msg) = sub.next().await {
                if Report::from_json(&msg.payload).is_ok_and(|r| r.id == id) {
                    return Ok(started.elapsed());
                }
            }
            Err("the subscription ended".to_owned())
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .map_err(|_| "it did not come back within 10s".to_owned())?
    }
    .await;
    match result {
        Ok(took) => checks.ok(
            "publish",
            format!(
                "test report {id} on {subject} came back to a subscriber in {} ms (core NATS \
                 stores nothing: add --stream to check storage)",
                took.as_millis()
            ),
        ),
        Err(e) => checks.fail(
            "publish",
            format!("a test report on {subject} did not arrive ({e})"),
            "check that this user may publish and subscribe on the subject",
        ),
    }
}

/// A typical report: an error with a short cause chain and a handful of
/// context entries; and the same with a captured backtrace of 40 frames.
fn typical_reports() -> (Report, Report) {
    let mut r = Report::error(
        "database_failure",
        "could not charge order 81723: the database did not answer within 5s",
    )
    .with_service("billing")
    .with_instance("billing-7f9c6d5b4-x2x8q")
    .with_context("db", "primary")
    .with_context("attempt", 3)
    .with_context("order_id", 81723)
    .with_context("customer", "c-20391")
    .with_context("elapsed_ms", 5004.7)
    .with_context(
        "query",
        "UPDATE orders SET state = 'charged' WHERE id = $1 AND state = 'pending'",
    );
    r.chain = vec![
        "query failed: connection reset by peer".to_owned(),
        "connection reset by peer (os error 104)".to_owned(),
    ];
    let backtrace: String = (0..40)
        .map(|i| {
            format!(
                "  {i:>2}: billing::orders::charge_order::{{{{closure}}}}\n             at \
                 ./src/orders/charge.rs:{}:17\n",
                100 + i
            )
        })
        .collect();
    let with_backtrace = r.clone().with_backtrace(backtrace);
    (r, with_backtrace)
}

fn check_payload(config: &NatsConfig, max_payload: usize, jetstream: bool, checks: &mut Checks) {
    let (typical, with_bt) = typical_reports();
    let typical = typical.to_json().len();
    let with_bt = with_bt.to_json().len();
    let (limit, how) = if jetstream {
        (
            config.jetstream_payload_limit(max_payload),
            format!(
                "the server's max_payload less {MSG_ID_HEADER_ROOM} bytes for the Nats-Msg-Id \
                 header"
            ),
        )
    } else {
        (
            config.payload_limit(max_payload),
            "the server's max_payload".to_owned(),
        )
    };
    if typical > limit {
        checks.fail(
            "payload",
            format!(
                "a typical report ({}) does not fit the limit of {} ({how}): reports would be \
                 cut (\"truncated\": true) and those that cannot be cut spilled",
                bytes(typical),
                bytes(limit)
            ),
            "raise max_payload in the server's configuration (e.g. `max_payload: 1MB`, the \
             default)",
        );
    } else if with_bt > limit {
        checks.ok(
            "payload",
            format!(
                "a typical report ({}) fits the limit of {} ({how}); one with a backtrace ({}) \
                 would be truncated",
                bytes(typical),
                bytes(limit),
                bytes(with_bt)
            ),
        );
    } else {
        checks.ok(
            "payload",
            format!(
                "a typical report ({}, {} with a backtrace) fits the limit of {} ({how})",
                bytes(typical),
                bytes(with_bt),
                bytes(limit)
            ),
        );
    }
}

/// `1234 bytes`, or with KiB/MiB for larger sizes.
fn bytes(n: usize) -> String {
    if n >= 1024 * 1024 {
        format!("{n} bytes ({:.1} MiB)", n as f64 / (1024.0 * 1024.0))
    } else if n >= 10 * 1024 {
        format!("{n} bytes ({:.1} KiB)", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typical_report_is_a_realistic_size() {
        let (typical, with_bt) = typical_reports();
        let (a, b) = (typical.to_json().len(), with_bt.to_json().len());
        assert!((500..2000).contains(&a), "{a}");
        assert!((3000..8000).contains(&b), "{b}");
    }

    #[test]
    fn the_suggested_duplicate_window_is_two_minutes() {
        assert_eq!(dupe_window().to_string(), "2m");
    }
}
