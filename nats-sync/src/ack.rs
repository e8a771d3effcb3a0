//! JetStream publish acknowledgements.

use serde::Deserialize;
use tidings_core::nats::ServerAnswer;
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

/// What one JetStream reply says about the report it answers:
/// `{"stream":"S","seq":N,"duplicate":true}` → [`Ack::Stored`]; anything
/// else goes through core's one table ([`ServerAnswer::into_error`]), the
/// same the async-nats sink uses.
pub(crate) fn parse(subject: &str, no_responders: bool, data: &[u8]) -> Result<Ack, SinkError> {
    if no_responders {
        return Err(ServerAnswer::NoResponders.into_error(subject));
    }
    let unreadable = |why: String| {
        let detail = format!(
            "{why}: {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        );
        ServerAnswer::Unreadable { detail: &detail }.into_error(subject)
    };
    let ack: PubAck = serde_json::from_slice(data).map_err(|e| unreadable(e.to_string()))?;
    if let Some(err) = ack.error {
        return Err(ServerAnswer::JetStreamError {
            code: err.code,
            err_code: err.err_code,
            description: &err.description,
        }
        .into_error(subject));
    }
    match (ack.stream, ack.seq) {
        (Some(stream), Some(sequence)) => Ok(Ack::Stored {
            stream,
            sequence,
            duplicate: ack.duplicate,
        }),
        _ => Err(unreadable("an ack without stream or sequence".to_owned())),
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

    /// Core's rows, read the way this sink reads an ack off the wire.
    #[test]
    fn the_shared_table_reads_the_same_here() {
        for (body, kind) in tidings_core::testing::JETSTREAM_ANSWERS {
            let e = parse("s", false, body.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), *kind, "{body}: {e}");
        }
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
