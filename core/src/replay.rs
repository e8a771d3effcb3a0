//! Replay: giving the sinks back what the spool holds — this run's spilled
//! reports once the sinks work again, and what an earlier run left behind.
//!
//! The worker starts a pass whenever the spool may hold something to send
//! and intake is open ([`maybe_start_replay`]). A pass sends the spool's
//! pending records oldest first, in batches, through the same per-sink
//! delivery (retry, health) as new reports, and acknowledges what every
//! sink took. A record no sink will ever take is moved to the next
//! fallback ([`Undeliverable`]); a batch with something to try again ends
//! the pass, which waits out the probe interval first, so that while a
//! sink stays down the passes double as its probe.

use std::future::Future;
use std::pin::Pin;

use futures::future;

use crate::durable::Durable;
use crate::entry::{SinkResult, StatusKind};
use crate::lifecycle::Phase;
use crate::report::Report;
use crate::shared::Shared;
use crate::sink::Batch;
use crate::spool::RecordId;
use crate::sync::Arc;
use crate::worker::deliver_to_sink;

pub(crate) type ReplayTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts a replay pass of the spool when there may be something to replay,
/// none is running and intake is open. A pass that fails waits out the
/// probe interval before it ends, so while a sink stays down passes double
/// as its periodic probe — spooled reports go out once it is back even if
/// nothing new is reported.
pub(crate) fn maybe_start_replay(shared: &Arc<Shared>, replay: &mut Option<ReplayTask>) {
    let Some(durable) = shared.durable() else {
        return;
    };
    if replay.is_some() || shared.phase() != Phase::Running || !durable.take_dirty() {
        return;
    }
    let shared = shared.clone();
    *replay = Some(Box::pin(async move {
        let Some(durable) = shared.durable() else {
            return; // checked above; the task owns its own handle
        };
        if !replay_pass(&shared, durable).await {
            // Try again; the records stay in the spool meanwhile.
            durable.mark_dirty();
        }
    }));
}

/// Sends what the spool holds for replay to the sinks, oldest first, in
/// batches; acknowledges what every sink took. A record no replay can ever
/// deliver (refused for good by a sink, see [`Undeliverable`]) is moved to
/// the next fallback, so one poison record neither holds up the records
/// behind it nor pins the spool's disk space. Returns false at the first
/// batch with a record to try again (the rest waits for a later pass).
async fn replay_pass(shared: &Shared, durable: &Durable) -> bool {
    let mut cursor = None;
    loop {
        let chunk = durable.pending_after(cursor, shared.config.max_batch);
        let Some(&(last, _)) = chunk.last() else {
            return true;
        };
        cursor = Some(last);
        let (records, reports): (Vec<_>, Vec<_>) = chunk
            .into_iter()
            .filter(|(id, _)| durable.is_replayable(*id))
            .unzip();
        if reports.is_empty() {
            continue;
        }
        let batch = Batch::from_reports(reports);
        let per_sink: Vec<Vec<SinkResult>> = future::join_all(
            shared
                .sinks
                .iter()
                .map(|sink| deliver_to_sink(shared, sink, &batch)),
        )
        .await;
        let mut delivered = Vec::new();
        let mut undeliverable = Undeliverable::default();
        let mut try_again = 0;
        for (i, id) in records.iter().enumerate() {
            let results = || per_sink.iter().map(|results| &results[i]);
            if results().all(|r| matches!(r, SinkResult::Delivered(_))) {
                delivered.push(*id);
            } else if let Some(e) = Undeliverable::refusal(results()) {
                undeliverable.add(*id, i, e);
            } else {
                try_again += 1;
            }
        }
        durable.ack(&delivered);
        durable.count_replayed(delivered.len() as u64);
        if !undeliverable.records.is_empty() && !undeliverable.move_out(shared, durable, &batch) {
            try_again += undeliverable.records.len();
        }
        if try_again > 0 {
            shared
                .runtime
                .sleep(shared.config.retry.probe_interval)
                .await;
            return false;
        }
    }
}

/// Replayed records that no replay can ever deliver: every sink either took
/// the report or refused it with a permanent error (not
/// [`retryable`](crate::SinkError::is_retryable): too large, not permitted,
/// malformed), and at least one refused it.
#[derive(Default)]
struct Undeliverable {
    /// Record ids, and each one's index in the batch.
    records: Vec<(RecordId, usize)>,
    /// The first refusal, for the log line.
    first_error: Option<String>,
}

impl Undeliverable {
    /// The permanent refusal among one record's per-sink results, if every
    /// result is a delivery or a permanent refusal.
    fn refusal<'r>(mut results: impl Iterator<Item = &'r SinkResult>) -> Option<String> {
        let mut refusal = None;
        let settled_for_good = results.all(|r| match r {
            SinkResult::Delivered(_) => true,
            SinkResult::Failed(e) if !e.is_retryable() => {
                refusal.get_or_insert_with(|| e.to_string());
                true
            }
            _ => false,
        });
        if settled_for_good {
            refusal
        } else {
            None
        }
    }

    fn add(&mut self, id: RecordId, index: usize, error: String) {
        self.records.push((id, index));
        self.first_error.get_or_insert(error);
    }

    /// Writes the reports to the next fallback and, once they are there,
    /// takes their records out of the spool. False if the fallback chain
    /// failed too: they stay in the spool (kept, never dropped).
    fn move_out(&self, shared: &Shared, durable: &Durable, batch: &Batch) -> bool {
        let reports: Vec<&Report> = self
            .records
            .iter()
            .filter_map(|&(_, i)| batch.get(i))
            .collect();
        let n = self.records.len();
        let why = self.first_error.as_deref().unwrap_or("refused");
        let (kind, to) = shared.spill_to_fallback(&reports);
        if kind == StatusKind::Lost {
            shared.log(format_args!(
                "{n} spooled report(s) no sink will ever take ({why}) stay in the spool: \
                 the fallback failed too ({to})"
            ));
            return false;
        }
        let ids: Vec<RecordId> = self.records.iter().map(|&(id, _)| id).collect();
        durable.ack(&ids);
        durable.count_moved_to_fallback(n as u64, &to);
        shared.log(format_args!(
            "{n} spooled report(s) no sink will ever take ({why}): moved to {to}"
        ));
        true
    }
}
