//! `tidings tail`: follow reports live, from a core NATS subject or a
//! JetStream stream, filtered, one line each (or the payloads as JSON
//! lines).

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::{Client, Event};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use serde_json::Value;
use tidings::{Report, Severity, SCHEMA_VERSION};
use tokio::sync::watch;

use crate::conn::{self, ConnectionArgs};
use crate::output::{paint, stdout_colour, Style};
use crate::payload::{parse, Parsed};
use crate::Failure;

/// Flags of `tidings tail`.
#[derive(Args, Debug)]
#[command(after_help = "\
What it guarantees:
  * From a stream (--stream), every message from the starting point on is
    shown once, in stream order, also across a server restart or a lost
    connection: tail tracks the last stream sequence it saw and, when its
    consumer must be recreated, resumes at the next one (nothing repeated,
    nothing skipped).
  * From a subject (core NATS), what the server delivers while tail is
    subscribed; core NATS keeps nothing, so reports published while tail is
    disconnected are not shown.
  * A message that is not a report (not JSON, or JSON of another shape), or a
    report with a newer schema than this tidings reads, is shown as such;
    with --json, a non-report goes to stderr, never to stdout.
  * A line on stderr, `tidings tail: following ...`, says when it is
    listening; progress and problems go to stderr, reports to stdout.

Ends with exit code 0 on Ctrl-C, on --count, or when stdout is closed (e.g.
`| head`); 2 on bad flags; 3 when the server, the credentials or the stream
are not usable at the start (later outages are waited out).

Examples:
  tidings tail                                   # core NATS, subject tidings.>
  tidings tail --stream TIDINGS --since 10m --severity warning
  tidings tail --stream TIDINGS --last 100 --json | jq .message")]
pub struct TailArgs {
    /// The subject to follow (wildcards allowed) [default: tidings.>]; with
    /// --stream, only the stream's messages on this subject.
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// Follow this JetStream stream (an ordered consumer) instead of a core
    /// subscription; by default from its next message on.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// With --stream: start with the messages stored in this last period
    /// (e.g. 10m, 2h, 1d) or since this time (RFC 3339, e.g.
    /// 2024-05-01T12:00:00Z).
    #[arg(long, value_name = "WHEN", requires = "stream", group = "start",
          value_parser = parse_since)]
    since: Option<SystemTime>,
    /// With --stream: start with the stream's last N messages (on --subject
    /// if given; counted before the --service/--severity/--kind filters).
    #[arg(long, value_name = "N", requires = "stream", group = "start")]
    last: Option<u64>,
    /// With --stream: start with every message the stream holds.
    #[arg(long, requires = "stream", group = "start")]
    all: bool,
    /// Only reports from this service (repeatable: any of them).
    #[arg(long, value_name = "NAME")]
    service: Vec<String>,
    /// Only reports of at least this severity.
    #[arg(long, value_enum, value_name = "LEVEL")]
    severity: Option<SeverityArg>,
    /// Only reports whose kind matches this glob (`*` any text, `?` one
    /// character; repeatable: any of them), e.g. db_*.
    #[arg(long, value_name = "GLOB")]
    kind: Vec<String>,
    /// Print each report's payload unchanged, one per line (JSON lines),
    /// for piping.
    #[arg(long)]
    json: bool,
    /// Also show id, subject, source, context, the cause chain and the
    /// backtrace.
    #[arg(short, long)]
    verbose: bool,
    /// Exit after N reports have been shown (after the filters).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    conn: ConnectionArgs,
}

/// A severity on the command line.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SeverityArg {
    /// Diagnostic detail.
    Debug,
    /// Worth knowing.
    Info,
    /// Wrong, but carrying on.
    Warning,
    /// An operation failed.
    Error,
    /// Cannot do its job.
    Critical,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Severity {
        match s {
            SeverityArg::Debug => Severity::Debug,
            SeverityArg::Info => Severity::Info,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Error => Severity::Error,
            SeverityArg::Critical => Severity::Critical,
        }
    }
}

