//! The one module that touches the synchronous `nats` 0.26 client.
//!
//! The client is deprecated upstream (`#[deprecated]` on every item), so the
//! `deprecated` lint is allowed here and nowhere else: the rest of the crate
//! sees only [`Link`] and plain data.
//!
//! What this wrapper works around (read in nats-0.26.0/src/client.rs and
//! connector.rs):
//!
//! * `Connection::flush*` waits for the PONG with no time limit (the timeout
//!   only bounds the socket write), and for ever once the client gave up
//!   reconnecting. We never call it while sending: [`Link::publish_marker`]
//!   sends a message to our own reply inbox instead, and its echo coming
//!   back proves the server processed everything published before it, with a
//!   timeout we choose.
//! * With `max_reconnects(None)` the client's own thread retries for ever
//!   without looking at its shutdown flag, so `close()` on a disconnected
//!   connection never returns, and auth failures during a (re)connect are
//!   kept in a local variable and never reported. So the client is allowed
//!   one pass over its servers after a disconnect (`max_reconnects(1)`),
//!   after which its threads end; the sink's I/O thread then reconnects with
//!   a fresh connection, with backoff it controls, and sees every connect
//!   error (e.g. `Authorization Violation`).
//! * There is no client-side max-payload check: the server closes the
//!   connection instead. Callers size payloads with [`Link::max_payload`].

#![allow(deprecated)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidings_core::nats::{
    api_error_description, ConnectFailure, Credentials, DiscardPolicy, ExistingStream, NatsConfig,
    Redactor, StreamCheck, StreamStorage, TlsSeen,
};
use tidings_core::ConfigError;

use crate::tls;

/// Checks what the nats client itself will parse, so a bad URL is refused at
/// construction rather than failing every connect attempt.
pub(crate) fn check_servers(config: &NatsConfig) -> Result<(), ConfigError> {
    for (url, shown) in config.servers.iter().zip(config.redacted_servers()) {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if matches!(scheme, Some("ws" | "wss")) {
            return Err(ConfigError::new(
                "nats.url",
                format!("{shown:?}: the synchronous nats client has no websocket support (use nats:// or tls://)"),
            ));
        }
        if url.parse::<nats::ServerAddress>().is_err() {
            return Err(ConfigError::new(
                "nats.url",
                format!("{shown:?} is not a server address the nats client accepts"),
            ));
        }
    }
    Ok(())
}

/// Connection state shared with the client's callbacks.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    connected: AtomicBool,
    /// The client's threads have ended (closed, or gave up reconnecting).
    dead: AtomicBool,
}

impl LinkState {
    /// Connected, and the client's threads still run.
    pub(crate) fn is_up(&self) -> bool {
        self.connected.load(Ordering::SeqCst) && !self.dead.load(Ordering::SeqCst)
    }
}

/// What the client's callbacks report to the sink.
pub(crate) struct Hooks {
    /// A server error (`-ERR ...`) or a client-side error, redacted.
    pub(crate) on_error: Box<dyn Fn(String) + Send + Sync>,
    /// The connection was lost (the client tries each server once more).
    pub(crate) on_disconnect: Box<dyn Fn() + Send + Sync>,
    /// The connection is gone for good: the sink must make a new one.
    pub(crate) on_dead: Box<dyn Fn() + Send + Sync>,
}

/// A live connection with a subscription to `<inbox>.*`, on which JetStream
/// acks and flush markers come back, each on `<inbox>.<token>`.
pub(crate) struct Link {
    conn: nats::Connection,
    replies: nats::Subscription,
    inbox_prefix: String,
    state: Arc<LinkState>,
}

/// A message received on the reply inbox.
pub(crate) struct Reply {
    /// The `<token>` of `<inbox>.<token>`, if it is a number.
    pub(crate) token: Option<u64>,
    /// A `503` status with no body: no stream captures the subject (or
    /// JetStream is unavailable).
    pub(crate) no_responders: bool,
    /// The body (a JetStream `PubAck` JSON, or empty for a marker).
    pub(crate) data: Vec<u8>,
}

/// The result of waiting for a reply.
pub(crate) enum NextReply {
    Reply(Reply),
    TimedOut,
    /// The subscription is gone (connection closed).
    Closed,
}

