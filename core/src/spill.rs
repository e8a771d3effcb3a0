//! The spill chain: where a report goes when it is not delivered — the
//! spool (when configured), then the configured fallback, then stderr; lost
//! only if all of them fail, and then counted and printed with its id.
//!
//! Every spill is counted where it went ([`Stats::spilled_to`](crate::Stats)),
//! so the summary can name each place with its count; a fallback file
//! that vanished hands back what it held, which follows the chain on. At
//! the end, [`Shared::finish`] makes the local stores durable here, on a
//! thread of its own, waiting only until the deadline.

use std::time::Instant;

use crate::durable::Durable;
use crate::entry::{Entry, Outcome, SinkOutcome, SpillReason, Status, StatusKind};
use crate::fallback::{Fallback, FallbackError, Stderr};
use crate::report::Report;
use crate::shared::Shared;
use crate::stats::{add, inc, SpillDestination};
use crate::sync::{lock, Arc, Mutex, Ordering};

/// The local places a report can be spilled to, and the count of each.
pub(crate) struct SpillChain {
    pub(crate) fallback: std::sync::Arc<dyn Fallback>,
    /// The spool, when configured: first in the chain, and the write-ahead
    /// log in `WriteAhead` mode.
    pub(crate) durable: Option<std::sync::Arc<Durable>>,
    /// Where spilled reports went, and how many to each place.
    pub(crate) spilled_to: Mutex<Vec<SpillDestination>>,
}

impl SpillChain {
    pub(crate) fn new(fallback: Box<dyn Fallback>, durable: Option<Durable>) -> Self {
        SpillChain {
            fallback: std::sync::Arc::from(fallback),
            durable: durable.map(std::sync::Arc::new),
            spilled_to: Mutex::new(Vec::new()),
        }
    }

    /// Where spilled reports go first.
    pub(crate) fn location(&self) -> String {
        match &self.durable {
            Some(d) => d.location(),
            None => self.fallback.location(),
        }
    }
}

impl Shared {
    /// Spills everything left in the (closed) queue.
    pub(crate) fn spill_queue(&self, reason: SpillReason) {
        loop {
            let chunk: Vec<Arc<Entry>> = std::iter::from_fn(|| self.queue.try_take())
                .take(1024)
                .collect();
            if chunk.is_empty() {
                return;
            }
            self.queue.took(chunk.len());
            self.spill_unsent(&chunk, reason);
        }
    }

