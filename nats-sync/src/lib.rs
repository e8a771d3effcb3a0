//! # tidings-nats-sync
//!
//! A [`Sink`] that delivers tidings reports to NATS with the synchronous
//! `nats` client, usable from any executor (or none): it is shared by the
//! smol and blocking adapters, and needs no tokio.
//!
//! ## How it runs
//!
//! Every blocking client call happens on an **I/O thread owned by the
//! sink** (`tidings-nats-io`). [`Sink::send`] hands the batch to that thread
//! over a channel and awaits the answer; the future holds no client state, so
//! dropping it at any point (the worker's attempt timeout, the shutdown
//! deadline) is harmless: the thread notices, abandons the job and discards
//! its result. Jobs run one at a time, each making **one** attempt, as the
//! [`Sink`] contract asks; retrying is the worker's job.
//!
//! [`SyncNatsSink::connect`] validates the configuration and returns at
//! once, **even when the server is down**: connecting happens in the
//! background and never ends while the sink lives (backoff 100 ms doubling
//! to 2 s, with jitter). Sends that arrive before the first connect attempt
//! has concluded wait for it, up to [`NatsConfig::connect_timeout`]; while
//! there is no connection, a send fails at once with
//! [`SinkErrorKind::Unavailable`](tidings_core::SinkErrorKind::Unavailable)
//! naming the last connection error (e.g. `Authorization Violation`), and
//! nothing is published: the client would otherwise keep it in a reconnect
//! buffer whose fate nobody can confirm.
//!
//! ## What `Ok` means
//!
//! * [`Delivery::Core`] → [`Ack::Sent`]: the server **processed** the batch.
//!   After publishing, the sink publishes a marker to its own reply inbox
//!   and waits (up to [`FLUSH_TIMEOUT`]) for it to come back, which proves
//!   the server handled everything before it. Core NATS still has no
//!   acknowledgement: the server may drop a message (no subscriber, slow
//!   consumer).
//! * [`Delivery::JetStream`] → [`Ack::Stored`]: the stream acknowledged it.
//!   Each report is published with `Nats-Msg-Id` = its id and a reply
//!   subject on the sink's inbox; acks are **pipelined** (up to
//!   `max_acks_in_flight` outstanding, all awaited until `ack_timeout`), not
//!   requested one by one. A retry reuses the id, so the stream's duplicate
//!   window stores it once and says `duplicate: true`. What every other
//!   answer means (retried or spilled, and the message) is decided by core's
//!   one table, [`ServerAnswer`](tidings_core::nats::ServerAnswer), which
//!   the async-nats sink uses too. With [`NatsConfig::ensure_stream`] the
//!   stream (capturing `<subject>` and `<subject>.>`, 2-minute duplicate
//!   window) is checked and, if missing, created, as core's
//!   [`StreamGate`](tidings_core::nats::StreamGate) says.
//! * A publish the server refuses (`Permissions Violation for Publish`,
//!   core or JetStream) is refused for that report:
//!   [`Rejected`](tidings_core::SinkErrorKind::Rejected), spilled, with the
//!   server's reason.

