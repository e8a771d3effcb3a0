//! What a NATS server's answer to a publish means for a report: the one
//! table both NATS stacks (async-nats in tidings-tokio, the sync `nats`
//! client in tidings-nats-sync) use, so that the same fault gives the same
//! outcome and the same message on every adapter.
//!
//! A sink turns what its client library handed it into a [`ServerAnswer`]
//! and calls [`ServerAnswer::into_error`]; it never decides on its own
//! whether an answer is retried.
//!
//! | answer | kind | what happens to the report |
//! |---|---|---|
//! | JetStream API error `503` (JetStream unavailable, leader election, a full stream with `discard: new`, a store failure) | [`Unavailable`](SinkErrorKind::Unavailable) | retried; the sink is marked down if it lasts; spilled meanwhile |
//! | `500`, `502` and any other `5xx` | [`Unavailable`](SinkErrorKind::Unavailable) | retried, as above |
//! | `408`, `504` (the server timed out) | [`Timeout`](SinkErrorKind::Timeout) | retried with the same id (deduplicated) |
//! | `400` *message size exceeds maximum* (the stream's `max_msg_size`) | [`TooLarge`](SinkErrorKind::TooLarge) | spilled, not retried |
//! | any other `4xx` (bad request, wrong expected stream or sequence, not permitted) | [`Rejected`](SinkErrorKind::Rejected) | spilled, not retried |
//! | a `503` status with no body: no responders | [`Unavailable`](SinkErrorKind::Unavailable) | retried (no stream captures the subject, or its leader is being elected); with [`ensure_stream`](super::NatsConfig::ensure_stream) the stream is checked (and created) again first |
//! | no acknowledgement in time | [`Timeout`](SinkErrorKind::Timeout) | retried with the same id |
//! | `-ERR 'Permissions Violation for Publish to "…"'` | [`Rejected`](SinkErrorKind::Rejected) | spilled, not retried |
//! | the connection broke before the answer | [`Unavailable`](SinkErrorKind::Unavailable) | retried |
//! | an answer that is not a JetStream ack | [`Other`](SinkErrorKind::Other) | retried |
//!
//!
//! Why a connection could not be made is the connect half of the table:
//! [`ConnectFailure`].
//!
//! ```
//! use tidings_core::nats::ServerAnswer;
//! use tidings_core::SinkErrorKind;
//!
//! let full = ServerAnswer::JetStreamError {
//!     code: 503,
//!     err_code: 10077,
//!     description: "maximum messages exceeded",
//! };
//! let error = full.into_error("app.reports");
//! assert_eq!(error.kind(), SinkErrorKind::Unavailable);
//! assert!(error.message().contains("stream is full"), "{error}");
//!
//! let denied = ServerAnswer::PublishDenied {
//!     server_error: "Permissions Violation for Publish to \"app.reports\"",
//! };
//! assert_eq!(denied.into_error("app.reports").kind(), SinkErrorKind::Rejected);
//! ```

use std::time::Duration;

use super::Redactor;
use crate::sink::{SinkError, SinkErrorKind};

/// JetStream's error code for "subjects overlap with an existing stream".
pub const ERR_SUBJECTS_OVERLAP: u64 = 10065;
/// JetStream's error code for "stream not found".
pub const ERR_STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's error code for "message size exceeds maximum allowed".
pub const ERR_MESSAGE_TOO_LARGE: u64 = 10054;
/// JetStream's error code for a store failure ("maximum messages exceeded",
/// "maximum bytes exceeded" on a full stream with `discard: new`).
pub const ERR_STORE_FAILED: u64 = 10077;
/// JetStream's error code for "JetStream not enabled for account".
pub const ERR_NOT_ENABLED_FOR_ACCOUNT: u64 = 10039;

