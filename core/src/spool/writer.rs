//! The writer: the spool's mutable state ([`State`], behind one mutex) and
//! everything that changes the files. Appending a batch of records with one
//! `write`, rotating to a new segment when the active one is full (or a
//! failed write could not be cut back), deleting the oldest segments once
//! they hold nothing live, enforcing `max_bytes`, and counting errors.
//!
//! Every write gets a sequence number (`written_seq`); making it durable is
//! `commit.rs`'s job. Where each live record is, is `index.rs`'s.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use super::commit::sync_dir;
use super::format::{self, SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_LEN};
use super::index::{LiveIndex, Loc};
use super::recover::segment_path;
use super::{RecordId, Shared, SpoolError, SyncPolicy};

/// A segment file. (Whether it holds a live record is the index's to say:
/// see [`LiveIndex::first_segment`].)
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) bytes: u64,
}

pub(super) struct Active {
    pub(super) number: u64,
    pub(super) file: Arc<File>,
    pub(super) len: u64,
    /// A failed write could not be cut back: start a new segment first.
    pub(super) broken: bool,
}

pub(super) struct State {
    pub(super) active: Active,
    pub(super) segments: BTreeMap<u64, Segment>,
    /// The live records (count and bytes included).
    pub(super) live: LiveIndex,
    pub(super) total_bytes: u64,
    pub(super) next_id: u64,
    pub(super) next_segment: u64,
    /// Sequence number of the last write (appends and acks).
    pub(super) written_seq: u64,
    pub(super) appended: u64,
    pub(super) acked: u64,
    pub(super) corrupt_skipped: u64,
    pub(super) torn_bytes: u64,
    pub(super) full_refusals: u64,
    pub(super) disk_full_errors: u64,
    pub(super) io_errors: u64,
    pub(super) last_error: Option<String>,
    /// Inside a run of failures (only its first is printed).
    pub(super) failing: bool,
    #[cfg(test)]
    pub(super) fail_next_write: Option<io::ErrorKind>,
}

const HEADER_LEN: u64 = SEGMENT_HEADER_LEN as u64;

impl State {
    /// Writes one batch of report records; returns their ids and the
    /// write's sequence number.
    pub(super) fn append(
        &mut self,
        shared: &Shared,
        jsons: &[Vec<u8>],
    ) -> Result<(Vec<RecordId>, u64), SpoolError> {
        let frames: u64 = jsons
            .iter()
            .map(|j| format::report_frame_len(j.len()) as u64)
            .sum();
        let mut rotate = self.needs_new_segment(shared, frames);
        let mut needed = frames + if rotate { HEADER_LEN } else { 0 };
        if self.total_bytes + needed > shared.max_bytes
            && self.live.is_empty()
            && self.active.len > HEADER_LEN
        {
            // Everything is acknowledged: the old segments are garbage.
            // A fresh segment lets the prefix rule delete them all.
            self.start_segment(shared)?;
            rotate = self.needs_new_segment(shared, frames);
            needed = frames + if rotate { HEADER_LEN } else { 0 };
        }
        if self.total_bytes + needed > shared.max_bytes {
            return Err(SpoolError::Full {
                dir: shared.dir.clone(),
                max_bytes: shared.max_bytes,
                used: self.total_bytes,
                needed,
            });
        }
        if rotate {
            self.start_segment(shared)?;
        }
        let mut buf = Vec::with_capacity(frames as usize);
        let mut placed = Vec::with_capacity(jsons.len());
        for json in jsons {
            let id = RecordId(self.next_id + placed.len() as u64);
            let offset = self.active.len + buf.len() as u64;
            format::write_report(&mut buf, id, json);
            placed.push((id, offset, self.active.len + buf.len() as u64 - offset));
        }
        let seq = self.write_records(shared, &buf)?;
        let segment = self.active.number;
        for &(id, offset, len) in &placed {
            self.live.push(
                id.0,
                Loc {
                    segment,
                    offset,
                    len,
                },
            );
        }
        self.next_id += placed.len() as u64;
        self.appended += placed.len() as u64;
        self.failing = false;
        Ok((placed.into_iter().map(|(id, _, _)| id).collect(), seq))
    }

