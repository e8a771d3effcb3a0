//! NATS settings shared by every adapter's NATS sinks: validated here once,
//! with no NATS client dependency.
//!
//! ```
//! use tidings_core::nats::{NatsConfig, Delivery};
//! let config = NatsConfig::new("nats://127.0.0.1:4222", "tidings.reports")
//!     .jetstream()
//!     .ensure_stream("TIDINGS");
//! config.validate().unwrap();
//!
//! let bad = NatsConfig::new("nats://127.0.0.1:4222", "tidings..reports");
//! assert_eq!(bad.validate().unwrap_err().field(), "nats.subject");
//! ```
//!
//! Production settings: TLS with a private CA and mutual TLS ([`TlsConfig`]),
//! credentials ([`Credentials`]: token, user/password, NKey seed, `.creds`),
//! and the settings of the stream tidings creates ([`StreamSettings`]). One
//! table says what each server answer means on both sinks ([`ServerAnswer`],
//! [`ConnectFailure`]), and one [`Redactor`] keeps secrets out of every
//! text they produce.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::report::Report;

mod answer;
mod env;
mod redact;
mod stream;
mod subject;
mod tls;

pub use answer::{
    api_error_description, publish_denied, publish_refusal, publish_refused_subject,
    ConnectFailure, ServerAnswer, TlsSeen, ERR_MESSAGE_TOO_LARGE, ERR_NOT_ENABLED_FOR_ACCOUNT,
    ERR_STORE_FAILED, ERR_STREAM_NOT_FOUND, ERR_SUBJECTS_OVERLAP,
};
pub use env::{DEFAULT_SUBJECT, DEFAULT_URL, REDACTED};
pub use redact::Redactor;
pub use stream::{
    DiscardPolicy, ExistingStream, StreamCheck, StreamGate, StreamSettings, StreamStorage,
    ENSURE_RETRY_INTERVAL, STREAM_DUPLICATE_WINDOW,
};
pub use subject::{
    pattern_covers, stream_covers, subject_token, validate_subject, MAX_CONFIGURED_SUBJECT_LEN,
    MAX_KIND_TOKEN_LEN, MAX_SUBJECT_LEN,
};
pub use tls::{ClientIdentity, TlsConfig, TlsMaterial};

/// Room kept for the `Nats-Msg-Id` header within the server's `max_payload`
/// (which counts headers and payload together): `NATS/1.0`, the header line
/// with a 36-character id, a blank line — about 65 bytes, rounded up.
pub const MSG_ID_HEADER_ROOM: usize = 128;

/// How reports are published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Core NATS publish. Delivered means "the server processed it" (a
    /// marker sent after the batch came back, and the server refused none of
    /// it): core NATS has no acknowledgement, so a report can still be
    /// dropped by the server, e.g. when nobody subscribes
    /// ([`crate::Ack::Sent`]).
    Core,
    /// JetStream publish with `Nats-Msg-Id` = report id; delivered means the
    /// stream acknowledged it ([`crate::Ack::Stored`]). Retries reuse the id,
    /// so the stream's duplicate window makes them effectively-once.
    JetStream {
        /// How long to wait for the acks of one batch.
        ack_timeout: Duration,
        /// Most acks outstanding at once per batch window (kept below
        /// async-nats' `max_ack_inflight` of 5000).
        max_acks_in_flight: usize,
    },
}

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself. Only for handing to the client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to authenticate to the server. `Debug` never shows a secret (the
/// token, password, seed; a `.creds` file's path only).
///
/// ```
/// use tidings_core::nats::{Credentials, NatsConfig, Secret};
/// let seed = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";
/// let config = NatsConfig::new("nats://127.0.0.1:4222", "app.reports")
///     .credentials(Credentials::NKey(Secret::new(seed)));
/// config.validate().unwrap();
/// assert!(!format!("{config:?}").contains(seed));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// No authentication (or credentials embedded in the URL).
    #[default]
    None,
    /// A token.
    Token(Secret),
    /// User and password.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// A `.creds` file (JWT + NKey seed), for servers in operator mode.
    /// The path is shown; its content never is. Read at each connect, so a
    /// rotated file is picked up.
    CredsFile(PathBuf),
    /// An NKey user's seed (`SU…`, 58 characters): the server lists the
    /// user's public key (`U…`), and the seed signs the server's nonce; it
    /// never leaves the process. From a file with
    /// [`Credentials::nkey_seed_file`].
    NKey(Secret),
}

