//! The durable spool through its public API: round trips, restarts, segment
//! deletion, the size bound, the directory lock (in this process; across
//! processes in spool_lock.rs), damage recovery, group commit, inspection
//! and the errors' io kinds. Every test uses its own temporary directory;
//! nothing waits on time.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tidings_core::spool::{
    decode_record, RecordId, Recovery, Spool, SpoolConfig, SpoolError, SyncPolicy,
    SEGMENT_HEADER_LEN,
};
use tidings_core::Report;

/// What a freshly opened spool will replay, read back from disk; checks
/// that it agrees with the count [`Recovery`] reported.
fn replay(spool: &Spool, recovery: &Recovery) -> Vec<(RecordId, Report)> {
    let pending = spool.pending();
    assert_eq!(recovery.pending_records, pending.len() as u64);
    assert_eq!(
        recovery.pending_bytes,
        spool.pending_bytes(),
        "pending bytes"
    );
    pending
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        sync: SyncPolicy::None,
        ..SpoolConfig::new(dir)
    }
}

fn small_segments(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 4096,
        ..config(dir)
    }
}

fn reports(n: usize, size: usize) -> Vec<Report> {
    (0..n)
        .map(|i| {
            Report::error("job_failed", format!("job {i}: {}", "x".repeat(size)))
                .with_context("job", i)
        })
        .collect()
}

fn refs(reports: &[Report]) -> Vec<&Report> {
    reports.iter().collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// (offset, length) of every record in a segment file.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while let Ok((_, len)) = decode_record(&bytes[at..]) {
        spans.push((at, len));
        at += len;
    }
    spans
}

#[test]
fn appended_reports_come_back_from_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(replay(&spool, &recovery), vec![]);
    assert_eq!(recovery.corrupt_records, 0);
    let batch = reports(3, 10);
    let ids = spool.append(&refs(&batch)).unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let pending = spool.pending();
    assert_eq!(pending, ids.iter().copied().zip(batch).collect::<Vec<_>>());
    assert_eq!(spool.pending_count(), 3);
    assert!(spool.pending_bytes() > 0);
    let stats = spool.stats();
    assert_eq!((stats.appended, stats.live_records), (3, 3));
    assert_eq!(stats.live_bytes, spool.pending_bytes());
    assert_eq!(spool.append(&[]).unwrap(), vec![]);
}

#[test]
fn restart_replays_the_unacknowledged_oldest_first_with_their_original_ids() {
    let dir = tempfile::tempdir().unwrap();
    let batch = reports(30, 300);
    let ids = {
        let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
        let mut ids = Vec::new();
        for chunk in batch.chunks(4) {
            ids.extend(spool.append(&refs(chunk)).unwrap());
        }
        assert!(spool.stats().segments > 2, "{:?}", spool.stats());
        let evens: Vec<RecordId> = ids.iter().copied().step_by(2).collect();
        spool.ack(&evens).unwrap();
        ids
    };
    let (spool, recovery) = Spool::open(small_segments(dir.path())).unwrap();
    let expected: Vec<(RecordId, Report)> = ids
        .iter()
        .copied()
        .zip(batch.iter().cloned())
        .skip(1)
        .step_by(2)
        .collect();
    assert_eq!(replay(&spool, &recovery), expected);
    assert_eq!(recovery.corrupt_records, 0);
    // Report ids (the deduplication key downstream) survived too.
    assert_eq!(replay(&spool, &recovery)[0].1.id, batch[1].id);
    assert_eq!(spool.pending(), expected);
    // New ids continue after the old ones.
    let next = spool.append(&[&Report::info("after", "restart")]).unwrap();
    assert!(next[0] > *ids.last().unwrap());
}

#[test]
fn recovered_records_can_be_acknowledged_and_are_not_replayed_again() {
    let dir = tempfile::tempdir().unwrap();
    let batch = reports(5, 10);
    {
        let (spool, _) = Spool::open(config(dir.path())).unwrap();
        spool.append(&refs(&batch)).unwrap();
    }
    {
        let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
        let ids: Vec<RecordId> = replay(&spool, &recovery)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        spool.ack(&ids[..3]).unwrap();
        // Acknowledging twice, or ids that never existed, is harmless.
        spool.ack(&ids[..3]).unwrap();
        spool.ack(&[RecordId::new(999_999)]).unwrap();
        assert_eq!(spool.stats().acked, 3);
    }
    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    let left: Vec<Report> = replay(&spool, &recovery)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(left, batch[3..]);
}

