//! The on-disk format: segment headers and records (see the byte layout
//! tables in the [module docs](super)).
//!
//! Everything here is pure: bytes in, values out. [`decode_record`] is the
//! one function that reads untrusted bytes; it is written to never panic and
//! to reject an absurd length before looking at (or allocating for) the body.

use std::fmt;
use std::ops::RangeInclusive;

use crate::report::Report;
#[cfg(any(test, feature = "fuzzing"))]
use crate::report::TooLarge;

use super::RecordId;

/// The first 8 bytes of every segment file: `0xF7` then `tdspool`.
pub const SEGMENT_MAGIC: [u8; 8] = *b"\xF7tdspool";

/// The segment format version written by this crate. A segment with a
/// higher version is refused (it was written by a newer tidings), never
/// treated as corrupt.
pub const FORMAT_VERSION: u32 = 1;

/// Length of a segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// The first 4 bytes of every record: `0xF7` then `tdr`. `0xF7` never occurs
/// in UTF-8, so the magic cannot appear inside a report's JSON; recovery
/// resynchronises on it after a damaged record.
pub const RECORD_MAGIC: [u8; 4] = *b"\xF7tdr";

/// Length of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;

/// The largest record body accepted (16 MiB). A longer length field is
/// treated as corruption before anything is allocated; a report whose JSON
/// would be longer is shortened with [`Report::encode_within`] when spooled.
pub const MAX_RECORD_BODY: usize = 16 << 20;

const KIND_REPORT: u8 = 1;
const KIND_ACK: u8 = 2;
/// Bytes of a report body before its JSON: the record id.
const REPORT_ID_LEN: usize = 8;
/// Bytes of one acknowledged range: first and last id.
const ACK_RANGE_LEN: usize = 16;

/// One decoded record.
// Records are decoded one at a time and moved straight on; boxing the
// report would only add an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A spooled report with the id the spool gave it.
    Report {
        /// The record id (never 0).
        id: RecordId,
        /// The report, with its own [`ReportId`](crate::ReportId) intact.
        report: Report,
    },
    /// Acknowledgements: every record whose id is in one of the ranges is
    /// done and must not be replayed.
    Ack {
        /// Inclusive ranges of record ids, each `first <= last`; at least one.
        ranges: Vec<RangeInclusive<RecordId>>,
    },
}

