//! The stream behind [`NatsConfig::ensure_stream`](super::NatsConfig::ensure_stream):
//! when a sink checks (and creates) it, and what each answer means. Both
//! NATS sinks keep one [`StreamGate`] and feed it what their client saw, so
//! every stream fault is answered the same way on every adapter:
//!
//! | fault | behaviour |
//! |---|---|
//! | the stream is missing at start, or deleted while running | created (again) before the next publish: a publish nobody answered (`503 no responders`) makes the gate check the stream once more |
//! | the stream exists but captures other subjects | never changed by tidings; publishes go on (another stream may capture the subject) and, when nobody answers them, the error says which subjects the stream captures and what to add |
//! | another stream already captures the subject (creating ours fails: *subjects overlap*) | publishes go on and are stored by that other stream; each acknowledgement names it ([`Ack::Stored::stream`](crate::Ack::Stored)) |
//! | the stream cannot be checked or created (JetStream disabled, no permission for the JetStream API) | publishes go on; when nobody answers them, the error says why the stream could not be created |
//!
//! A failed check is retried at most every [`ENSURE_RETRY_INTERVAL`] (not
//! at every batch), and at once after a publish nobody answered.

use std::time::{Duration, Instant};

use crate::sink::SinkError;
use crate::sync::{lock, Mutex};

use super::answer::ERR_SUBJECTS_OVERLAP;
use super::subject::stream_covers;
use super::NatsConfig;

/// How often a stream that could not be checked or created is tried again.
pub const ENSURE_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// The duplicate window of a stream created by
/// [`NatsConfig::ensure_stream`](super::NatsConfig::ensure_stream): a report
/// re-sent within it (retry, replay) is stored once.
pub const STREAM_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// What a sink's check of the configured stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamCheck {
    /// The stream exists (or was just created) and captures the subject.
    Ready,
    /// Creating it failed because another stream captures the subject:
    /// reports are stored there.
    CapturedElsewhere,
    /// The stream could not be used; the reason says why and what to do.
    Failed(String),
}

impl StreamCheck {
    /// The stream exists with these subjects: ready if they capture every
    /// subject the sink publishes on, else a failure that says what to add.
    /// The stream is never changed.
    pub fn existing(config: &NatsConfig, name: &str, subjects: &[String]) -> StreamCheck {
        let filter = config.publish_filter();
        if stream_covers(subjects, &filter) {
            StreamCheck::Ready
        } else {
            StreamCheck::Failed(format!(
                "stream {name} exists but captures {subjects:?}, not {filter:?}; tidings does \
                 not change an existing stream: add {filter:?} to its subjects, or configure \
                 another stream"
            ))
        }
    }

    /// Creating the stream failed with this JetStream API error.
    pub fn create_failed(name: &str, code: u16, err_code: u64, description: &str) -> StreamCheck {
        if err_code == ERR_SUBJECTS_OVERLAP {
            StreamCheck::CapturedElsewhere
        } else {
            StreamCheck::Failed(format!(
                "could not create stream {name}: JetStream error {code} ({err_code}): \
                 {description}"
            ))
        }
    }

    /// The stream could not be looked up or created for another reason
    /// (no answer, connection trouble, a client error).
    pub fn unreachable(name: &str, why: &str) -> StreamCheck {
        StreamCheck::Failed(format!("could not look up or create stream {name}: {why}"))
    }
}

/// When a sink checks the configured stream, and what the last check found.
#[derive(Debug, Default)]
pub struct StreamGate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// The last check's finding and when it was made; `None`: never
    /// checked, or a publish nobody answered asked for a new check.
    checked: Option<(StreamCheck, Instant)>,
    /// The last failure, kept for explaining unanswered publishes.
    last_failure: Option<String>,
}