impl Credentials {
    /// An NKey seed read from `path` (surrounding whitespace ignored; a
    /// file holding other lines, e.g. `nk -gen user` output with the public
    /// key, is fine as long as one line is the seed). The error names
    /// `nats.credentials` and the path, never the content.
    pub fn nkey_seed_file(path: impl AsRef<std::path::Path>) -> Result<Credentials, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "nats.credentials",
                format!(
                    "cannot read the NKey seed file {}: {}",
                    path.display(),
                    e.kind()
                ),
            )
        })?;
        let seed = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("SU"))
            .ok_or_else(|| {
                ConfigError::new(
                    "nats.credentials",
                    format!(
                        "{} holds no NKey user seed (a line starting with SU)",
                        path.display()
                    ),
                )
            })?;
        Ok(Credentials::NKey(Secret::new(seed)))
    }

    /// The error of a sink whose NKey library cannot decode the seed (it
    /// has the shape [`NatsConfig::validate`] checks, but is damaged).
    pub fn undecodable_seed() -> ConfigError {
        ConfigError::new(
            "nats.credentials",
            "the NKey seed does not decode (a damaged or truncated seed); it is not shown",
        )
    }
}

/// Checks the shape of an NKey user seed without showing it.
fn validate_nkey_seed(seed: &str) -> Result<(), ConfigError> {
    if seed.len() != redact::SEED_LEN
        || !seed.starts_with("SU")
        || !seed.bytes().all(redact::is_base32)
    {
        return Err(ConfigError::new(
            "nats.credentials",
            "the NKey seed is not a user seed (58 characters starting with SU; generate one \
             with `nk -gen user`); it is not shown",
        ));
    }
    Ok(())
}

/// Which report fields are appended to the subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectSuffix {
    /// Every report on the configured subject.
    #[default]
    None,
    /// `<subject>.<severity>`, e.g. `tidings.reports.error`.
    Severity,
    /// `<subject>.<severity>.<kind>` with the kind made a valid token
    /// (characters other than `A-Za-z0-9_-` become `_`).
    SeverityAndKind,
}

/// Connection and publishing settings for a NATS sink.
///
/// Also read from the environment, or from a section of a TOML or YAML
/// file (serde): [`NatsConfig::from_env`] has both forms.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:port`, `tls://host:port` or `host:port`).
    #[serde(alias = "url", with = "env::servers")]
    pub servers: Vec<String>,
    /// The subject reports are published on (a literal: no wildcards).
    pub subject: String,
    /// What is appended to the subject per report.
    pub subject_suffix: SubjectSuffix,
    /// Core publish or JetStream.
    pub delivery: Delivery,
    /// Authentication.
    pub credentials: Credentials,
    /// With JetStream: create this stream (capturing `<subject>` and
    /// `<subject>.>`) at connect if it does not exist.
    pub ensure_stream: Option<String>,
    /// Bound on establishing the first connection; the sink keeps trying in
    /// the background after it (reports meanwhile are retried, then spilled).
    #[serde(with = "env::duration")]
    pub connect_timeout: Duration,
    /// A client-side cap on message size, below the server's `max_payload`
    /// (which is used when smaller). Larger reports are truncated with a
    /// marker, or spilled if they cannot be.
    pub max_payload: Option<usize>,
    /// The client name shown by the server.
    pub client_name: String,
    /// TLS: private CAs, a client certificate (mutual TLS), TLS required,
    /// the server name to verify. See [`TlsConfig`].
    pub tls: TlsConfig,
    /// The settings of the stream [`ensure_stream`](Self::ensure_stream)
    /// creates, and checks on an existing one. See [`StreamSettings`].
    pub stream: StreamSettings,
}

