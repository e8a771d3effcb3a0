//! Reading a stream of records with resynchronisation after damage.
//!
//! The scanner reads any [`Read`] through a window that never holds more
//! than one maximal record plus a read chunk, so a segment inflated with
//! garbage cannot exhaust memory. When the bytes at the current offset are
//! not a valid record it skips forward to the next offset where a whole
//! record decodes (found by its magic), and reports the skipped region.

use std::io::{self, Read};

use super::format::{decode_record, DecodeError, Record, RECORD_HEADER_LEN, RECORD_MAGIC};

/// How much is read from the source at a time.
const CHUNK: usize = 64 * 1024;

/// One step of a scan.
#[allow(clippy::large_enum_variant)] // transient, like `Record`
#[derive(Debug)]
pub(crate) enum Item {
    /// A valid record at `offset`, `len` bytes long.
    Record {
        offset: u64,
        len: u64,
        record: Record,
    },
    /// `len` unreadable bytes (a torn or corrupt record, or garbage),
    /// skipped.
    Skipped { len: u64 },
}

pub(crate) struct Scanner<R> {
    src: R,
    /// Bytes of the source from offset `buf_start` on.
    buf: Vec<u8>,
    buf_start: u64,
    /// The offset the next item starts at.
    pos: u64,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    /// Scans `src`, whose next byte is at offset `start`.
    pub(crate) fn new(src: R, start: u64) -> Self {
        Scanner {
            src,
            buf: Vec::new(),
            buf_start: start,
            pos: start,
            eof: false,
        }
    }

    /// The offset just past the last item returned.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    fn avail(&self) -> &[u8] {
        let from = (self.pos - self.buf_start) as usize;
        &self.buf[from.min(self.buf.len())..]
    }

    /// Buffers at least `n` bytes from `pos` on, unless the source ends first.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        let consumed = ((self.pos - self.buf_start) as usize).min(self.buf.len());
        // Drop what was consumed once it is a good share of the buffer, so
        // compaction stays linear overall.
        if consumed > 0 && consumed >= self.buf.len() / 2 {
            self.buf.drain(..consumed);
            self.buf_start += consumed as u64;
        }
        while self.avail().len() < n && !self.eof {
            let old = self.buf.len();
            let want = (n - self.avail().len()).max(CHUNK);
            self.buf.resize(old + want, 0);
            match self.src.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(got) => self.buf.truncate(old + got),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Decodes the record at `pos`, reading as much as it needs. `None` when
    /// there is no valid record there.
    fn decode_here(&mut self) -> io::Result<Option<(Record, usize)>> {
        loop {
            match decode_record(self.avail()) {
                Ok(found) => return Ok(Some(found)),
                // `needed` is bounded by the decoder (header + max body).
                Err(DecodeError::Incomplete { needed }) if !self.eof => self.fill(needed)?,
                Err(_) => return Ok(None),
            }
        }
    }

    /// Moves `pos` forward by at least one byte, to the next offset where a
    /// valid record starts, or to the end of the source.
    fn resync(&mut self) -> io::Result<()> {
        self.pos += 1;
        loop {
            self.fill(RECORD_MAGIC.len())?;
            let avail = self.avail();
            if avail.is_empty() {
                return Ok(());
            }
            match avail
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC)
            {
                Some(i) => {
                    self.pos += i as u64;
                    if self.decode_here()?.is_some() {
                        return Ok(());
                    }
                    self.pos += 1;
                }
                None if self.eof => {
                    self.pos += avail.len() as u64;
                    return Ok(());
                }
                None => {
                    // Keep a possible magic prefix at the end of the window.
                    let keep = RECORD_MAGIC.len() - 1;
                    self.pos += avail.len().saturating_sub(keep) as u64;
                    self.fill(keep + CHUNK)?;
                }
            }
        }
    }

    /// The next record or skipped region; `None` at the end.
    pub(crate) fn next_item(&mut self) -> io::Result<Option<Item>> {
        self.fill(RECORD_HEADER_LEN)?;
        if self.avail().is_empty() {
            return Ok(None);
        }
        let offset = self.pos;
        match self.decode_here()? {
            Some((record, len)) => {
                self.pos += len as u64;
                Ok(Some(Item::Record {
                    offset,
                    len: len as u64,
                    record,
                }))
            }
            None => {
                self.resync()?;
                Ok(Some(Item::Skipped {
                    len: self.pos - offset,
                }))
            }
        }
    }
}

