//! Reading a whole spool directory: what [`Spool::open`](super::Spool::open)
//! recovers and [`Spool::inspect`](super::Spool::inspect) reports; and
//! reading one record back from where the index says it is ([`read_at`]),
//! for [`Spool::pending_after`](super::Spool::pending_after) and inspection.
//!
//! Segments are read oldest first; acknowledgements remove the records they
//! name, so what remains in [`DirScan::live`] is exactly what must be
//! replayed. Nothing here writes.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{
    decode_record, DecodeError, Record, SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_LEN,
};
use super::index::{LiveIndex, Loc};
use super::scan::{Item, Scanner};
use super::SpoolError;

/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";
/// Digits in a segment file name.
const SEGMENT_DIGITS: usize = 20;

/// The path of segment `number` in `dir`: 20 zero-padded digits + `.seg`, so
/// that name order is age order.
pub(crate) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SEGMENT_SUFFIX}"))
}

fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, oldest first. Other files are ignored.
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| SpoolError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io("read directory", dir, e))?;
        if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// What one segment file holds.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub(crate) number: u64,
    pub(crate) path: PathBuf,
    pub(crate) file_len: u64,
    /// `None` when the header is missing or damaged.
    pub(crate) header: Option<SegmentHeader>,
    pub(crate) reports: u64,
    pub(crate) acks: u64,
    /// Unreadable regions skipped, including a torn tail.
    pub(crate) corrupt: u64,
    /// Bytes in those regions.
    pub(crate) skipped_bytes: u64,
    /// The offset just past the last valid record (or the header).
    pub(crate) good_end: u64,
}

impl SegmentScan {
    /// Bytes after the last valid record: a torn tail.
    pub(crate) fn tail(&self) -> u64 {
        self.file_len.saturating_sub(self.good_end)
    }
}

/// What a spool directory holds.
#[derive(Debug, Default)]
pub(crate) struct DirScan {
    pub(crate) segments: Vec<SegmentScan>,
    /// Where the live records are (not the reports themselves: recovering
    /// a full spool costs a few bytes of memory per record, not the
    /// records).
    pub(crate) live: LiveIndex,
    /// The highest record id seen (0 if none).
    pub(crate) max_id: u64,
    /// The highest base id of an intact segment header (0 if none).
    pub(crate) max_base: u64,
}

/// Reads every segment in `dir`, oldest first.
pub(crate) fn scan_dir(dir: &Path) -> Result<DirScan, SpoolError> {
    let mut scan = DirScan::default();
    for (number, path) in segment_files(dir)? {
        let segment = scan_segment(number, path, &mut scan)?;
        scan.segments.push(segment);
    }
    Ok(scan)
}

fn scan_segment(number: u64, path: PathBuf, into: &mut DirScan) -> Result<SegmentScan, SpoolError> {
    let mut file = File::open(&path).map_err(|e| SpoolError::io("open", &path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| SpoolError::io("stat", &path, e))?
        .len();
    let mut head = Vec::with_capacity(SEGMENT_HEADER_LEN);
    (&mut file)
        .take(SEGMENT_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| SpoolError::io("read", &path, e))?;
    let header = SegmentHeader::decode(&head);
    if let Some(h) = header {
        if h.version > FORMAT_VERSION {
            return Err(SpoolError::UnsupportedVersion {
                path,
                version: h.version,
            });
        }
        into.max_base = into.max_base.max(h.base_id);
    }
    // Without an intact header, look for records from the first byte on:
    // the damaged header is then skipped (and counted) like a damaged record.
    let start = if header.is_some() {
        SEGMENT_HEADER_LEN as u64
    } else {
        0
    };
    let reader: Box<dyn Read> = if header.is_some() {
        Box::new(file)
    } else {
        Box::new(io::Cursor::new(head).chain(file))
    };
    let mut seg = SegmentScan {
        number,
        path,
        file_len,
        header,
        reports: 0,
        acks: 0,
        corrupt: 0,
        skipped_bytes: 0,
        good_end: start,
    };
    let mut scanner = Scanner::new(reader, start);
    loop {
        let item = scanner
            .next_item()
            .map_err(|e| SpoolError::io("read", &seg.path, e))?;
        match item {
            None => break,
            Some(Item::Skipped { len, .. }) => {
                seg.corrupt += 1;
                seg.skipped_bytes += len;
            }
            Some(Item::Record {
                offset,
                len,
                record,
            }) => {
                seg.good_end = offset + len;
                match record {
                    Record::Report { id, .. } => {
                        seg.reports += 1;
                        let id = id.get();
                        // Ids grow in append order. One that does not (a
                        // repeated id: only possible if files were copied
                        // around) keeps its first occurrence.
                        if id > into.max_id {
                            into.live.push(
                                id,
                                Loc {
                                    segment: number,
                                    offset,
                                    len,
                                },
                            );
                            into.max_id = id;
                        }
                    }
                    Record::Ack { ranges } => {
                        seg.acks += 1;
                        for range in ranges {
                            into.live
                                .remove_range(range.start().get(), range.end().get());
                        }
                    }
                }
            }
        }
    }
    // The file may have grown while it was read (inspect of a live spool).
    seg.file_len = seg.file_len.max(scanner.position());
    Ok(seg)
}

/// Reads and decodes the record at `loc`, reusing `open` when it is the
/// same segment.
pub(crate) fn read_at(
    dir: &Path,
    open: &mut Option<(u64, File)>,
    loc: Loc,
) -> io::Result<Result<(Record, usize), DecodeError>> {
    if open.as_ref().is_none_or(|(n, _)| *n != loc.segment) {
        *open = Some((loc.segment, File::open(segment_path(dir, loc.segment))?));
    }
    let Some((_, file)) = open.as_mut() else {
        unreachable!("opened just above")
    };
    file.seek(SeekFrom::Start(loc.offset))?;
    let mut bytes = Vec::new();
    // `len` came from a record that decoded, so it is bounded.
    file.take(loc.len).read_to_end(&mut bytes)?;
    Ok(decode_record(&bytes))
}