/// One answer to a publish, as both NATS stacks can observe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerAnswer<'a> {
    /// A JetStream API error (in a publish ack, or the answer to a stream
    /// request): `{"error":{"code":..,"err_code":..,"description":..}}`.
    JetStreamError {
        /// The HTTP-like status code (`400`, `503`, …).
        code: u16,
        /// JetStream's own error code (`10077`, …); 0 when absent.
        err_code: u64,
        /// The server's description.
        description: &'a str,
    },
    /// A `503` status with no body: nothing answered on the subject.
    NoResponders,
    /// No acknowledgement arrived within this time.
    AckTimeout(Duration),
    /// The server refused the publish with this `-ERR` text
    /// (`Permissions Violation for Publish to "…"`).
    PublishDenied {
        /// The server's error text (secrets already removed).
        server_error: &'a str,
    },
    /// The connection broke before the answer came.
    ConnectionLost,
    /// Something that is not a JetStream acknowledgement (`detail` says
    /// what, e.g. a parse error and the first bytes).
    Unreadable {
        /// What was wrong with it.
        detail: &'a str,
    },
}

impl ServerAnswer<'_> {
    /// The one decision: what this answer to a publish on `subject` means
    /// for the report (its kind decides retry or spill), with a message
    /// that says what to fix where there is something to fix.
    pub fn into_error(self, subject: &str) -> SinkError {
        match self {
            ServerAnswer::JetStreamError {
                code,
                err_code,
                description,
            } => jetstream_error(code, err_code, description, subject),
            ServerAnswer::NoResponders => SinkError::unavailable(format!(
                "no JetStream stream answered on {subject:?} (none captures the subject, \
                 or its leader is being elected)"
            )),
            ServerAnswer::AckTimeout(after) => SinkError::timeout(format!(
                "no JetStream acknowledgement within {after:?} for {subject:?}"
            )),
            ServerAnswer::PublishDenied { server_error } => SinkError::rejected(format!(
                "the server refused publishing to {subject:?}: {} (grant the user publish \
                 permission on the subject)",
                server_error.trim()
            )),
            ServerAnswer::ConnectionLost => {
                SinkError::unavailable("the NATS connection broke before the server answered")
            }
            ServerAnswer::Unreadable { detail } => SinkError::other(format!(
                "the answer to a publish on {subject:?} is not a JetStream acknowledgement: \
                 {detail}"
            )),
        }
    }
}

/// What a sink's TLS hooks saw during the connect attempt that failed:
/// both sinks install the same two hooks in their client's TLS stack (a
/// server-certificate verifier and a client-certificate resolver), so the
/// same failure is classified the same way even where a client library
/// reports only "TLS error".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSeen {
    /// TLS was required by the configuration (`require_tls`).
    pub require_tls: bool,
    /// A TLS handshake was started (the client sent its hello): with no
    /// server certificate seen after it, the server did not speak TLS.
    pub handshake_started: bool,
    /// The server's certificate was checked; `Some(Err(why))` when it was
    /// refused (the TLS library's words, e.g. `invalid peer certificate:
    /// UnknownIssuer`).
    pub server_cert: Option<Result<(), String>>,
    /// The server asked for a client certificate; `Some(true)` when one was
    /// configured (and sent).
    pub client_cert_asked: Option<bool>,
}

impl TlsSeen {
    /// A fresh record for one connect attempt: nothing seen yet, TLS
    /// required or not as configured.
    pub fn new(require_tls: bool) -> TlsSeen {
        TlsSeen {
            require_tls,
            ..TlsSeen::default()
        }
    }
}

/// How every message about a missing connection begins.
const NOT_CONNECTED: &str = "not connected to ";