    /// Spills the entries that are still pending, through the fallback
    /// chain (configured fallback, then stderr; lost only if both fail).
    /// `sinks_of(i)` gives the per-sink outcome of `entries[i]`. Returns how
    /// many this call settled.
    pub(crate) fn spill(
        &self,
        entries: &[&Entry],
        reason: SpillReason,
        sinks_of: &dyn Fn(usize) -> Vec<SinkOutcome>,
    ) -> usize {
        let claimed: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].claim()).collect();
        if claimed.is_empty() {
            return 0;
        }
        // Where each claimed entry went: `(kind, to)` per group, and the
        // group of each entry.
        let mut groups: Vec<(StatusKind, String)> = Vec::with_capacity(2);
        let mut group_of = vec![0usize; claimed.len()];
        match &self.spill_chain.durable {
            Some(d) => {
                let claimed_entries: Vec<&Entry> = claimed.iter().map(|&i| entries[i]).collect();
                groups.push((StatusKind::Spilled, d.location()));
                if let Err(e) = d.spill(&claimed_entries) {
                    // Entries that already hold a record (written ahead)
                    // are in the spool whatever the append
                    // did; only the others need the next fallback. Sending
                    // the recorded ones there too would deliver them twice:
                    // once from the fallback, once from the spool at the
                    // next start.
                    let unstored: Vec<&Report> = claimed_entries
                        .iter()
                        .filter(|e| e.record.is_none())
                        .map(|e| &e.report)
                        .collect();
                    self.note(
                        "spool",
                        &format!("refused reports, using the next fallback: {e}"),
                    );
                    groups.push(self.spill_to_fallback(&unstored));
                    for (g, e) in group_of.iter_mut().zip(&claimed_entries) {
                        if e.record.is_none() {
                            *g = 1;
                        }
                    }
                }
            }
            None => {
                let reports: Vec<&Report> = claimed.iter().map(|&i| &entries[i].report).collect();
                groups.push(self.spill_to_fallback(&reports));
            }
        }
        for (g, (kind, to)) in groups.iter().enumerate() {
            let n = group_of.iter().filter(|&&x| x == g).count();
            match kind {
                // Lost is counted *and* said out loud, as best we can.
                StatusKind::Lost => eprintln!(
                    "tidings: LOST {n} report(s) ({to}); ids: {}",
                    claimed
                        .iter()
                        .zip(&group_of)
                        .filter(|(_, &x)| x == g)
                        .map(|(&i, _)| entries[i].report.id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                StatusKind::Spilled => self.count_destination(to, n as i64),
                _ => {}
            }
        }
        let (mut spilled, mut lost) = (0u64, 0u64);
        for (&i, &g) in claimed.iter().zip(&group_of) {
            let entry = entries[i];
            let (kind, to) = &groups[g];
            let outcome = entry.is_watched().then(|| Outcome {
                id: entry.report.id,
                status: match kind {
                    StatusKind::Lost => Status::Lost { reason: to.clone() },
                    _ => Status::Spilled {
                        reason,
                        to: to.clone(),
                    },
                },
                sinks: sinks_of(i),
            });
            entry.finish(outcome, *kind);
            match kind {
                StatusKind::Lost => lost += 1,
                _ => {
                    spilled += 1;
                    // An aggregate is safe somewhere: the reports it
                    // folded may leave the write-ahead log. (Lost: they
                    // stay, and the next start replays them.)
                    self.release_folded(entry);
                }
            }
        }
        if spilled > 0 {
            add(&self.counters.settled.spilled, spilled);
        }
        if lost > 0 {
            add(&self.counters.settled.lost, lost);
        }
        self.counters
            .producer
            .in_flight
            .fetch_sub(spilled + lost, Ordering::AcqRel);
        claimed.len()
    }

    /// Spills the entries no sink has reported on (nothing to say per
    /// sink); those settled already are skipped. Returns how many this call
    /// settled.
    pub(crate) fn spill_unsent(&self, entries: &[Arc<Entry>], reason: SpillReason) -> usize {
        // Most batches end fully settled: a load each, no claim attempts.
        let pending: Vec<&Entry> = entries
            .iter()
            .map(|e| &**e)
            .filter(|e| e.is_pending())
            .collect();
        if pending.is_empty() {
            return 0;
        }
        self.spill(&pending, reason, &|_| Vec::new())
    }

    /// [`Shared::spill_unsent`] for a batch whose send was abandoned
    /// (deadline, teardown), counted as such.
    pub(crate) fn spill_abandoned(&self, entries: &[Arc<Entry>], reason: SpillReason) {
        let n = self.spill_unsent(entries, reason);
        if n > 0 {
            add(&self.counters.settled.abandoned, n as u64);
        }
    }

    /// The configured fallback, then stderr: where a report goes when the
    /// spool is absent or refused it. Lost only if both fail.
    pub(crate) fn spill_to_fallback(&self, reports: &[&Report]) -> (StatusKind, String) {
        match self.spill_chain.fallback.spill(reports) {
            Ok(()) => (StatusKind::Spilled, self.spill_chain.fallback.location()),
            Err(mut e) => {
                inc(&self.counters.settled.fallback_errors);
                self.rescue_orphans(&mut e);
                self.note(
                    "fallback",
                    &format!("failed, writing its reports to stderr: {e}"),
                );
                match Stderr.spill(reports) {
                    Ok(()) => (StatusKind::Spilled, Stderr.location()),
                    Err(e2) => (StatusKind::Lost, format!("{e}; then {e2}")),
                }
            }
        }
    }

    /// Reports the fallback held and can no longer keep (its file deleted,
    /// the path not restorable) go to stderr; the destinations follow them.
    /// If stderr fails too they are lost, counted and said.
    fn rescue_orphans(&self, e: &mut FallbackError) {
        let orphaned = e.take_orphaned();
        if orphaned.is_empty() {
            return;
        }
        let n = orphaned.len() as u64;
        let from = self.spill_chain.fallback.location();
        let reports: Vec<&Report> = orphaned.iter().collect();
        // Only what this reporter put there is in its counters.
        let ours = lock(&self.spill_chain.spilled_to)
            .iter()
            .find(|d| d.location == from)
            .map_or(0, |d| d.reports)
            .min(n);
        self.count_destination(&from, -(ours as i64));
        match Stderr.spill(&reports) {
            Ok(()) => {
                self.count_destination(&Stderr.location(), ours as i64);
                self.note(
                    "fallback",
                    &format!(
                        "{from} was deleted and cannot be restored: the {n} report(s) it held \
                         were written to stderr"
                    ),
                );
            }
            Err(e2) => {
                add(&self.counters.settled.lost, ours);
                let spilled = &self.counters.settled.spilled;
                let _ = spilled.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(s.saturating_sub(ours))
                });
                eprintln!(
                    "tidings: LOST {n} report(s): {from} was deleted and cannot be restored, \
                     and stderr failed ({e2}); ids: {}",
                    orphaned
                        .iter()
                        .map(|r| r.id.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
    }

    /// Counts `n` reports as spilled to `location` (negative: moved away).
    fn count_destination(&self, location: &str, n: i64) {
        if n == 0 {
            return;
        }
        let mut to = lock(&self.spill_chain.spilled_to);
        let i = match to.iter().position(|d| d.location == location) {
            Some(i) => i,
            None => {
                to.push(SpillDestination {
                    location: location.to_owned(),
                    reports: 0,
                });
                to.len() - 1
            }
        };
        to[i].reports = to[i].reports.saturating_add_signed(n);
    }

    /// Makes the fallback and the spool durable (fsync) for the summary,
    /// on a thread of its own so a slow disk can hold neither the caller's
    /// thread (perhaps an async runtime's) nor the deadline: it waits only
    /// for what is left of the drain deadline (at least the close grace).
    /// Returns the places whose sync had not finished by then; their data
    /// is written, and the sync goes on in the background.
    pub(crate) fn sync_local_stores(&self) -> Vec<String> {
        let fallback = self.spill_chain.fallback.clone();
        let durable = self.spill_chain.durable.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<(String, Option<String>)>();
        let mut pending: Vec<String> = vec![fallback.location()];
        if let Some(d) = &durable {
            pending.push(d.location());
        }
        // Each store is let go before its answer is sent: once the caller
        // has every answer, nothing of this thread holds the spool (its
        // directory lock) any more.
        let work = move || {
            let location = fallback.location();
            let error = fallback.flush().err().map(|mut e| {
                // A file restored while syncing hands back what it lost.
                for orphan in e.take_orphaned() {
                    let _ = Stderr.spill(&[&orphan]);
                }
                e.to_string()
            });
            drop(fallback);
            let _ = done_tx.send((location, error));
            if let Some(d) = durable {
                let location = d.location();
                let error = d.flush().err().map(|e| e.to_string());
                drop(d);
                let _ = done_tx.send((location, error));
            }
        };
        let now = self.runtime.now();
        let left = self
            .drain_deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or_default()
            .max(self.config.close_grace);
        let wait_until = Instant::now() + left;
        if cfg!(loom) {
            // The model checker tracks no OS threads: sync inline.
            work();
        } else if std::thread::Builder::new()
            .name("tidings-sync".into())
            .spawn(work)
            .is_err()
        {
            // No thread to be had: nothing is synced rather than risk the
            // deadline on this thread.
            return pending;
        }
        while !pending.is_empty() {
            let wait = wait_until.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(wait) {
                Ok((location, error)) => {
                    pending.retain(|p| *p != location);
                    if let Some(e) = error {
                        inc(&self.counters.settled.fallback_errors);
                        self.note("sync", &format!("syncing {location} failed: {e}"));
                    }
                }
                Err(_) => break,
            }
        }
        pending
    }
}
