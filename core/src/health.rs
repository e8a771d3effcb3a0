//! Sink health: whether a sink is up, down, or due for a probe, and what
//! it last said.
//!
//! A sink that keeps failing for [`RetryPolicy::down_after`](crate::RetryPolicy)
//! is marked *down*: its reports are spilled at once instead of waiting for
//! retries, and one probe attempt is let through every `probe_interval`
//! ([`SinkState::admit`], a pure function of `now`). The first success
//! marks it up again and lets the spool replay what was spilled meanwhile.
//! A report the sink refuses for good (not retryable) is counted as
//! refused and its reason said once.

use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::sink::Sink;
use crate::stats::SinkStats;
use crate::sync::{lock, AtomicBool, AtomicU64, Mutex, Ordering};

pub(crate) struct SinkState {
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) name: std::sync::Arc<str>,
    health: Mutex<Health>,
    down: AtomicBool,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    /// Reports this sink refused for good (not retried).
    refused: AtomicU64,
}

struct Health {
    failing_since: Option<Instant>,
    next_probe: Option<Instant>,
    last_error: Option<String>,
}

/// Whether a batch may be sent to a sink now.
pub(crate) enum Admit {
    /// The sink is up.
    Send,
    /// The sink is down and due for a probe: one attempt.
    Probe,
    /// The sink is down: skip it.
    Skip,
}

impl SinkState {
    pub(crate) fn new(sink: Box<dyn Sink>) -> Self {
        SinkState {
            name: std::sync::Arc::from(sink.name()),
            sink,
            health: Mutex::new(Health {
                failing_since: None,
                next_probe: None,
                last_error: None,
            }),
            down: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The sink refused a report for good (`error` is not retryable): the
    /// reason is its last error, and said once per reason.
    pub(crate) fn on_refusal(&self, shared: &Shared, error: &crate::sink::SinkError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let text = error.to_string();
        shared.note(&format!("sink '{}'", self.name), &text);
        lock(&self.health).last_error = Some(text);
    }

    pub(crate) fn admit(&self, now: Instant, probe_interval: Duration) -> Admit {
        if !self.down.load(Ordering::Acquire) {
            return Admit::Send;
        }
        let mut h = lock(&self.health);
        match h.next_probe {
            Some(t) if now < t => Admit::Skip,
            _ => {
                h.next_probe = Some(now + probe_interval);
                Admit::Probe
            }
        }
    }

    pub(crate) fn on_success(&self, shared: &Shared) {
        if self.down.load(Ordering::Acquire) || lock(&self.health).failing_since.is_some() {
            let mut h = lock(&self.health);
            h.failing_since = None;
            h.last_error = None;
            h.next_probe = None;
            if self.down.swap(false, Ordering::AcqRel) {
                shared.log(format_args!("sink '{}' recovered", self.name));
                // What was spooled while it was down can go now.
                if let Some(d) = shared.durable() {
                    d.mark_dirty();
                }
            }
        }
    }

    pub(crate) fn on_failure(&self, shared: &Shared, now: Instant, error: &str) {
        let policy = &shared.config.retry;
        let mut h = lock(&self.health);
        h.last_error = Some(error.to_owned());
        let since = *h.failing_since.get_or_insert(now);
        if !self.down.load(Ordering::Acquire)
            && now.saturating_duration_since(since) >= policy.down_after
        {
            self.down.store(true, Ordering::Release);
            h.next_probe = Some(now + policy.probe_interval);
            drop(h);
            shared.log(format_args!(
                "sink '{}' marked down after failing for {:?}; its reports are spilled \
                 until a probe succeeds. Last error: {error}",
                self.name, policy.down_after
            ));
        }
    }

    pub(crate) fn stats(&self) -> SinkStats {
        SinkStats {
            name: self.name.to_string(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
            last_error: lock(&self.health).last_error.clone(),
        }
    }
}
