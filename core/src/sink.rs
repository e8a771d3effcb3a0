//! Sinks: where reports are delivered.
//!
//! A [`Sink`] is a transport (NATS core publish, JetStream, a file). The
//! worker in core calls it with batches and owns everything around the call:
//! per-attempt timeouts, retry with exponential backoff and jitter, marking a
//! sink *down* when it keeps failing (its reports then go to the fallback),
//! probing it until it recovers, catching its panics, and abandoning a send
//! that outlives the shutdown deadline. A sink therefore only has to do one
//! attempt, honestly.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::entry::Entry;
use crate::report::Report;
use crate::sync::Arc;

/// A boxed `Send` future borrowing from the sink, as returned by [`Sink`]
/// methods.
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A transport that reports are delivered to.
///
/// Contract for implementations:
///
/// * [`send`](Sink::send) makes **one** attempt to deliver every report in
///   the batch and returns one result per report, in batch order. Retrying
///   is the worker's job; a sink that retries internally delays shutdown.
///   A result vector of the wrong length is treated as failure for the
///   reports without a result.
/// * `Ok` must mean what the [`Ack`] variant says — do not claim
///   [`Ack::Stored`] without a server acknowledgement.
/// * The returned future may be dropped at any point (attempt timeout,
///   shutdown deadline, runtime teardown). A sink whose work runs on another
///   thread must not rely on being polled to completion.
/// * `send` may be called concurrently for different batches (up to the
///   configured number of concurrent batches).
/// * Panics are caught and counted; the batch is treated as failed.
pub trait Sink: Send + Sync + 'static {
    /// A short name used in outcomes, stats and logs (e.g. `"nats"`).
    fn name(&self) -> &str;

    /// One delivery attempt for `batch`; one result per report, in order.
    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>>;

    /// Pushes out anything buffered. Called once during shutdown, before
    /// [`close`](Sink::close), bounded by the shutdown deadline.
    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// Releases the transport. Called once, last, bounded by the deadline.
    fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A boxed or shared sink is a sink: each method forwards.
macro_rules! forward_sink {
    ($($pointer:ident)::+) => {
        impl<S: Sink + ?Sized> Sink for $($pointer)::+<S> {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
                (**self).send(batch)
            }
            fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
                (**self).flush()
            }
            fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
                (**self).close()
            }
        }
    };
}

forward_sink!(Box);
forward_sink!(std::sync::Arc);

/// A batch of reports handed to [`Sink::send`]. Cheap to clone (shared), so a
/// sink can move it to another thread.
///
/// ```
/// use tidings_core::{Batch, Report};
/// let batch = Batch::from_reports(vec![Report::error("a", "1"), Report::error("b", "2")]);
/// assert_eq!(batch.len(), 2);
/// let kinds: Vec<&str> = batch.iter().map(|r| r.kind.as_ref()).collect();
/// assert_eq!(kinds, ["a", "b"]);
/// ```
#[derive(Clone)]
pub struct Batch {
    // A sized Arc so loom can track it (see `sync`).
    pub(crate) entries: Arc<Vec<Arc<Entry>>>,
}

impl Batch {
    pub(crate) fn new(entries: Vec<Arc<Entry>>) -> Self {
        Batch {
            entries: Arc::new(entries),
        }
    }

    /// A batch of untracked reports, for testing sinks in isolation.
    pub fn from_reports(reports: Vec<Report>) -> Self {
        Self::new(
            reports
                .into_iter()
                .map(|r| Arc::new(Entry::untracked(r)))
                .collect(),
        )
    }

    /// Number of reports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no report.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The report at `index`.
    pub fn get(&self, index: usize) -> Option<&Report> {
        self.entries.get(index).map(|e| &e.report)
    }

    /// The reports, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Report> + '_ {
        self.entries.iter().map(|e| &e.report)
    }

    /// A batch of the reports at `indices` (used for retrying part of a batch).
    pub(crate) fn subset(&self, indices: &[usize]) -> Batch {
        Batch::new(indices.iter().map(|&i| self.entries[i].clone()).collect())
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("len", &self.len()).finish()
    }
}

/// What a sink can honestly say about a delivered report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// A server stored it and said so (JetStream `PubAck`).
    Stored {
        /// The stream that holds it.
        stream: String,
        /// Its sequence number in the stream.
        sequence: u64,
        /// True when the stream already had a message with this report's id
        /// (`Nats-Msg-Id`): an earlier attempt got through; no duplicate
        /// was stored.
        duplicate: bool,
    },
    /// Written to the server connection. Core NATS has no acknowledgement:
    /// the server may still drop it (no subscriber, slow consumer, crash).
    Sent,
    /// Appended to a local file.
    Written,
}

/// Why a delivery attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SinkErrorKind {
    /// Not connected, connection refused or reset. Retried.
    Unavailable,
    /// No answer in time (ack timeout, flush timeout). Retried with the same
    /// report id, so a late first attempt is deduplicated.
    Timeout,
    /// The transport refused this report for good (no stream for the
    /// subject, permission denied, bad request). Not retried: spilled.
    Rejected,
    /// The report does not fit the transport's size limit even truncated.
    /// Not retried: spilled.
    TooLarge,
    /// The sink panicked. Retried: a panic may be transient, and the retry
    /// budget bounds it.
    Panicked,
    /// Anything else. Retried.
    Other,
}

/// A failed delivery attempt.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkError {
    kind: SinkErrorKind,
    message: String,
}

impl SinkError {
    /// An error of `kind` with a message.
    pub fn new(kind: SinkErrorKind, message: impl Into<String>) -> Self {
        SinkError {
            kind,
            message: message.into(),
        }
    }

    /// [`SinkErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(SinkErrorKind::Unavailable, message)
    }

    /// [`SinkErrorKind::Timeout`].
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(SinkErrorKind::Timeout, message)
    }

    /// [`SinkErrorKind::Rejected`].
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(SinkErrorKind::Rejected, message)
    }

    /// [`SinkErrorKind::TooLarge`].
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(SinkErrorKind::TooLarge, message)
    }

    /// [`SinkErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(SinkErrorKind::Other, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the worker retries this failure.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, SinkErrorKind::Rejected | SinkErrorKind::TooLarge)
    }

    /// The same error for each of `n` reports: for sinks whose attempt failed
    /// as a whole.
    pub fn for_all<T: Clone>(self, n: usize) -> Vec<Result<T, SinkError>> {
        vec![Err(self); n]
    }
}

impl fmt::Debug for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SinkError({:?}: {})", self.kind, self.message)
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SinkErrorKind::Unavailable => "unavailable",
            SinkErrorKind::Timeout => "timed out",
            SinkErrorKind::Rejected => "rejected",
            SinkErrorKind::TooLarge => "too large",
            SinkErrorKind::Panicked => "panicked",
            SinkErrorKind::Other => "failed",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for SinkError {}
