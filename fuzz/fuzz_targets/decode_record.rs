//! Fuzzes the spool's record decoder: it must never panic, never claim more
//! bytes than it was given, and whatever it accepts must encode back into a
//! record that decodes to the same ids (reports) or the same value (acks).
//!
//! Inputs starting with an even byte or with the record magic are decoded
//! as they are (framing, lengths, checksums); the others are a mode byte and
//! a body, wrapped in a frame with a correct checksum first, so the fuzzer
//! also reaches the body parsers (report JSON, ack ranges), which a random
//! checksum would almost always hide.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_core::spool::{decode_record, encode_record, DecodeError, Record, RECORD_MAGIC};

fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = RECORD_MAGIC.to_vec();
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[kind, 0, 0, 0]);
    bytes.extend_from_slice(body);
    let crc = crc32fast::hash(&bytes[8..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn check(data: &[u8]) {
    match decode_record(data) {
        Ok((record, len)) => {
            assert!(len <= data.len());
            let mut again = Vec::new();
            encode_record(&record, &mut again).expect("a decoded record fits");
            let (back, n) = decode_record(&again).expect("a re-encoded record decodes");
            assert_eq!(n, again.len());
            match (&back, &record) {
                // JSON may be spelled differently (and serde_json's float
                // parsing is not exact for every literal), so compare ids.
                (Record::Report { id: a, report: x }, Record::Report { id: b, report: y }) => {
                    assert_eq!(a, b);
                    assert_eq!(x.id, y.id);
                }
                _ => assert_eq!(back, record),
            }
        }
        Err(DecodeError::Incomplete { needed }) => assert!(needed > data.len()),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 1 && mode != RECORD_MAGIC[0] => {
            // Kinds 1 (report) and 2 (ack) mostly, sometimes anything.
            let kind = match mode >> 1 {
                k @ 0..=63 => 1 + (k & 1),
                k => k,
            };
            check(&framed(kind, rest));
        }
        _ => check(data),
    }
});