/// `10m` (that long ago) or an RFC 3339 time.
fn parse_since(v: &str) -> Result<SystemTime, String> {
    if let Ok(d) = humantime::parse_duration(v) {
        return SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| format!("{v} ago is before the epoch"));
    }
    humantime::parse_rfc3339_weak(v.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(v))
        .map_err(|_| format!("expected a period (10m, 2h, 1d) or an RFC 3339 time, got {v:?}"))
}

/// Runs `tidings tail`.
pub fn run(args: TailArgs) -> Result<ExitCode, Failure> {
    let subject = match (&args.subject, &args.stream) {
        (Some(s), _) => s.clone(),
        (None, None) => "tidings.>".to_owned(),
        (None, Some(_)) => String::new(),
    };
    if !subject.is_empty() {
        validate_pattern(&subject).map_err(|p| Failure::usage(format!("--subject: {p}")))?;
    }
    if let Some(0) = args.count {
        return Err(Failure::usage("--count: must be at least 1"));
    }
    // Only the server settings are validated here: the subject may have
    // wildcards, which a publish subject may not.
    let config = args
        .conn
        .nats_config(&args.conn.server_or_default(), "tidings.tail", false)?;
    let rt = conn::runtime()?;
    rt.block_on(async move {
        let (stop_tx, stop) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        let disconnected = Arc::new(AtomicBool::new(false));
        // Counts reconnections: a stream consumer is recreated after each
        // (the server may have restarted and lost it), instead of waiting
        // for the client library to notice missing heartbeats.
        let (reconnects_tx, reconnects) = watch::channel(0u64);
        let hook = {
            let disconnected = disconnected.clone();
            Box::new(move |event: Event| match event {
                Event::Disconnected if !disconnected.swap(true, Ordering::SeqCst) => {
                    eprintln!("tidings tail: disconnected from the server; reconnecting");
                }
                Event::Connected if disconnected.swap(false, Ordering::SeqCst) => {
                    eprintln!("tidings tail: reconnected");
                    reconnects_tx.send_modify(|n| *n += 1);
                }
                _ => {}
            })
        };
        let client = conn::connect(&config, &args.conn, Some(hook))
            .await?
            .map_err(|e| e.into_failure(&config, &args.conn))?;
        let servers = config.redacted_servers().join(",");
        let mut printer = Printer::new(&args);
        let result = match &args.stream {
            None => follow_subject(&client, &subject, &servers, &mut printer, stop).await,
            Some(stream) => {
                let start = match (&args.since, args.last, args.all) {
                    (Some(t), _, _) => StartAt::Time(*t),
                    (_, Some(n), _) => StartAt::Last(n),
                    (_, _, true) => StartAt::All,
                    _ => StartAt::New,
                };
                let target = StreamTarget {
                    name: stream,
                    filter: &subject,
                    servers: &servers,
                    from: start,
                };
                follow_stream(&client, target, &mut printer, stop, reconnects).await
            }
        };
        // Leave quietly: nothing was published.
        drop(client);
        result.map(|()| ExitCode::SUCCESS)
    })
}

/// Completes on Ctrl-C (or SIGTERM on Unix).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Checks a subscription subject: non-empty tokens, `*` and `>` only as
/// whole tokens, `>` last.
fn validate_pattern(subject: &str) -> Result<(), String> {
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(format!("{subject:?} has an empty token"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{subject:?} contains whitespace"));
        }
        if (token.contains('*') && *token != "*") || (token.contains('>') && *token != ">") {
            return Err(format!(
                "{subject:?}: wildcards must be whole tokens (a.*.c, a.>)"
            ));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(format!("{subject:?}: '>' must be the last token"));
        }
    }
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Follows a core subject until stopped or --count.
async fn follow_subject(
    client: &Client,
    subject: &str,
    servers: &str,
    printer: &mut Printer,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Failure> {
    let mut sub = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| Failure::nats(format!("cannot subscribe to {subject}: {e}")))?;
    round_trip(client).await?;
    eprintln!("tidings tail: following subject {subject} on {servers} (Ctrl-C to stop)");
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return Ok(()),
            msg = sub.next() => match msg {
                Some(msg) => {
                    if printer.message(&msg.subject, None, &msg.payload)? == Flow::Done {
                        return Ok(());
                    }
                }
                None => return Err(Failure::nats("the NATS connection was closed")),
            }
        }
    }
}