    fn needs_new_segment(&self, shared: &Shared, bytes: u64) -> bool {
        self.active.broken
            || (self.active.len > HEADER_LEN && self.active.len + bytes > shared.segment_bytes)
    }

    /// Writes `buf` (whole records) at the end of the active segment,
    /// starting a new segment first if needed; returns the write's sequence
    /// number. A failed write is cut back off the file.
    pub(super) fn write_records(&mut self, shared: &Shared, buf: &[u8]) -> Result<u64, SpoolError> {
        if self.needs_new_segment(shared, buf.len() as u64) {
            self.start_segment(shared)?;
        }
        let start = self.active.len;
        let path = segment_path(&shared.dir, self.active.number);
        if let Err(e) = self.write_all(buf) {
            if self.active.file.set_len(start).is_err() {
                self.active.broken = true;
            }
            return Err(SpoolError::io("write", &path, e));
        }
        let len = buf.len() as u64;
        self.active.len += len;
        self.total_bytes += len;
        if let Some(seg) = self.segments.get_mut(&self.active.number) {
            seg.bytes += len;
        }
        self.written_seq += 1;
        Ok(self.written_seq)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(kind) = self.fail_next_write.take() {
            // A partial write, then the failure.
            (&*self.active.file).write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::from(kind));
        }
        (&*self.active.file).write_all(buf)
    }

    /// Retires the active segment (fsyncing it unless the policy is
    /// `None`) and starts a new one, then deletes dead segments.
    pub(super) fn start_segment(&mut self, shared: &Shared) -> Result<(), SpoolError> {
        if shared.sync != SyncPolicy::None && self.active.number != 0 {
            if let Err(e) = self.active.file.sync_data() {
                let path = segment_path(&shared.dir, self.active.number);
                return Err(shared.poison(&path, &e));
            }
        }
        // Numbers are never reused, even if creating this one fails.
        let number = self.next_segment;
        self.next_segment += 1;
        let path = segment_path(&shared.dir, number);
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            number,
            base_id: self.next_id,
        };
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpoolError::io("create", &path, e))?;
        let written = (&file).write_all(&header.encode()).and_then(|()| {
            if shared.sync == SyncPolicy::None {
                Ok(())
            } else {
                file.sync_data().and_then(|()| sync_dir(&shared.dir))
            }
        });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(SpoolError::io("write", &path, e));
        }
        self.segments.insert(number, Segment { bytes: HEADER_LEN });
        self.total_bytes += HEADER_LEN;
        self.active = Active {
            number,
            file: Arc::new(file),
            len: HEADER_LEN,
            broken: false,
        };
        self.delete_dead_prefix(shared);
        Ok(())
    }

    /// Deletes the oldest segments while they hold no live record (never
    /// the active one).
    pub(super) fn delete_dead_prefix(&mut self, shared: &Shared) {
        while let Some(&number) = self.segments.keys().next() {
            // Record ids grow with segment numbers, so no segment older
            // than the oldest live record's holds a live record.
            let holds_live = self.live.first_segment().is_some_and(|s| s <= number);
            if number == self.active.number || holds_live {
                break;
            }
            if !self.remove_segment(shared, number) {
                break;
            }
        }
    }

    /// Deletes a segment file; false (and the error noted) if that fails.
    pub(super) fn remove_segment(&mut self, shared: &Shared, number: u64) -> bool {
        let path = segment_path(&shared.dir, number);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.note_error(&SpoolError::io("delete", &path, e));
                return false;
            }
        }
        if let Some(seg) = self.segments.remove(&number) {
            self.total_bytes -= seg.bytes;
        }
        true
    }

    /// Counts an error, keeps its text for the stats, and prints the first
    /// of a run of failures to stderr (a full disk must not go unnoticed).
    pub(super) fn note_error(&mut self, e: &SpoolError) {
        match e {
            SpoolError::Full { .. } => self.full_refusals += 1,
            SpoolError::DiskFull { .. } => self.disk_full_errors += 1,
            _ => self.io_errors += 1,
        }
        self.last_error = Some(e.to_string());
        if !self.failing {
            self.failing = true;
            eprintln!("tidings: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io;

    use super::super::tests::open;
    use super::super::{lock, RecordId, Spool, SpoolError, SyncPolicy};
    use super::segment_path;
    use crate::Report;

    #[test]
    fn a_full_disk_reaches_the_stats_and_the_partial_write_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let kept = Report::error("a", "kept");
        let ids = spool.append(&[&kept]).unwrap();
        let len_before = lock(&spool.inner.state).active.len;

        lock(&spool.inner.state).fail_next_write = Some(io::ErrorKind::StorageFull);
        let lost = Report::error("b", "refused");
        let err = spool.append(&[&lost]).unwrap_err();
        assert!(
            matches!(err, SpoolError::DiskFull { op: "write", .. }),
            "{err}"
        );
        let stats = spool.stats();
        assert_eq!(stats.disk_full_errors, 1);
        assert!(stats.last_error.unwrap().contains("disk full"));
        assert_eq!(stats.appended, 1);
        assert_eq!(stats.live_records, 1);
        // The half-written record is gone from the file, so appends go on
        // from a clean end and a restart finds no damage.
        let (number, len) = {
            let state = lock(&spool.inner.state);
            (state.active.number, state.active.len)
        };
        assert_eq!(len, len_before);
        let path = segment_path(spool.dir(), number);
        assert_eq!(fs::metadata(&path).unwrap().len(), len_before);

        let after = Report::error("c", "after");
        let more = spool.append(&[&after]).unwrap();
        drop(spool);
        let (spool, recovery) = open(dir.path(), SyncPolicy::None);
        assert_eq!(recovery.corrupt_records, 0);
        assert_eq!(recovery.pending_records, 2);
        assert_eq!(spool.pending(), vec![(ids[0], kept), (more[0], after)]);
    }

    /// Heap bytes of the live-record index per live record.
    fn index_bytes_per_record(spool: &Spool) -> f64 {
        let state = lock(&spool.inner.state);
        state.live.heap_bytes() as f64 / state.live.len() as f64
    }

    #[test]
    fn the_index_costs_about_four_bytes_per_live_record() {
        // (`index::tests` has 1M records in the same layout, without the
        // I/O.)
        const N: usize = 200_000;
        const RESTART: usize = 60_000;
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let report = Report::error("k", "m");
        let batch = vec![&report; 1000];
        for _ in 0..N / batch.len() {
            spool.append(&batch).unwrap();
        }
        assert_eq!(spool.pending_count(), N as u64);
        let appended = index_bytes_per_record(&spool);
        assert!(appended <= 5.0, "{appended:.2} bytes per record");
        eprintln!("appended: {appended:.2} bytes per record");
        drop(spool);

        // Rebuilt from the files after a restart, with acknowledged records
        // between the live ones: still small.
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        let mut ids = Vec::new();
        for _ in 0..RESTART / batch.len() {
            ids.extend(spool.append(&batch).unwrap());
        }
        let acked: Vec<RecordId> = ids.iter().copied().step_by(3).collect();
        spool.ack(&acked).unwrap();
        drop(spool);
        let (spool, recovery) = open(dir.path(), SyncPolicy::None);
        assert_eq!(recovery.pending_records, (RESTART - acked.len()) as u64);
        let recovered = index_bytes_per_record(&spool);
        // 1.5 entries of 4 bytes per live record (the acknowledged ones
        // are dead entries).
        assert!(recovered <= 7.0, "{recovered:.2} bytes per record");
        eprintln!("recovered: {recovered:.2} bytes per record");
    }

    #[test]
    fn a_write_that_cannot_be_cut_back_moves_appends_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = open(dir.path(), SyncPolicy::None);
        spool.append(&[&Report::error("a", "1")]).unwrap();
        let first_segment = lock(&spool.inner.state).active.number;
        lock(&spool.inner.state).active.broken = true;
        spool.append(&[&Report::error("b", "2")]).unwrap();
        assert_ne!(lock(&spool.inner.state).active.number, first_segment);
        assert_eq!(spool.stats().segments, 2);
    }
}