/// Why a connection could not be made: the connect half of the one table.
/// Each sink turns what its client said (and what its
/// TLS hooks saw, [`TlsSeen`]) into one with [`ConnectFailure::classify`],
/// and [`ConnectFailure::into_error`] words it. Every row is
/// [`Unavailable`](SinkErrorKind::Unavailable): while the sink cannot
/// connect, reports are retried, then spilled — nothing is lost, and the
/// message (in [`SinkStats::last_error`](crate::SinkStats) and the
/// diagnostics) says what to fix.
///
/// | failure | what the message tells you to fix |
/// |---|---|
/// | authorization violation (wrong user/password, token, NKey, `.creds`; or not allowed to connect) | the credentials, or the user's entry in the server's `authorization`/account |
/// | the server's certificate is not trusted (unknown issuer, expired, bad signature) | `tls_ca_file`: the CA that signed the server's certificate |
/// | the server's certificate is not valid for the name (`NotValidForName`) | `tls_server_name`: the name in the certificate |
/// | the server requires a client certificate and none was configured | `tls_client_cert` |
/// | the server did not accept the client certificate | a client certificate signed by a CA the server trusts (`tls.ca_file` in the server's config) |
/// | TLS required (`require_tls`, or a `tls://` URL) but the server does not offer TLS | the server's `tls {}` block, or the URL |
/// | any other TLS handshake failure | the TLS settings on both sides (versions, cipher suites) |
/// | anything else (refused, timed out, DNS) | the URL, the network, the server |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectFailure<'a> {
    /// The server refused the credentials (`Authorization Violation`).
    AuthorizationViolation,
    /// The server's certificate does not chain to a trusted CA (or is
    /// expired, or badly signed).
    CertificateNotTrusted {
        /// The TLS library's reason.
        detail: &'a str,
    },
    /// The server's certificate is not valid for the name verified.
    CertificateNameMismatch {
        /// The TLS library's reason.
        detail: &'a str,
    },
    /// The server requires a client certificate (mutual TLS) and none is
    /// configured.
    ClientCertificateRequired,
    /// The server did not accept the client certificate sent.
    ClientCertificateRejected {
        /// What was seen.
        detail: &'a str,
    },
    /// TLS is required but the server does not offer it.
    TlsNotOffered,
    /// Another TLS handshake failure.
    TlsHandshake {
        /// What was seen.
        detail: &'a str,
    },
    /// Anything else (refused, timed out, DNS, I/O).
    Other {
        /// The client's words.
        detail: &'a str,
    },
}

