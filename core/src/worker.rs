//! The worker: moves reports from the intake queue to the sinks.
//!
//! Written once, against [`Runtime`](crate::Runtime); every adapter runs this
//! same future. It takes batches off the queue (up to `max_batch`, up to
//! `max_concurrent_batches` at once), sends each batch to every sink with
//! retry, settles each report as delivered or spilled, and carries out the
//! shutdown protocol:
//!
//! 1. **Draining** — intake is closed; the worker keeps sending until the
//!    queue is empty and every batch has settled, or until the deadline.
//! 2. **Deadline** — sends still running are dropped (abandoned: a sink on
//!    another thread is detached, never joined), their reports and whatever
//!    is still queued are spilled.
//! 3. **Close** — sinks are flushed and closed, bounded by the deadline (or
//!    `close_grace` when the deadline has passed).
//! 4. **Summary** — counters frozen into the [`ShutdownSummary`](crate::ShutdownSummary).
//!
//! If the runtime drops this future at any await point, [`WorkerGuard`] and
//! [`InFlightBatch`] spill what it held, synchronously: a runtime torn down
//! under a reporter loses nothing.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Instant;

use event_listener::EventListener;
use futures::future::{self, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use crate::entry::{Entry, SinkOutcome, SinkResult, SpillReason};
use crate::health::{Admit, SinkState};
use crate::lifecycle::Phase;
use crate::replay::{maybe_start_replay, ReplayTask};
use crate::runtime::BoxSleep;
use crate::settle::InFlightBatch;
use crate::shared::Shared;
use crate::sink::{Ack, Batch, SinkError, SinkErrorKind};
use crate::stats::{add, inc, Ending};
use crate::sync::Arc;

type BatchTask = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Step {
    Batch(Arc<Entry>),
    /// Time to send the aggregates of fold windows that ended.
    FoldSweep,
    /// A batch or a replay pass finished.
    Tick,
    Draining,
    Deadline,
    Drained,
    ClosedElsewhere,
}

/// Spills what the worker held if it is dropped before finishing.
struct WorkerGuard(Arc<Shared>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if self.0.summary().is_none() {
            self.0.finish(Ending::Teardown, SpillReason::Teardown);
        }
    }
}

/// The worker future. Its [`WorkerGuard`] exists before the first poll: a
/// runtime that drops the task without ever running it (shut down, or a
/// current-thread runtime nobody drives before it is dropped) must spill the
/// queue too.
pub(crate) fn run(shared: Arc<Shared>) -> impl Future<Output = ()> + Send + 'static {
    let guard = WorkerGuard(shared.clone());
    work(shared, guard)
}

async fn work(shared: Arc<Shared>, guard: WorkerGuard) {
    // Bound first so it is dropped last, after any in-flight batches.
    let _guard = guard;
    let rx = shared.queue.receiver();
    let mut recv = Box::pin(rx.recv());
    let mut running: FuturesUnordered<BatchTask> = FuturesUnordered::new();
    let mut phase_listener: Option<EventListener> = None;
    let mut deadline_timer: Option<BoxSleep> = None;
    let mut replay: Option<ReplayTask> = None;
    // Fold windows end whether or not another report comes: sweep for
    // their aggregates every half window.
    let sweep_every = shared.config.folding.window / 2;
    let mut fold_timer: Option<BoxSleep> = shared
        .folds
        .enabled()
        .then(|| shared.runtime.sleep(sweep_every));
    let mut queue_done = false;
    let max_running = shared.config.max_concurrent_batches;

    // Whatever an earlier run left in the spool goes first.
    maybe_start_replay(&shared, &mut replay);
    let ending = loop {
        let step = future::poll_fn(|cx| {
            if let Some(timer) = deadline_timer.as_mut() {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Step::Deadline);
                }
            }
            if let Some(timer) = fold_timer.as_mut() {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Step::FoldSweep);
                }
            }
            let mut ticked = false;
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
                ticked = true;
            }
            if let Some(pass) = replay.as_mut() {
                if pass.as_mut().poll(cx).is_ready() {
                    replay = None;
                    ticked = true;
                }
            }
            loop {
                match shared.phase() {
                    Phase::Closed => return Poll::Ready(Step::ClosedElsewhere),
                    Phase::Draining if deadline_timer.is_none() => {
                        return Poll::Ready(Step::Draining)
                    }
                    _ => {}
                }
                match phase_listener.as_mut() {
                    // Listen, then loop to re-check: no missed change.
                    None => phase_listener = Some(shared.lifecycle.changed.listen()),
                    Some(listener) => match Pin::new(listener).poll(cx) {
                        Poll::Ready(()) => phase_listener = None,
                        Poll::Pending => break,
                    },
                }
            }
            if !queue_done && running.len() < max_running {
                match recv.as_mut().poll(cx) {
                    Poll::Ready(Ok(first)) => {
                        recv.set(rx.recv());
                        return Poll::Ready(Step::Batch(first));
                    }
                    // Closed and empty: nothing more will ever arrive.
                    Poll::Ready(Err(_)) => queue_done = true,
                    Poll::Pending => {}
                }
            }
            if queue_done && running.is_empty() {
                return Poll::Ready(Step::Drained);
            }
            if ticked {
                return Poll::Ready(Step::Tick);
            }
            Poll::Pending
        })
        .await;

        match step {
            Step::Batch(first) => {
                if let Some(task) = start_batch(&shared, first) {
                    running.push(task);
                }
            }
            Step::Tick => {}
            Step::FoldSweep => {
                if shared.is_running() {
                    shared.flush_folds(false);
                    fold_timer = Some(shared.runtime.sleep(sweep_every));
                } else {
                    // Shutdown closed every window already.
                    fold_timer = None;
                }
            }
            Step::Draining => {
                let deadline = shared
                    .drain_deadline()
                    .unwrap_or_else(|| shared.runtime.now());
                deadline_timer = Some(shared.runtime.sleep_until(deadline));
            }
            Step::Deadline => {
                shared.set_stop_reason(SpillReason::Deadline);
                // Dropping the sends abandons them; each InFlightBatch spills.
                drop(std::mem::take(&mut running));
                shared.spill_queue(SpillReason::Deadline);
                break Ending::Deadline;
            }
            Step::Drained => break Ending::Drained,
            Step::ClosedElsewhere => {
                // A teardown or a forced shutdown already spilled everything.
                drop(std::mem::take(&mut running));
                break Ending::Forced;
            }
        }
        maybe_start_replay(&shared, &mut replay);
    };
    // Records a replay did not get to stay in the spool for the next run.
    drop(replay);
    drop(recv);
    close_sinks(&shared).await;
    if ending != Ending::Forced {
        shared.finish(ending, SpillReason::Deadline);
    }
}