//! ## Size limits
//!
//! The synchronous client does not check message size; the server closes
//! the connection on an oversized one. So each report is encoded with
//! [`Report::encode_within`](tidings_core::Report::encode_within) for
//! [`NatsConfig::payload_limit`] of the server's `max_payload` (with
//! JetStream [`NatsConfig::jetstream_payload_limit`], which keeps room for
//! the `Nats-Msg-Id` header): too big, it is truncated with a
//! marker; impossible to fit, that report alone fails with
//! [`TooLarge`](tidings_core::SinkErrorKind::TooLarge) (spilled by the
//! worker) and the rest of the batch goes on.
//!
//! ## Flush, close, drop
//!
//! * [`Sink::flush`] returns at once: every send already waited for its own
//!   confirmation, nothing is buffered between sends.
//! * [`Sink::close`] closes the connection on the I/O thread (flushing and
//!   joining the client's threads when connected) and ends the thread. It
//!   waits at most [`CLOSE_TIMEOUT`], then leaves the thread to finish on its
//!   own. Sends after `close` fail with `Unavailable`. Closing twice is fine.
//! * Dropping the sink without `close` asks the thread to close and end,
//!   waits for that briefly (at most 500 ms), and otherwise detaches it:
//!   dropping never hangs.
//! * A connection lost for good (server gone) cannot be closed cleanly with
//!   this client: its idle flusher thread notices the shutdown only at its
//!   next 2-minute tick and ends then. It holds no reports.
//!
//! ## TLS, credentials, secrets
//!
//! [`NatsConfig::tls`] (private CAs, a client certificate for mutual TLS,
//! `require_tls`, the server name to verify) and every
//! [`Credentials`](tidings_core::nats::Credentials) (token, user/password,
//! NKey seed, `.creds`) work as on the async-nats sink: the files are read,
//! and a client key is checked against its certificate, when the sink is
//! built; why a connection is refused is worded by core's
//! [`ConnectFailure`](tidings_core::nats::ConnectFailure).
//!
//! Passwords, tokens, NKey seeds (from `Credentials` or embedded in a
//! server URL) never appear in `Debug` output or error messages: every
//! error text passes through core's
//! [`Redactor`].
//!
//! ## Example
//!
//! Nothing listens on port 1 here: `connect` still succeeds, and a send says
//! why it could not deliver, at once.
//!
//! ```
//! use futures_lite::future::block_on;
//! use tidings_core::nats::NatsConfig;
//! use tidings_core::{Batch, Report, Sink, SinkErrorKind};
//! use tidings_nats_sync::SyncNatsSink;
//!
//! let sink = SyncNatsSink::connect(NatsConfig::new("nats://127.0.0.1:1", "tidings.reports"))?;
//! assert_eq!(sink.name(), "nats");
//!
//! let batch = Batch::from_reports(vec![Report::error("db", "primary unreachable")]);
//! let results = block_on(sink.send(&batch));
//! let error = results[0].as_ref().unwrap_err();
//! assert_eq!(error.kind(), SinkErrorKind::Unavailable);
//! assert!(error.is_retryable());
//!
//! block_on(sink.close()).unwrap();
//! # Ok::<(), tidings_core::ConfigError>(())
//! ```
//!
//! [`Delivery::Core`]: tidings_core::nats::Delivery::Core
//! [`Delivery::JetStream`]: tidings_core::nats::Delivery::JetStream

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ack;
mod client;
mod io;
mod tls;

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use tidings_core::nats::{Delivery, NatsConfig};
use tidings_core::{Ack, Batch, ConfigError, Sink, SinkError, SinkFuture};

use tidings_core::nats::Redactor;

use crate::io::{Io, Msg, SendJob, Shared};

/// How long a core-NATS send waits for the server to confirm it processed
/// the batch (the echo of the sink's marker message).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest [`Sink::close`] waits for the I/O thread to close the
/// connection before leaving it to finish on its own.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long dropping an unclosed sink waits for its I/O thread.
const DROP_WAIT: Duration = Duration::from_millis(500);

/// A [`Sink`] publishing reports to NATS (core or JetStream, per
/// [`NatsConfig::delivery`]) with the synchronous `nats` client on a thread
/// of its own. See the [crate documentation](crate) for the contract.
pub struct SyncNatsSink {
    name: &'static str,
    config: Arc<NatsConfig>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<(JoinHandle<()>, mpsc::Receiver<()>)>>,
}

