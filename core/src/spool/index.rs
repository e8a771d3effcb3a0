//! The in-memory index of live records: where each unacknowledged record
//! is, in about 4 bytes and 1 bit per record.
//!
//! Record ids are assigned in append order into the active segment, so the
//! records of a segment are a run of consecutive ids laid out back to back
//! (ack records, and on recovery damaged regions, may sit between them).
//! The index stores such runs as [`Chunk`]s keyed by their first id: the
//! segment, the file offset the run starts at, the *end* offset of each
//! record relative to that start (`u32`), and one live bit per record. A
//! record starts where the previous one ends, except after an ack record or
//! a damaged region: those records' starts are kept in a short list of
//! exceptions (8 bytes each). A record id missing from a run (acknowledged
//! before a restart, or lost to damage) is a dead entry, as long as the
//! hole is short; a longer hole, another segment, or offsets that would not
//! fit a `u32` start a new chunk.
//!
//! A chunk whose last live record is acknowledged is dropped at once, so
//! memory is spent only on runs that still hold a live record: the
//! acknowledged records of a retained segment (one old live record keeps
//! every later segment on disk) cost nothing. A chunk's vectors are shrunk
//! to fit when a newer chunk is started, so only the newest chunk has spare
//! capacity.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Where a record is: its segment, offset and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// A hole of at most this many ids inside a run is filled with dead
/// entries (4 bytes each) rather than starting a new chunk (~150 bytes).
const MAX_FILL: u64 = 32;

/// Entries per chunk, so that an entry's index fits a `u32`.
const MAX_ENTRIES: usize = u32::MAX as usize;

/// The live records, by id. Counts and bytes are kept, so both are O(1).
#[derive(Debug, Default)]
pub(crate) struct LiveIndex {
    chunks: BTreeMap<u64, Chunk>,
    count: u64,
    bytes: u64,
}

/// A run of consecutive record ids in one segment.
#[derive(Debug)]
struct Chunk {
    segment: u64,
    /// The file offset where the run's first record starts.
    base: u64,
    /// `ends[k]`: where record `first_id + k` ends, relative to `base`.
    ends: Vec<u32>,
    /// `(k, start)` for the records that do not start where record `k - 1`
    /// ends (an ack record or a damaged region lies between), by `k`.
    starts: Vec<(u32, u32)>,
    /// Bit `k`: record `first_id + k` is live.
    live: Vec<u64>,
    live_count: u64,
}

impl Chunk {
    fn new(segment: u64, base: u64) -> Chunk {
        Chunk {
            segment,
            base,
            ends: Vec::new(),
            starts: Vec::new(),
            live: Vec::new(),
            live_count: 0,
        }
    }

    fn end(&self) -> u64 {
        self.ends.last().map_or(0, |&e| u64::from(e))
    }

    /// Whether record `k` is live.
    fn is_live(&self, k: usize) -> bool {
        self.live
            .get(k / 64)
            .is_some_and(|word| word & (1 << (k % 64)) != 0)
    }

    /// The location of record `k` (which must exist).
    fn loc(&self, k: usize) -> Loc {
        let end = u64::from(self.ends[k]);
        let start = match self.starts.binary_search_by_key(&(k as u32), |&(i, _)| i) {
            Ok(i) => u64::from(self.starts[i].1),
            Err(_) if k == 0 => 0,
            Err(_) => u64::from(self.ends[k - 1]),
        };
        Loc {
            segment: self.segment,
            offset: self.base + start,
            len: end - start,
        }
    }

    /// The first live record at or after `k`.
    fn next_live(&self, k: usize) -> Option<usize> {
        let mut w = k / 64;
        let mut word = *self.live.get(w)? & (!0u64 << (k % 64));
        loop {
            if word != 0 {
                let found = w * 64 + word.trailing_zeros() as usize;
                return (found < self.ends.len()).then_some(found);
            }
            w += 1;
            word = *self.live.get(w)?;
        }
    }

    /// Appends an entry ending at `end` (relative), live or not.
    fn push(&mut self, end: u32, live: bool) {
        let k = self.ends.len();
        self.ends.push(end);
        if k.is_multiple_of(64) {
            self.live.push(0);
        }
        if live {
            self.live[k / 64] |= 1 << (k % 64);
            self.live_count += 1;
        }
    }

    fn shrink(&mut self) {
        self.ends.shrink_to_fit();
        self.starts.shrink_to_fit();
        self.live.shrink_to_fit();
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.ends.capacity() * size_of::<u32>()
            + self.starts.capacity() * size_of::<(u32, u32)>()
            + self.live.capacity() * size_of::<u64>()
    }
}

