//! [`Settings`]: what a reporter is started with, read from the
//! environment or from a section of the program's own configuration file;
//! what the adapters' one-line `init()` reads.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::builder::{BuildError, ReporterBuilder, DEFAULT_REPORTS_FILE};
use crate::config::ConfigError;
use crate::durable::SpoolMode;
use crate::fallback::JsonLinesFile;
use crate::nats::NatsConfig;
use crate::spool::{SpoolConfig, SyncPolicy};

/// Where reports go and how a reporter ends, as plain values: read with
/// [`Settings::from_env`] (or [`from_vars`](Settings::from_vars)), or
/// deserialized from a section of a TOML or YAML file; applied with
/// [`Settings::apply`]. Each adapter's `init()` does exactly that and adds
/// its own NATS sink when [`nats`](Settings::nats) is set.
///
/// # From the environment
///
/// The NATS variables (`NATS_URL`, `NATS_USER`, `NATS_PASSWORD`,
/// `NATS_TOKEN`, `NATS_CREDS`, `NATS_NKEY`, `TIDINGS_SUBJECT`,
/// `TIDINGS_JETSTREAM`, `TIDINGS_STREAM`) are those of
/// [`NatsConfig::from_env`]; without `NATS_URL` there is no NATS sink and
/// reports go to the embedded default, the JSON-lines file
/// [`DEFAULT_REPORTS_FILE`]. The rest:
///
/// | variable | field | form |
/// |---|---|---|
/// | `TIDINGS_SERVICE` | [`service`](Settings::service) | a name |
/// | `TIDINGS_INSTANCE` | [`instance`](Settings::instance) | a name (e.g. the pod) |
/// | `TIDINGS_SPOOL_DIR` | [`spool`](Settings::spool) | a directory; no spool when unset |
/// | `TIDINGS_SPOOL_MODE` | [`spool_mode`](Settings::spool_mode) | `on-spill` (default) or `write-ahead` |
/// | `TIDINGS_SPOOL_SYNC` | the spool's [`SyncPolicy`] | `none`, `always`, or an interval such as `1s` (default) |
/// | `TIDINGS_FALLBACK` | [`fallback`](Settings::fallback) | a JSON-lines file; stderr when unset |
/// | `TIDINGS_SHUTDOWN_DEADLINE` | [`shutdown_deadline`](Settings::shutdown_deadline) | a duration with a unit: `5s`, `500ms` |
///
/// An empty variable counts as unset; a bad value fails with a
/// [`ConfigError`] naming the variable and the accepted forms.
///
/// ```
/// use std::time::Duration;
/// use tidings_core::{Settings, SpoolMode};
///
/// let env = |name: &str| {
///     match name {
///         "TIDINGS_SERVICE" => Some("billing"),
///         "TIDINGS_SPOOL_DIR" => Some("/var/lib/billing/spool"),
///         "TIDINGS_SPOOL_MODE" => Some("write-ahead"),
///         "TIDINGS_SHUTDOWN_DEADLINE" => Some("3s"),
///         _ => None,
///     }
///     .map(str::to_owned)
/// };
/// let settings = Settings::from_vars(env).unwrap();
/// assert_eq!(settings.service, "billing");
/// assert!(settings.nats.is_none()); // no NATS_URL: the JSON-lines default
/// assert_eq!(settings.spool_mode, SpoolMode::WriteAhead);
/// assert_eq!(settings.shutdown_deadline, Some(Duration::from_secs(3)));
///
/// let bad = |name: &str| (name == "TIDINGS_SPOOL_MODE").then(|| "sometimes".to_owned());
/// let e = Settings::from_vars(bad).unwrap_err();
/// assert_eq!(e.field(), "TIDINGS_SPOOL_MODE");
/// assert!(e.problem().contains("on-spill or write-ahead"));
/// ```
///
/// # From a file
///
/// ```toml
/// [tidings]
/// service = "billing"
/// fallback = "/var/lib/billing/spill.jsonl"
/// shutdown_deadline = "5s"
/// spool_mode = "write-ahead"          # or "on-spill"
///
/// [tidings.spool]
/// dir = "/var/lib/billing/spool"
/// sync = "1s"                         # none | always | an interval
/// max_bytes = 1073741824
///
/// [tidings.nats]                      # no section: the JSON-lines default
/// url = "nats://127.0.0.1:4222"
/// delivery = "jetstream"
/// ensure_stream = "BILLING"
/// ```
///
/// Every field may be left out; unknown fields are refused. Secrets in
/// the `nats` section are written as `"***"` by `Serialize` (see
/// [`NatsConfig::from_env`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The service name filled into reports (empty: not set).
    pub service: String,
    /// The instance name filled into reports (empty: not set).
    pub instance: String,
    /// The NATS sink to add; `None`: no sink, so the embedded default
    /// ([`DEFAULT_REPORTS_FILE`]).
    pub nats: Option<NatsConfig>,
    /// A durable spool, used as [`spool_mode`](Settings::spool_mode) says.
    pub spool: Option<SpoolConfig>,
    /// How the spool is used (default [`SpoolMode::OnSpill`]).
    #[serde(deserialize_with = "spool_mode")]
    pub spool_mode: SpoolMode,
    /// A JSON-lines fallback file; `None`: stderr.
    pub fallback: Option<PathBuf>,
    /// The deadline of a shutdown triggered without one (the guard's);
    /// `None`: the builder's default (5 s).
    #[serde(with = "optional_duration")]
    pub shutdown_deadline: Option<Duration>,
}

