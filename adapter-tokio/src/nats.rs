//! [`NatsSink`]: reports to NATS through async-nats, core publish or
//! JetStream.
//!
//! The sink makes one honest attempt per batch; retry, backoff, marking the
//! sink down and spilling are core's (see [`tidings_core::Sink`]). What the
//! sink adds is knowing when async-nats would otherwise lie:
//!
//! * `publish` only queues and `flush` only writes to the socket, so a core
//!   report counts as delivered ([`Ack::Sent`]) only once the server has
//!   processed it: after the batch, a marker published to an inbox the sink
//!   subscribes to must come back (the server keeps a connection's order) —
//!   on the *same* connection: what sits in a connection's buffer when it
//!   breaks is dropped silently by async-nats on reconnect, so a marker that
//!   returns on a newer connection is reported as a failure (and retried).
//! * While not connected nothing is published (it would wait in async-nats'
//!   queue, invisible to core): the attempt fails as unavailable at once.
//! * JetStream reports carry `Nats-Msg-Id` = report id and count as delivered
//!   only on the stream's acknowledgement ([`Ack::Stored`]); a retry after a
//!   lost ack is deduplicated by the stream (`duplicate: true`). Acks are
//!   awaited in windows of at most `max_acks_in_flight` (shared by concurrent
//!   batches), far below async-nats' own limit of 5000 un-awaited acks.
//! * A publish the server refuses (`-ERR 'Permissions Violation for
//!   Publish'`) never shows in async-nats' publish results: it arrives as a
//!   server-error event. The sink numbers those events, and a batch fails
//!   the reports whose subject was refused after it started — a core batch
//!   once its marker is back, a JetStream batch as soon as the refusal
//!   arrives (its acks would never come).
//! * What every answer means (retried or spilled, and the message) is
//!   decided by core's one table,
//!   [`ServerAnswer`](tidings_core::nats::ServerAnswer), shared with the sync
//!   sink; the configured stream is checked and created as core's
//!   [`StreamGate`](tidings_core::nats::StreamGate) says.
//! * Why a connection fails (an authorization violation, an untrusted
//!   certificate, a missing client certificate, a server without TLS) is
//!   worded by core's [`ConnectFailure`](tidings_core::nats::ConnectFailure)
//!   from async-nats' error kind and what this sink's TLS hooks saw
//!   (async-nats reports only "TLS error" or "IO error").
//! * Every error text the sink produces passes through core's
//!   [`Redactor`](tidings_core::nats::Redactor): no password, token, NKey
//!   seed or URL user-info reaches stats, logs or the fallback file.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind as JsPublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use futures::future::{self, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use tidings_core::nats::{
    api_error_description, publish_denied, publish_refusal, ConnectFailure, Credentials, Delivery,
    DiscardPolicy, ExistingStream, NatsConfig, Redactor, ServerAnswer, StreamCheck, StreamGate,
    StreamStorage, TlsSeen,
};
use tidings_core::{Ack, Batch, ConfigError, Report, Sink, SinkError, SinkFuture};
use tokio::sync::watch;

/// A NATS sink on async-nats: core publish ([`Ack::Sent`] once the server
/// processed it) or
/// JetStream ([`Ack::Stored`] on the stream's ack), per
/// [`NatsConfig::delivery`].
///
/// Named `"nats"` (core) or `"jetstream"` for core's outcomes and stats;
/// [`NatsSink::named`] changes it (two NATS sinks need two names).
///
/// Connecting waits for the server at most `connect_timeout`: the connection
/// is established in the background and re-established whenever it breaks,
/// for as long as the sink lives; meanwhile every attempt fails as unavailable with the last
/// connection error (a refused connection, an authorization violation),
/// which core shows in [`SinkStats::last_error`](tidings_core::SinkStats).
/// Needs a tokio runtime with I/O and timers.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tidings_core::nats::NatsConfig;
/// use tidings_core::Reporter;
/// use tidings_tokio::NatsSink;
///
/// let config = NatsConfig::new("nats://127.0.0.1:4222", "app.reports")
///     .jetstream()
///     .ensure_stream("REPORTS");
/// // Succeeds even while the server is down (after waiting up to connect_timeout).
/// let sink = NatsSink::connect(config).await?;
/// let (reporter, guard) = tidings_tokio::start(Reporter::builder().sink(sink))?;
/// # drop(reporter);
/// guard.shutdown().await;
/// # Ok(()) }
/// ```
pub struct NatsSink {
    name: String,
    /// Shared with the tasks that send JetStream batches.
    inner: Arc<Inner>,
}

/// Everything but the name: what a batch's send needs.
struct Inner {
    config: NatsConfig,
    /// The subject when every report goes to the same one (no suffix):
    /// cloned per publish (a reference count), not re-allocated.
    fixed_subject: Option<async_nats::Subject>,
    client: Client,
    jetstream: Option<JetStream>,
    link: Arc<Link>,
    redactor: Redactor,
}

struct JetStream {
    context: async_nats::jetstream::Context,
    ack_timeout: Duration,
    window: usize,
    /// Acks outstanding across concurrent batches.
    acks: tokio::sync::Semaphore,
    /// The configured stream, if any: when it is checked and what was
    /// found (core's decisions, shared with the sync sink).
    stream: Option<EnsureStream>,
}

struct EnsureStream {
    name: String,
    gate: StreamGate,
    /// One check at a time; concurrent batches wait for it.
    checking: tokio::sync::Mutex<()>,
}

