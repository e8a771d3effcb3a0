//! Property tests of the spool's record format: encode → decode round-trips
//! any report and any acknowledgement; decoding and scanning never panic on
//! arbitrary bytes; damage is always detected; intact records are always
//! found among garbage; and opening a directory of arbitrary bytes never
//! fails or panics.

mod strategies;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;
use tidings_core::spool::{
    decode_record, encode_record, scan_records, DecodeError, Record, RecordId, Spool, SpoolConfig,
    SyncPolicy, RECORD_MAGIC, SEGMENT_HEADER_LEN,
};
use tidings_core::{Fingerprint, Report, ReportId, Severity, Source, Timestamp};

fn json_value() -> impl Strategy<Value = Value> {
    strategies::json_value(any::<String>())
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Debug),
        Just(Severity::Info),
        Just(Severity::Warning),
        Just(Severity::Error),
        Just(Severity::Critical),
    ]
}

/// Microseconds from the epoch up to the end of year 9999 (what RFC 3339
/// can say).
fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0u64..253_402_300_799_000_000)
        .prop_map(|us| Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_micros(us)))
}

fn report() -> impl Strategy<Value = Report> {
    (
        (
            any::<u32>(),
            any::<[u8; 16]>(),
            timestamp(),
            severity(),
            any::<String>(),
            any::<String>(),
        ),
        (
            any::<String>(),
            any::<String>(),
            any::<String>(),
            any::<u32>(),
        ),
        (
            btree_map(any::<String>(), json_value(), 0..5),
            vec(any::<String>(), 0..4),
            proptest::option::of(any::<String>()),
            any::<bool>(),
            proptest::option::of(any::<String>()),
        ),
    )
        .prop_map(
            |(
                (schema, id, timestamp, severity, kind, message),
                (service, instance, host, pid),
                (context, chain, backtrace, truncated, fingerprint),
            )| Report {
                schema,
                id: ReportId::from_bytes(id),
                timestamp,
                severity,
                kind: kind.into(),
                message,
                source: Source {
                    service: service.into(),
                    instance: instance.into(),
                    host: host.into(),
                    pid,
                },
                context: context.into_iter().collect::<BTreeMap<_, _>>(),
                chain,
                backtrace,
                truncated,
                fingerprint: fingerprint.as_deref().map(Fingerprint::from_key),
            },
        )
}

fn report_record() -> impl Strategy<Value = Record> {
    (1..u64::MAX, report()).prop_map(|(id, report)| Record::Report {
        id: RecordId::new(id),
        report,
    })
}

fn ack_record() -> impl Strategy<Value = Record> {
    vec((1..u64::MAX / 2, 0..1000u64), 1..20).prop_map(|ranges| Record::Ack {
        ranges: ranges
            .into_iter()
            .map(|(first, n)| RecordId::new(first)..=RecordId::new(first + n))
            .collect(),
    })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![3 => report_record(), 1 => ack_record()]
}

fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_record(record, &mut bytes).unwrap();
    bytes
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(record in record()) {
        let bytes = encode(&record);
        prop_assert_eq!(decode_record(&bytes), Ok((record, bytes.len())));
    }

    #[test]
    fn decoding_ignores_what_follows_a_record(record in record(), tail in vec(any::<u8>(), 0..64)) {
        let mut bytes = encode(&record);
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode_record(&bytes), Ok((record, len)));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..2048)) {
        let _ = decode_record(&bytes);
    }

    #[test]
    fn decoding_bytes_behind_a_valid_magic_never_panics(rest in vec(any::<u8>(), 0..2048)) {
        let mut bytes = RECORD_MAGIC.to_vec();
        bytes.extend_from_slice(&rest);
        if let Err(DecodeError::Incomplete { needed }) = decode_record(&bytes) {
            prop_assert!(needed > bytes.len());
        }
    }

    #[test]
    fn a_flipped_bit_is_always_detected(record in record(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&record);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(decode_record(&bytes).is_err());
    }

    #[test]
    fn a_cut_record_is_always_incomplete(record in record(), at in any::<prop::sample::Index>()) {
        let bytes = encode(&record);
        let cut = at.index(bytes.len());
        let is_incomplete = matches!(
            decode_record(&bytes[..cut]),
            Err(DecodeError::Incomplete { .. })
        );
        prop_assert!(is_incomplete);
    }

    #[test]
    fn every_intact_record_is_found_among_garbage(
        records in vec(record(), 1..6),
        garbage in vec(vec(any::<u8>(), 0..300), 7),
        damage in vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
    ) {
        // Records interleaved with garbage; some records damaged.
        let mut damaged = std::collections::BTreeSet::new();
        for (which, _) in &damage {
            damaged.insert(which.index(records.len()));
        }
        let mut bytes = Vec::new();
        for (i, record) in records.iter().enumerate() {
            bytes.extend_from_slice(&garbage[i]);
            let mut encoded = encode(record);
            if damaged.contains(&i) {
                let (_, at) = damage.iter().find(|(w, _)| w.index(records.len()) == i).unwrap();
                let j = at.index(encoded.len());
                encoded[j] ^= 0x5A;
            }
            bytes.extend_from_slice(&encoded);
        }
        bytes.extend_from_slice(&garbage[6]);
        let intact: Vec<Record> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !damaged.contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        let scan = scan_records(&bytes);
        prop_assert_eq!(scan.records, intact);
        prop_assert!(scan.skipped_bytes <= bytes.len() as u64);
    }

    #[test]
    fn scanning_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..4096)) {
        let scan = scan_records(&bytes);
        prop_assert!(scan.skipped_bytes <= bytes.len() as u64);
    }
}

proptest! {
    // Each case touches the file system: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn opening_a_directory_of_damaged_segments_never_fails(
        reports in vec(report(), 1..8),
        cuts in vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        garbage in vec(any::<u8>(), 0..200),
        keep_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig { sync: SyncPolicy::None, ..SpoolConfig::new(dir.path()) };
        let written: Vec<RecordId> = {
            let (spool, _) = Spool::open(config.clone()).unwrap();
            let refs: Vec<&Report> = reports.iter().collect();
            spool.append(&refs).unwrap()
        };
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let from = if keep_header { SEGMENT_HEADER_LEN } else { 0 };
        for (at, xor) in &cuts {
            let i = from + at.index(bytes.len() - from);
            bytes[i] ^= xor;
        }
        bytes.extend_from_slice(&garbage);
        std::fs::write(&path, &bytes).unwrap();

        let (spool, recovery) = Spool::open(config.clone()).unwrap();
        let pending = spool.pending();
        prop_assert_eq!(recovery.pending_records, pending.len() as u64);
        // What comes back is a subset of what was written, in order, and
        // each replayed report is the one written under that id.
        for (id, report) in &pending {
            let k = written.iter().position(|w| w == id).unwrap();
            prop_assert_eq!(report, &reports[k]);
        }
        prop_assert!(pending.windows(2).all(|w| w[0].0 < w[1].0));
        if cuts.is_empty() && garbage.is_empty() {
            prop_assert_eq!(pending.len(), reports.len());
            prop_assert_eq!(recovery.corrupt_records, 0);
        }
        // The spool is usable, and a second open agrees with the first.
        let next = spool.append(&[&reports[0]]).unwrap();
        prop_assert!(pending.iter().all(|(id, _)| *id < next[0]));
        drop(spool);
        let (_spool, again) = Spool::open(config).unwrap();
        prop_assert_eq!(again.pending_records, pending.len() as u64 + 1);
    }
}