impl LiveIndex {
    /// Number of live records.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the live records.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds a live record. `id` must be greater than every id added before
    /// (appends and recovery both add in id order).
    pub(crate) fn push(&mut self, id: u64, loc: Loc) {
        debug_assert!(self
            .chunks
            .last_key_value()
            .is_none_or(|(&first, c)| { id >= first + c.ends.len() as u64 }));
        self.count += 1;
        self.bytes += loc.len;
        if let Some(mut last) = self.chunks.last_entry() {
            let first = *last.key();
            let chunk = last.get_mut();
            let next = first + chunk.ends.len() as u64;
            let prev_end = chunk.base + chunk.end();
            let base = chunk.base;
            let rel = |at: u64| u32::try_from(at - base).ok();
            if chunk.segment == loc.segment
                && id >= next
                && id - next <= MAX_FILL
                && loc.offset >= prev_end
                && chunk.ends.len() + ((id - next) as usize) < MAX_ENTRIES
            {
                if let (Some(start), Some(end)) = (rel(loc.offset), rel(loc.offset + loc.len)) {
                    if id > next {
                        // A hole in the ids (recovery only): dead entries,
                        // which end where this record starts (their
                        // lengths are never used), so it needs no exception.
                        for _ in next..id {
                            chunk.push(start, false);
                        }
                    } else if loc.offset != prev_end {
                        chunk.starts.push((chunk.ends.len() as u32, start));
                    }
                    chunk.push(end, true);
                    return;
                }
            }
            // A new run: the previous one will not grow any more.
            chunk.shrink();
        }
        let mut chunk = Chunk::new(loc.segment, loc.offset);
        // A record body is at most 16 MiB, so its length fits.
        chunk.push(loc.len as u32, true);
        self.chunks.insert(id, chunk);
    }

    /// Marks record `id` done and returns where it was; `None` if it is not
    /// live (unknown, or already done).
    pub(crate) fn remove(&mut self, id: u64) -> Option<Loc> {
        let (&first, chunk) = self.chunks.range_mut(..=id).next_back()?;
        let k = usize::try_from(id - first).ok()?;
        if k >= chunk.ends.len() || !chunk.is_live(k) {
            return None;
        }
        chunk.live[k / 64] &= !(1 << (k % 64));
        chunk.live_count -= 1;
        let loc = chunk.loc(k);
        if chunk.live_count == 0 {
            self.chunks.remove(&first);
        }
        self.count -= 1;
        self.bytes -= loc.len;
        Some(loc)
    }