#[test]
fn record_ids_keep_increasing_after_every_segment_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = RecordId::new(0);
    for round in 0..4 {
        let (spool, recovery) = Spool::open(small_segments(dir.path())).unwrap();
        assert_eq!(replay(&spool, &recovery), vec![], "round {round}");
        for chunk in reports(12, 400).chunks(3) {
            let ids = spool.append(&refs(chunk)).unwrap();
            assert!(ids[0] > last, "round {round}: {:?} after {last:?}", ids[0]);
            last = *ids.last().unwrap();
            spool.ack(&ids).unwrap();
        }
        // Only the active segment is left.
        assert_eq!(segment_files(dir.path()).len(), 1);
    }
}

#[test]
fn a_segment_is_deleted_once_it_and_every_older_segment_are_dead() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
    let batch = reports(12, 900);
    let ids: Vec<RecordId> = batch
        .iter()
        .map(|r| spool.append(&[r]).unwrap()[0])
        .collect();
    let files = segment_files(dir.path());
    assert!(files.len() >= 4, "{files:?}");

    // Which records sit in which segment, as the files say.
    let per_segment: Vec<usize> = files
        .iter()
        .map(|f| record_spans(&fs::read(f).unwrap()).len())
        .collect();
    let first = per_segment[0];
    let second = per_segment[1];

    // Acknowledging the second segment's records deletes nothing: the
    // first still has live records (and the second's acks must survive).
    spool.ack(&ids[first..first + second]).unwrap();
    assert_eq!(segment_files(dir.path()), files);

    // Now the first: both go.
    spool.ack(&ids[..first]).unwrap();
    assert_eq!(segment_files(dir.path()), files[2..]);
    assert_eq!(spool.stats().segments as usize, files.len() - 2);
    drop(spool);

    let (spool, recovery) = Spool::open(small_segments(dir.path())).unwrap();
    let replayed: Vec<RecordId> = replay(&spool, &recovery)
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(replayed, ids[first + second..]);
}

#[test]
fn the_size_bound_refuses_counts_and_recovers_once_records_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        max_bytes: 16 * 1024,
        segment_bytes: 4096,
        ..config(dir.path())
    };
    let (spool, _) = Spool::open(config).unwrap();
    let batch = reports(100, 1000);
    let mut ids = Vec::new();
    let refused = loop {
        match spool.append(&[&batch[ids.len()]]) {
            Ok(id) => ids.extend(id),
            Err(e) => break e,
        }
    };
    match &refused {
        SpoolError::Full {
            max_bytes,
            used,
            needed,
            ..
        } => {
            assert_eq!(*max_bytes, 16 * 1024);
            assert!(used + needed > *max_bytes);
        }
        other => panic!("expected Full, got {other}"),
    }
    assert!(refused.is_full());
    assert!(refused.to_string().contains("max_bytes"), "{refused}");
    let stats = spool.stats();
    assert_eq!(stats.full_refusals, 1);
    assert!(stats.total_bytes <= 16 * 1024);
    // Nothing already spooled was dropped to make room.
    assert_eq!(spool.pending_count() as usize, ids.len());

    spool.ack(&ids).unwrap();
    spool.append(&[&batch[99]]).unwrap();
    assert_eq!(spool.pending_count(), 1);
}