impl<'a> ConnectFailure<'a> {
    /// Classifies a failed connect attempt from the client's error text
    /// (already redacted) and what the TLS hooks saw.
    ///
    /// ```
    /// use tidings_core::nats::{ConnectFailure, TlsSeen};
    /// let seen = TlsSeen {
    ///     server_cert: Some(Err("invalid peer certificate: UnknownIssuer".into())),
    ///     ..TlsSeen::default()
    /// };
    /// assert!(matches!(
    ///     ConnectFailure::classify("nats: TLS error", &seen),
    ///     ConnectFailure::CertificateNotTrusted { .. }
    /// ));
    /// assert_eq!(
    ///     ConnectFailure::classify("Authorization Violation", &TlsSeen::default()),
    ///     ConnectFailure::AuthorizationViolation
    /// );
    /// ```
    pub fn classify(text: &'a str, seen: &'a TlsSeen) -> ConnectFailure<'a> {
        let lower = text.to_ascii_lowercase();
        if lower.contains("authorization violation") || lower.contains("user authentication") {
            return ConnectFailure::AuthorizationViolation;
        }
        // The server's certificate: what the verifier said, else the text.
        let refused = match &seen.server_cert {
            Some(Err(why)) => Some(why.as_str()),
            _ if lower.contains("invalid peer certificate") => Some(text),
            _ => None,
        };
        if let Some(why) = refused {
            return if why.contains("NotValidForName") || why.contains("not valid for name") {
                ConnectFailure::CertificateNameMismatch { detail: why }
            } else {
                ConnectFailure::CertificateNotTrusted { detail: why }
            };
        }
        let tls_word = lower.contains("tls")
            || lower.contains("alert")
            || lower.contains("corrupt message")
            || lower.contains("handshake")
            || lower.contains("certificate");
        match seen.client_cert_asked {
            Some(false) => return ConnectFailure::ClientCertificateRequired,
            Some(true) if seen.server_cert.is_some() => {
                return ConnectFailure::ClientCertificateRejected { detail: text }
            }
            _ => {}
        }
        if lower.contains("certificaterequired") || lower.contains("certificate required") {
            return ConnectFailure::ClientCertificateRequired;
        }
        if lower.contains("badcertificate") || lower.contains("unknownca") {
            return ConnectFailure::ClientCertificateRejected { detail: text };
        }
        // TLS was started (required by the configuration, the URL or the
        // server) and the server never presented a certificate, nor sent a
        // TLS alert: it does not speak TLS. Without that record (a client
        // configuration without the hooks), the client's words decide.
        let no_certificate = seen.server_cert.is_none() && !lower.contains("alert");
        if (seen.handshake_started && no_certificate)
            || (seen.require_tls && no_certificate && tls_word)
        {
            return ConnectFailure::TlsNotOffered;
        }
        if lower.contains("tls not available") || lower.contains("tls is not available") {
            return ConnectFailure::TlsNotOffered;
        }
        if tls_word {
            return ConnectFailure::TlsHandshake { detail: text };
        }
        ConnectFailure::Other { detail: text }
    }

    /// The error for a send while not connected to `servers` (already
    /// redacted) for this reason: always
    /// [`Unavailable`](SinkErrorKind::Unavailable), with what to fix.
    pub fn into_error(self, servers: &str) -> SinkError {
        SinkError::unavailable(self.describe(servers))
    }

    /// The message of [`into_error`](Self::into_error).
    pub fn describe(self, servers: &str) -> String {
        match self {
            ConnectFailure::AuthorizationViolation => format!(
                "not connected to {servers}: Authorization Violation: the server refused the \
                 credentials (check the user/password, token, NKey seed or .creds file, and \
                 that the server's authorization or account lists this user)"
            ),
            ConnectFailure::CertificateNotTrusted { detail } => format!(
                "not connected to {servers}: the server's TLS certificate is not trusted \
                 ({detail}): set NatsConfig::tls_ca_file to the CA that signed it"
            ),
            ConnectFailure::CertificateNameMismatch { detail } => format!(
                "not connected to {servers}: the server's TLS certificate is not valid for the \
                 name verified ({detail}): connect by a name the certificate holds, or set \
                 NatsConfig::tls_server_name to it"
            ),
            ConnectFailure::ClientCertificateRequired => format!(
                "not connected to {servers}: the server requires a TLS client certificate \
                 (mutual TLS) and none is configured: set NatsConfig::tls_client_cert"
            ),
            ConnectFailure::ClientCertificateRejected { detail } => format!(
                "not connected to {servers}: the server did not accept the TLS client \
                 certificate ({detail}): use a certificate signed by a CA the server trusts \
                 (its tls.ca_file)"
            ),
            ConnectFailure::TlsNotOffered => format!(
                "not connected to {servers}: TLS is required but the server does not offer \
                 it: enable TLS on the server (a tls {{}} block), or connect to one that has it"
            ),
            ConnectFailure::TlsHandshake { detail } => format!(
                "not connected to {servers}: the TLS handshake failed ({detail}): check the \
                 TLS settings of both sides"
            ),
            ConnectFailure::Other { detail } => format!("not connected to {servers}: {detail}"),
        }
    }

    /// The message for a failed connect attempt to `servers` (already
    /// redacted): the client's words and what the TLS hooks saw, both
    /// redacted first, classified and worded by this table. What each sink
    /// keeps as its last error.
    pub fn message(
        client_text: &str,
        seen: &TlsSeen,
        redactor: &Redactor,
        servers: &str,
    ) -> String {
        let text = redactor.clean(client_text);
        let seen = TlsSeen {
            server_cert: seen
                .server_cert
                .as_ref()
                .map(|r| r.clone().map_err(|why| redactor.clean(&why))),
            ..seen.clone()
        };
        ConnectFailure::classify(&text, &seen).describe(servers)
    }

    /// Why a send found no connection to `servers`, given the sink's last
    /// error: as it is when this table already worded it (a failed
    /// connect), otherwise as [`Other`](Self::Other).
    pub fn not_connected(servers: &str, last_error: String) -> String {
        if last_error.starts_with(NOT_CONNECTED) {
            last_error
        } else {
            ConnectFailure::Other {
                detail: &last_error,
            }
            .describe(servers)
        }
    }
}