/// Why bytes are not a valid record. Recovery treats every variant the same
/// way (skip and count); the variants exist for diagnostics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are a valid beginning of a record but end too soon:
    /// `needed` bytes from the start would be required. `needed` is at most
    /// [`RECORD_HEADER_LEN`] + [`MAX_RECORD_BODY`].
    Incomplete {
        /// Total bytes the record needs, counted from its first byte.
        needed: usize,
    },
    /// The bytes do not start with [`RECORD_MAGIC`].
    BadMagic,
    /// The length field exceeds [`MAX_RECORD_BODY`].
    TooLong {
        /// The length field's value.
        len: u32,
    },
    /// The CRC32 stored in the header does not match the record.
    BadChecksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// An unknown record kind or non-zero reserved bytes (a newer format or
    /// damage that happened to keep the checksum valid).
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The frame is intact but its body does not parse.
    BadBody {
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "record incomplete: {needed} bytes needed")
            }
            DecodeError::BadMagic => f.write_str("no record magic"),
            DecodeError::TooLong { len } => write!(
                f,
                "record length {len} exceeds the maximum of {MAX_RECORD_BODY} bytes"
            ),
            DecodeError::BadChecksum { stored, computed } => write!(
                f,
                "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            DecodeError::UnknownKind { kind } => write!(f, "unknown record kind {kind}"),
            DecodeError::BadBody { reason } => write!(f, "record body unreadable: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Decodes the record at the start of `bytes`, returning it and the number
/// of bytes it occupies (header and body).
///
/// Never panics, whatever the input. Checks, in order: magic, length bound
/// (before allocating anything), completeness, CRC32, kind, body. Only the
/// body of a record whose checksum matches is parsed, so the cost of a
/// garbage input is a CRC over at most [`MAX_RECORD_BODY`] bytes.
///
/// ```
/// use tidings_core::Report;
/// use tidings_core::spool::{decode_record, encode_record, DecodeError, Record, RecordId};
///
/// let record = Record::Report { id: RecordId::new(7), report: Report::error("disk", "full") };
/// let mut bytes = Vec::new();
/// encode_record(&record, &mut bytes).unwrap();
/// assert_eq!(decode_record(&bytes), Ok((record, bytes.len())));
///
/// // A torn write: the record's beginning only.
/// assert!(matches!(decode_record(&bytes[..10]), Err(DecodeError::Incomplete { .. })));
/// // A flipped bit.
/// bytes[20] ^= 0x01;
/// assert!(matches!(decode_record(&bytes), Err(DecodeError::BadChecksum { .. })));
/// ```
pub fn decode_record(bytes: &[u8]) -> Result<(Record, usize), DecodeError> {
    let magic_len = RECORD_MAGIC.len().min(bytes.len());
    if bytes[..magic_len] != RECORD_MAGIC[..magic_len] {
        return Err(DecodeError::BadMagic);
    }
    let Some(len) = u32_at(bytes, 8) else {
        return Err(DecodeError::Incomplete {
            needed: RECORD_HEADER_LEN,
        });
    };
    if len as usize > MAX_RECORD_BODY {
        return Err(DecodeError::TooLong { len });
    }
    let total = RECORD_HEADER_LEN + len as usize;
    let Some(frame) = bytes.get(..total) else {
        return Err(DecodeError::Incomplete { needed: total });
    };
    let stored = u32_at(frame, 4).unwrap_or_default();
    let computed = crc32fast::hash(&frame[8..]);
    if stored != computed {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    let kind = frame[12];
    if frame[13..16] != [0, 0, 0] {
        return Err(DecodeError::UnknownKind { kind });
    }
    let body = &frame[RECORD_HEADER_LEN..];
    let record = match kind {
        KIND_REPORT => decode_report(body)?,
        KIND_ACK => decode_ack(body)?,
        _ => return Err(DecodeError::UnknownKind { kind }),
    };
    Ok((record, total))
}

fn bad_body(reason: impl Into<String>) -> DecodeError {
    DecodeError::BadBody {
        reason: reason.into(),
    }
}

fn decode_report(body: &[u8]) -> Result<Record, DecodeError> {
    let id = u64_at(body, 0).ok_or_else(|| bad_body("report record shorter than its id"))?;
    if id == 0 {
        return Err(bad_body("record id 0"));
    }
    let report = Report::from_json(&body[REPORT_ID_LEN..])
        .map_err(|e| bad_body(format!("report JSON: {e}")))?;
    Ok(Record::Report {
        id: RecordId::new(id),
        report,
    })
}

fn decode_ack(body: &[u8]) -> Result<Record, DecodeError> {
    if body.is_empty() || !body.len().is_multiple_of(ACK_RANGE_LEN) {
        return Err(bad_body(format!(
            "ack body of {} bytes is not a non-empty list of 16-byte ranges",
            body.len()
        )));
    }
    let mut ranges = Vec::with_capacity(body.len() / ACK_RANGE_LEN);
    for chunk in body.chunks_exact(ACK_RANGE_LEN) {
        let first = u64_at(chunk, 0).unwrap_or_default();
        let last = u64_at(chunk, 8).unwrap_or_default();
        if first == 0 || first > last {
            return Err(bad_body(format!("bad ack range {first}..={last}")));
        }
        ranges.push(RecordId::new(first)..=RecordId::new(last));
    }
    Ok(Record::Ack { ranges })
}

/// Appends one record frame of `kind` whose body is the concatenation of
/// `parts` to `buf`. The caller guarantees the body is at most
/// [`MAX_RECORD_BODY`].
pub(crate) fn write_frame(buf: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert!(len <= MAX_RECORD_BODY);
    let start = buf.len();
    buf.extend_from_slice(&RECORD_MAGIC);
    buf.extend_from_slice(&[0; 4]); // CRC, filled in below
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[kind, 0, 0, 0]);
    for part in parts {
        buf.extend_from_slice(part);
    }
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The largest JSON a report record can carry.
pub(crate) const MAX_REPORT_JSON: usize = MAX_RECORD_BODY - REPORT_ID_LEN;

/// Bytes a report record with `json_len` bytes of JSON occupies.
pub(crate) fn report_frame_len(json_len: usize) -> usize {
    RECORD_HEADER_LEN + REPORT_ID_LEN + json_len
}

/// Appends a report record (id + already-encoded JSON) to `buf`.
pub(crate) fn write_report(buf: &mut Vec<u8>, id: RecordId, json: &[u8]) {
    write_frame(buf, KIND_REPORT, &[&id.get().to_le_bytes(), json]);
}

/// The most ranges one ack record holds.
pub(crate) const MAX_ACK_RANGES: usize = MAX_RECORD_BODY / ACK_RANGE_LEN;

/// Appends ack records for `ranges` (any number; split as needed) to `buf`.
pub(crate) fn write_acks(buf: &mut Vec<u8>, ranges: &[RangeInclusive<RecordId>]) {
    for chunk in ranges.chunks(MAX_ACK_RANGES) {
        let mut body = Vec::with_capacity(chunk.len() * ACK_RANGE_LEN);
        for r in chunk {
            body.extend_from_slice(&r.start().get().to_le_bytes());
            body.extend_from_slice(&r.end().get().to_le_bytes());
        }
        write_frame(buf, KIND_ACK, &[&body]);
    }
}

/// Appends the encoding of `record` to `buf`.
///
/// A report is written as its full JSON; one whose JSON exceeds
/// [`MAX_RECORD_BODY`] is refused with [`TooLarge`] (the spool itself
/// shortens such reports with [`Report::encode_within`] instead). An ack
/// record with more ranges than fit one record is written as several.
/// Ack ranges must satisfy `first <= last` and ids must not be 0, or the
/// result will not decode.
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode_record(record: &Record, buf: &mut Vec<u8>) -> Result<(), TooLarge> {
    match record {
        Record::Report { id, report } => {
            let json = report.to_json();
            if json.len() > MAX_REPORT_JSON {
                return Err(TooLarge {
                    size: json.len(),
                    max: MAX_REPORT_JSON,
                });
            }
            write_report(buf, *id, &json);
        }
        Record::Ack { ranges } => write_acks(buf, ranges),
    }
    Ok(())
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) version: u32,
    pub(crate) number: u64,
    pub(crate) base_id: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut h = [0u8; SEGMENT_HEADER_LEN];
        h[0..8].copy_from_slice(&SEGMENT_MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        h[12..20].copy_from_slice(&self.number.to_le_bytes());
        h[20..28].copy_from_slice(&self.base_id.to_le_bytes());
        let crc = crc32fast::hash(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// `None` when `bytes` do not start with an intact header.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SegmentHeader> {
        let h = bytes.get(..SEGMENT_HEADER_LEN)?;
        if h[..8] != SEGMENT_MAGIC || u32_at(h, 28)? != crc32fast::hash(&h[..28]) {
            return None;
        }
        Some(SegmentHeader {
            version: u32_at(h, 8)?,
            number: u64_at(h, 12)?,
            base_id: u64_at(h, 20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_record(id: u64) -> (Record, Vec<u8>) {
        let record = Record::Report {
            id: RecordId::new(id),
            report: Report::error("k", "m").with_context("n", id),
        };
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes).unwrap();
        (record, bytes)
    }

    #[test]
    fn layout_matches_the_documented_table() {
        let (_, bytes) = report_record(0x0102_0304_0506_0708);
        assert_eq!(bytes[..4], RECORD_MAGIC);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(bytes.len(), RECORD_HEADER_LEN + len);
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            crc32fast::hash(&bytes[8..])
        );
        assert_eq!(bytes[12..16], [KIND_REPORT, 0, 0, 0]);
        assert_eq!(bytes[16..24], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(bytes[24], b'{');
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_panics() {
        let (_, bytes) = report_record(1);
        for n in 0..bytes.len() {
            match decode_record(&bytes[..n]) {
                Err(DecodeError::Incomplete { needed }) => {
                    assert!(needed > n && needed <= bytes.len())
                }
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn absurd_lengths_are_refused_before_reading_the_body() {
        let mut bytes = RECORD_MAGIC.to_vec();
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 0, 0]);
        assert_eq!(
            decode_record(&bytes),
            Err(DecodeError::TooLong { len: u32::MAX })
        );
    }

    #[test]
    fn ack_records_round_trip_and_split() {
        let ranges: Vec<_> = (1..=MAX_ACK_RANGES as u64 + 3)
            .map(|i| RecordId::new(i * 10)..=RecordId::new(i * 10 + 2))
            .collect();
        let mut bytes = Vec::new();
        write_acks(&mut bytes, &ranges);
        let (first, n) = decode_record(&bytes).unwrap();
        let (second, m) = decode_record(&bytes[n..]).unwrap();
        assert_eq!(n + m, bytes.len());
        let mut all = Vec::new();
        for r in [first, second] {
            match r {
                Record::Ack { ranges } => all.extend(ranges),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(all, ranges);
    }

    #[test]
    fn intact_frames_with_bad_bodies_are_typed_errors() {
        let mut bytes = Vec::new();
        write_frame(
            &mut bytes,
            KIND_REPORT,
            &[&7u64.to_le_bytes(), b"{not json"],
        );
        assert!(matches!(
            decode_record(&bytes),
            Err(DecodeError::BadBody { .. })
        ));
        bytes.clear();
        write_frame(&mut bytes, KIND_ACK, &[&[1, 2, 3]]);
        assert!(matches!(
            decode_record(&bytes),
            Err(DecodeError::BadBody { .. })
        ));
        bytes.clear();
        write_frame(&mut bytes, 9, &[b"x"]);
        assert_eq!(
            decode_record(&bytes),
            Err(DecodeError::UnknownKind { kind: 9 })
        );
    }

    #[test]
    fn segment_header_round_trips_and_detects_damage() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            number: 42,
            base_id: 1000,
        };
        let mut bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        assert_eq!(SegmentHeader::decode(&bytes[..31]), None);
        bytes[15] ^= 0x80;
        assert_eq!(SegmentHeader::decode(&bytes), None);
    }
}