/// Takes up to `max_batch` reports (the first already received) and starts
/// sending them.
fn start_batch(shared: &Arc<Shared>, first: Arc<Entry>) -> Option<BatchTask> {
    let mut entries = Vec::with_capacity(shared.config.max_batch.min(1024));
    entries.push(first);
    while entries.len() < shared.config.max_batch {
        match shared.queue.try_take() {
            Some(e) => entries.push(e),
            None => break,
        }
    }
    shared.queue.took(entries.len());
    let in_flight = Shared::register(shared, Batch::new(entries))?;
    Some(Box::pin(deliver_batch(shared.clone(), in_flight)))
}

/// Sends one batch to every sink, then settles each report: delivered if
/// every sink took it, spilled otherwise.
async fn deliver_batch(shared: Arc<Shared>, in_flight: InFlightBatch) {
    let batch = &in_flight.batch;
    let per_sink: Vec<Vec<SinkResult>> = future::join_all(
        shared
            .sinks
            .iter()
            .map(|sink| deliver_to_sink(&shared, sink, batch)),
    )
    .await;

    let outcomes = |i: usize| -> Vec<SinkOutcome> {
        shared
            .sinks
            .iter()
            .zip(&per_sink)
            .map(|(sink, results)| SinkOutcome {
                sink: sink.name.clone(),
                result: results[i].clone(),
            })
            .collect()
    };
    let (took, failed): (Vec<usize>, Vec<usize>) = (0..batch.len()).partition(|&i| {
        per_sink
            .iter()
            .all(|results| matches!(results[i], SinkResult::Delivered(_)))
    });
    shared.settle_delivered(batch, took.into_iter(), &outcomes);
    if !failed.is_empty() {
        let only_skipped = failed.iter().all(|&i| {
            per_sink
                .iter()
                .all(|results| matches!(results[i], SinkResult::Delivered(_) | SinkResult::Skipped))
        });
        let reason = if only_skipped {
            SpillReason::SinkDown
        } else {
            SpillReason::SinkFailed
        };
        let entries: Vec<&Entry> = failed.iter().map(|&i| &*batch.entries[i]).collect();
        shared.spill(&entries, reason, &|k| outcomes(failed[k]));
    }
    drop(in_flight);
}

