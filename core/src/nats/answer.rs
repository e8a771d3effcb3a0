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
    const PREFIX: &str = "permissions violation for publish to ";
    let at = server_error.to_ascii_lowercase().find(PREFIX)?;
    let subject = server_error[at + PREFIX.len()..]
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    (!subject.is_empty()).then_some(subject)
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