/// Waits until the server has processed what this client sent before
/// (its subscriptions): a message to a fresh inbox comes back only then.
async fn round_trip(client: &Client) -> Result<(), Failure> {
    let inbox = client.new_inbox();
    let fail = |e: String| Failure::nats(format!("no answer from the server: {e}"));
    let mut marker = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| fail(e.to_string()))?;
    client
        .publish(inbox, bytes::Bytes::new())
        .await
        .map_err(|e| fail(e.to_string()))?;
    client.flush().await.map_err(|e| fail(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), marker.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(fail("the subscription was not confirmed within 10s".into())),
    }
}

/// Where in a stream to start.
#[derive(Clone, Copy, Debug)]
enum StartAt {
    /// After the last message stored now.
    New,
    /// Every message.
    All,
    /// Messages stored since then.
    Time(SystemTime),
    /// The last N messages.
    Last(u64),
}

/// The starting point, resolved against the stream's state.
#[derive(Clone, Copy, Debug)]
enum Start {
    All,
    Sequence(u64),
    Time(SystemTime),
}

impl Start {
    fn policy(self) -> DeliverPolicy {
        match self {
            Start::All => DeliverPolicy::All,
            Start::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            Start::Time(t) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from(t),
            },
        }
    }

    /// Whether a message belongs after this starting point (a consumer
    /// recreated by the client library before any message was seen starts
    /// from the beginning; what it sends early is dropped here).
    fn admits(self, sequence: u64, published_unix_nanos: i128) -> bool {
        match self {
            Start::All => true,
            Start::Sequence(s) => sequence >= s,
            Start::Time(t) => {
                let since = t
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i128);
                published_unix_nanos >= since
            }
        }
    }
}

struct StreamTarget<'a> {
    name: &'a str,
    filter: &'a str,
    servers: &'a str,
    from: StartAt,
}

fn ordered(filter: &str, deliver_policy: DeliverPolicy) -> OrderedConfig {
    OrderedConfig {
        filter_subject: filter.to_owned(),
        deliver_policy,
        ..Default::default()
    }
}