#[test]
fn a_second_open_in_the_same_process_is_refused_with_this_pid() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let err = Spool::open(config(dir.path())).unwrap_err();
    match &err {
        SpoolError::Locked { pid, dir: locked } => {
            assert_eq!(*pid, Some(std::process::id()));
            assert_eq!(locked, dir.path());
        }
        other => panic!("expected Locked, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&std::process::id().to_string()), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    drop(spool);
    Spool::open(config(dir.path())).unwrap();
}

/// Writes `n` reports (one append each) and closes the spool; returns them
/// with their ids and the path of the (single) segment.
fn spool_with(dir: &Path, n: usize) -> (Vec<(RecordId, Report)>, PathBuf) {
    let (spool, _) = Spool::open(config(dir)).unwrap();
    let batch = reports(n, 50);
    let written = batch
        .into_iter()
        .map(|r| (spool.append(&[&r]).unwrap()[0], r))
        .collect();
    drop(spool);
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    (written, files[0].clone())
}

#[test]
fn a_file_truncated_mid_record_loses_only_that_record_and_is_cut_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (written, segment) = spool_with(dir.path(), 10);
    let bytes = fs::read(&segment).unwrap();
    let (offset, len) = record_spans(&bytes)[9];
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len((offset + len / 2) as u64)
        .unwrap();

    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(replay(&spool, &recovery), written[..9]);
    assert_eq!(recovery.corrupt_records, 1);
    assert_eq!(recovery.torn_bytes, (len / 2) as u64);
    assert_eq!(spool.stats().corrupt_skipped, 1);
    // The torn tail was truncated away: appends continue on a clean end.
    assert_eq!(fs::metadata(&segment).unwrap().len(), offset as u64);
    let more = Report::error("after", "truncation");
    let id = spool.append(&[&more]).unwrap()[0];
    drop(spool);

    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(recovery.corrupt_records, 0);
    let mut expected = written[..9].to_vec();
    expected.push((id, more));
    assert_eq!(replay(&spool, &recovery), expected);
}

#[test]
fn flipped_bytes_inside_records_lose_only_those_records() {
    let dir = tempfile::tempdir().unwrap();
    let (written, segment) = spool_with(dir.path(), 10);
    let mut bytes = fs::read(&segment).unwrap();
    let spans = record_spans(&bytes);
    // Damage the body of record 2, the length field of record 5 and the
    // magic of record 7.
    bytes[spans[2].0 + spans[2].1 / 2] ^= 0x20;
    bytes[spans[5].0 + 9] ^= 0x01;
    bytes[spans[7].0] ^= 0xFF;
    fs::write(&segment, &bytes).unwrap();

    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    let expected: Vec<_> = written
        .iter()
        .enumerate()
        .filter(|(i, _)| ![2, 5, 7].contains(i))
        .map(|(_, w)| w.clone())
        .collect();
    assert_eq!(replay(&spool, &recovery), expected);
    assert_eq!(recovery.corrupt_records, 3);
    assert_eq!(
        recovery.torn_bytes,
        (spans[2].1 + spans[5].1 + spans[7].1) as u64
    );
}

#[test]
fn garbage_appended_to_a_segment_is_skipped_counted_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (written, segment) = spool_with(dir.path(), 5);
    let clean_len = fs::metadata(&segment).unwrap().len();
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&garbage)
        .unwrap();

    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(replay(&spool, &recovery), written);
    assert_eq!(recovery.corrupt_records, 1);
    assert_eq!(recovery.torn_bytes, garbage.len() as u64);
    assert_eq!(fs::metadata(&segment).unwrap().len(), clean_len);
    spool.append(&[&Report::info("still", "works")]).unwrap();
}

#[test]
fn every_kind_of_damage_at_once_in_an_older_segment() {
    let dir = tempfile::tempdir().unwrap();
    let batch = reports(24, 400);
    let ids: Vec<RecordId> = {
        let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
        batch
            .iter()
            .map(|r| spool.append(&[r]).unwrap()[0])
            .collect()
    };
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    // In the first (not the newest) segment: a flipped byte in its second
    // record, garbage spliced in after its third (an intact fourth follows),
    // and its last record cut in half.
    let mut bytes = fs::read(&files[0]).unwrap();
    let spans = record_spans(&bytes);
    let n = spans.len();
    assert!(n >= 5, "{n} records in the first segment");
    bytes[spans[1].0 + 20] ^= 0x04;
    let (last_at, last_len) = spans[n - 1];
    bytes.truncate(last_at + last_len / 2);
    let splice_at = spans[2].0 + spans[2].1;
    bytes.splice(
        splice_at..splice_at,
        b"\xF7tdr garbage that looks like a start".iter().copied(),
    );
    fs::write(&files[0], &bytes).unwrap();
    // And a damaged header on the second segment: its records still count.
    let mut second = fs::read(&files[1]).unwrap();
    second[3] ^= 0x10;
    fs::write(&files[1], &second).unwrap();

    let (spool, recovery) = Spool::open(small_segments(dir.path())).unwrap();
    let lost: BTreeSet<usize> = [1, n - 1].into_iter().collect();
    let expected: Vec<(RecordId, Report)> = ids
        .iter()
        .copied()
        .zip(batch.iter().cloned())
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .map(|(_, x)| x)
        .collect();
    assert_eq!(replay(&spool, &recovery), expected);
    // Flipped record, spliced garbage, torn record, damaged header.
    assert_eq!(recovery.corrupt_records, 4);
}