impl SyncNatsSink {
    /// Checks `config`, starts the I/O thread and returns at once; the
    /// connection is made in the background, and re-made whenever it is
    /// lost, until the sink is closed or dropped.
    ///
    /// Fails only on configuration: the error names the field
    /// (`nats.url`, `nats.subject`, ...). An unreachable server or wrong
    /// credentials are not errors here; sends report them.
    ///
    /// The sink is named `"nats"` for core delivery and `"jetstream"` for
    /// JetStream, so both can be configured together.
    ///
    /// ```
    /// use tidings_core::nats::NatsConfig;
    /// use tidings_nats_sync::SyncNatsSink;
    ///
    /// let err = SyncNatsSink::connect(NatsConfig::new("nats://127.0.0.1:4222", "a..b"))
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "nats.subject");
    ///
    /// let sink = SyncNatsSink::connect(
    ///     NatsConfig::new("nats://127.0.0.1:1", "tidings.reports").jetstream(),
    /// )
    /// .unwrap();
    /// use tidings_core::Sink;
    /// assert_eq!(sink.name(), "jetstream");
    /// ```
    pub fn connect(config: NatsConfig) -> Result<SyncNatsSink, ConfigError> {
        config.validate()?;
        client::check_servers(&config)?;
        client::check_credentials(&config)?;
        let name = config.sink_name();
        let config = Arc::new(config);
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel::<()>();
        let io = Io::new(
            config.clone(),
            shared.clone(),
            Redactor::new(&config),
            tx.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("tidings-nats-io".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _exit = exit_tx;
                io.run(rx);
            })
            .map_err(|e| {
                ConfigError::new("nats", format!("could not start the NATS I/O thread: {e}"))
            })?;
        Ok(SyncNatsSink {
            name,
            config,
            shared,
            tx,
            thread: Mutex::new(Some((thread, exit_rx))),
        })
    }

    /// True while the sink has a live connection to a server. A hint only:
    /// the connection can drop right after.
    ///
    /// ```
    /// # use tidings_core::nats::NatsConfig;
    /// # use tidings_nats_sync::SyncNatsSink;
    /// let sink = SyncNatsSink::connect(NatsConfig::new("nats://127.0.0.1:1", "a.b")).unwrap();
    /// assert!(!sink.is_connected());
    /// ```
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// Upper bound on one send as seen from the async side, in case the I/O
    /// thread is stuck in a system call: the first connect, every job that
    /// may be queued ahead (as many as the worker runs at once), plus slack.
    fn send_bound(&self) -> Duration {
        let job = match self.config.delivery {
            Delivery::Core => FLUSH_TIMEOUT,
            Delivery::JetStream { ack_timeout, .. } => ack_timeout,
        };
        self.config.connect_timeout + job * 4 + Duration::from_secs(5)
    }

    /// Waits up to `limit` for the I/O thread to end, then joins it; if it
    /// does not end in time it is detached.
    fn reap_thread(&self, limit: Duration) {
        let taken = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((handle, exited)) = taken {
            if let Err(mpsc::RecvTimeoutError::Disconnected) = exited.recv_timeout(limit) {
                // The thread is past its last statement: joining is immediate.
                let _ = handle.join();
            }
        }
    }
}

/// Runs `fut` until it finishes or `limit` passes (`None`), on any executor.
async fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut timer = async_io::Timer::after(limit);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        match std::pin::Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

impl Sink for SyncNatsSink {
    fn name(&self) -> &str {
        self.name
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SinkFuture<'a, Vec<Result<Ack, SinkError>>> {
        Box::pin(async move {
            let n = batch.len();
            if n == 0 {
                return Vec::new();
            }
            let (reply, answer) = async_channel::bounded(1);
            let job = SendJob {
                batch: batch.clone(),
                reply,
            };
            if self.tx.send(Msg::Send(job)).is_err() {
                return SinkError::unavailable("the sink is closed").for_all(n);
            }
            let bound = self.send_bound();
            match within(bound, answer.recv()).await {
                Some(Ok(results)) => results,
                Some(Err(_)) => SinkError::unavailable("the sink is closed").for_all(n),
                None => SinkError::timeout(format!(
                    "the NATS I/O thread did not answer within {bound:?}"
                ))
                .for_all(n),
            }
        })
    }

    fn flush(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        // Each send waited for its own confirmation: nothing is buffered.
        Box::pin(async { Ok(()) })
    }

    fn close(&self) -> SinkFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let (done, closed) = async_channel::bounded(1);
            if self.tx.send(Msg::Close(done)).is_err() {
                return Ok(()); // already closed
            }
            match within(CLOSE_TIMEOUT, closed.recv()).await {
                Some(_) => {
                    // Answered (or the thread is gone): it ends right after.
                    self.reap_thread(Duration::from_millis(100));
                    Ok(())
                }
                None => Err(SinkError::timeout(format!(
                    "closing the NATS connection took longer than {CLOSE_TIMEOUT:?}; \
                     its thread was left to finish on its own"
                ))),
            }
        })
    }
}

impl Drop for SyncNatsSink {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        self.reap_thread(DROP_WAIT);
    }
}

impl fmt::Debug for SyncNatsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncNatsSink")
            .field("name", &self.name)
            .field("servers", &self.config.redacted_servers())
            .field("subject", &self.config.subject)
            .field("delivery", &self.config.delivery)
            .field("ensure_stream", &self.config.ensure_stream)
            .field("client_name", &self.config.client_name)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}