/// Follows a stream with an ordered consumer until stopped or --count,
/// recreating the consumer after the last sequence seen whenever it fails.
async fn follow_stream(
    client: &Client,
    target: StreamTarget<'_>,
    printer: &mut Printer,
    mut stop: watch::Receiver<bool>,
    mut reconnects: watch::Receiver<u64>,
) -> Result<(), Failure> {
    let js = async_nats::jetstream::new(client.clone());
    let stream = match js.get_stream(target.name).await {
        Ok(s) => s,
        Err(e) => return Err(Failure::nats(missing_stream(&js, target.name, &e).await)),
    };
    let state = stream.cached_info().state.clone();
    let (start, mut skip) = match target.from {
        StartAt::New => (Start::Sequence(state.last_sequence + 1), 0),
        StartAt::All => (Start::All, 0),
        StartAt::Time(t) => (Start::Time(t), 0),
        StartAt::Last(n) => {
            let (seq, skip) = locate_last(&stream, target.filter, n, &state).await?;
            (Start::Sequence(seq), skip)
        }
    };
    let mut last_seq = 0u64;
    let mut announced = false;
    let mut warned = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let policy = if last_seq > 0 {
            DeliverPolicy::ByStartSequence {
                start_sequence: last_seq + 1,
            }
        } else {
            start.policy()
        };
        reconnects.borrow_and_update();
        let created = async {
            let consumer = stream
                .create_consumer(ordered(target.filter, policy))
                .await
                .map_err(|e| e.to_string())?;
            let name = consumer.cached_info().name.clone();
            let messages = consumer.messages().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((name, messages))
        };
        let created = tokio::select! {
            _ = stopped(&mut stop) => return Ok(()),
            created = created => created,
        };
        let (consumer_name, mut messages) = match created {
            Ok(m) => m,
            Err(e) => {
                if !warned {
                    warned = true;
                    eprintln!(
                        "tidings tail: cannot follow stream {} right now ({e}); retrying",
                        target.name
                    );
                }
                tokio::select! {
                    _ = stopped(&mut stop) => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if warned {
            eprintln!(
                "tidings tail: following stream {} again, after sequence {last_seq}",
                target.name
            );
        }
        warned = false;
        backoff = Duration::from_millis(100);
        if !announced {
            announced = true;
            let filter = if target.filter.is_empty() {
                String::new()
            } else {
                format!(" (subject {})", target.filter)
            };
            let from = match start {
                Start::All => "its first message".to_owned(),
                Start::Sequence(s) => format!("sequence {s}"),
                Start::Time(t) => humantime::format_rfc3339_seconds(t).to_string(),
            };
            eprintln!(
                "tidings tail: following stream {}{filter} from {from} on {} (Ctrl-C to stop)",
                target.name, target.servers
            );
        }
        loop {
            let next = tokio::select! {
                _ = stopped(&mut stop) => return Ok(()),
                Ok(()) = reconnects.changed() => {
                    // Resume after the last sequence seen on a new consumer;
                    // the old one goes if it survived.
                    drop(messages);
                    let _ = stream.delete_consumer(&consumer_name).await;
                    break;
                }
                next = messages.next() => next,
            };
            match next {
                Some(Ok(msg)) => {
                    let Ok(info) = msg.info() else { continue };
                    let seq = info.stream_sequence;
                    if seq <= last_seq {
                        continue; // already shown: never repeat
                    }
                    if last_seq == 0 && !start.admits(seq, info.published.unix_timestamp_nanos()) {
                        continue;
                    }
                    last_seq = seq;
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    if printer.message(&msg.subject, Some(seq), &msg.payload)? == Flow::Done {
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    eprintln!(
                        "tidings tail: the stream consumer stopped ({e}); resuming after \
                         sequence {last_seq}"
                    );
                    break;
                }
                None => break,
            }
        }
    }
}

/// Where to start for "the last `n` messages": a start sequence and how
/// many messages to skip after it. Asks the server how many messages match
/// from a candidate start (a consumer's pending count), moving the start
/// back while fewer than `n` do (deleted messages, a subject filter).
async fn locate_last(
    stream: &async_nats::jetstream::stream::Stream,
    filter: &str,
    n: u64,
    state: &async_nats::jetstream::stream::State,
) -> Result<(u64, u64), Failure> {
    let first = state.first_sequence.max(1);
    let last = state.last_sequence;
    if n == 0 || state.messages == 0 {
        return Ok((last + 1, 0));
    }
    let mut start = last.saturating_sub(n - 1).max(first);
    let mut step = n;
    loop {
        let consumer = stream
            .create_consumer(ordered(
                filter,
                DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
            ))
            .await
            .map_err(|e| Failure::nats(format!("cannot read the stream: {e}")))?;
        let pending = consumer.cached_info().num_pending;
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
        if pending >= n || start <= first {
            return Ok((start, pending.saturating_sub(n)));
        }
        start = start.saturating_sub(step).max(first);
        step = step.saturating_mul(2);
    }
}

/// Says that stream `name` could not be had, and which streams exist.
async fn missing_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    e: &async_nats::jetstream::context::GetStreamError,
) -> String {
    if !conn::stream_not_found(e) {
        return format!("cannot read stream {name}: {e} (is JetStream enabled on the server?)");
    }
    let mut names = Vec::new();
    let mut list = js.stream_names();
    while let Some(Ok(n)) = list.next().await {
        names.push(n);
    }
    names.sort();
    if names.is_empty() {
        format!("no stream named {name}: the server has no streams")
    } else {
        format!("no stream named {name}; streams here: {}", names.join(", "))
    }
}

/// Whether to go on after a message.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Done,
}

/// Filters and prints messages.
struct Printer {
    json: bool,
    verbose: bool,
    colour: bool,
    services: Vec<String>,
    min_severity: Option<Severity>,
    kinds: Vec<String>,
    shown: u64,
    count: Option<u64>,
}

impl Printer {
    fn new(args: &TailArgs) -> Printer {
        Printer {
            json: args.json,
            verbose: args.verbose,
            colour: !args.json && stdout_colour(),
            services: args.service.clone(),
            min_severity: args.severity.map(Severity::from),
            kinds: args.kind.clone(),
            shown: 0,
            count: args.count,
        }
    }

    /// Whether a report with these fields passes the filters (`None`: a
    /// field a newer schema does not let us read, which passes).
    fn passes(
        &self,
        service: Option<&str>,
        severity: Option<Severity>,
        kind: Option<&str>,
    ) -> bool {
        let service_ok = self.services.is_empty()
            || service.is_none_or(|s| self.services.iter().any(|want| want == s));
        let severity_ok = match (self.min_severity, severity) {
            (Some(min), Some(s)) => s >= min,
            _ => true,
        };
        let kind_ok =
            self.kinds.is_empty() || kind.is_none_or(|k| self.kinds.iter().any(|g| glob(g, k)));
        service_ok && severity_ok && kind_ok
    }

    /// Handles one message; I/O errors other than a closed stdout are
    /// failures.
    fn message(
        &mut self,
        subject: &str,
        sequence: Option<u64>,
        payload: &[u8],
    ) -> Result<Flow, Failure> {
        match self.write(subject, sequence, payload) {
            Ok(flow) => Ok(flow),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::Done),
            Err(e) => Err(Failure::usage(format!("cannot write to stdout: {e}"))),
        }
    }

    fn write(&mut self, subject: &str, sequence: Option<u64>, payload: &[u8]) -> io::Result<Flow> {
        let mut out = io::stdout().lock();
        let seq = sequence.map_or(String::new(), |s| format!(" #{s}"));
        match parse(payload) {
            Parsed::Invalid(why) => {
                let preview =
                    one_line(&String::from_utf8_lossy(&payload[..payload.len().min(200)]));
                if self.json {
                    eprintln!(
                        "tidings tail: a message on {subject}{seq} is not a report ({why}): {preview}"
                    );
                } else {
                    let mark = paint(self.colour, Style::Dim, "-- not a report");
                    writeln!(out, "{mark} on {subject}{seq} ({why}): {preview}")?;
                }
                Ok(Flow::Go)
            }
            Parsed::Newer { schema, value } => {
                let text = |k: &str| value.get(k).and_then(Value::as_str);
                let service = value
                    .get("source")
                    .and_then(|s| s.get("service"))
                    .and_then(Value::as_str);
                let severity = value
                    .get("severity")
                    .and_then(|s| serde_json::from_value::<Severity>(s.clone()).ok());
                if !self.passes(service, severity, text("kind")) {
                    return Ok(Flow::Go);
                }
                if self.json {
                    write_json(&mut out, payload, &value)?;
                } else {
                    let severity_text = text("severity").unwrap_or("?");
                    writeln!(
                        out,
                        "{} {} {} {}: {}  {}",
                        one_line(text("timestamp").unwrap_or("?")),
                        self.severity_label(severity, severity_text),
                        one_line(service.unwrap_or("-")),
                        one_line(text("kind").unwrap_or("?")),
                        one_line(text("message").unwrap_or("")),
                        paint(
                            self.colour,
                            Style::Dim,
                            &format!(
                                "[schema {schema}: newer than this tidings reads ({SCHEMA_VERSION}); \
                                 shown as far as understood]"
                            )
                        )
                    )?;
                    if self.verbose {
                        writeln!(
                            out,
                            "    on {subject}{seq}: {}",
                            one_line(&value.to_string())
                        )?;
                    }
                }
                self.counted()
            }
            Parsed::Report(report) => {
                if !self.passes(
                    Some(&report.source.service),
                    Some(report.severity),
                    Some(&report.kind),
                ) {
                    return Ok(Flow::Go);
                }
                if self.json {
                    let value = serde_json::to_value(&*report).unwrap_or(Value::Null);
                    write_json(&mut out, payload, &value)?;
                } else {
                    self.pretty(&mut out, subject, &seq, &report)?;
                }
                self.counted()
            }
        }
    }

    fn counted(&mut self) -> io::Result<Flow> {
        self.shown += 1;
        io::stdout().flush()?;
        Ok(match self.count {
            Some(n) if self.shown >= n => Flow::Done,
            _ => Flow::Go,
        })
    }

    fn severity_label(&self, severity: Option<Severity>, text: &str) -> String {
        let label = format!("{:<8}", one_line(&text.to_uppercase()));
        let style = match severity {
            Some(Severity::Critical) => Style::Critical,
            Some(Severity::Error) => Style::Red,
            Some(Severity::Warning) => Style::Yellow,
            Some(Severity::Info) => Style::Green,
            Some(Severity::Debug) | None => Style::Dim,
        };
        paint(self.colour, style, &label)
    }

    fn pretty(&self, out: &mut impl Write, subject: &str, seq: &str, r: &Report) -> io::Result<()> {
        let time = humantime::format_rfc3339_millis(
            r.timestamp.as_system_time().max(SystemTime::UNIX_EPOCH),
        );
        let service = if r.source.service.is_empty() {
            "-"
        } else {
            &r.source.service
        };
        let truncated = if r.truncated {
            paint(self.colour, Style::Dim, "  [truncated]")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{} {} {} {}: {}{truncated}",
            paint(self.colour, Style::Dim, &time.to_string()),
            self.severity_label(Some(r.severity), r.severity.as_str()),
            paint(self.colour, Style::Cyan, &one_line(service)),
            paint(self.colour, Style::Bold, &one_line(&r.kind)),
            one_line(&r.message)
        )?;
        if !self.verbose {
            return Ok(());
        }
        writeln!(out, "    id {} on {subject}{seq}", r.id)?;
        let instance = if r.source.instance.is_empty() {
            String::new()
        } else {
            format!(" instance {}", one_line(&r.source.instance))
        };
        writeln!(
            out,
            "    source: {service}{instance} on {} pid {}",
            one_line(&r.source.host),
            r.source.pid
        )?;
        for (key, value) in &r.context {
            writeln!(
                out,
                "    {}: {}",
                one_line(key),
                one_line(&value.to_string())
            )?;
        }
        for cause in &r.chain {
            writeln!(out, "    caused by: {}", one_line(cause))?;
        }
        if let Some(bt) = &r.backtrace {
            writeln!(out, "    backtrace:")?;
            for line in bt.lines() {
                writeln!(out, "      {}", one_line(line))?;
            }
        }
        Ok(())
    }
}

