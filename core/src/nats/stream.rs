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
//! | the stream exists but a setting you configured in [`StreamSettings`] differs (replicas, limits, storage, discard, duplicate window) | never changed by tidings; **reports are not published into it**: each attempt fails as [`Unavailable`](crate::SinkErrorKind::Unavailable) naming every difference (retried, then spilled — nothing lost), and the stream is checked again every [`ENSURE_RETRY_INTERVAL`], so fixing the stream or the configuration resumes delivery |
//!
//! Why a difference is an error and not a warning: a setting you configured
//! is a promise about where reports end up (three replicas, kept for 30
//! days); publishing into a stream that keeps them otherwise would break
//! it without anyone noticing. Settings left unset ([`None`]) are not
//! compared.
//!
//! A failed check is retried at most every [`ENSURE_RETRY_INTERVAL`] (not
//! at every batch), and at once after a publish nobody answered.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::config::ConfigError;
use crate::sink::SinkError;
use crate::sync::{lock, Mutex};

use super::answer::{ERR_STREAM_NOT_FOUND, ERR_SUBJECTS_OVERLAP};
use super::subject::stream_covers;
use super::NatsConfig;

/// How often a stream that could not be checked or created is tried again.
pub const ENSURE_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// The duplicate window of a stream created by
/// [`NatsConfig::ensure_stream`](super::NatsConfig::ensure_stream): a report
/// re-sent within it (retry, replay) is stored once.
pub const STREAM_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Where a stream keeps its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStorage {
    /// On disk (the server's default): survives a server restart.
    File,
    /// In memory: lost when the server (or, with replicas, every replica)
    /// restarts.
    Memory,
}

/// What a full stream (at `max_msgs`, `max_bytes`) does with a new message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardPolicy {
    /// The server evicts the oldest messages to make room (the default):
    /// every report is stored, old ones are dropped by the server.
    Old,
    /// The server refuses the new message: tidings retries it, then spills
    /// it to the fallback (nothing lost; the error says the stream is full).
    New,
}

/// The settings of the stream created by
/// [`NatsConfig::ensure_stream`](super::NatsConfig::ensure_stream), the same
/// on both NATS sinks.
///
/// Each field left `None` takes the server's default when the stream is
/// created (and the duplicate window [`STREAM_DUPLICATE_WINDOW`]), and is
/// not compared on an existing stream. Each field set is used at creation
/// and **must match** on an existing stream: tidings never changes a stream,
/// and does not publish into one that differs ([`StreamCheck::Differs`]:
/// each attempt fails as unavailable naming every difference, so reports
/// are retried, then spilled, and the stream is checked again every
/// [`ENSURE_RETRY_INTERVAL`]).
///
/// ```
/// use std::time::Duration;
/// use tidings_core::nats::{DiscardPolicy, NatsConfig, StreamSettings, StreamStorage};
///
/// let config = NatsConfig::new("nats://127.0.0.1:4222", "app.reports")
///     .jetstream()
///     .ensure_stream("REPORTS")
///     .stream_settings(StreamSettings {
///         replicas: Some(3),
///         max_age: Some(Duration::from_secs(30 * 24 * 3600)),
///         max_bytes: Some(10 << 30),
///         storage: Some(StreamStorage::File),
///         discard: Some(DiscardPolicy::Old),
///         ..StreamSettings::default()
///     });
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Copies kept in a cluster, 1 to 5 (default 1). Three survive the
    /// loss of one server.
    pub replicas: Option<usize>,
    /// Messages older than this are removed (default: kept for ever).
    /// At least one second.
    #[serde(with = "super::env::opt_duration")]
    pub max_age: Option<Duration>,
    /// Most bytes kept (default: unlimited); what happens when full is
    /// [`discard`](Self::discard).
    pub max_bytes: Option<u64>,
    /// Most messages kept (default: unlimited); what happens when full is
    /// [`discard`](Self::discard).
    pub max_msgs: Option<u64>,
    /// File (default) or memory.
    pub storage: Option<StreamStorage>,
    /// When full: evict the oldest (default) or refuse new ones.
    pub discard: Option<DiscardPolicy>,
    /// A report re-sent within this window (a retry, a replay) is stored
    /// once (default [`STREAM_DUPLICATE_WINDOW`]); at most `max_age`.
    #[serde(with = "super::env::opt_duration")]
    pub duplicate_window: Option<Duration>,
}

