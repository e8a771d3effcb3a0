//! JetStream publish acknowledgements.

use serde::Deserialize;
use tidings_core::{Ack, SinkError};

#[derive(Deserialize)]
struct PubAck {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// What one JetStream reply says about the report it answers.
///
/// `{"stream":"S","seq":N,"duplicate":true}` → [`Ack::Stored`];
/// `{"error":{"code":503,..}}` or a `503` status with no body (no stream
/// captures the subject, or JetStream is unavailable) → unavailable,
/// retried; `408`/`504` → timeout, retried; any other API error → rejected.
pub(crate) fn parse(subject: &str, no_responders: bool, data: &[u8]) -> Result<Ack, SinkError> {
    if no_responders {
        return Err(SinkError::unavailable(format!(
            "no JetStream stream answered for subject {subject:?} (503 no responders)"
        )));
    }
    let ack: PubAck = serde_json::from_slice(data).map_err(|e| {
        SinkError::other(format!(
            "unreadable JetStream ack for subject {subject:?}: {e}: {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        ))
    })?;
    if let Some(err) = ack.error {
        let message = format!(
            "JetStream error {} ({}) for subject {subject:?}: {}",
            err.code, err.err_code, err.description
        );
        return Err(match err.code {
            503 => SinkError::unavailable(message),
            408 | 504 => SinkError::timeout(message),
            _ => SinkError::rejected(message),
        });
    }
    match (ack.stream, ack.seq) {
        (Some(stream), Some(sequence)) => Ok(Ack::Stored {
            stream,
            sequence,
            duplicate: ack.duplicate,
        }),
        _ => Err(SinkError::other(format!(
            "JetStream ack without stream or sequence for subject {subject:?}: {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::SinkErrorKind;

    #[test]
    fn stored_and_duplicate() {
        assert_eq!(
            parse("s", false, br#"{"stream":"S","seq":7}"#),
            Ok(Ack::Stored {
                stream: "S".into(),
                sequence: 7,
                duplicate: false
            })
        );
        assert_eq!(
            parse("s", false, br#"{"stream":"S","seq":7,"duplicate":true}"#),
            Ok(Ack::Stored {
                stream: "S".into(),
                sequence: 7,
                duplicate: true
            })
        );
    }

    #[test]
    fn errors_by_kind() {
        let kind = |data: &[u8]| parse("s", false, data).unwrap_err().kind();
        assert_eq!(
            kind(br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#),
            SinkErrorKind::Unavailable
        );
        assert_eq!(
            kind(br#"{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}"#),
            SinkErrorKind::Rejected
        );
        assert_eq!(kind(b"not json"), SinkErrorKind::Other);
        assert_eq!(kind(b"{}"), SinkErrorKind::Other);
        assert_eq!(
            parse("s", true, b"").unwrap_err().kind(),
            SinkErrorKind::Unavailable
        );
    }
}