#[test]
fn arbitrary_files_in_the_directory_never_stop_an_open() {
    let dir = tempfile::tempdir().unwrap();
    // A segment cut short while being created, one that is pure garbage,
    // and files that are not segments at all.
    fs::write(dir.path().join("00000000000000000001.seg"), b"\xF7tds").unwrap();
    fs::write(
        dir.path().join("00000000000000000002.seg"),
        vec![0xF7; 10_000],
    )
    .unwrap();
    fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    fs::write(dir.path().join("7.seg"), b"not twenty digits").unwrap();
    let (spool, recovery) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(replay(&spool, &recovery), vec![]);
    assert_eq!(recovery.corrupt_records, 2);
    assert_eq!(recovery.torn_bytes, 4 + 10_000);
    // Segments without a single intact record are deleted.
    let ids = spool.append(&[&Report::info("a", "b")]).unwrap();
    assert_eq!(ids, vec![RecordId::new(1)]);
    let names: Vec<_> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["00000000000000000003.seg", "7.seg"]);
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn a_segment_from_a_newer_format_is_refused_not_treated_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = [0u8; 32];
    header[..8].copy_from_slice(b"\xF7tdspool");
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    header[12..20].copy_from_slice(&1u64.to_le_bytes());
    header[20..28].copy_from_slice(&1u64.to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..].copy_from_slice(&crc.to_le_bytes());
    let path = dir.path().join("00000000000000000001.seg");
    fs::write(&path, header).unwrap();
    let err = Spool::open(config(dir.path())).unwrap_err();
    assert!(
        matches!(err, SpoolError::UnsupportedVersion { version: 2, .. }),
        "{err}"
    );
    assert!(matches!(
        Spool::inspect(dir.path()),
        Err(SpoolError::UnsupportedVersion { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), header);
}

#[test]
fn concurrent_appenders_under_always_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        sync: SyncPolicy::Always,
        segment_bytes: 64 * 1024,
        ..SpoolConfig::new(dir.path())
    };
    let (spool, _) = Spool::open(config.clone()).unwrap();
    let spool = Arc::new(spool);
    const THREADS: usize = 8;
    const EACH: usize = 40;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        let r = Report::error("storm", format!("thread {t} report {i}"));
                        let id = spool.append(&[&r]).unwrap()[0];
                        (id, r)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut written: Vec<(RecordId, Report)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    written.sort_by_key(|(id, _)| *id);
    let unique: BTreeSet<RecordId> = written.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), THREADS * EACH);
    let stats = spool.stats();
    assert_eq!(stats.appended, (THREADS * EACH) as u64);
    assert!(
        stats.syncs >= 1 && stats.syncs <= stats.appended,
        "{stats:?}"
    );
    assert!(stats.segments > 1, "{stats:?}");
    drop(spool);

    let (spool, recovery) = Spool::open(config).unwrap();
    assert_eq!(recovery.corrupt_records, 0);
    assert_eq!(replay(&spool, &recovery), written);
}