impl StreamSettings {
    /// Checks each value; the error names the field (`nats.stream.replicas`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(r) = self.replicas {
            if !(1..=5).contains(&r) {
                return Err(ConfigError::new(
                    "nats.stream.replicas",
                    format!("must be between 1 and 5, got {r}"),
                ));
            }
        }
        if let Some(age) = self.max_age {
            if age < Duration::from_secs(1) {
                return Err(ConfigError::new(
                    "nats.stream.max_age",
                    format!("must be at least 1s, got {age:?}"),
                ));
            }
        }
        for (field, value) in [
            ("nats.stream.max_bytes", self.max_bytes),
            ("nats.stream.max_msgs", self.max_msgs),
        ] {
            if let Some(v) = value {
                if v == 0 || v > i64::MAX as u64 {
                    return Err(ConfigError::new(
                        field,
                        format!("must be between 1 and {}, got {v}", i64::MAX),
                    ));
                }
            }
        }
        if let Some(window) = self.duplicate_window {
            if window < Duration::from_millis(100) {
                return Err(ConfigError::new(
                    "nats.stream.duplicate_window",
                    format!("must be at least 100ms, got {window:?}"),
                ));
            }
            if self.max_age.is_some_and(|age| window > age) {
                return Err(ConfigError::new(
                    "nats.stream.duplicate_window",
                    format!(
                        "({window:?}) must not be longer than nats.stream.max_age ({:?})",
                        self.max_age.unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The settings a stream is created with: the configured ones, the
    /// defaults for the rest.
    pub fn for_creation(&self) -> ExistingStream<'static> {
        let max_age = self.max_age.unwrap_or(Duration::ZERO);
        ExistingStream {
            subjects: &[],
            replicas: self.replicas.unwrap_or(1),
            max_age,
            max_bytes: self.max_bytes.map_or(-1, |v| v as i64),
            max_msgs: self.max_msgs.map_or(-1, |v| v as i64),
            storage: self.storage.unwrap_or(StreamStorage::File),
            discard: self.discard.unwrap_or(DiscardPolicy::Old),
            duplicate_window: self.duplicate_window.unwrap_or(if max_age.is_zero() {
                STREAM_DUPLICATE_WINDOW
            } else {
                STREAM_DUPLICATE_WINDOW.min(max_age)
            }),
        }
    }

    /// The configured settings `stream` does not have, as `name: wanted
    /// (stream has: actual)`; empty when none differs.
    pub fn differences(&self, stream: &ExistingStream<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |name: &str, wanted: String, actual: String| {
            out.push(format!(
                "{name}: configured {wanted}, the stream has {actual}"
            ));
        };
        if let Some(r) = self.replicas.filter(|&r| r != stream.replicas) {
            differ("replicas", r.to_string(), stream.replicas.to_string());
        }
        if let Some(age) = self.max_age.filter(|&a| a != stream.max_age) {
            differ("max_age", format!("{age:?}"), limit_age(stream.max_age));
        }
        if let Some(b) = self.max_bytes.filter(|&b| b as i64 != stream.max_bytes) {
            differ("max_bytes", b.to_string(), limit(stream.max_bytes));
        }
        if let Some(m) = self.max_msgs.filter(|&m| m as i64 != stream.max_msgs) {
            differ("max_msgs", m.to_string(), limit(stream.max_msgs));
        }
        if let Some(s) = self.storage.filter(|&s| s != stream.storage) {
            differ("storage", format!("{s:?}"), format!("{:?}", stream.storage));
        }
        if let Some(d) = self.discard.filter(|&d| d != stream.discard) {
            differ("discard", format!("{d:?}"), format!("{:?}", stream.discard));
        }
        if let Some(w) = self
            .duplicate_window
            .filter(|&w| w != stream.duplicate_window)
        {
            differ(
                "duplicate_window",
                format!("{w:?}"),
                format!("{:?}", stream.duplicate_window),
            );
        }
        out
    }
}

fn limit(v: i64) -> String {
    if v < 0 {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

fn limit_age(d: Duration) -> String {
    if d.is_zero() {
        "unlimited".to_owned()
    } else {
        format!("{d:?}")
    }
}

/// An existing stream's configuration as the server reports it (both
/// sinks read it from their client's stream info), for
/// [`StreamCheck::existing`]. Limits use the server's `-1` for unlimited
/// and a zero `max_age` for "for ever".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingStream<'a> {
    /// The subjects it captures.
    pub subjects: &'a [String],
    /// Its replicas.
    pub replicas: usize,
    /// Its `max_age` (zero: for ever).
    pub max_age: Duration,
    /// Its `max_bytes` (`-1`: unlimited).
    pub max_bytes: i64,
    /// Its `max_msgs` (`-1`: unlimited).
    pub max_msgs: i64,
    /// Its storage.
    pub storage: StreamStorage,
    /// Its discard policy.
    pub discard: DiscardPolicy,
    /// Its duplicate window.
    pub duplicate_window: Duration,
}

/// What a sink's check of the configured stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamCheck {
    /// The stream exists (or was just created) and captures the subject.
    Ready,
    /// The stream exists but differs from the configured
    /// [`StreamSettings`]: reports are not published into it (each attempt
    /// fails as unavailable with this reason) until a later check finds it
    /// fixed.
    Differs(String),
    /// Creating it failed because another stream captures the subject:
    /// reports are stored there.
    CapturedElsewhere,
    /// The stream could not be used; the reason says why and what to do.
    Failed(String),
}

impl StreamCheck {
    /// The stream exists with this configuration: ready if its subjects
    /// capture every subject the sink publishes on and it has every
    /// configured [`StreamSettings`] value; else what is wrong and what to
    /// do. The stream is never changed.
    pub fn existing(config: &NatsConfig, name: &str, stream: &ExistingStream<'_>) -> StreamCheck {
        let filter = config.publish_filter();
        let subjects = stream.subjects;
        if stream_covers(subjects, &filter) {
            let differences = config.stream.differences(stream);
            if differences.is_empty() {
                return StreamCheck::Ready;
            }
            let mut why = format!(
                "stream {name} exists with other settings than configured ({}); tidings does \
                 not change an existing stream and does not publish into one that differs: \
                 change the stream (e.g. `nats stream edit {name}`), or the configuration",
                differences.join("; ")
            );
            if differences
                .iter()
                .any(|d| d.starts_with("storage") || d.starts_with("replicas"))
            {
                let _ = write!(
                    why,
                    " (storage cannot be edited, and replicas only on a cluster: \
                     recreate the stream or configure another one)"
                );
            }
            StreamCheck::Differs(why)
        } else {
            StreamCheck::Failed(format!(
                "stream {name} exists but captures {subjects:?}, not {filter:?}; tidings does \
                 not change an existing stream: add {filter:?} to its subjects, or configure \
                 another stream"
            ))
        }
    }

    /// Looking the stream up failed with this JetStream API error: `None`
    /// when the stream does not exist (create it), otherwise what it means.
    pub fn lookup_failed(
        name: &str,
        code: u16,
        err_code: u64,
        description: &str,
    ) -> Option<StreamCheck> {
        (err_code != ERR_STREAM_NOT_FOUND).then(|| {
            StreamCheck::Failed(format!(
                "could not look up stream {name}: JetStream error {code} ({err_code}): \
                 {description}"
            ))
        })
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
            Some((StreamCheck::Failed(_) | StreamCheck::Differs(_), at)) => {
                now.saturating_duration_since(*at) >= ENSURE_RETRY_INTERVAL
            }
            Some(_) => false,
        }
    }

    /// Records a check made at `now`.
    pub fn record(&self, check: StreamCheck, now: Instant) {
        let mut state = lock(&self.state);
        state.last_failure = match &check {
            StreamCheck::Failed(why) | StreamCheck::Differs(why) => Some(why.clone()),
            _ => None,
        };
        state.checked = Some((check, now));
    }

    /// The refusal every publish gets while the last check found the
    /// stream [`Differs`](StreamCheck::Differs) from the configuration:
    /// [`Unavailable`](crate::SinkErrorKind::Unavailable) (retried, then
    /// spilled), with the differences. `None`: publish.
    pub fn refusal(&self) -> Option<SinkError> {
        match &lock(&self.state).checked {
            Some((StreamCheck::Differs(why), _)) => Some(SinkError::unavailable(why.clone())),
            _ => None,
        }
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

    fn stream(subjects: &[String]) -> ExistingStream<'_> {
        ExistingStream {
            subjects,
            ..StreamSettings::default().for_creation()
        }
    }

    #[test]
    fn an_existing_stream_must_capture_what_is_published() {
        let c = config();
        assert_eq!(
            StreamCheck::existing(&c, "APP", &stream(&["app.reports".into()])),
            StreamCheck::Ready
        );
        let wrong = StreamCheck::existing(&c, "APP", &stream(&["other.>".into()]));
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
            StreamCheck::existing(&suffixed, "APP", &stream(&["app.reports".into()])),
            StreamCheck::Failed(_)
        ));
        assert_eq!(
            StreamCheck::existing(&suffixed, "APP", &stream(&["app.reports.>".into()])),
            StreamCheck::Ready
        );
    }

    #[test]
    fn configured_settings_must_match_and_unset_ones_are_not_compared() {
        let subjects = vec!["app.reports".to_owned()];
        let settings = StreamSettings {
            replicas: Some(3),
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: Some(1 << 20),
            max_msgs: Some(1000),
            storage: Some(StreamStorage::Memory),
            discard: Some(DiscardPolicy::New),
            duplicate_window: Some(Duration::from_secs(60)),
        };
        let c = config().stream_settings(settings.clone());
        let same = ExistingStream {
            subjects: &subjects,
            ..settings.for_creation()
        };
        assert_eq!(StreamCheck::existing(&c, "APP", &same), StreamCheck::Ready);
        // The defaults: R1, unlimited, file, discard old, 2 minutes.
        let plain = stream(&subjects);
        let StreamCheck::Differs(why) = StreamCheck::existing(&c, "APP", &plain) else {
            panic!("a different stream must not be ready");
        };
        for field in [
            "replicas: configured 3, the stream has 1",
            "max_age: configured 3600s, the stream has unlimited",
            "max_bytes: configured 1048576, the stream has unlimited",
            "max_msgs: configured 1000",
            "storage: configured Memory, the stream has File",
            "discard: configured New, the stream has Old",
            "duplicate_window: configured 60s, the stream has 120s",
        ] {
            assert!(why.contains(field), "{field}: {why}");
        }
        // Nothing configured: nothing compared.
        assert_eq!(
            StreamCheck::existing(&config(), "APP", &same),
            StreamCheck::Ready
        );
        // While it differs, every publish is refused as unavailable, and
        // the check is due again after the interval.
        let gate = StreamGate::new();
        let t0 = Instant::now();
        gate.record(StreamCheck::existing(&c, "APP", &plain), t0);
        let refusal = gate.refusal().unwrap();
        assert_eq!(refusal.kind(), SinkErrorKind::Unavailable);
        assert!(refusal.message().contains("replicas"), "{refusal}");
        assert!(!gate.check_due(t0 + Duration::from_secs(1)));
        assert!(gate.check_due(t0 + ENSURE_RETRY_INTERVAL));
        gate.record(StreamCheck::Ready, t0);
        assert!(gate.refusal().is_none());
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let bad = [
            (
                StreamSettings {
                    replicas: Some(0),
                    ..Default::default()
                },
                "nats.stream.replicas",
            ),
            (
                StreamSettings {
                    replicas: Some(7),
                    ..Default::default()
                },
                "nats.stream.replicas",
            ),
            (
                StreamSettings {
                    max_age: Some(Duration::from_millis(10)),
                    ..Default::default()
                },
                "nats.stream.max_age",
            ),
            (
                StreamSettings {
                    max_bytes: Some(0),
                    ..Default::default()
                },
                "nats.stream.max_bytes",
            ),
            (
                StreamSettings {
                    max_msgs: Some(u64::MAX),
                    ..Default::default()
                },
                "nats.stream.max_msgs",
            ),
            (
                StreamSettings {
                    max_age: Some(Duration::from_secs(60)),
                    duplicate_window: Some(Duration::from_secs(120)),
                    ..Default::default()
                },
                "nats.stream.duplicate_window",
            ),
        ];
        for (settings, field) in bad {
            assert_eq!(settings.validate().unwrap_err().field(), field);
            let e = config().stream_settings(settings).validate().unwrap_err();
            assert_eq!(e.field(), field);
        }
        // Settings without ensure_stream: nothing would use them.
        let e = NatsConfig::new("nats://127.0.0.1:4222", "a.b")
            .jetstream()
            .stream_settings(StreamSettings {
                replicas: Some(3),
                ..Default::default()
            })
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), "nats.stream");
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