impl StreamGate {
    /// A gate whose first check is due at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the sink must check (and if missing create) the stream
    /// before publishing at `now`.
    pub fn check_due(&self, now: Instant) -> bool {
        match &lock(&self.state).checked {
            None => true,
            Some((StreamCheck::Failed(_), at)) => {
                now.saturating_duration_since(*at) >= ENSURE_RETRY_INTERVAL
            }
            Some(_) => false,
        }
    }

    /// Records a check made at `now`.
    pub fn record(&self, check: StreamCheck, now: Instant) {
        let mut state = lock(&self.state);
        state.last_failure = match &check {
            StreamCheck::Failed(why) => Some(why.clone()),
            _ => None,
        };
        state.checked = Some((check, now));
    }

    /// The last check's finding, if any.
    pub fn last_check(&self) -> Option<StreamCheck> {
        lock(&self.state).checked.as_ref().map(|(c, _)| c.clone())
    }

    /// A publish was answered by nobody (`503 no responders`): the stream
    /// may have been deleted. The next publish checks it again first.
    /// Returns `error` with the last check's failure added, so the reason
    /// the stream is unusable reaches the user.
    pub fn on_no_responders(&self, error: SinkError) -> SinkError {
        let mut state = lock(&self.state);
        state.checked = None;
        match &state.last_failure {
            Some(why) => SinkError::new(error.kind(), format!("{}; {why}", error.message())),
            None => error,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::nats::{ServerAnswer, SubjectSuffix};
    use crate::SinkErrorKind;

    fn config() -> NatsConfig {
        NatsConfig::new("nats://127.0.0.1:4222", "app.reports")
            .jetstream()
            .ensure_stream("APP")
    }

    #[test]
    fn an_existing_stream_must_capture_what_is_published() {
        let c = config();
        assert_eq!(
            StreamCheck::existing(&c, "APP", &["app.reports".into()]),
            StreamCheck::Ready
        );
        let wrong = StreamCheck::existing(&c, "APP", &["other.>".into()]);
        match wrong {
            StreamCheck::Failed(why) => {
                assert!(
                    why.contains("other.>") && why.contains("app.reports"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        // With a per-report suffix the stream must capture the suffixes.
        let suffixed = c.subject_suffix(SubjectSuffix::Severity);
        assert!(matches!(
            StreamCheck::existing(&suffixed, "APP", &["app.reports".into()]),
            StreamCheck::Failed(_)
        ));
        assert_eq!(
            StreamCheck::existing(&suffixed, "APP", &["app.reports.>".into()]),
            StreamCheck::Ready
        );
    }

    #[test]
    fn overlap_means_stored_elsewhere() {
        assert_eq!(
            StreamCheck::create_failed("APP", 400, ERR_SUBJECTS_OVERLAP, "subjects overlap"),
            StreamCheck::CapturedElsewhere
        );
        assert!(matches!(
            StreamCheck::create_failed("APP", 503, 10039, "not enabled"),
            StreamCheck::Failed(_)
        ));
    }

    #[test]
    fn the_gate_checks_again_after_a_failure_interval_or_an_unanswered_publish() {
        let gate = StreamGate::new();
        let t0 = Instant::now();
        assert!(gate.check_due(t0));
        gate.record(StreamCheck::Ready, t0);
        assert!(!gate.check_due(t0 + Duration::from_secs(3600)));
        // A publish nobody answered: the stream may be gone.
        let e = gate.on_no_responders(ServerAnswer::NoResponders.into_error("app.reports"));
        assert_eq!(e.kind(), SinkErrorKind::Unavailable);
        assert!(gate.check_due(t0));
        gate.record(StreamCheck::Failed("no permission".into()), t0);
        assert!(!gate.check_due(t0 + Duration::from_secs(1)));
        assert!(gate.check_due(t0 + ENSURE_RETRY_INTERVAL));
        let e = gate.on_no_responders(ServerAnswer::NoResponders.into_error("app.reports"));
        assert!(e.message().ends_with("; no permission"), "{e}");
    }
}