    /// Marks every live record with an id in `start..=end` done (an ack
    /// record read back on recovery). Costs what the index holds in that
    /// range, not the range's width: a damaged or hostile ack record naming
    /// `1..=u64::MAX` is cheap.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        // Chunks are disjoint and ordered: walking back from `end`, the
        // first one that ends before `start` ends the overlap.
        let overlapping: Vec<u64> = self
            .chunks
            .range(..=end)
            .rev()
            .take_while(|(&first, c)| first + c.ends.len() as u64 > start)
            .map(|(&first, _)| first)
            .collect();
        for first in overlapping {
            let Some(chunk) = self.chunks.get_mut(&first) else {
                continue;
            };
            let last = (first + chunk.ends.len() as u64 - 1).min(end);
            let mut k = (start.max(first) - first) as usize;
            while let Some(found) = chunk.next_live(k) {
                if first + found as u64 > last {
                    break;
                }
                chunk.live[found / 64] &= !(1 << (found % 64));
                chunk.live_count -= 1;
                self.count -= 1;
                self.bytes -= chunk.loc(found).len;
                k = found + 1;
            }
            if chunk.live_count == 0 {
                self.chunks.remove(&first);
            }
        }
    }

    /// The segment of the oldest live record. Record ids grow with segment
    /// numbers, so every older segment holds no live record.
    pub(crate) fn first_segment(&self) -> Option<u64> {
        self.chunks
            .first_key_value()
            .map(|(_, chunk)| chunk.segment)
    }

    /// The oldest live record's id.
    pub(crate) fn first_id(&self) -> Option<u64> {
        let (&first, chunk) = self.chunks.first_key_value()?;
        chunk.next_live(0).map(|k| first + k as u64)
    }

    /// The newest live record's id.
    pub(crate) fn last_id(&self) -> Option<u64> {
        let (&first, chunk) = self.chunks.last_key_value()?;
        (0..chunk.ends.len())
            .rev()
            .find(|&k| chunk.is_live(k))
            .map(|k| first + k as u64)
    }

    /// Live records per segment: `(segment, count)`, oldest segment first
    /// (a segment may appear more than once, in consecutive entries).
    pub(crate) fn live_per_segment(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.chunks.values().map(|c| (c.segment, c.live_count))
    }

    /// At most `limit` live records with ids greater than `after`, oldest
    /// first.
    pub(crate) fn after(&self, after: Option<u64>, limit: usize) -> Vec<(u64, Loc)> {
        let from = match after {
            None => 0,
            Some(a) => match a.checked_add(1) {
                Some(from) => from,
                None => return Vec::new(),
            },
        };
        let mut out = Vec::new();
        // The chunk holding `from` (if any), then every later one.
        let holding = self
            .chunks
            .range(..=from)
            .next_back()
            .filter(|(&first, c)| from - first < c.ends.len() as u64);
        let later = self.chunks.range((Bound::Excluded(from), Bound::Unbounded));
        for (&first, chunk) in holding.into_iter().chain(later) {
            let mut k = from.saturating_sub(first) as usize;
            while out.len() < limit {
                let Some(found) = chunk.next_live(k) else {
                    break;
                };
                out.push((first + found as u64, chunk.loc(found)));
                k = found + 1;
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Heap bytes held by the index: the chunks' vectors, and an estimate
    /// for the map's nodes (at most 11 entries each, at least 5 but in the
    /// root).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        let nodes = self.chunks.len().div_ceil(5).max(1);
        let map = nodes * 11 * (size_of::<u64>() + size_of::<Chunk>() + size_of::<usize>());
        map + self.chunks.values().map(Chunk::heap_bytes).sum::<usize>()
    }

    #[cfg(test)]
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    fn loc(segment: u64, offset: u64, len: u64) -> Loc {
        Loc {
            segment,
            offset,
            len,
        }
    }

    fn ids(index: &LiveIndex) -> Vec<u64> {
        index
            .after(None, usize::MAX)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn records_back_to_back_share_a_chunk_and_come_back_in_order() {
        let mut index = LiveIndex::default();
        let mut at = 32;
        for id in 1..=200 {
            index.push(id, loc(1, at, 100 + id));
            at += 100 + id;
        }
        assert_eq!(index.chunk_count(), 1);
        assert_eq!(index.len(), 200);
        let all = index.after(None, usize::MAX);
        assert_eq!(all.len(), 200);
        let mut at = 32;
        for (i, (id, l)) in all.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1);
            assert_eq!(*l, loc(1, at, 100 + id));
            at += 100 + id;
        }
        assert_eq!(
            index.after(Some(63), 3),
            vec![
                (64, loc(1, all[63].1.offset, 164)),
                (65, all[64].1),
                (66, all[65].1)
            ]
        );
        assert!(index.after(Some(200), 10).is_empty());
        assert!(index.after(Some(u64::MAX), 10).is_empty());
    }

    #[test]
    fn ack_records_between_reports_are_exceptions_not_new_chunks() {
        let mut index = LiveIndex::default();
        // 1 at 32..132, an ack record at 132..172, 2 at 172..272, 3 at 272..372.
        index.push(1, loc(1, 32, 100));
        index.push(2, loc(1, 172, 100));
        index.push(3, loc(1, 272, 100));
        assert_eq!(index.chunk_count(), 1);
        assert_eq!(
            index.after(None, 10),
            vec![
                (1, loc(1, 32, 100)),
                (2, loc(1, 172, 100)),
                (3, loc(1, 272, 100))
            ]
        );
        assert_eq!(index.bytes(), 300);
        assert_eq!(index.remove(2), Some(loc(1, 172, 100)));
        assert_eq!(index.remove(2), None);
        assert_eq!(index.bytes(), 200);
    }

    #[test]
    fn holes_become_dead_entries_and_long_holes_or_new_segments_new_chunks() {
        let mut index = LiveIndex::default();
        index.push(10, loc(1, 32, 50));
        index.push(13, loc(1, 232, 50)); // 11, 12 dead
        index.push(14 + MAX_FILL + 1, loc(1, 5000, 50)); // new chunk
        index.push(100, loc(2, 32, 50)); // other segment
        assert_eq!(index.chunk_count(), 3);
        assert_eq!(ids(&index), vec![10, 13, 14 + MAX_FILL + 1, 100]);
        assert_eq!(index.remove(11), None);
        assert_eq!(index.remove(12), None);
        assert_eq!(index.remove(13), Some(loc(1, 232, 50)));
        assert_eq!(index.after(Some(10), 10)[0].0, 14 + MAX_FILL + 1);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn a_chunk_is_dropped_with_its_last_live_record() {
        let mut index = LiveIndex::default();
        for id in 1..=100 {
            index.push(id, loc(1, 32 + (id - 1) * 10, 10));
        }
        for id in (1..=100).rev() {
            assert!(index.remove(id).is_some());
        }
        assert_eq!(index.chunk_count(), 0);
        assert!(index.is_empty());
        assert_eq!(index.bytes(), 0);
        assert_eq!(index.remove(50), None);
        // Appends go on in a fresh chunk.
        index.push(101, loc(1, 2000, 10));
        assert_eq!(ids(&index), vec![101]);
    }

    #[test]
    fn offsets_past_u32_start_a_new_chunk() {
        let mut index = LiveIndex::default();
        let big = u64::from(u32::MAX) - 10;
        index.push(1, loc(1, 32, big - 32));
        index.push(2, loc(1, big, 100)); // would end past u32 relative to 32
        index.push(3, loc(1, big + 100, 100));
        assert_eq!(index.chunk_count(), 2);
        assert_eq!(
            index.after(Some(1), 10),
            vec![(2, loc(1, big, 100)), (3, loc(1, big + 100, 100))]
        );
    }

    #[test]
    fn agrees_with_a_map_under_random_appends_acks_and_pages() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut index = LiveIndex::default();
        let mut model: Model<u64, Loc> = Model::new();
        let (mut id, mut segment, mut at) = (1u64, 1u64, 32u64);
        for _ in 0..20_000 {
            match rng.u8(0..10) {
                0..=4 => {
                    // An append batch, maybe after an ack record or a hole.
                    if rng.u8(0..20) == 0 {
                        segment += 1;
                        at = 32;
                    }
                    if rng.bool() {
                        at += 40;
                    }
                    if rng.u8(0..4) == 0 {
                        id += rng.u64(1..40);
                    }
                    for _ in 0..rng.usize(1..5) {
                        let l = loc(segment, at, rng.u64(24..600));
                        at += l.len;
                        index.push(id, l);
                        model.insert(id, l);
                        id += 1;
                    }
                }
                5..=7 => {
                    for _ in 0..rng.usize(1..8) {
                        let victim = rng.u64(0..id + 2);
                        assert_eq!(index.remove(victim), model.remove(&victim), "{victim}");
                    }
                }
                _ => {
                    let after = rng.bool().then(|| rng.u64(0..id + 2));
                    let limit = rng.usize(0..50);
                    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                    let expected: Vec<(u64, Loc)> = model
                        .range((from, Bound::Unbounded))
                        .take(limit)
                        .map(|(i, l)| (*i, *l))
                        .collect();
                    assert_eq!(index.after(after, limit), expected);
                }
            }
            assert_eq!(index.len(), model.len() as u64);
        }
        assert_eq!(index.bytes(), model.values().map(|l| l.len).sum::<u64>());
        assert_eq!(
            index.after(None, usize::MAX),
            model.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn range_removal_agrees_with_a_map_and_ignores_the_width_of_the_range() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut index = LiveIndex::default();
        let mut model: Model<u64, Loc> = Model::new();
        let (mut id, mut at) = (1u64, 32u64);
        for round in 0..2_000 {
            for _ in 0..rng.usize(1..6) {
                if rng.u8(0..6) == 0 {
                    id += rng.u64(1..50);
                }
                let l = loc(1 + id / 500, at, rng.u64(24..300));
                at += l.len;
                index.push(id, l);
                model.insert(id, l);
                id += 1;
            }
            let start = rng.u64(0..id + 2);
            let end = start + rng.u64(0..20);
            index.remove_range(start, end);
            let gone: Vec<u64> = model.range(start..=end).map(|(i, _)| *i).collect();
            for i in gone {
                model.remove(&i);
            }
            assert_eq!(index.len(), model.len() as u64, "round {round}");
            assert_eq!(index.first_id(), model.keys().next().copied());
            assert_eq!(index.last_id(), model.keys().next_back().copied());
        }
        assert_eq!(index.bytes(), model.values().map(|l| l.len).sum::<u64>());
        assert_eq!(
            index.after(None, usize::MAX),
            model.into_iter().collect::<Vec<_>>()
        );
        let per_segment: u64 = index.live_per_segment().map(|(_, n)| n).sum();
        assert_eq!(per_segment, index.len());
        // The widest range there is empties the index at once.
        index.remove_range(0, u64::MAX);
        assert!(index.is_empty());
        assert_eq!(index.bytes(), 0);
        assert_eq!((index.first_id(), index.last_id()), (None, None));
        index.remove_range(5, 4);
    }

    #[test]
    fn a_million_records_cost_about_four_bytes_each() {
        // 1M records of 430 bytes in 16 MiB segments, as the spool lays
        // them out when nothing is acknowledged (a NATS outage).
        const N: u64 = 1_000_000;
        const LEN: u64 = 430;
        let per_segment = (16 << 20) / LEN;
        let mut index = LiveIndex::default();
        for id in 1..=N {
            let k = (id - 1) % per_segment;
            index.push(id, loc(1 + (id - 1) / per_segment, 32 + k * LEN, LEN));
        }
        let per_record = index.heap_bytes() as f64 / N as f64;
        assert!(per_record <= 5.0, "{per_record:.2} bytes per record");
        // Acknowledging everything frees it all.
        for id in 1..=N {
            assert!(index.remove(id).is_some());
        }
        assert_eq!(index.chunk_count(), 0);
    }
}