impl Default for SpoolMode {
    /// [`SpoolMode::OnSpill`].
    fn default() -> Self {
        SpoolMode::OnSpill
    }
}

impl Settings {
    /// The settings the process environment describes (see the
    /// [table](Settings#from-the-environment)).
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`from_env`](Self::from_env) over any lookup of variables by name.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let nats = NatsConfig::from_vars(&var)?;
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let spool_mode = match var("TIDINGS_SPOOL_MODE") {
            Some(v) => {
                parse_spool_mode(&v).map_err(|p| ConfigError::new("TIDINGS_SPOOL_MODE", p))?
            }
            None => SpoolMode::OnSpill,
        };
        let sync = match var("TIDINGS_SPOOL_SYNC") {
            Some(v) => Some(parse_sync(&v).map_err(|p| ConfigError::new("TIDINGS_SPOOL_SYNC", p))?),
            None => None,
        };
        let spool = match var("TIDINGS_SPOOL_DIR") {
            Some(dir) => Some(SpoolConfig {
                sync: sync.unwrap_or_default(),
                ..SpoolConfig::new(dir)
            }),
            None => {
                for name in ["TIDINGS_SPOOL_MODE", "TIDINGS_SPOOL_SYNC"] {
                    if var(name).is_some() {
                        return Err(ConfigError::new(
                            name,
                            "is set, but TIDINGS_SPOOL_DIR is not: set the spool's directory too",
                        ));
                    }
                }
                None
            }
        };
        let shutdown_deadline = match var("TIDINGS_SHUTDOWN_DEADLINE") {
            Some(v) => Some(
                parse_duration(&v).map_err(|p| ConfigError::new("TIDINGS_SHUTDOWN_DEADLINE", p))?,
            ),
            None => None,
        };
        let settings = Settings {
            service: var("TIDINGS_SERVICE").unwrap_or_default(),
            instance: var("TIDINGS_INSTANCE").unwrap_or_default(),
            nats,
            spool,
            spool_mode,
            fallback: var("TIDINGS_FALLBACK").map(PathBuf::from),
            shutdown_deadline,
        };
        settings.validate().map_err(|e| {
            let variable = match e.field() {
                "shutdown_deadline" => "TIDINGS_SHUTDOWN_DEADLINE",
                other => other,
            };
            ConfigError::new(variable, e.problem())
        })?;
        Ok(settings)
    }

    /// Checks what can be checked without opening anything (the NATS
    /// settings, a zero deadline); the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(nats) = &self.nats {
            nats.validate()?;
        }
        if self.shutdown_deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "shutdown_deadline",
                "must be greater than zero",
            ));
        }
        Ok(())
    }

    /// `builder` with these settings: service, instance, fallback file,
    /// spool, shutdown deadline (each only when set). The NATS sink is the
    /// adapter's to add: its client is bound to the runtime. Fails when
    /// the fallback file cannot be opened.
    pub fn apply(&self, mut builder: ReporterBuilder) -> Result<ReporterBuilder, BuildError> {
        self.validate()?;
        if !self.service.is_empty() {
            builder = builder.service(self.service.clone());
        }
        if !self.instance.is_empty() {
            builder = builder.instance(self.instance.clone());
        }
        if let Some(path) = &self.fallback {
            builder = builder.fallback(JsonLinesFile::open(path).map_err(BuildError::File)?);
        }
        if let Some(spool) = &self.spool {
            builder = builder.spool(spool.clone(), self.spool_mode);
        }
        if let Some(deadline) = self.shutdown_deadline {
            builder = builder.shutdown_deadline(deadline);
        }
        Ok(builder)
    }

    /// What an adapter's `init` does with the settings: [`apply`](Self::apply)
    /// them to `builder`, add `nats_sink` (the adapter's sink for
    /// [`nats`](Self::nats), connected by the caller since its client is
    /// bound to the runtime), and [`announce`](Self::announce) the choice.
    pub fn configure<S: crate::Sink>(
        &self,
        builder: ReporterBuilder,
        nats_sink: Option<S>,
    ) -> Result<ReporterBuilder, BuildError> {
        let mut builder = self.apply(builder)?;
        if let Some(sink) = nats_sink {
            builder = builder.sink(sink);
        }
        self.announce(&builder);
        Ok(builder)
    }

    /// Says, through tidings' diagnostics (a tracing event with target
    /// `tidings`, else stderr), where reports will go: what `init()` chose.
    /// `builder` is the one the settings were applied to (its own sinks,
    /// if any, replace the JSON-lines default).
    pub fn announce(&self, builder: &ReporterBuilder) {
        if self.nats.is_none() && builder.has_sinks() {
            let rest = self.to_string();
            let rest = rest.split_once(';').map_or("", |(_, r)| r);
            crate::diagnostics::emit(
                Some("init"),
                format_args!("no NATS server configured (no NATS_URL): reports go to the sinks configured in code;{rest}"),
            );
        } else {
            crate::diagnostics::emit(Some("init"), format_args!("{self}"));
        }
    }
}