impl NatsConfig {
    /// Core-publish settings for `url` and `subject`.
    pub fn new(url: impl Into<String>, subject: impl Into<String>) -> Self {
        NatsConfig {
            servers: vec![url.into()],
            subject: subject.into(),
            subject_suffix: SubjectSuffix::None,
            delivery: Delivery::Core,
            credentials: Credentials::None,
            ensure_stream: None,
            connect_timeout: Duration::from_secs(2),
            max_payload: None,
            client_name: "tidings".to_owned(),
            tls: TlsConfig::default(),
            stream: StreamSettings::default(),
        }
    }

    /// Trusts the CAs in this PEM file for the server's certificate
    /// (repeat for several files). Once any is set, the system's roots are
    /// not trusted.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_files.push(path.into());
        self
    }

    /// Presents this client certificate (PEM, chain after it) and key when
    /// the server asks for one (mutual TLS). The key must belong to the
    /// certificate: checked when the sink is built.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client_cert = Some(cert.into());
        self.tls.client_key = Some(key.into());
        self
    }

    /// Never connects without TLS: a server that does not offer TLS is
    /// refused (reports retried, then spilled), credentials are never sent
    /// in the clear.
    pub fn require_tls(mut self) -> Self {
        self.tls.require_tls = true;
        self
    }

    /// Verifies the server's certificate for `name` instead of the URL's
    /// host (e.g. the URL is an IP address).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self
    }

    /// Sets the settings of the stream [`ensure_stream`](Self::ensure_stream)
    /// creates (and requires of an existing one).
    pub fn stream_settings(mut self, settings: StreamSettings) -> Self {
        self.stream = settings;
        self
    }

    /// Switches to JetStream with default ack settings (5 s, 1024 in flight).
    pub fn jetstream(mut self) -> Self {
        self.delivery = Delivery::JetStream {
            ack_timeout: Duration::from_secs(5),
            max_acks_in_flight: 1024,
        };
        self
    }

    /// Creates the stream `name` at connect if missing (JetStream only).
    pub fn ensure_stream(mut self, name: impl Into<String>) -> Self {
        self.ensure_stream = Some(name.into());
        self
    }

    /// Adds a server URL (cluster seeds).
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push(url.into());
        self
    }

    /// Sets the credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets what is appended to the subject per report.
    pub fn subject_suffix(mut self, suffix: SubjectSuffix) -> Self {
        self.subject_suffix = suffix;
        self
    }

    /// Caps message size on the client side.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// True for JetStream delivery.
    pub fn is_jetstream(&self) -> bool {
        matches!(self.delivery, Delivery::JetStream { .. })
    }

    /// The name a NATS sink takes by default: `"jetstream"` or `"nats"`
    /// (so one of each can be configured together).
    pub fn sink_name(&self) -> &'static str {
        if self.is_jetstream() {
            "jetstream"
        } else {
            "nats"
        }
    }

    /// The subjects a stream created by [`ensure_stream`](Self::ensure_stream)
    /// captures: the subject and everything below it (per-kind suffixes).
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![self.subject.clone(), format!("{}.>", self.subject)]
    }

    /// Checks every field; the error names the one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::new(
                "nats.url",
                "at least one server URL is required",
            ));
        }
        for url in &self.servers {
            validate_url(url)?;
        }
        validate_subject(&self.subject).map_err(|p| ConfigError::new("nats.subject", p))?;
        if let Delivery::JetStream {
            ack_timeout,
            max_acks_in_flight,
        } = self.delivery
        {
            if ack_timeout.is_zero() {
                return Err(ConfigError::new(
                    "nats.ack_timeout",
                    "must be greater than zero",
                ));
            }
            if !(1..=4096).contains(&max_acks_in_flight) {
                return Err(ConfigError::new(
                    "nats.max_acks_in_flight",
                    format!(
                        "must be between 1 and 4096 (async-nats blocks above 5000), got {max_acks_in_flight}"
                    ),
                ));
            }
        }
        if let Some(stream) = &self.ensure_stream {
            if !self.is_jetstream() {
                return Err(ConfigError::new(
                    "nats.ensure_stream",
                    "needs JetStream delivery",
                ));
            }
            let bad = stream.is_empty()
                || stream
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'));
            if bad {
                return Err(ConfigError::new(
                    "nats.ensure_stream",
                    format!("{stream:?} is not a valid stream name (no spaces, '.', '*', '>', '/', '\\\\')"),
                ));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "nats.connect_timeout",
                "must be greater than zero",
            ));
        }
        if let Some(max) = self.max_payload {
            if max < 512 {
                return Err(ConfigError::new(
                    "nats.max_payload",
                    format!("{max} bytes is too small for a report (at least 512)"),
                ));
            }
        }
        match &self.credentials {
            Credentials::CredsFile(path) if !path.is_file() => {
                return Err(ConfigError::new(
                    "nats.credentials",
                    format!("credentials file {} does not exist", path.display()),
                ));
            }
            Credentials::NKey(seed) => validate_nkey_seed(seed.expose())?,
            _ => {}
        }
        if self.stream != StreamSettings::default() && self.ensure_stream.is_none() {
            return Err(ConfigError::new(
                "nats.stream",
                "stream settings need ensure_stream (they are the settings of the stream it \
                 creates)",
            ));
        }
        self.stream.validate()?;
        // Reads the files: a bad one fails here, naming the field and path.
        self.tls.load()?;
        Ok(())
    }

    /// The filter that stands for every subject this configuration
    /// publishes on: the subject, or with a suffix `<subject>.*` /
    /// `<subject>.*.*`. A stream must capture it.
    pub fn publish_filter(&self) -> String {
        match self.subject_suffix {
            SubjectSuffix::None => self.subject.clone(),
            SubjectSuffix::Severity => format!("{}.*", self.subject),
            SubjectSuffix::SeverityAndKind => format!("{}.*.*", self.subject),
        }
    }

    /// The subject for `report`, with the configured suffix. Never longer
    /// than [`MAX_SUBJECT_LEN`]: the kind token is cut to
    /// [`MAX_KIND_TOKEN_LEN`] (see [`subject_token`]).
    pub fn subject_for<'a>(&'a self, report: &Report) -> Cow<'a, str> {
        match self.subject_suffix {
            SubjectSuffix::None => Cow::Borrowed(&self.subject),
            SubjectSuffix::Severity => {
                Cow::Owned(format!("{}.{}", self.subject, report.severity.as_str()))
            }
            SubjectSuffix::SeverityAndKind => Cow::Owned(format!(
                "{}.{}.{}",
                self.subject,
                report.severity.as_str(),
                subject_token(&report.kind)
            )),
        }
    }

    /// The effective message size limit given the server's `max_payload`.
    pub fn payload_limit(&self, server_max_payload: usize) -> usize {
        match self.max_payload {
            Some(max) if server_max_payload > 0 => max.min(server_max_payload),
            Some(max) => max,
            None if server_max_payload > 0 => server_max_payload,
            None => 1024 * 1024,
        }
    }

    /// The largest report payload a JetStream publish may carry given the
    /// server's `max_payload` (0: not known yet, taken as the server's
    /// default of 1 MiB): [`payload_limit`](Self::payload_limit), and room
    /// for the `Nats-Msg-Id` header ([`MSG_ID_HEADER_ROOM`]) within the
    /// server's limit, which counts headers and payload together. A
    /// configured `max_payload` well below the server's is not reduced.
    pub fn jetstream_payload_limit(&self, server_max_payload: usize) -> usize {
        let server = match server_max_payload {
            0 => 1024 * 1024,
            max => max,
        };
        self.payload_limit(server_max_payload)
            .min(server.saturating_sub(MSG_ID_HEADER_ROOM))
    }

    /// The server URLs with any password replaced by `***` (for logs).
    pub fn redacted_servers(&self) -> Vec<String> {
        self.servers.iter().map(|u| redact_url(u)).collect()
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("servers", &self.redacted_servers())
            .field("subject", &self.subject)
            .field("subject_suffix", &self.subject_suffix)
            .field("delivery", &self.delivery)
            .field("credentials", &self.credentials)
            .field("ensure_stream", &self.ensure_stream)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_payload", &self.max_payload)
            .field("client_name", &self.client_name)
            .field("tls", &self.tls)
            .field("stream", &self.stream)
            .finish()
    }
}