/// What [`scan_records`] found in a byte string.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Scan {
    /// Every valid record, in order.
    pub records: Vec<Record>,
    /// Unreadable regions skipped (each a torn or corrupt record, or garbage).
    pub corrupt: u64,
    /// Bytes in those regions.
    pub skipped_bytes: u64,
}

/// Reads every valid record from `bytes` (a segment's records, without its
/// header), skipping and counting damaged regions exactly as recovery does.
/// Never panics.
///
/// ```
/// use tidings_core::Report;
/// use tidings_core::spool::{encode_record, scan_records, Record, RecordId};
///
/// let a = Record::Report { id: RecordId::new(1), report: Report::error("a", "1") };
/// let b = Record::Report { id: RecordId::new(2), report: Report::error("b", "2") };
/// let mut bytes = Vec::new();
/// encode_record(&a, &mut bytes).unwrap();
/// bytes.extend_from_slice(b"garbage in the middle");
/// encode_record(&b, &mut bytes).unwrap();
/// bytes.extend_from_slice(&[0xF7, b't']); // a torn tail
///
/// let scan = scan_records(&bytes);
/// assert_eq!(scan.records, vec![a, b]);
/// assert_eq!(scan.corrupt, 2);
/// assert_eq!(scan.skipped_bytes, 23);
/// ```
#[cfg(any(test, feature = "fuzzing"))]
pub fn scan_records(bytes: &[u8]) -> Scan {
    let mut scanner = Scanner::new(bytes, 0);
    let mut scan = Scan::default();
    // Reading a slice cannot fail.
    while let Ok(Some(item)) = scanner.next_item() {
        match item {
            Item::Record { record, .. } => scan.records.push(record),
            Item::Skipped { len, .. } => {
                scan.corrupt += 1;
                scan.skipped_bytes += len;
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;
    use crate::spool::format::encode_record;
    use crate::spool::RecordId;

    fn records(n: u64, size: usize) -> (Vec<Record>, Vec<u8>) {
        let mut bytes = Vec::new();
        let records: Vec<_> = (1..=n)
            .map(|i| {
                let r = Record::Report {
                    id: RecordId::new(i),
                    report: Report::error("k", "x".repeat(size)),
                };
                encode_record(&r, &mut bytes).unwrap();
                r
            })
            .collect();
        (records, bytes)
    }

    /// A reader that hands out one byte at a time, to exercise every
    /// window boundary.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(out)) => {
                    *out = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn records_larger_than_a_chunk_are_read_whole() {
        let (expected, bytes) = records(3, CHUNK * 2 + 17);
        assert_eq!(scan_records(&bytes).records, expected);
    }

    #[test]
    fn garbage_larger_than_a_chunk_is_skipped_as_one_region() {
        let (expected, bytes) = records(2, 10);
        let mut data = vec![0xAB; CHUNK * 3 + 5];
        data.extend_from_slice(&bytes);
        let scan = scan_records(&data);
        assert_eq!(scan.records, expected);
        assert_eq!(scan.corrupt, 1);
        assert_eq!(scan.skipped_bytes, (CHUNK * 3 + 5) as u64);
    }

    #[test]
    fn one_byte_reads_give_the_same_result() {
        let (expected, mut bytes) = records(4, 100);
        bytes.splice(50..50, [0xF7, b't', b'd', b'r', 1, 2, 3]);
        bytes.extend_from_slice(&[0xF7, b't', b'd']);
        let mut scanner = Scanner::new(Trickle(&bytes), 0);
        let mut got = Vec::new();
        let mut skipped = 0;
        while let Some(item) = scanner.next_item().unwrap() {
            match item {
                Item::Record { record, .. } => got.push(record),
                Item::Skipped { .. } => skipped += 1,
            }
        }
        assert_eq!(scanner.position(), bytes.len() as u64);
        // The first record is cut by the insertion; the rest survive.
        assert_eq!(got, expected[1..]);
        assert_eq!(skipped, 2);
        assert_eq!(scan_records(&bytes).records, expected[1..]);
    }
}