/// Server errors kept for attributing publish refusals to batches.
const ERRORS_KEPT: usize = 32;
/// How many times a core batch yields, once the server confirmed it, so
/// async-nats' event task can hand over any `-ERR` it already queued.
const EVENT_YIELDS: usize = 4;

/// What the connection's events told us.
struct Link {
    state: watch::Sender<LinkState>,
    last_error: Mutex<Option<String>>,
    /// What the TLS hooks saw since the last connect event.
    seen: Arc<Mutex<TlsSeen>>,
    /// The servers, redacted, for connect-failure messages.
    servers: String,
    redactor: Redactor,
    /// The latest server errors (`-ERR`), numbered: a batch notes the count
    /// before it publishes and reads the refusals that came after.
    server_errors: Mutex<VecDeque<(u64, String)>>,
}

#[derive(Clone, Copy, Default)]
struct LinkState {
    /// Connections established so far.
    connects: u64,
    /// Disconnections seen so far.
    breaks: u64,
    /// The connection was closed for good (drained or all clients gone).
    closed: bool,
    /// Server errors received so far.
    server_errors: u64,
}

impl Link {
    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                *lock(&self.last_error) = None;
                self.take_seen();
                self.state.send_modify(|s| s.connects += 1);
            }
            Event::Disconnected => self.state.send_modify(|s| s.breaks += 1),
            Event::Closed => self.state.send_modify(|s| s.closed = true),
            Event::ServerError(e) => {
                let text = e.to_string();
                *lock(&self.last_error) = Some(format!("server error: {text}"));
                let mut kept = lock(&self.server_errors);
                self.state.send_modify(|s| {
                    s.server_errors += 1;
                    if kept.len() == ERRORS_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back((s.server_errors, text));
                });
            }
            Event::ClientError(e) => {
                // A failed connect attempt: async-nats gives its kind only
                // ("nats: TLS error"); core's table words it with what the
                // TLS hooks saw during the attempt.
                let seen = self.take_seen();
                *lock(&self.last_error) = Some(ConnectFailure::message(
                    &e.to_string(),
                    &seen,
                    &self.redactor,
                    &self.servers,
                ));
            }
            Event::LameDuckMode | Event::Draining | Event::SlowConsumer(_) => {}
        }
    }

    fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// What the TLS hooks saw, and a fresh record for the next attempt.
    fn take_seen(&self) -> TlsSeen {
        let mut seen = lock(&self.seen);
        let fresh = TlsSeen::new(seen.require_tls);
        std::mem::replace(&mut *seen, fresh)
    }

    /// The number of server errors so far: refusals after it belong to
    /// publishes made after it.
    fn error_mark(&self) -> u64 {
        self.state.borrow().server_errors
    }

    /// The publish refusals received after `mark`: subject → the server's
    /// words.
    fn refusals_since(&self, mark: u64) -> Vec<(String, String)> {
        lock(&self.server_errors)
            .iter()
            .filter(|(n, _)| *n > mark)
            .filter_map(|(_, text)| publish_refusal(text))
            .map(|(subject, words)| (subject.to_owned(), words.to_owned()))
            .collect()
    }

    /// Completes when the server refuses a publish to one of `subjects`
    /// after `mark`.
    async fn refused(&self, mark: u64, subjects: &HashSet<String>) {
        let mut rx = self.state.subscribe();
        let mut seen = mark;
        loop {
            let now = rx.borrow_and_update().server_errors;
            if now > seen {
                if self
                    .refusals_since(seen)
                    .iter()
                    .any(|(s, _)| subjects.contains(s))
                {
                    return;
                }
                seen = now;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// async-nats hands server errors to the event callback on a task of
    /// its own. Its connection task queues an `-ERR` before it delivers any
    /// message the server sent after it, so once a batch's marker is back,
    /// a refusal of that batch is queued already: let the event task run
    /// before reading the refusals.
    async fn let_events_through(&self) {
        for _ in 0..EVENT_YIELDS {
            tokio::task::yield_now().await;
        }
    }

    /// Completes when the connection breaks or closes after `seen`.
    async fn lost(&self, seen: LinkState) {
        let mut rx = self.state.subscribe();
        let _ = rx
            .wait_for(|s| s.breaks != seen.breaks || (s.closed && !seen.closed))
            .await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` unless the connection breaks first (`None` then).
async fn unless_lost<F: Future>(link: &Link, seen: LinkState, work: F) -> Option<F::Output> {
    match future::select(pin!(work), pin!(link.lost(seen))).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

/// The async-nats servers and connection options a [`NatsSink`] uses for
/// `config` — name, timeouts, unlimited reconnects, credentials (also those
/// embedded in a URL, which async-nats itself ignores), and TLS with
/// tidings' certificate verifier — for tools that need a client of their
/// own with exactly the sink's settings (the `tidings` CLI's `tail` and
/// `check`). Add an event callback and `connect`.
///
/// Fails as [`NatsSink::connect`] does on invalid settings, naming the
/// field; secrets never appear in the error.
pub async fn connect_options(
    config: &NatsConfig,
) -> Result<(Vec<ServerAddr>, ConnectOptions), ConfigError> {
    let seen = Arc::new(Mutex::new(TlsSeen::new(config.tls.require_tls)));
    options_for(config, seen).await
}

/// [`connect_options`], with the TLS hooks recording into `seen`.
async fn options_for(
    config: &NatsConfig,
    seen: Arc<Mutex<TlsSeen>>,
) -> Result<(Vec<ServerAddr>, ConnectOptions), ConfigError> {
    config.validate()?;
    let mut servers = Vec::with_capacity(config.servers.len());
    for (url, shown) in config.servers.iter().zip(config.redacted_servers()) {
        let addr: ServerAddr = url.parse().map_err(|_| {
            ConfigError::new(
                "nats.url",
                format!("{shown:?} is not a NATS server address"),
            )
        })?;
        servers.push(addr);
    }
    let mut options = ConnectOptions::new()
        .name(&config.client_name)
        .connection_timeout(config.connect_timeout)
        .max_reconnects(None);
    options = match &config.credentials {
        // async-nats ignores credentials embedded in a URL (the sync
        // client uses them): take them from the first URL that has
        // some, as `user:password@` or a lone `token@`.
        Credentials::None => match servers
            .iter()
            .find_map(|a| Some((a.username()?, a.password())))
        {
            Some((user, Some(password))) => {
                options.user_and_password(user.to_owned(), password.to_owned())
            }
            Some((token, None)) => options.token(token.to_owned()),
            None => options,
        },
        Credentials::Token(token) => options.token(token.expose().to_owned()),
        Credentials::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
        Credentials::NKey(seed) => {
            nkeys::KeyPair::from_seed(seed.expose())
                .map_err(|_| Credentials::undecodable_seed())?;
            options.nkey(seed.expose().to_owned())
        }
        Credentials::CredsFile(path) => {
            options.credentials_file(path).await.map_err(|e| {
                // The kind only: parse errors could quote the file.
                ConfigError::new(
                    "nats.credentials",
                    format!(
                        "cannot use credentials file {}: {:?}",
                        path.display(),
                        e.kind()
                    ),
                )
            })?
        }
    };
    // Always ours, even with no TLS settings (system roots then): a
    // server that requires TLS upgrades any connection, and the hooks
    // must see that handshake too.
    let material = config.tls.load()?;
    let options = options
        .tls_client_config(tls::build(&material, seen)?)
        .require_tls(config.tls.require_tls);
    Ok((servers, options))
}

impl NatsSink {
    /// Validates `config` and connects in the background.
    ///
    /// Waits at most [`connect_timeout`](NatsConfig::connect_timeout) for the
    /// first connection, and does not fail when the server is down: the
    /// client keeps trying for as long as the sink lives, and until it
    /// succeeds every attempt fails as unavailable (core retries, then
    /// spills). Fails only on invalid settings — an unreadable credentials
    /// file, an NKey seed that does not decode, a TLS file that is missing,
    /// unreadable or not PEM, a client key that does not belong to its
    /// certificate — with an error naming the field (and the path); secrets
    /// and key material never appear in it. Must be awaited inside a tokio runtime (async-nats spawns its
    /// connection task there).
    pub async fn connect(config: NatsConfig) -> Result<Self, ConfigError> {
        let redactor = Redactor::new(&config);
        let seen = Arc::new(Mutex::new(TlsSeen::new(config.tls.require_tls)));
        let (servers, options) = options_for(&config, seen.clone()).await?;
        let link = Arc::new(Link {
            state: watch::Sender::new(LinkState::default()),
            last_error: Mutex::new(None),
            seen,
            servers: config.redacted_servers().join(", "),
            redactor: redactor.clone(),
            server_errors: Mutex::new(VecDeque::with_capacity(ERRORS_KEPT)),
        });
        let events = link.clone();
        let options = options
            .retry_on_initial_connect()
            .event_callback(move |event| {
                events.on_event(event);
                future::ready(())
            });
        let client = options
            .connect(servers)
            .await
            .map_err(|e| ConfigError::new("nats.url", e.kind().to_string()))?;
        // Give the first connection up to connect_timeout, so that the first
        // reports need no retry; then go on regardless (the client keeps
        // trying in the background).
        let mut state = link.state.subscribe();
        let _ =
            tokio::time::timeout(config.connect_timeout, state.wait_for(|s| s.connects > 0)).await;
        let jetstream = match config.delivery {
            Delivery::Core => None,
            Delivery::JetStream {
                ack_timeout,
                max_acks_in_flight,
            } => {
                let context = async_nats::jetstream::ContextBuilder::new()
                    // Bounds acks and JetStream API calls (stream creation).
                    .timeout(ack_timeout)
                    // How long async-nats keeps the permits of acks nobody
                    // awaits any more (attempts abandoned by core).
                    .ack_timeout(ack_timeout)
                    // Never wait inside async-nats for permits: our windows
                    // stay below its limit, and should abandoned acks use it
                    // up, the attempt fails (and is retried) instead.
                    .backpressure_on_inflight(false)
                    .build(client.clone());
                let stream = config.ensure_stream.as_ref().map(|name| EnsureStream {
                    name: name.clone(),
                    gate: StreamGate::new(),
                    checking: tokio::sync::Mutex::new(()),
                });
                Some(JetStream {
                    context,
                    ack_timeout,
                    window: max_acks_in_flight,
                    acks: tokio::sync::Semaphore::new(max_acks_in_flight),
                    stream,
                })
            }
        };
        Ok(NatsSink {
            name: config.sink_name().to_owned(),
            inner: Arc::new(Inner {
                fixed_subject: match config.subject_suffix {
                    tidings_core::nats::SubjectSuffix::None => {
                        Some(async_nats::Subject::from(config.subject.as_str()))
                    }
                    _ => None,
                },
                config,
                client,
                jetstream,
                link,
                redactor,
            }),
        })
    }

    /// Renames the sink (the name used in outcomes, stats and logs).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The settings in use.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    /// True while the client is connected to a server.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == State::Connected
    }

    /// The async-nats client (for observing it; publishing through it
    /// bypasses tidings' accounting).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl Inner {
    /// Every error this sink hands out leaves through here: secrets
    /// (async-nats error texts can quote URLs with credentials) are
    /// replaced by core's redactor.
    async fn send(&self, batch: &Batch) -> Vec<Result<Ack, SinkError>> {
        let results = match &self.jetstream {
            None => self.send_core(batch).await,
            Some(js) => self.send_jetstream(js, batch).await,
        };
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.redact(e)))
            .collect()
    }

    /// `e` with any secret in its message replaced.
    fn redact(&self, e: SinkError) -> SinkError {
        match self.redactor.clean_cow(e.message()) {
            std::borrow::Cow::Borrowed(_) => e,
            std::borrow::Cow::Owned(clean) => SinkError::new(e.kind(), clean),
        }
    }

    /// The subject `report` goes to: the prebuilt one (a reference count)
    /// when there is no per-report suffix.
    fn subject_of(&self, report: &Report) -> async_nats::Subject {
        match &self.fixed_subject {
            Some(subject) => subject.clone(),
            None => self.config.subject_for(report).into_owned().into(),
        }
    }

    fn connects(&self) -> u64 {
        self.client
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Fails unless connected; returns the server's max payload.
    fn ready(&self) -> Result<usize, SinkError> {
        let why = if self.link.state.borrow().closed {
            "the NATS connection is closed".to_owned()
        } else if self.client.connection_state() != State::Connected {
            match self.link.last_error() {
                Some(e) => ConnectFailure::not_connected(&self.link.servers, e),
                None => format!("not connected to {}", self.link.servers),
            }
        } else {
            match self.client.try_server_info() {
                // The state flips to connected a moment before the server's
                // INFO (and its max_payload) is recorded.
                None => "connected, waiting for the server's INFO".to_owned(),
                Some(info) => {
                    let negotiated = self.client.max_payload();
                    return Ok(match (info.max_payload, negotiated) {
                        (0, n) | (n, 0) => n,
                        (a, b) => a.min(b),
                    });
                }
            }
        };
        Err(self.redact(SinkError::unavailable(why)))
    }

    async fn send_core(&self, batch: &Batch) -> Vec<Result<Ack, SinkError>> {
        let n = batch.len();
        let seen = *self.link.state.borrow();
        let connects = self.connects();
        let server_max = match self.ready() {
            Ok(max) => max,
            Err(e) => return e.for_all(n),
        };
        let limit = self.config.payload_limit(server_max);
        let mark = self.link.error_mark();
        let work = async {
            let mut results: Vec<Option<Result<Ack, SinkError>>> = vec![None; n];
            let mut published = 0usize;
            let payloads = encode_batch(batch, limit);
            for (i, (report, payload)) in batch.iter().zip(payloads).enumerate() {
                let payload = match payload {
                    Ok(p) => p,
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                };
                let sent = self.client.publish(self.subject_of(report), payload).await;
                match sent {
                    Ok(()) => published += 1,
                    Err(e) => results[i] = Some(Err(core_publish_error(e))),
                }
            }
            let flushed = if published > 0 {
                self.round_trip().await
            } else {
                Ok(())
            };
            if flushed.is_ok() {
                self.link.let_events_through().await;
            }
            (results, flushed)
        };
        let Some((results, flushed)) = unless_lost(&self.link, seen, work).await else {
            return SinkError::unavailable("the NATS connection broke while sending").for_all(n);
        };
        let unflushed = match flushed {
            Err(e) => Some(SinkError::unavailable(format!("flush failed: {e}"))),
            // A flush observed on a newer connection says nothing about the
            // buffer the old one dropped.
            Ok(()) if self.connects() != connects => Some(SinkError::unavailable(
                "the NATS connection was replaced while sending",
            )),
            Ok(()) => None,
        };
        // The server says what it refused (permissions) only by `-ERR`.
        let refused = self.link.refusals_since(mark);
        results
            .into_iter()
            .zip(batch.iter())
            .map(|(r, report)| match r {
                Some(failed) => failed,
                None => match (self.refusal_for(&refused, report), &unflushed) {
                    (Some(denied), _) => Err(denied),
                    (None, Some(e)) => Err(e.clone()),
                    (None, None) => Ok(Ack::Sent),
                },
            })
            .collect()
    }

    /// The server's refusal of `report`'s subject among `refused`, as core's
    /// table words it.
    fn refusal_for(&self, refused: &[(String, String)], report: &Report) -> Option<SinkError> {
        if refused.is_empty() {
            return None;
        }
        publish_denied(refused, &self.config.subject_for(report))
    }

    /// Waits until the server has processed everything published before on
    /// this connection: a marker sent to a fresh inbox we subscribe to comes
    /// back only after the server handled every earlier message (it keeps
    /// each connection's order). `flush()` alone only means "written to the
    /// socket": a runtime dropped right after can close the socket with those
    /// bytes unread by the server, and they are gone. One round trip per
    /// batch.
    async fn round_trip(&self) -> Result<(), String> {
        let inbox = self.client.new_inbox();
        let mut marker = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| format!("subscribe for the delivery marker: {e}"))?;
        self.client
            .publish(inbox, Bytes::new())
            .await
            .map_err(|e| format!("publish the delivery marker: {e}"))?;
        self.client.flush().await.map_err(|e| e.to_string())?;
        match marker.next().await {
            Some(_) => Ok(()),
            None => Err("the delivery marker's subscription ended".to_owned()),
        }
    }

    async fn send_jetstream(&self, js: &JetStream, batch: &Batch) -> Vec<Result<Ack, SinkError>> {
        let n = batch.len();
        let seen = *self.link.state.borrow();
        let server_max = match self.ready() {
            Ok(max) => max,
            Err(e) => return e.for_all(n),
        };
        if let Some(stream) = &js.stream {
            if unless_lost(&self.link, seen, self.check_stream(js, stream))
                .await
                .is_none()
            {
                return ServerAnswer::ConnectionLost
                    .into_error(&self.config.subject)
                    .for_all(n);
            }
        }
        if let Some(refusal) = js.stream.as_ref().and_then(|s| s.gate.refusal()) {
            // The stream differs from the configured settings: nothing is
            // published into it (core's decision, as on the sync sink).
            return refusal.for_all(n);
        }
        let limit = self.config.jetstream_payload_limit(server_max);
        let mark = self.link.error_mark();
        let subjects: HashSet<String> = match &self.fixed_subject {
            Some(subject) => HashSet::from([subject.to_string()]),
            None => batch
                .iter()
                .map(|r| self.config.subject_for(r).into_owned())
                .collect(),
        };
        let mut results: Vec<Option<Result<Ack, SinkError>>> = vec![None; n];
        // True when the windows stopped because the server refused one of
        // this batch's subjects (not because the connection was lost).
        let stopped_by_refusal = {
            let windows = pin!(async {
                let mut payloads = encode_batch(batch, limit).into_iter();
                let mut start = 0;
                while start < n {
                    let end = (start + js.window).min(n);
                    let chunk: Vec<_> = payloads.by_ref().take(end - start).collect();
                    self.send_window(js, batch, start..end, chunk, &mut results)
                        .await;
                    start = end;
                }
            });
            // A denied publish is never acknowledged: stop waiting for acks
            // as soon as the server says so, instead of at the ack timeout.
            let lost = pin!(self.link.lost(seen));
            let refused = pin!(self.link.refused(mark, &subjects));
            matches!(
                future::select(windows, future::select(lost, refused)).await,
                Either::Right((Either::Right(_), _))
            )
        };
        let refused = self.link.refusals_since(mark);
        results
            .into_iter()
            .zip(batch.iter())
            .map(|(result, report)| {
                let denied = || self.refusal_for(&refused, report);
                match result {
                    Some(Ok(ack)) => Ok(ack),
                    // An ack timeout or an error caused by a refusal reads
                    // as the refusal.
                    Some(Err(e)) => Err(denied().unwrap_or(e)),
                    None => Err(denied().unwrap_or_else(|| {
                        if stopped_by_refusal {
                            // Another subject of this batch was refused:
                            // this report was not, and is tried again.
                            SinkError::unavailable(
                                "not acknowledged: the batch stopped when the server refused \
                                 another of its subjects",
                            )
                        } else {
                            ServerAnswer::ConnectionLost.into_error(&self.config.subject)
                        }
                    })),
                }
            })
            .collect()
    }

    /// Publishes `range` of the batch and awaits the acks, each bounded by
    /// the ack timeout. One permit of the shared window per message, given
    /// back as soon as its ack is in: concurrent batches keep the window
    /// full instead of each waiting for its whole range of acks.
    async fn send_window(
        &self,
        js: &JetStream,
        batch: &Batch,
        range: std::ops::Range<usize>,
        payloads: Vec<Result<Bytes, SinkError>>,
        results: &mut [Option<Result<Ack, SinkError>>],
    ) {
        let mut acks = FuturesUnordered::new();
        let record = |results: &mut [Option<Result<Ack, SinkError>>],
                      i: usize,
                      ack: Result<
            async_nats::jetstream::publish::PublishAck,
            async_nats::jetstream::context::PublishError,
        >| {
            results[i] = Some(match ack {
                Ok(ack) => Ok(Ack::Stored {
                    stream: ack.stream,
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                }),
                Err(e) => Err(self.jetstream_error(js, e, batch.get(i))),
            });
        };
        for (i, payload) in range.zip(payloads) {
            let Some(report) = batch.get(i) else { break };
            let payload = match payload {
                Ok(p) => p,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            // Wait for a permit while taking in the acks that free them.
            let permit = {
                let mut acquire = pin!(js.acks.acquire());
                std::future::poll_fn(|cx| {
                    while let std::task::Poll::Ready(Some((j, ack))) = acks.poll_next_unpin(cx) {
                        record(results, j, ack);
                    }
                    acquire.as_mut().poll(cx)
                })
                .await
            };
            let Ok(permit) = permit else { return }; // never closed
            let message = PublishMessage::build()
                .payload(payload)
                .message_id(report.id.to_string());
            let sent = js
                .context
                .send_publish(self.subject_of(report), message)
                .await;
            match sent {
                Ok(ack) => acks.push(async move {
                    let ack = ack.await;
                    drop(permit);
                    (i, ack)
                }),
                Err(e) => results[i] = Some(Err(self.jetstream_error(js, e, Some(report)))),
            }
        }
        while let Some((i, ack)) = acks.next().await {
            record(results, i, ack);
        }
    }

    /// Checks the configured stream when core's gate says it is due (at
    /// first, after a failed check's retry interval, after a publish nobody
    /// answered), creating it if missing. One check at a time.
    async fn check_stream(&self, js: &JetStream, stream: &EnsureStream) {
        if !stream.gate.check_due(Instant::now()) {
            return;
        }
        let _one_at_a_time = stream.checking.lock().await;
        if !stream.gate.check_due(Instant::now()) {
            return;
        }
        let check = match js.context.get_stream(&stream.name).await {
            Ok(mut found) => {
                let c = match found.info().await {
                    Ok(info) => info.config.clone(),
                    Err(_) => found.cached_info().config.clone(),
                };
                let existing = ExistingStream {
                    subjects: &c.subjects,
                    replicas: c.num_replicas.max(1),
                    max_age: c.max_age,
                    max_bytes: c.max_bytes,
                    max_msgs: c.max_messages,
                    storage: match c.storage {
                        async_nats::jetstream::stream::StorageType::Memory => StreamStorage::Memory,
                        async_nats::jetstream::stream::StorageType::File => StreamStorage::File,
                    },
                    discard: match c.discard {
                        async_nats::jetstream::stream::DiscardPolicy::New => DiscardPolicy::New,
                        _ => DiscardPolicy::Old,
                    },
                    duplicate_window: c.duplicate_window,
                };
                StreamCheck::existing(&self.config, &stream.name, &existing)
            }
            Err(e) => match e.kind() {
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(api) => {
                    match StreamCheck::lookup_failed(
                        &stream.name,
                        api.code() as u16,
                        api.error_code().0,
                        &api_error_description(&api),
                    ) {
                        None => self.create_stream(js, &stream.name).await,
                        Some(failed) => failed,
                    }
                }
                _ => StreamCheck::unreachable(&stream.name, &e.to_string()),
            },
        };
        stream.gate.record(check, Instant::now());
    }

    async fn create_stream(&self, js: &JetStream, name: &str) -> StreamCheck {
        let wanted = self.config.stream.for_creation();
        let config = async_nats::jetstream::stream::Config {
            name: name.to_owned(),
            subjects: self.config.stream_subjects(),
            num_replicas: wanted.replicas,
            max_age: wanted.max_age,
            max_bytes: wanted.max_bytes,
            max_messages: wanted.max_msgs,
            storage: match wanted.storage {
                StreamStorage::File => async_nats::jetstream::stream::StorageType::File,
                StreamStorage::Memory => async_nats::jetstream::stream::StorageType::Memory,
            },
            discard: match wanted.discard {
                DiscardPolicy::Old => async_nats::jetstream::stream::DiscardPolicy::Old,
                DiscardPolicy::New => async_nats::jetstream::stream::DiscardPolicy::New,
            },
            duplicate_window: wanted.duplicate_window,
            ..Default::default()
        };
        match js.context.create_stream(config).await {
            Ok(_) => StreamCheck::Ready,
            Err(e) => match e.kind() {
                async_nats::jetstream::context::CreateStreamErrorKind::JetStream(api) => {
                    StreamCheck::create_failed(
                        name,
                        api.code() as u16,
                        api.error_code().0,
                        &api_error_description(&api),
                    )
                }
                _ => StreamCheck::unreachable(name, &e.to_string()),
            },
        }
    }

    /// Maps an async-nats JetStream publish error to the answer it stands
    /// for, and that through core's one table.
    fn jetstream_error(
        &self,
        js: &JetStream,
        e: async_nats::error::Error<JsPublishErrorKind>,
        report: Option<&Report>,
    ) -> SinkError {
        let subject = match report {
            Some(r) => self.config.subject_for(r),
            None => std::borrow::Cow::Borrowed(self.config.subject.as_str()),
        };
        let api = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>());
        let description = api.map(api_error_description);
        let answer = match (e.kind(), api) {
            (JsPublishErrorKind::TimedOut, _) => ServerAnswer::AckTimeout(js.ack_timeout),
            (JsPublishErrorKind::StreamNotFound, _) => ServerAnswer::NoResponders,
            (JsPublishErrorKind::BrokenPipe, _) => ServerAnswer::ConnectionLost,
            // Our windows stay below async-nats' limit; abandoned acks can
            // still use it up for a while: retried.
            (JsPublishErrorKind::MaxAckPending, _) => {
                return SinkError::unavailable(format!("{e} (acks abandoned earlier)"))
            }
            // The client's own check against the server's max_payload.
            (JsPublishErrorKind::MaxPayloadExceeded, _) => {
                return SinkError::too_large(e.to_string())
            }
            (_, Some(api)) => ServerAnswer::JetStreamError {
                code: api.code() as u16,
                err_code: api.error_code().0,
                description: description.as_deref().unwrap_or_default(),
            },
            _ => {
                let detail = e.to_string();
                return ServerAnswer::Unreadable { detail: &detail }.into_error(&subject);
            }
        };
        let error = answer.into_error(&subject);
        match (&js.stream, answer) {
            // Deleted under us, or never created: check again first.
            (Some(stream), ServerAnswer::NoResponders) => stream.gate.on_no_responders(error),
            _ => error,
        }
    }
}

/// Encodes a whole batch into one buffer (one allocation, each payload a
/// slice of it). Runs on the batch's own task (see `send_on_a_task`).
fn encode_batch(batch: &Batch, limit: usize) -> Vec<Result<Bytes, SinkError>> {
    let mut all = bytes::BytesMut::with_capacity(batch.len() * 448);
    let mut one = Vec::with_capacity(512);
    batch
        .iter()
        .map(|report| {
            report
                .encode_within(limit, &mut one)
                .map_err(|e| SinkError::too_large(format!("report {}: {e}", report.id)))?;
            all.extend_from_slice(&one);
            Ok(all.split().freeze())
        })
        .collect()
}

fn core_publish_error(e: async_nats::PublishError) -> SinkError {
    use async_nats::client::PublishErrorKind;
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => SinkError::too_large(e.to_string()),
        PublishErrorKind::InvalidSubject => SinkError::rejected(e.to_string()),
        PublishErrorKind::Send => SinkError::unavailable(format!("the NATS client is closed: {e}")),
    }
}

impl NatsSink {
    /// A batch is encoded, published and confirmed (JetStream acks, or the
    /// core marker's echo) on a task of its own when on a tokio runtime, so
    /// that concurrent batches work on every worker thread instead of taking
    /// turns on the worker's task, where settling one batch held up the
    /// publishes of the others (the measured ack-window occupancy is in
    /// BENCHMARKS.md). The task is aborted if this future is dropped
    /// (deadline, teardown), as the send itself would have been; a panic in
    /// it is resumed here, where core catches it.
    async fn send_on_a_task(&self, batch: &Batch) -> Vec<Result<Ack, SinkError>> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.inner.send(batch).await;
        }
        let inner = self.inner.clone();
        let owned = batch.clone();
        let mut task = AbortOnDrop(tokio::spawn(async move { inner.send(&owned).await }));
        match (&mut task.0).await {
            Ok(results) => results,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => SinkError::unavailable("the send task was cancelled (runtime shutting down)")
                .for_all(batch.len()),
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        Box::pin(self.send_on_a_task(batch))
    }

    /// Flushes the client's buffer to the socket. Fails at once when not
    /// connected (nothing unsettled depends on it: core settled every report
    /// before flushing).
    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            self.inner.ready()?;
            let seen = *self.inner.link.state.borrow();
            match unless_lost(&self.inner.link, seen, self.inner.client.flush()).await {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(self
                    .inner
                    .redact(SinkError::unavailable(format!("flush failed: {e}")))),
                None => Err(SinkError::unavailable(
                    "the NATS connection broke while flushing",
                )),
            }
        })
    }

    /// Drains the client (flush, then close) and waits for async-nats'
    /// `Closed` event. Core bounds the wait. When not connected the drain is
    /// requested but not waited for: it completes if the client reconnects,
    /// and the connection task ends with the runtime otherwise.
    fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let seen = *self.inner.link.state.borrow();
            if seen.closed {
                return Ok(());
            }
            let connected = self.inner.ready().is_ok();
            self.inner.client.drain().await.map_err(|e| {
                self.inner
                    .redact(SinkError::unavailable(format!("drain failed: {e}")))
            })?;
            if !connected {
                return Err(SinkError::unavailable(
                    "not connected; the connection closes once it reconnects",
                ));
            }
            let mut rx = self.inner.link.state.subscribe();
            match rx
                .wait_for(|s| s.closed || s.breaks != seen.breaks)
                .await
                .map(|s| s.closed)
            {
                Ok(true) => Ok(()),
                _ => Err(SinkError::unavailable(
                    "the NATS connection broke while draining",
                )),
            }
        })
    }
}

impl fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NatsConfig's Debug redacts URLs and credentials.
        f.debug_struct("NatsSink")
            .field("name", &self.name)
            .field("config", &self.inner.config)
            .field("state", &self.inner.client.connection_state())
            .finish()
    }
}

/// async-nats' TLS configuration, built from core's [`TlsMaterial`]
/// (rustls 0.23, async-nats' own, ring provider), with the two hooks both
/// sinks install so a failed handshake is classified the same way on both
/// stacks ([`TlsSeen`]): a server-certificate verifier (which verifies the
/// configured server name instead of the URL's host; async-nats alone
/// cannot) and a client-certificate resolver that notes when the server
/// asks for one.
///
/// [`TlsMaterial`]: tidings_core::nats::TlsMaterial
mod tls {
    use std::sync::Arc;

    use async_nats::rustls;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
    use tidings_core::nats::TlsMaterial;
    use tidings_core::ConfigError;

    tidings_core::__tidings_tls_hooks!();

    /// The client configuration for `material`; the hooks write into
    /// `seen`. A key that does not belong to its certificate fails here,
    /// naming `nats.tls.client_key` and both paths.
    pub(super) fn build(material: &TlsMaterial, seen: Seen) -> Result<ClientConfig, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // No CA configured: the system's roots, as async-nats would use.
        let roots = trust_anchors(material, || rustls_native_certs::load_native_certs().certs)?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(no_usable_ca)?;
        let verifier = Verifier::new(inner, material, seen.clone());
        let key = match &material.client {
            None => None,
            Some(identity) => {
                let certified = CertifiedKey::from_der(
                    identity.chain.clone(),
                    identity.key.clone_key(),
                    &provider,
                )
                .map_err(|e| match e {
                    Error::InconsistentKeys(_) => identity.keys_differ(),
                    other => identity.key_unusable(other),
                })?;
                Some(Arc::new(certified))
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("nats.tls", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(ClientCert { key, seen }));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::nats::Secret;
    use tidings_core::Report;

    #[tokio::test]
    async fn connect_does_not_wait_for_a_server_and_reports_unavailable() {
        // Port 1 on loopback: nothing listens there.
        let mut config = NatsConfig::new("nats://127.0.0.1:1", "tidings.test");
        config.connect_timeout = Duration::from_millis(100);
        let sink = NatsSink::connect(config).await.unwrap();
        assert_eq!(sink.name(), "nats");
        assert!(!sink.is_connected());
        let batch = Batch::from_reports(vec![Report::error("a", "b")]);
        let results = sink.send(&batch).await;
        let err = results[0].clone().unwrap_err();
        assert_eq!(err.kind(), tidings_core::SinkErrorKind::Unavailable);
        assert!(err.message().contains("not connected"), "{err}");
        assert!(sink.flush().await.is_err());
        assert!(sink.close().await.is_err());
    }

    #[tokio::test]
    async fn secrets_stay_out_of_debug_and_errors() {
        let mut config = NatsConfig::new("nats://alice:hunter2@127.0.0.1:1", "tidings.test")
            .jetstream()
            .credentials(Credentials::Token(Secret::new("t0ken")));
        config.connect_timeout = Duration::from_millis(100);
        let sink = NatsSink::connect(config).await.unwrap();
        assert_eq!(sink.name(), "jetstream");
        let shown = format!("{sink:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
        let batch = Batch::from_reports(vec![Report::error("a", "b")]);
        let err = sink.send(&batch).await[0].clone().unwrap_err();
        let text = err.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("t0ken"),
            "{text}"
        );
    }

    /// Core's rows, turned into the errors async-nats hands over for them
    /// (an API error as the source of `PublishErrorKind::Other`), mapped by
    /// this sink: the same kinds as on the sync stack.
    #[tokio::test]
    async fn the_shared_table_reads_the_same_here() {
        let mut config = NatsConfig::new("nats://127.0.0.1:1", "tidings.test").jetstream();
        config.connect_timeout = Duration::from_millis(50);
        let sink = NatsSink::connect(config).await.unwrap();
        let js = sink.inner.jetstream.as_ref().unwrap();
        for (body, kind) in tidings_core::testing::JETSTREAM_ANSWERS {
            let wire: serde_json::Value = serde_json::from_str(body).unwrap();
            let api: async_nats::jetstream::Error =
                serde_json::from_value(wire["error"].clone()).unwrap();
            let e = async_nats::jetstream::context::PublishError::with_source(
                JsPublishErrorKind::Other,
                api,
            );
            let mapped = sink.inner.jetstream_error(js, e, None);
            assert_eq!(mapped.kind(), *kind, "{body}: {mapped}");
        }
        for (e, kind) in [
            (
                JsPublishErrorKind::TimedOut,
                tidings_core::SinkErrorKind::Timeout,
            ),
            (
                JsPublishErrorKind::StreamNotFound,
                tidings_core::SinkErrorKind::Unavailable,
            ),
            (
                JsPublishErrorKind::BrokenPipe,
                tidings_core::SinkErrorKind::Unavailable,
            ),
        ] {
            let mapped = sink.inner.jetstream_error(
                js,
                async_nats::jetstream::context::PublishError::new(e),
                None,
            );
            assert_eq!(mapped.kind(), kind, "{mapped}");
        }
    }

    /// What async-nats hands over for each connect failure (an event with
    /// the error's kind only), with what this sink's TLS hooks saw, read
    /// through core's table: the same words as on the sync stack.
    #[test]
    fn the_clients_connect_errors_map_into_cores_table() {
        use tidings_core::testing::tls_seen::*;
        let rows: Vec<(&str, TlsSeen, &str)> = vec![
            (
                "authorization violation",
                TlsSeen::default(),
                "Authorization Violation",
            ),
            ("TLS error", untrusted(), "is not trusted"),
            ("TLS error", wrong_name(), "tls_server_name"),
            (
                "IO error",
                asked_none(),
                "requires a TLS client certificate",
            ),
            ("IO error", asked_sent(), "did not accept"),
            ("TLS error", required(), "does not offer"),
            // async-nats reports a failed handshake as an I/O error; the
            // hooks saw the hello go out and no certificate come back.
            ("IO error", started(), "does not offer"),
            // Required, but the server is down: no handshake began.
            ("IO error", required(), "IO error"),
            ("TLS error", TlsSeen::default(), "TLS handshake failed"),
            ("IO error", TlsSeen::default(), "IO error"),
        ];
        for (kind, seen, says) in rows {
            let link = Link {
                state: watch::Sender::new(LinkState::default()),
                last_error: Mutex::new(None),
                seen: Arc::new(Mutex::new(seen)),
                servers: "nats://127.0.0.1:4222".into(),
                redactor: Redactor::default(),
                server_errors: Mutex::new(VecDeque::new()),
            };
            link.on_event(Event::ClientError(async_nats::ClientError::Other(
                kind.to_owned(),
            )));
            let said = link.last_error().unwrap();
            assert!(
                said.starts_with("not connected to nats://127.0.0.1:4222"),
                "{said}"
            );
            assert!(said.contains(says), "{kind}: {said}");
            // The hooks' record starts afresh for the next attempt.
            assert_eq!(lock(&link.seen).server_cert, None);
        }
    }

    #[tokio::test]
    async fn bad_settings_name_the_field() {
        let e = NatsSink::connect(NatsConfig::new("http://x:1", "a.b"))
            .await
            .unwrap_err();
        assert_eq!(e.field(), "nats.url");
        let e = NatsSink::connect(
            NatsConfig::new("nats://127.0.0.1:1", "a.b")
                .credentials(Credentials::CredsFile("/nonexistent/tidings.creds".into())),
        )
        .await
        .unwrap_err();
        assert_eq!(e.field(), "nats.credentials");
    }
}