fn jetstream_error(code: u16, err_code: u64, description: &str, subject: &str) -> SinkError {
    let what = format!("JetStream error {code} ({err_code}) for {subject:?}: {description}");
    let kind = match code {
        408 | 504 => SinkErrorKind::Timeout,
        500..=599 => SinkErrorKind::Unavailable,
        _ if err_code == ERR_MESSAGE_TOO_LARGE => SinkErrorKind::TooLarge,
        _ => SinkErrorKind::Rejected,
    };
    let hint = if err_code == ERR_STORE_FAILED && description.contains("exceeded") {
        " (the stream is full and refuses new messages: raise its limits, or use \
         `discard: old`)"
    } else if err_code == ERR_MESSAGE_TOO_LARGE {
        " (the stream's max_msg_size is below this report: raise it, or set \
         NatsConfig::max_payload below it so reports are cut to fit)"
    } else if err_code == ERR_NOT_ENABLED_FOR_ACCOUNT {
        " (enable JetStream for the account)"
    } else {
        ""
    };
    SinkError::new(kind, format!("{what}{hint}"))
}

/// The server's description of a JetStream API error, from the error as a
/// client library serializes it (both keep the field private):
/// `"no description"` when there is none.
pub fn api_error_description(api: &impl serde::Serialize) -> String {
    serde_json::to_value(api)
        .ok()
        .and_then(|v| v.get("description")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "no description".to_owned())
}

/// The subject a server's `-ERR` refused publishing to, if the text is a
/// publish permission violation (`Permissions Violation for Publish to
/// "subject"`), whatever prefix the client library put before it.
///
/// ```
/// use tidings_core::nats::publish_refused_subject;
/// assert_eq!(
///     publish_refused_subject("nats: Permissions Violation for Publish to \"a.b\""),
///     Some("a.b")
/// );
/// assert_eq!(publish_refused_subject("nats: slow consumer"), None);
/// ```
pub fn publish_refused_subject(server_error: &str) -> Option<&str> {
    publish_refusal(server_error).map(|(subject, _)| subject)
}

/// A publish permission violation read from a server error as a client
/// library hands it over: the subject refused, and the server's own words
/// (without the client's prefix, such as `nats: ` or `server error: `).
///
/// ```
/// use tidings_core::nats::publish_refusal;
/// assert_eq!(
///     publish_refusal("server error: Permissions Violation for Publish to \"a.b\""),
///     Some(("a.b", "Permissions Violation for Publish to \"a.b\""))
/// );
/// ```
pub fn publish_refusal(server_error: &str) -> Option<(&str, &str)> {
    const PREFIX: &str = "permissions violation for publish to ";
    // ASCII lowercasing keeps every byte where it was.
    let at = server_error.to_ascii_lowercase().find(PREFIX)?;
    let subject = server_error[at + PREFIX.len()..]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    (!subject.is_empty()).then_some((subject, &server_error[at..]))
}