#[test]
fn inspect_reads_a_spool_in_use_without_locking_or_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
    let batch = reports(10, 500);
    let ids = spool.append(&refs(&batch)).unwrap();
    spool.ack(&ids[..4]).unwrap();

    let seen = Spool::inspect(dir.path()).unwrap();
    assert_eq!(seen.records, 10);
    assert_eq!(seen.live, 6);
    assert_eq!(seen.live_bytes, spool.pending_bytes());
    assert_eq!(seen.first_live, Some(ids[4]));
    assert_eq!(seen.last_live, Some(ids[9]));
    assert_eq!(seen.oldest, Some(batch[4].timestamp));
    assert_eq!(seen.newest, Some(batch[9].timestamp));
    assert_eq!(seen.total_bytes, spool.stats().total_bytes);
    assert_eq!(seen.segments.len() as u64, spool.stats().segments);
    assert_eq!(seen.corrupt_records, 0);
    assert_eq!(seen.lock_pid, Some(std::process::id()));
    let text = seen.to_string();
    assert!(text.contains("6 live"), "{text}");

    // The spool is untouched and still usable.
    spool.append(&[&Report::info("more", "")]).unwrap();
    drop(spool);
    let seen = Spool::inspect(dir.path()).unwrap();
    assert_eq!(seen.live, 7);
    assert_eq!(seen.lock_pid, None);
    assert!(matches!(
        Spool::inspect(&dir.path().join("missing")),
        Err(SpoolError::Io { .. })
    ));
}

#[test]
fn the_bound_is_an_error_a_caller_can_tell_from_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        sync: SyncPolicy::Always,
        max_bytes: 4096,
        segment_bytes: 4096,
        ..SpoolConfig::new(dir.path())
    };
    let (spool, _) = Spool::open(config).unwrap();
    let batch = reports(2, 10);
    spool.append(&refs(&batch)).unwrap();
    spool.flush().unwrap();
    assert_eq!(spool.pending_count(), 2);
    // The bound surfaces as an io kind a caller can tell from a full disk,
    // and the message names the spool.
    let big = Report::error("big", "x".repeat(5000));
    let err = spool.append(&[&big]).unwrap_err();
    assert!(err.is_full(), "{err}");
    assert_eq!(err.io_kind(), std::io::ErrorKind::QuotaExceeded);
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    assert_eq!(spool.pending_count(), 2);
}

#[test]
fn interval_sync_runs_in_the_background_and_stops_with_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        sync: SyncPolicy::Interval(Duration::from_millis(5)),
        ..SpoolConfig::new(dir.path())
    };
    let (spool, _) = Spool::open(config.clone()).unwrap();
    let batch = reports(3, 10);
    spool.append(&refs(&batch)).unwrap();
    spool.flush().unwrap();
    assert!(spool.stats().syncs >= 1);
    drop(spool); // joins the sync thread
    let (spool, recovery) = Spool::open(config).unwrap();
    assert_eq!(replay(&spool, &recovery).len(), 3);
}

#[test]
fn flush_under_sync_none_fsyncs_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
    for r in reports(10, 1000) {
        spool.append(&[&r]).unwrap();
    }
    assert_eq!(spool.stats().syncs, 0);
    spool.flush().unwrap();
    assert_eq!(spool.stats().syncs, 1);
}

#[test]
fn bad_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            SpoolConfig {
                sync: SyncPolicy::Interval(Duration::ZERO),
                ..config(dir.path())
            },
            "sync",
        ),
        (
            SpoolConfig {
                segment_bytes: 100,
                ..config(dir.path())
            },
            "segment_bytes",
        ),
        (
            SpoolConfig {
                max_bytes: 8192,
                segment_bytes: 16384,
                ..config(dir.path())
            },
            "max_bytes",
        ),
        (config(Path::new("")), "dir"),
    ];
    for (config, field) in cases {
        match Spool::open(config) {
            Err(e @ SpoolError::Config { field: f, .. }) => {
                assert_eq!(f, field);
                assert!(e.to_string().contains(field), "{e}");
            }
            other => panic!("{field}: expected a Config error, got {other:?}"),
        }
    }
}

#[test]
fn pending_skips_and_counts_records_whose_file_vanished() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(small_segments(dir.path())).unwrap();
    let batch = reports(12, 900);
    for r in &batch {
        spool.append(&[r]).unwrap();
    }
    let files = segment_files(dir.path());
    let in_first = record_spans(&fs::read(&files[0]).unwrap()).len();
    fs::remove_file(&files[0]).unwrap();
    let pending = spool.pending();
    assert_eq!(pending.len(), batch.len() - in_first);
    assert_eq!(spool.stats().corrupt_skipped, in_first as u64);
    assert_eq!(spool.pending_count() as usize, batch.len() - in_first);
}