/// Delivers `batch` to one sink with retry; one result per report.
pub(crate) async fn deliver_to_sink(
    shared: &Shared,
    sink: &SinkState,
    batch: &Batch,
) -> Vec<SinkResult> {
    let policy = shared.config.retry;
    let mut results: Vec<Option<SinkResult>> = vec![None; batch.len()];
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    let mut last_error = SinkError::other("not attempted");
    let mut attempt: u32 = 0;

    while !pending.is_empty() {
        // Reports settled elsewhere meanwhile (forced shutdown) are done.
        pending.retain(|&i| {
            let live = batch.entries[i].is_pending();
            if !live {
                results[i] = Some(SinkResult::Abandoned);
            }
            live
        });
        if pending.is_empty() {
            break;
        }
        let probing = match sink.admit(shared.runtime.now(), policy.probe_interval) {
            Admit::Send => false,
            Admit::Probe => true,
            Admit::Skip => {
                for &i in &pending {
                    results[i] = Some(SinkResult::Skipped);
                }
                break;
            }
        };
        if attempt > 0 {
            add(&shared.counters.settled.retries, pending.len() as u64);
        }
        attempt += 1;

        let sub = if pending.len() == batch.len() {
            batch.clone()
        } else {
            batch.subset(&pending)
        };
        let outcome = attempt_once(shared, sink, &sub).await;

        let mut retry = Vec::new();
        let mut delivered = 0u64;
        for (k, result) in outcome.into_iter().enumerate() {
            let i = pending[k];
            match result {
                Ok(ack) => {
                    delivered += 1;
                    results[i] = Some(SinkResult::Delivered(ack));
                }
                Err(e) => {
                    inc(&shared.counters.settled.failed_attempts);
                    inc(&sink.failed_attempts);
                    if e.is_retryable() {
                        retry.push(i);
                    } else {
                        sink.on_refusal(shared, &e);
                        results[i] = Some(SinkResult::Failed(e.clone()));
                    }
                    last_error = e;
                }
            }
        }
        add(&sink.delivered, delivered);
        if delivered > 0 {
            sink.on_success(shared);
        }
        if !retry.is_empty() {
            sink.on_failure(shared, shared.runtime.now(), &last_error.to_string());
        }
        pending = retry;
        if pending.is_empty() {
            break;
        }
        // A failed probe does not retry: the sink stays down until the next.
        if probing || attempt >= policy.max_attempts {
            for &i in &pending {
                results[i] = Some(SinkResult::Failed(last_error.clone()));
            }
            break;
        }
        shared.runtime.sleep(policy.backoff(attempt)).await;
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(SinkResult::Abandoned))
        .collect()
}

/// One attempt: the sink's future, bounded by `attempt_timeout`, with
/// panics caught. Always returns exactly one result per report.
async fn attempt_once(
    shared: &Shared,
    sink: &SinkState,
    batch: &Batch,
) -> Vec<Result<Ack, SinkError>> {
    let n = batch.len();
    let panicked = |shared: &Shared| {
        inc(&shared.counters.settled.sink_panics);
        shared.log(format_args!(
            "sink '{}' panicked; the batch will be retried or spilled",
            sink.name
        ));
        SinkError::new(
            SinkErrorKind::Panicked,
            format!("sink '{}' panicked", sink.name),
        )
        .for_all(n)
    };
    let send = match std::panic::catch_unwind(AssertUnwindSafe(|| sink.sink.send(batch))) {
        Ok(send) => send,
        Err(_) => return panicked(shared),
    };
    let send = pin!(AssertUnwindSafe(send).catch_unwind());
    let timeout = shared.runtime.sleep(shared.config.retry.attempt_timeout);
    match future::select(send, timeout).await {
        Either::Left((Ok(mut results), _)) => {
            if results.len() != n {
                let missing = SinkError::other(format!(
                    "sink '{}' returned {} results for {} reports",
                    sink.name,
                    results.len(),
                    n
                ));
                results.resize(n, Err(missing));
            }
            results
        }
        Either::Left((Err(_panic), _)) => panicked(shared),
        Either::Right(((), _)) => SinkError::timeout(format!(
            "no answer within {:?}",
            shared.config.retry.attempt_timeout
        ))
        .for_all(n),
    }
}

/// Flushes and closes every sink, bounded by the drain deadline, or by
/// `close_grace` from now when the deadline has passed (or there is none:
/// teardown). A hung close is abandoned.
async fn close_sinks(shared: &Shared) {
    let now = shared.runtime.now();
    let grace_end = now + shared.config.close_grace;
    let bound: Instant = match shared.drain_deadline() {
        Some(deadline) if deadline > grace_end => deadline,
        _ => grace_end,
    };
    let closing = future::join_all(shared.sinks.iter().map(|sink| async move {
        let flush = std::panic::catch_unwind(AssertUnwindSafe(|| sink.sink.flush()));
        if let Ok(flush) = flush {
            if let Ok(Err(e)) = AssertUnwindSafe(flush).catch_unwind().await {
                shared.log(format_args!("sink '{}' flush failed: {e}", sink.name));
            }
        }
        let close = std::panic::catch_unwind(AssertUnwindSafe(|| sink.sink.close()));
        if let Ok(close) = close {
            if let Ok(Err(e)) = AssertUnwindSafe(close).catch_unwind().await {
                shared.log(format_args!("sink '{}' close failed: {e}", sink.name));
            }
        }
    }));
    let closing = pin!(closing);
    if let Either::Right(_) = future::select(closing, shared.runtime.sleep_until(bound)).await {
        shared.log(format_args!("closing the sinks took too long; abandoned"));
    }
}