/// The error for a report published to `subject` when the server refused
/// publishing to the subjects in `refused` (pairs of subject and the
/// server's words, from [`publish_refusal`]): `None` when `subject` is not
/// among them.
pub fn publish_denied(refused: &[(String, String)], subject: &str) -> Option<SinkError> {
    refused
        .iter()
        .find(|(s, _)| s == subject)
        .map(|(_, server_error)| ServerAnswer::PublishDenied { server_error }.into_error(subject))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SinkErrorKind::*;

    /// The table, row by row: both sinks' own tests feed their client's
    /// errors through their mapping into these answers.
    #[test]
    fn every_answer_has_one_kind() {
        let js = |code, err_code| ServerAnswer::JetStreamError {
            code,
            err_code,
            description: "d",
        };
        let rows: Vec<(ServerAnswer<'_>, SinkErrorKind)> = vec![
            (js(503, 10008), Unavailable),
            (js(503, ERR_STORE_FAILED), Unavailable),
            (js(500, 10001), Unavailable),
            (js(502, 0), Unavailable),
            (js(408, 0), Timeout),
            (js(504, 0), Timeout),
            (js(400, ERR_MESSAGE_TOO_LARGE), TooLarge),
            (js(400, 10060), Rejected),
            (js(400, 10071), Rejected),
            (js(403, 0), Rejected),
            (js(404, ERR_STREAM_NOT_FOUND), Rejected),
            (ServerAnswer::NoResponders, Unavailable),
            (ServerAnswer::AckTimeout(Duration::from_secs(5)), Timeout),
            (
                ServerAnswer::PublishDenied {
                    server_error: "Permissions Violation for Publish to \"s\"",
                },
                Rejected,
            ),
            (ServerAnswer::ConnectionLost, Unavailable),
            (ServerAnswer::Unreadable { detail: "x" }, Other),
        ];
        for (answer, kind) in rows {
            let e = answer.into_error("app.reports");
            assert_eq!(e.kind(), kind, "{answer:?}: {e}");
            assert!(e.message().contains("app.reports") || answer == ServerAnswer::ConnectionLost);
        }
    }

    /// The connect half of the table: what each client says, with what
    /// the TLS hooks saw, and the one outcome (always unavailable).
    #[test]
    fn every_connect_failure_is_unavailable_and_says_what_to_fix() {
        use crate::testing::tls_seen::*;
        let (untrusted, wrong_name, asked_none, asked_sent, required, started) = (
            untrusted(),
            wrong_name(),
            asked_none(),
            asked_sent(),
            required(),
            started(),
        );
        let none = TlsSeen::default();
        let rows: Vec<(&str, &TlsSeen, &str)> = vec![
            // The sync client's words.
            (
                "server refused the connection: Authorization Violation",
                &none,
                "Authorization Violation",
            ),
            (
                "could not connect: invalid peer certificate: UnknownIssuer",
                &none,
                "tls_ca_file",
            ),
            (
                "could not connect: received fatal alert: CertificateRequired",
                &none,
                "tls_client_cert",
            ),
            (
                "could not connect: received fatal alert: BadCertificate",
                &none,
                "did not accept",
            ),
            // async-nats' words (the kind only) with what the hooks saw.
            (
                "nats: authorization violation",
                &none,
                "Authorization Violation",
            ),
            ("nats: TLS error", &untrusted, "tls_ca_file"),
            ("nats: TLS error", &wrong_name, "tls_server_name"),
            ("nats: IO error", &asked_none, "tls_client_cert"),
            ("nats: IO error", &asked_sent, "did not accept"),
            ("nats: TLS error", &required, "does not offer"),
            (
                "could not connect: received corrupt message of type InvalidContentType",
                &required,
                "does not offer",
            ),
            ("nats: TLS error", &none, "TLS handshake failed"),
            // Required TLS, but the server is simply down: not "no TLS".
            ("nats: IO error", &required, "IO error"),
            // async-nats reports a failed handshake as an I/O error.
            ("nats: IO error", &started, "does not offer"),
            (
                "could not connect: Connection refused (os error 111)",
                &none,
                "Connection refused",
            ),
        ];
        for (text, seen, says) in rows {
            let e = ConnectFailure::classify(text, seen).into_error("nats://127.0.0.1:4222");
            assert_eq!(e.kind(), Unavailable, "{text}: {e}");
            assert!(e.message().contains(says), "{text} {seen:?}: {e}");
            assert!(e.message().contains("nats://127.0.0.1:4222"), "{e}");
        }
    }

    #[test]
    fn refusals_are_found_whatever_the_prefix() {
        for text in [
            "Permissions Violation for Publish to \"a.b\"",
            "nats: Permissions Violation for Publish to \"a.b\"",
            "server error: permissions violation for publish to 'a.b'",
        ] {
            assert_eq!(publish_refused_subject(text), Some("a.b"), "{text}");
        }
        assert_eq!(
            publish_refused_subject("Permissions Violation for Subscription to \"a.b\""),
            None
        );
    }
}