/// Replaces the password (or lone token) in `url`'s user-info with `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let shown = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => "***".to_owned(),
            };
            format!("{scheme}{shown}{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

fn validate_url(url: &str) -> Result<(), ConfigError> {
    let err = |problem: String| ConfigError::new("nats.url", problem);
    let shown = redact_url(url);
    let rest = match url.find("://") {
        Some(i) => {
            let scheme = &url[..i];
            if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                return Err(err(format!(
                    "{shown:?}: unsupported scheme {scheme:?} (use nats:// or tls://)"
                )));
            }
            &url[i + 3..]
        }
        None => url,
    };
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    if host_port.is_empty() {
        return Err(err(format!("{shown:?}: no host")));
    }
    if host_port.chars().any(|c| c.is_whitespace()) {
        return Err(err(format!("{shown:?}: contains whitespace")));
    }
    // host, host:port, [v6]:port
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err(err(format!("{shown:?}: unclosed '[' in IPv6 address"))),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(err(format!("{shown:?}: no host")));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(err(format!("{shown:?}: bad port {p:?}"))),
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jetstream_payload_limit_keeps_header_room_within_the_servers_limit() {
        let js = NatsConfig::new("nats://127.0.0.1:4222", "a.b").jetstream();
        // The server's limit (or its 1 MiB default while unknown) less the
        // header room.
        assert_eq!(js.jetstream_payload_limit(8192), 8192 - MSG_ID_HEADER_ROOM);
        assert_eq!(
            js.jetstream_payload_limit(0),
            1024 * 1024 - MSG_ID_HEADER_ROOM
        );
        // A configured limit well below the server's is kept whole; one close
        // to it still leaves the room.
        let small = js.clone().max_payload(1000);
        assert_eq!(small.jetstream_payload_limit(8192), 1000);
        let close = js.max_payload(8150);
        assert_eq!(
            close.jetstream_payload_limit(8192),
            8192 - MSG_ID_HEADER_ROOM
        );
        // A server limit below the room leaves nothing rather than wrapping.
        assert_eq!(
            NatsConfig::new("nats://127.0.0.1:4222", "a.b").jetstream_payload_limit(100),
            0
        );
    }

    #[test]
    fn urls() {
        for good in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://[::1]:4222",
            "tls://user:pw@host:4443",
            "localhost",
        ] {
            assert!(validate_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "http://127.0.0.1:4222",
            "nats://",
            "nats://host:0",
            "nats://host:99999",
            "nats://host:abc",
            "nats://ho st:4222",
            "nats://[::1:4222",
        ] {
            let e = validate_url(bad).unwrap_err();
            assert_eq!(e.field(), "nats.url", "{bad}");
        }
    }

    #[test]
    fn secrets_never_show() {
        let c = NatsConfig::new("nats://alice:hunter2@127.0.0.1:4222", "a.b").credentials(
            Credentials::UserPassword {
                user: "bob".into(),
                password: Secret::new("sw0rdfish"),
            },
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("sw0rdfish"), "{shown}");
        assert!(shown.contains("alice:***"), "{shown}");
        let t = format!("{:?}", Credentials::Token(Secret::new("tok3n")));
        assert!(!t.contains("tok3n"));
        assert_eq!(redact_url("nats://tok3n@h:1"), "nats://***@h:1");
    }

    #[test]
    fn validation_names_fields() {
        let base = NatsConfig::new("nats://127.0.0.1:4222", "a.b");
        assert!(base.validate().is_ok());
        let e = base.clone().ensure_stream("S").validate().unwrap_err();
        assert_eq!(e.field(), "nats.ensure_stream");
        let e = base
            .clone()
            .jetstream()
            .ensure_stream("a.b")
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), "nats.ensure_stream");
        let e = base.clone().max_payload(10).validate().unwrap_err();
        assert_eq!(e.field(), "nats.max_payload");
        let mut z = base.clone();
        z.servers.clear();
        assert_eq!(z.validate().unwrap_err().field(), "nats.url");
        let mut j = base.jetstream();
        j.delivery = Delivery::JetStream {
            ack_timeout: Duration::ZERO,
            max_acks_in_flight: 10,
        };
        assert_eq!(j.validate().unwrap_err().field(), "nats.ack_timeout");
    }
}
