//! Configuration, validated when the reporter is built.

use std::fmt;
use std::time::Duration;

/// What `report()` does when the intake queue is full (memory stays
/// bounded by the queue capacity). Each case is
/// counted in [`Stats::overflowed`](crate::Stats::overflowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Wait up to `timeout` for room; then refuse with
    /// [`RefusedReason::Timeout`](crate::RefusedReason::Timeout), handing the
    /// report back. Blocks the calling thread: choose it knowingly.
    Block {
        /// How long `report()` may wait.
        timeout: Duration,
    },
    /// Refuse at once with [`RefusedReason::Full`](crate::RefusedReason::Full),
    /// handing the report back.
    Reject,
    /// Accept the report and write it to the fallback right away, on the
    /// caller's thread. The default: never blocks, never refuses.
    Spill,
}

/// What `report()` does once shutdown has begun or finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// Accept it and write it to the fallback synchronously. The default.
    Spill,
    /// Refuse with [`RefusedReason::Closed`](crate::RefusedReason::Closed),
    /// handing the report back.
    Refuse,
}

/// Retry and health policy for sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound on the delay between retries.
    pub max_backoff: Duration,
    /// Attempts per batch per sink (first try included) before the
    /// remaining reports of the batch are spilled.
    pub max_attempts: u32,
    /// Longest a single attempt may take before it is abandoned and counted
    /// as a timeout.
    pub attempt_timeout: Duration,
    /// A sink failing continuously for this long is marked *down*: new
    /// batches skip it and are spilled at once, instead of waiting on
    /// retries, until a probe succeeds.
    pub down_after: Duration,
    /// How often a down sink is probed with a real batch.
    pub probe_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: 8,
            attempt_timeout: Duration::from_secs(10),
            down_after: Duration::from_secs(10),
            probe_interval: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based): exponential from
    /// `initial_backoff`, capped at `max_backoff`, with "equal jitter"
    /// (uniform in the upper half) so many reporters do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Everything the core needs to know; built by [`ReporterBuilder`](crate::ReporterBuilder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Shared by every report that gets it (see `report::intern`).
    pub(crate) service: &'static str,
    pub(crate) instance: &'static str,
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) late: Late,
    pub(crate) max_batch: usize,
    pub(crate) max_concurrent_batches: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) shutdown_deadline: Duration,
    pub(crate) close_grace: Duration,
    pub(crate) log_to_stderr: bool,
    pub(crate) folding: crate::fold::Folding,
    pub(crate) before_send: Option<BeforeSend>,
    pub(crate) scrub: crate::scrub::Scrubber,
}

/// A `before_send` hook (see
/// [`ReporterBuilder::before_send`](crate::ReporterBuilder::before_send)).
#[derive(Clone)]
pub(crate) struct BeforeSend(
    pub(crate) std::sync::Arc<dyn Fn(&mut crate::Report) -> bool + Send + Sync>,
);

impl std::fmt::Debug for BeforeSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeSend(..)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service: "",
            instance: "",
            capacity: 8192,
            overflow: Overflow::Spill,
            late: Late::Spill,
            max_batch: 512,
            max_concurrent_batches: 4,
            retry: RetryPolicy::default(),
            shutdown_deadline: Duration::from_secs(5),
            close_grace: Duration::from_millis(100),
            log_to_stderr: true,
            folding: crate::fold::Folding::default(),
            before_send: None,
            scrub: crate::scrub::Scrubber::default(),
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        fn positive(field: &'static str, d: Duration) -> Result<(), ConfigError> {
            if d.is_zero() {
                Err(ConfigError::new(field, "must be greater than zero"))
            } else {
                Ok(())
            }
        }
        if self.capacity == 0 {
            return Err(ConfigError::new("capacity", "must be at least 1"));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("max_batch", "must be at least 1"));
        }
        if self.max_concurrent_batches == 0 {
            return Err(ConfigError::new(
                "max_concurrent_batches",
                "must be at least 1",
            ));
        }
        if let Overflow::Block { timeout } = self.overflow {
            positive("overflow.timeout", timeout)?;
        }
        let r = &self.retry;
        if r.max_attempts == 0 {
            return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
        }
        positive("retry.attempt_timeout", r.attempt_timeout)?;
        positive("retry.probe_interval", r.probe_interval)?;
        if r.max_backoff < r.initial_backoff {
            return Err(ConfigError::new(
                "retry.max_backoff",
                format!(
                    "({:?}) must not be less than retry.initial_backoff ({:?})",
                    r.max_backoff, r.initial_backoff
                ),
            ));
        }
        positive("shutdown_deadline", self.shutdown_deadline)?;
        if self.folding.enabled {
            positive("folding.window", self.folding.window)?;
            if self.folding.max_fingerprints == 0 {
                return Err(ConfigError::new(
                    "folding.max_fingerprints",
                    "must be at least 1 (or turn folding off)",
                ));
            }
        }
        Ok(())
    }
}

/// Invalid configuration, naming the field at fault.
///
/// ```
/// use tidings_core::ConfigError;
/// let e = ConfigError::new("capacity", "must be at least 1");
/// assert_eq!(e.field(), "capacity");
/// assert_eq!(e.to_string(), "invalid tidings configuration: `capacity` must be at least 1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    problem: String,
}

impl ConfigError {
    /// A configuration error for `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field at fault (e.g. `"capacity"`, `"nats.subject"`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid tidings configuration: `{}` {}",
            self.field, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for _ in 0..100 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b30 = p.backoff(30);
            assert!(b30 >= Duration::from_millis(500) && b30 <= Duration::from_secs(1));
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = Config {
            capacity: 0,
            ..Config::default()
        };
        assert_eq!(c.validate().unwrap_err().field(), "capacity");
        c.capacity = 1;
        c.shutdown_deadline = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field(), "shutdown_deadline");
        c.shutdown_deadline = Duration::from_secs(1);
        c.overflow = Overflow::Block {
            timeout: Duration::ZERO,
        };
        assert_eq!(c.validate().unwrap_err().field(), "overflow.timeout");
        c.overflow = Overflow::Reject;
        assert!(c.validate().is_ok());
    }
}