/// Writes a payload unchanged as one JSON line (re-encoded compactly only
/// when it spans several lines).
fn write_json(out: &mut impl Write, payload: &[u8], value: &Value) -> io::Result<()> {
    if payload.contains(&b'\n') || payload.contains(&b'\r') {
        writeln!(out, "{value}")
    } else {
        out.write_all(payload)?;
        out.write_all(b"\n")
    }
}

/// `s` on one line, with control characters (newlines, escape sequences)
/// shown escaped instead of acting on the terminal.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Matches `text` against a glob: `*` any text, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("db_*", "db_failure"));
        assert!(glob("db_*", "db_"));
        assert!(!glob("db_*", "cache_miss"));
        assert!(glob("*", ""));
        assert!(glob("*_failure", "database_failure"));
        assert!(glob("d?_*e", "db_failure"));
        assert!(!glob("db", "db_failure"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn subjects_to_follow() {
        assert!(validate_pattern("tidings.>").is_ok());
        assert!(validate_pattern("tidings.*.error").is_ok());
        assert!(validate_pattern("tidings.>.x").is_err());
        assert!(validate_pattern("tidings..x").is_err());
        assert!(validate_pattern("tid*").is_err());
    }

    #[test]
    fn payloads_are_understood_as_far_as_possible() {
        let r = Report::error("k", "m");
        assert!(matches!(parse(&r.to_json()), Parsed::Report(_)));
        assert!(matches!(parse(b"not json"), Parsed::Invalid(_)));
        assert!(matches!(parse(b"{\"a\":1}"), Parsed::Invalid(_)));
        let mut v = serde_json::to_value(&r).unwrap();
        v["schema"] = Value::from(SCHEMA_VERSION + 1);
        v["new_field"] = Value::from("x");
        let newer = serde_json::to_vec(&v).unwrap();
        assert!(matches!(parse(&newer), Parsed::Newer { .. }));
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(one_line("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
    }
}