/// Where reports go, in one line (no secret: URLs are redacted).
impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nats {
            Some(nats) => {
                write!(
                    f,
                    "reports go to NATS {} ({}, subject {}",
                    nats.redacted_servers().join(","),
                    if nats.is_jetstream() {
                        "JetStream"
                    } else {
                        "core publish"
                    },
                    nats.subject
                )?;
                if let Some(stream) = &nats.ensure_stream {
                    write!(f, ", stream {stream}")?;
                }
                f.write_str(")")?;
            }
            None => write!(
                f,
                "no NATS server configured (no NATS_URL): reports go to the JSON-lines file {DEFAULT_REPORTS_FILE}"
            )?,
        }
        if let Some(spool) = &self.spool {
            write!(
                f,
                "; spool {} ({})",
                spool.dir.display(),
                match self.spool_mode {
                    SpoolMode::OnSpill => "on-spill",
                    SpoolMode::WriteAhead => "write-ahead",
                }
            )?;
        }
        match &self.fallback {
            Some(path) => write!(f, "; fallback {}", path.display()),
            None => f.write_str("; fallback stderr"),
        }
    }
}

/// A duration with a unit (`500ms`, `2s`, `1m 30s`).
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        format!("{value:?} is not a duration: expected a number with a unit, e.g. \"500ms\", \"2s\" or \"1m\"")
    })
}