/// Checks what only this stack can check before connecting: the NKey
/// seed decodes, and the TLS key belongs to its certificate.
pub(crate) fn check_credentials(config: &NatsConfig) -> Result<(), ConfigError> {
    if let Credentials::NKey(seed) = &config.credentials {
        nkeys::KeyPair::from_seed(seed.expose()).map_err(|_| Credentials::undecodable_seed())?;
    }
    tls::check(config)
}

/// Makes one pass over the configured servers (no retry loop: the caller
/// owns retrying) and sets up the reply inbox. Blocks for as long as the
/// TCP connect and the handshake take. Errors are redacted, and worded by
/// core's table ([`ConnectFailure`]).
pub(crate) fn connect(
    config: &NatsConfig,
    redactor: &Redactor,
    hooks: Hooks,
) -> Result<Link, String> {
    let state = Arc::new(LinkState::default());
    let mut options = match &config.credentials {
        Credentials::None => nats::Options::new(),
        Credentials::Token(token) => nats::Options::with_token(token.expose()),
        Credentials::UserPassword { user, password } => {
            nats::Options::with_user_pass(user, password.expose())
        }
        Credentials::CredsFile(path) => nats::Options::with_credentials(path),
        Credentials::NKey(seed) => {
            // Checked when the sink was built.
            let pair = nkeys::KeyPair::from_seed(seed.expose())
                .map_err(|_| "the NKey seed does not decode".to_owned())?;
            let public = pair.public_key();
            nats::Options::with_nkey(&public, move |nonce| pair.sign(nonce).unwrap_or_default())
        }
    };
    // The hooks of this attempt's TLS handshakes (a fresh client config per
    // attempt, so what they saw belongs to this attempt).
    let seen: tls::Seen = Arc::new(std::sync::Mutex::new(TlsSeen::new(config.tls.require_tls)));
    // Always ours, even with no TLS settings (system roots then): a server
    // that requires TLS upgrades any connection, and the hooks must see
    // that handshake too.
    let material = config.tls.load().map_err(|e| e.to_string())?;
    let client_config = tls::build(&material, seen.clone()).map_err(|e| e.to_string())?;
    options = options
        .tls_client_config(client_config)
        .tls_required(config.tls.require_tls);
    let Hooks {
        on_error,
        on_disconnect,
        on_dead,
    } = hooks;
    options = options
        .with_name(&config.client_name)
        // One pass over the servers after a disconnect, then the client's
        // threads end and the sink reconnects (see the module docs).
        .max_reconnects(1)
        .reconnect_delay_callback(|attempt| {
            // Attempt 0 is the first try at a server: no delay (the
            // client's default sleeps up to a second of jitter first).
            if attempt == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            }
        })
        // We never publish while disconnected on purpose; what a race
        // puts here is sent after a reconnect, unconfirmed.
        .reconnect_buffer_size(256 * 1024)
        .error_callback(move |e| on_error(e.to_string()))
        .disconnect_callback({
            let state = state.clone();
            move || {
                state.connected.store(false, Ordering::SeqCst);
                on_disconnect();
            }
        })
        .reconnect_callback({
            let state = state.clone();
            move || state.connected.store(true, Ordering::SeqCst)
        })
        .close_callback({
            let state = state.clone();
            move || {
                state.connected.store(false, Ordering::SeqCst);
                state.dead.store(true, Ordering::SeqCst);
                on_dead();
            }
        });

    let conn = options.connect(config.servers.join(",")).map_err(|e| {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        connect_failure(&e, &seen, redactor, &config.redacted_servers().join(", "))
    })?;
    state.connected.store(true, Ordering::SeqCst);
    let inbox_prefix = conn.new_inbox();
    let replies = match conn.subscribe(&format!("{inbox_prefix}.*")) {
        Ok(sub) => sub,
        Err(e) => {
            conn.close();
            return Err(redactor.clean(&format!("could not subscribe to the reply inbox: {e}")));
        }
    };
    Ok(Link {
        conn,
        replies,
        inbox_prefix,
        state,
    })
}

/// A failed connect, worded by core's table from the client's error and
/// what the TLS hooks saw (both redacted).
fn connect_failure(e: &io::Error, seen: &TlsSeen, redactor: &Redactor, servers: &str) -> String {
    ConnectFailure::message(&describe_connect_error(e), seen, redactor, servers)
}

/// Turns the client's connect errors into something a person can act on.
fn describe_connect_error(e: &io::Error) -> String {
    let text = e.to_string();
    // The client reports a refused CONNECT as
    // `unexpected line while connecting: Err("Authorization Violation")`.
    if let Some(start) = text.find("Err(\"") {
        let rest = &text[start + 5..];
        if let Some(end) = rest.find("\")") {
            return format!("server refused the connection: {}", &rest[..end]);
        }
    }
    format!("could not connect: {text}")
}

impl Link {
    /// True while the client has a live connection.
    pub(crate) fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::SeqCst)
    }

    /// The state the client's callbacks update.
    pub(crate) fn state(&self) -> Arc<LinkState> {
        self.state.clone()
    }

    /// True once the client's threads have ended: this link is useless.
    pub(crate) fn is_dead(&self) -> bool {
        self.state.dead.load(Ordering::SeqCst)
    }

    /// The `max_payload` of the server we are connected to.
    pub(crate) fn max_payload(&self) -> usize {
        self.conn.max_payload()
    }

    /// Core publish (queued in the client's buffer; its flusher writes it).
    pub(crate) fn publish(&self, subject: &str, payload: &[u8]) -> io::Result<()> {
        self.conn.publish(subject, payload)
    }

    /// JetStream publish: `Nats-Msg-Id` set, reply to `<inbox>.<token>`.
    pub(crate) fn publish_for_ack(
        &self,
        subject: &str,
        token: u64,
        msg_id: &str,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut headers = nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.to_owned());
        let reply = self.reply_subject(token);
        self.conn
            .publish_with_reply_or_headers(subject, Some(&reply), Some(&headers), payload)
    }

    /// Publishes an empty message to our own `<inbox>.<token>`: when it comes
    /// back, the server has processed everything this connection published
    /// before it (a PING/PONG with a timeout we control).
    pub(crate) fn publish_marker(&self, token: u64) -> io::Result<()> {
        self.conn.publish(&self.reply_subject(token), [])
    }

    fn reply_subject(&self, token: u64) -> String {
        format!("{}.{token}", self.inbox_prefix)
    }

    /// The next message on the reply inbox, waiting at most `timeout`.
    pub(crate) fn next_reply(&self, timeout: Duration) -> NextReply {
        match self.replies.next_timeout(timeout) {
            Ok(msg) => {
                let no_responders = msg.is_no_responders();
                let token = msg
                    .subject
                    .strip_prefix(&self.inbox_prefix)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .and_then(|t| t.parse().ok());
                NextReply::Reply(Reply {
                    token,
                    no_responders,
                    data: msg.data,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => NextReply::TimedOut,
            Err(_) => NextReply::Closed,
        }
    }

    /// Checks the stream `name` (it must capture what `config` publishes
    /// on, with the configured settings), creating it, capturing `subject`
    /// and `subject.>` with [`NatsConfig::stream`]'s settings, when it does
    /// not exist. Core's [`StreamCheck`] says what the answers mean.
    /// Bounded: each JetStream API request times out after 5 s.
    pub(crate) fn check_stream(&self, config: &NatsConfig, name: &str) -> StreamCheck {
        let js = nats::jetstream::new(self.conn.clone());
        match js.stream_info(name) {
            Ok(info) => {
                let c = &info.config;
                let existing = ExistingStream {
                    subjects: &c.subjects,
                    replicas: c.num_replicas.max(1),
                    max_age: c.max_age,
                    max_bytes: c.max_bytes,
                    max_msgs: c.max_msgs,
                    storage: match c.storage {
                        nats::jetstream::StorageType::Memory => StreamStorage::Memory,
                        nats::jetstream::StorageType::File => StreamStorage::File,
                    },
                    discard: match c.discard {
                        nats::jetstream::DiscardPolicy::New => DiscardPolicy::New,
                        _ => DiscardPolicy::Old,
                    },
                    duplicate_window: Duration::from_nanos(c.duplicate_window.max(0) as u64),
                };
                return StreamCheck::existing(config, name, &existing);
            }
            Err(e) => match api_error(&e) {
                Some(api) => {
                    if let Some(failed) = StreamCheck::lookup_failed(
                        name,
                        api.code() as u16,
                        api.error_code() as u64,
                        &api_error_description(api),
                    ) {
                        return failed;
                    }
                }
                None => return StreamCheck::unreachable(name, &e.to_string()),
            },
        }
        let wanted = config.stream.for_creation();
        let created = js.add_stream(nats::jetstream::StreamConfig {
            name: name.to_owned(),
            subjects: config.stream_subjects(),
            num_replicas: wanted.replicas,
            max_age: wanted.max_age,
            max_bytes: wanted.max_bytes,
            max_msgs: wanted.max_msgs,
            storage: match wanted.storage {
                StreamStorage::File => nats::jetstream::StorageType::File,
                StreamStorage::Memory => nats::jetstream::StorageType::Memory,
            },
            discard: match wanted.discard {
                DiscardPolicy::Old => nats::jetstream::DiscardPolicy::Old,
                DiscardPolicy::New => nats::jetstream::DiscardPolicy::New,
            },
            duplicate_window: wanted.duplicate_window.as_nanos() as i64,
            ..Default::default()
        });
        match created {
            Ok(_) => StreamCheck::Ready,
            Err(e) => match api_error(&e) {
                Some(api) => StreamCheck::create_failed(
                    name,
                    api.code() as u16,
                    api.error_code() as u64,
                    &api_error_description(api),
                ),
                None => StreamCheck::unreachable(name, &e.to_string()),
            },
        }
    }

    /// Closes the connection. While connected, `Connection::close` flushes
    /// and joins the client's threads (fast when the server answers). Once
    /// disconnected that close would wait for a PONG that never comes, so
    /// the connection is only dropped: the client's threads see the shutdown
    /// flag and end on their own (the idle flusher within 2 minutes).
    pub(crate) fn close(self) {
        let Link {
            conn,
            replies,
            state,
            ..
        } = self;
        drop(replies);
        if state.connected.load(Ordering::SeqCst) && !state.dead.load(Ordering::SeqCst) {
            conn.close();
        }
    }
}

/// The JetStream API error inside an I/O error of the client, if any.
fn api_error(e: &io::Error) -> Option<&nats::jetstream::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<nats::jetstream::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError, InvalidMessage};

    /// What the sync client hands over for each connect failure (the
    /// rustls error inside an I/O error, or the server's `-ERR` line),
    /// with what the hooks saw, read through core's table.
    #[test]
    fn the_clients_connect_errors_map_into_cores_table() {
        use tidings_core::testing::tls_seen;
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let (required, asked_none, asked_sent) = (
            tls_seen::required(),
            tls_seen::asked_none(),
            tls_seen::asked_sent(),
        );
        let none = TlsSeen::default();
        let rows: Vec<(io::Error, &TlsSeen, &str)> = vec![
            (
                io::Error::other(
                    "unexpected line while connecting: Err(\"Authorization Violation\")",
                ),
                &none,
                "Authorization Violation",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
                &none,
                "is not trusted",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                )),
                &none,
                "tls_server_name",
            ),
            (
                tls(rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired,
                )),
                &asked_none,
                "requires a TLS client certificate",
            ),
            (
                tls(rustls::Error::AlertReceived(
                    AlertDescription::BadCertificate,
                )),
                &asked_sent,
                "did not accept",
            ),
            (
                tls(rustls::Error::InvalidMessage(
                    InvalidMessage::InvalidContentType,
                )),
                &required,
                "does not offer",
            ),
            (
                io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused"),
                &none,
                "Connection refused",
            ),
        ];
        let redactor = Redactor::default();
        for (e, seen, says) in rows {
            let message = connect_failure(&e, seen, &redactor, "nats://127.0.0.1:4222");
            assert!(
                message.starts_with("not connected to nats://127.0.0.1:4222"),
                "{message}"
            );
            assert!(message.contains(says), "{e}: {message}");
        }
    }
}