fn parse_spool_mode(v: &str) -> Result<SpoolMode, String> {
    match v.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "on-spill" => Ok(SpoolMode::OnSpill),
        "write-ahead" => Ok(SpoolMode::WriteAhead),
        _ => Err(format!(
            "{v:?} is not a spool mode: expected on-spill or write-ahead"
        )),
    }
}

fn parse_sync(v: &str) -> Result<SyncPolicy, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(SyncPolicy::None),
        "always" => Ok(SyncPolicy::Always),
        other => match parse_duration(other) {
            Ok(d) if !d.is_zero() => Ok(SyncPolicy::Interval(d)),
            _ => Err(format!(
                "{v:?} is not a sync policy: expected none, always, or a non-zero interval such as \"1s\""
            )),
        },
    }
}

fn spool_mode<'de, D: Deserializer<'de>>(d: D) -> Result<SpoolMode, D::Error> {
    parse_spool_mode(&String::deserialize(d)?).map_err(de::Error::custom)
}

/// The serde form of a [`SyncPolicy`]: `"none"`, `"always"`, or an
/// interval (`"1s"`).
impl Serialize for SyncPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SyncPolicy::None => s.serialize_str("none"),
            SyncPolicy::Always => s.serialize_str("always"),
            SyncPolicy::Interval(d) => s.collect_str(&humantime::format_duration(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for SyncPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_sync(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

mod optional_duration {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected a duration as a string with a unit, e.g. \"500ms\", \"2s\" or \"1m\"",
            )
        })?;
        s.map(|s| parse_duration(&s).map_err(de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_is_the_default() {
        let s = Settings::from_vars(|_| None).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(
            s.to_string(),
            "no NATS server configured (no NATS_URL): reports go to the JSON-lines file tidings-reports.jsonl; fallback stderr"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value, says) in [
            ("TIDINGS_SPOOL_SYNC", "sometimes", "none, always"),
            ("TIDINGS_SHUTDOWN_DEADLINE", "soon", "e.g. \"500ms\""),
            ("TIDINGS_SHUTDOWN_DEADLINE", "0s", "greater than zero"),
        ] {
            let e = Settings::from_vars(|n| match n {
                "TIDINGS_SPOOL_DIR" => Some("/tmp/x".to_owned()),
                n if n == name => Some(value.to_owned()),
                _ => None,
            })
            .unwrap_err();
            assert_eq!(e.field(), name, "{e}");
            assert!(e.problem().contains(says), "{e}");
        }
        let e = Settings::from_vars(|n| (n == "TIDINGS_SPOOL_SYNC").then(|| "always".into()))
            .unwrap_err();
        assert_eq!(e.field(), "TIDINGS_SPOOL_SYNC");
        assert!(e.problem().contains("TIDINGS_SPOOL_DIR"));
    }

    #[test]
    fn serde_round_trip() {
        let s = Settings {
            service: "billing".into(),
            nats: Some(NatsConfig::new("nats://127.0.0.1:4222", "a.b").jetstream()),
            spool: Some(SpoolConfig {
                sync: SyncPolicy::Always,
                ..SpoolConfig::new("/var/spool/x")
            }),
            spool_mode: SpoolMode::WriteAhead,
            fallback: Some("/var/x.jsonl".into()),
            shutdown_deadline: Some(Duration::from_millis(1500)),
            ..Settings::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""shutdown_deadline":"1s 500ms""#), "{json}");
        let back: Settings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let spool: SpoolConfig = serde_json::from_str(r#"{"dir": "/d"}"#).unwrap();
        assert_eq!(spool, SpoolConfig::new("/d"));
        let e = serde_json::from_str::<Settings>(r#"{"spool_mode": "never"}"#).unwrap_err();
        assert!(e.to_string().contains("on-spill or write-ahead"), "{e}");
    }
}
