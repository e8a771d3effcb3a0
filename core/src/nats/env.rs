//! [`NatsConfig`] from the environment (the `nats` command-line tool's
//! variables, and `TIDINGS_*` for the rest) and from configuration files
//! (its serde form).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{redact_url, Credentials, Delivery, NatsConfig, Secret};
use crate::config::ConfigError;
use crate::settings::parse_duration;

/// What a [`Secret`] is written as.
pub const REDACTED: &str = "***";

/// The subject reports go to when `TIDINGS_SUBJECT` (or the file's
/// `subject`) does not say.
pub const DEFAULT_SUBJECT: &str = "tidings.reports";

/// The server the `nats` tool uses when none is given; the default of the
/// serde form (the environment has no default: no `NATS_URL`, no NATS).
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

impl Default for NatsConfig {
    /// `NatsConfig::new(DEFAULT_URL, DEFAULT_SUBJECT)`: core publish on
    /// `tidings.reports` to a server on this machine.
    fn default() -> Self {
        NatsConfig::new(DEFAULT_URL, DEFAULT_SUBJECT)
    }
}

impl NatsConfig {
    /// The configuration the process environment describes, validated;
    /// `Ok(None)` when `NATS_URL` is unset or empty.
    ///
    /// # From the environment
    ///
    /// | variable | sets | form |
    /// |---|---|---|
    /// | `NATS_URL` | [`servers`](NatsConfig::servers) | one URL, or several separated by commas; unset or empty: no NATS configuration (`from_env` returns `None`) |
    /// | `NATS_USER`, `NATS_PASSWORD` | [`Credentials::UserPassword`] | both, or neither |
    /// | `NATS_TOKEN` | [`Credentials::Token`] | |
    /// | `NATS_CREDS` | [`Credentials::CredsFile`] | a path to a `.creds` file |
    /// | `NATS_NKEY` | [`Credentials::NKey`] | a path to a file holding an NKey user seed (`SU…`), as the `nats` CLI reads it |
    /// | `NATS_CA` | [`TlsConfig::ca_files`](super::TlsConfig::ca_files) | PEM file(s) of CAs to trust, separated by commas |
    /// | `NATS_CERT`, `NATS_KEY` | [`TlsConfig::client_cert`](super::TlsConfig::client_cert), [`client_key`](super::TlsConfig::client_key) | PEM files of the client certificate and its key (mutual TLS): both, or neither |
    /// | `TIDINGS_REQUIRE_TLS` | [`TlsConfig::require_tls`](super::TlsConfig::require_tls) | a boolean; default false |
    /// | `TIDINGS_TLS_SERVER_NAME` | [`TlsConfig::server_name`](super::TlsConfig::server_name) | the name to verify in the server's certificate |
    /// | `TIDINGS_SUBJECT` | [`subject`](NatsConfig::subject) | default `tidings.reports` |
    /// | `TIDINGS_JETSTREAM` | [`delivery`](NatsConfig::delivery) | `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); default false, or true when `TIDINGS_STREAM` is set |
    /// | `TIDINGS_STREAM` | [`ensure_stream`](NatsConfig::ensure_stream) | a stream name; implies JetStream |
    ///
    /// An empty variable counts as unset. At most one kind of credentials may
    /// be set. A bad value fails with a [`ConfigError`] whose
    /// [`field`](ConfigError::field) is the variable's name and whose message
    /// says what is accepted; a secret's value (`NATS_PASSWORD`, `NATS_TOKEN`,
    /// a password in `NATS_URL`) never appears in an error, in `Debug` or in
    /// the serde form.
    ///
    /// # From a file: the serde form
    ///
    /// [`NatsConfig`] is `Deserialize` and `Serialize`, so it can be a section
    /// of a program's own TOML or YAML configuration. Every field has a
    /// default (those of [`NatsConfig::default`]: [`DEFAULT_URL`],
    /// [`DEFAULT_SUBJECT`], core publish); `servers` may be written `url`,
    /// one string or a list. Unknown fields are refused, so a typo is an
    /// error, not a silently ignored setting.
    ///
    /// ```toml
    /// url = "nats://127.0.0.1:4222"
    /// subject = "billing.reports"
    /// subject_suffix = "severity"           # none | severity | severity_and_kind
    /// delivery = "jetstream"                # core | jetstream | { jetstream = { ack_timeout = "5s", max_acks_in_flight = 1024 } }
    /// ensure_stream = "BILLING"
    /// credentials = { token = "s3cret" }    # "none" | { token = … } | { user_password = { user = …, password = … } } | { creds_file = "/path" }
    /// connect_timeout = "2s"                # a number with a unit: 500ms, 2s, 1m
    /// ```
    ///
    /// **Secrets are never serialized.** A [`Secret`] is written as `"***"`,
    /// and a password in a server URL as `user:***@host`: serializing a
    /// configuration (to log it, to show the effective settings) cannot leak
    /// one. Reading `"***"` back as a secret is refused with an error saying
    /// so, so a configuration written by tidings cannot authenticate with a
    /// placeholder by mistake: put the real secret in the file, or in the
    /// environment.
    ///
    /// # Example
    ///
    /// ```
    /// use tidings_core::nats::NatsConfig;
    /// // Without touching the process environment: the same rules over a lookup.
    /// let env = |name: &str| match name {
    ///     "NATS_URL" => Some("nats://127.0.0.1:4222".to_owned()),
    ///     "TIDINGS_STREAM" => Some("REPORTS".to_owned()),
    ///     _ => None,
    /// };
    /// let config = NatsConfig::from_vars(env).unwrap().unwrap();
    /// assert!(config.is_jetstream());
    /// assert_eq!(config.ensure_stream.as_deref(), Some("REPORTS"));
    /// assert_eq!(config.subject, "tidings.reports");
    ///
    /// let bad = |name: &str| match name {
    ///     "NATS_URL" => Some("nats://127.0.0.1:4222".to_owned()),
    ///     "TIDINGS_JETSTREAM" => Some("maybe".to_owned()),
    ///     _ => None,
    /// };
    /// let e = NatsConfig::from_vars(bad).unwrap_err();
    /// assert_eq!(e.field(), "TIDINGS_JETSTREAM");
    /// assert!(e.problem().contains("true or false"));
    /// ```
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(env_var)
    }

    /// [`from_env`](Self::from_env) over any lookup of variables by name
    /// (tests, a map read from elsewhere).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let Some(urls) = var("NATS_URL") else {
            return Ok(None);
        };
        let servers: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        let subject = var("TIDINGS_SUBJECT").unwrap_or_else(|| DEFAULT_SUBJECT.to_owned());
        let mut config = NatsConfig::new(String::new(), subject);
        config.servers = servers;

        let stream = var("TIDINGS_STREAM");
        let jetstream = match var("TIDINGS_JETSTREAM") {
            Some(v) => parse_bool("TIDINGS_JETSTREAM", &v)?,
            None => stream.is_some(),
        };
        if jetstream {
            config = config.jetstream();
        }
        if let Some(stream) = stream {
            if !jetstream {
                return Err(ConfigError::new(
                    "TIDINGS_STREAM",
                    "needs JetStream, but TIDINGS_JETSTREAM is false (unset TIDINGS_STREAM, or set TIDINGS_JETSTREAM=true)",
                ));
            }
            config = config.ensure_stream(stream);
        }

        config.credentials = credentials(&var)?;
        if let Some(cas) = var("NATS_CA") {
            for ca in cas.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                config = config.tls_ca_file(ca);
            }
        }
        match (var("NATS_CERT"), var("NATS_KEY")) {
            (Some(cert), Some(key)) => config = config.tls_client_cert(cert, key),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "NATS_KEY",
                    "is not set, but NATS_CERT is: set both (mutual TLS), or neither",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "NATS_CERT",
                    "is not set, but NATS_KEY is: set both (mutual TLS), or neither",
                ))
            }
            (None, None) => {}
        }
        if let Some(v) = var("TIDINGS_REQUIRE_TLS") {
            if parse_bool("TIDINGS_REQUIRE_TLS", &v)? {
                config = config.require_tls();
            }
        }
        if let Some(name) = var("TIDINGS_TLS_SERVER_NAME") {
            config = config.tls_server_name(name);
        }
        config.validate().map_err(|e| {
            let variable = match e.field() {
                "nats.url" => "NATS_URL",
                "nats.subject" => "TIDINGS_SUBJECT",
                "nats.ensure_stream" => "TIDINGS_STREAM",
                "nats.credentials" if var("NATS_NKEY").is_some() => "NATS_NKEY",
                "nats.credentials" => "NATS_CREDS",
                "nats.tls.ca_file" => "NATS_CA",
                "nats.tls.client_cert" => "NATS_CERT",
                "nats.tls.client_key" => "NATS_KEY",
                "nats.tls.server_name" => "TIDINGS_TLS_SERVER_NAME",
                other => other,
            };
            ConfigError::new(variable, e.problem())
        })?;
        Ok(Some(config))
    }
}

fn env_var(name: &str) -> Option<String> {
    // A value that is not UTF-8 is read lossily: the validation that
    // follows names the variable if the result is unusable.
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// At most one kind of credentials; secrets never appear in an error.
fn credentials(var: &impl Fn(&str) -> Option<String>) -> Result<Credentials, ConfigError> {
    let user = var("NATS_USER");
    let password = var("NATS_PASSWORD");
    let token = var("NATS_TOKEN");
    let creds = var("NATS_CREDS");
    let nkey = var("NATS_NKEY");
    let set: Vec<&str> = [
        ("NATS_USER", user.is_some() || password.is_some()),
        ("NATS_TOKEN", token.is_some()),
        ("NATS_CREDS", creds.is_some()),
        ("NATS_NKEY", nkey.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(ConfigError::new(
            set[1],
            format!(
                "conflicts with {}: set one kind of credentials (NATS_USER and NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, or NATS_NKEY)",
                set[0]
            ),
        ));
    }
    if let Some(path) = nkey {
        return Credentials::nkey_seed_file(&path)
            .map_err(|e| ConfigError::new("NATS_NKEY", e.problem()));
    }
    Ok(match (user, password, token, creds) {
        (Some(user), Some(password), _, _) => Credentials::UserPassword {
            user,
            password: Secret::new(password),
        },
        (Some(_), None, _, _) => {
            return Err(ConfigError::new(
                "NATS_PASSWORD",
                "is not set, but NATS_USER is: set both, or neither",
            ))
        }
        (None, Some(_), _, _) => {
            return Err(ConfigError::new(
                "NATS_USER",
                "is not set, but NATS_PASSWORD is: set both, or neither",
            ))
        }
        (None, None, Some(token), _) => Credentials::Token(Secret::new(token)),
        (None, None, None, Some(path)) => Credentials::CredsFile(PathBuf::from(path)),
        (None, None, None, None) => Credentials::None,
    })
}

/// A boolean setting: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`
/// (any case).
pub(crate) fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            format!("{value:?} is not a boolean: expected true or false (or 1/0, yes/no, on/off)"),
        )),
    }
}

// ----- serde forms -------------------------------------------------------------

impl Serialize for Secret {
    /// Always `"***"`: a secret is never written in clear.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Any string but `"***"`, which is what tidings writes in place of a
    /// secret: reading it back as a password would authenticate with the
    /// placeholder.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == REDACTED {
            return Err(de::Error::custom(
                "\"***\" is the placeholder tidings writes instead of a secret; \
                 put the secret itself here, or set it in the environment",
            ));
        }
        Ok(Secret::new(s))
    }
}

impl Serialize for Delivery {
    /// `"core"`, or `{ jetstream = { ack_timeout = "5s", max_acks_in_flight = 1024 } }`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Delivery::Core => s.serialize_str("core"),
            Delivery::JetStream {
                ack_timeout,
                max_acks_in_flight,
            } => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "jetstream",
                    &JetStreamForm {
                        ack_timeout: *ack_timeout,
                        max_acks_in_flight: *max_acks_in_flight,
                    },
                )?;
                map.end()
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct JetStreamForm {
    #[serde(with = "duration")]
    ack_timeout: Duration,
    max_acks_in_flight: usize,
}

impl Default for JetStreamForm {
    fn default() -> Self {
        match NatsConfig::default().jetstream().delivery {
            Delivery::JetStream {
                ack_timeout,
                max_acks_in_flight,
            } => JetStreamForm {
                ack_timeout,
                max_acks_in_flight,
            },
            Delivery::Core => unreachable!("jetstream() sets JetStream delivery"),
        }
    }
}

const DELIVERY_FORMS: &str = "\"core\", \"jetstream\", or { jetstream = { ack_timeout = \"5s\", max_acks_in_flight = 1024 } }";

impl<'de> Deserialize<'de> for Delivery {
    /// `"core"`, `"jetstream"` (default ack settings), or
    /// `{ jetstream = { ack_timeout = "5s", max_acks_in_flight = 1024 } }`
    /// (either setting may be left out).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> Visitor<'de> for Form {
            type Value = Delivery;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a delivery: {DELIVERY_FORMS}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Delivery, E> {
                match v {
                    "core" => Ok(Delivery::Core),
                    "jetstream" => Ok(NatsConfig::default().jetstream().delivery),
                    other => Err(E::custom(format!(
                        "unknown delivery {other:?}: expected {DELIVERY_FORMS}"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Delivery, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "an empty delivery table: expected {DELIVERY_FORMS}"
                    )));
                };
                if key != "jetstream" {
                    return Err(de::Error::custom(format!(
                        "unknown delivery {key:?}: expected {DELIVERY_FORMS}"
                    )));
                }
                let form: JetStreamForm = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "a delivery table has one key: expected {DELIVERY_FORMS}"
                    )));
                }
                Ok(Delivery::JetStream {
                    ack_timeout: form.ack_timeout,
                    max_acks_in_flight: form.max_acks_in_flight,
                })
            }
        }
        d.deserialize_any(Form)
    }
}

/// The serde form of a [`Duration`]: a string with a unit (`"2s"`,
/// `"500ms"`), written the same way.
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected a duration as a string with a unit, e.g. \"500ms\", \"2s\" or \"1m\"",
            )
        })?;
        parse_duration(&s).map_err(de::Error::custom)
    }
}

/// An optional duration, written like [`duration`]; absent or `null` is
/// `None`.
pub(crate) mod opt_duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_duration(&s).map(Some).map_err(de::Error::custom),
        }
    }
}

/// The serde form of [`NatsConfig::servers`]: one URL or a list; written
/// with passwords replaced by `***`.
pub(crate) mod servers {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(servers: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(servers.iter().map(|u| redact_url(u)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected a server URL or a list of them, e.g. \"nats://127.0.0.1:4222\"",
            )
        })? {
            OneOrMany::One(url) => Ok(vec![url]),
            OneOrMany::Many(urls) => Ok(urls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn no_url_no_nats() {
        assert_eq!(NatsConfig::from_vars(vars(&[])).unwrap(), None);
        assert_eq!(
            NatsConfig::from_vars(vars(&[("NATS_URL", " "), ("TIDINGS_JETSTREAM", "true")]))
                .unwrap(),
            None
        );
    }

    #[test]
    fn every_variable_lands_where_it_should() {
        let c = NatsConfig::from_vars(vars(&[
            ("NATS_URL", "nats://a:4222, nats://b:4222"),
            ("NATS_USER", "bob"),
            ("NATS_PASSWORD", "sw0rdfish"),
            ("TIDINGS_SUBJECT", "billing.reports"),
            ("TIDINGS_JETSTREAM", "on"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(c.subject, "billing.reports");
        assert!(c.is_jetstream());
        assert_eq!(c.ensure_stream, None);
        assert_eq!(
            c.credentials,
            Credentials::UserPassword {
                user: "bob".into(),
                password: Secret::new("sw0rdfish")
            }
        );
        let token = NatsConfig::from_vars(vars(&[("NATS_URL", "h:1"), ("NATS_TOKEN", "t0k")]))
            .unwrap()
            .unwrap();
        assert_eq!(token.credentials, Credentials::Token(Secret::new("t0k")));
        assert!(!token.is_jetstream());
    }

    #[test]
    fn bad_values_name_the_variable_and_never_show_a_secret() {
        /// The variables set, the variable named, what the error says.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("NATS_URL", "http://h:1")], "NATS_URL", "nats://"),
            (
                &[("NATS_URL", "nats://u:hunter2@h:99999")],
                "NATS_URL",
                "bad port",
            ),
            (
                &[("NATS_URL", "h:1"), ("TIDINGS_SUBJECT", "a..b")],
                "TIDINGS_SUBJECT",
                "",
            ),
            (
                &[("NATS_URL", "h:1"), ("TIDINGS_JETSTREAM", "maybe")],
                "TIDINGS_JETSTREAM",
                "true or false",
            ),
            (
                &[
                    ("NATS_URL", "h:1"),
                    ("TIDINGS_JETSTREAM", "false"),
                    ("TIDINGS_STREAM", "S"),
                ],
                "TIDINGS_STREAM",
                "needs JetStream",
            ),
            (
                &[("NATS_URL", "h:1"), ("TIDINGS_STREAM", "a.b")],
                "TIDINGS_STREAM",
                "not a valid stream name",
            ),
            (
                &[("NATS_URL", "h:1"), ("NATS_PASSWORD", "hunter2")],
                "NATS_USER",
                "set both",
            ),
            (
                &[
                    ("NATS_URL", "h:1"),
                    ("NATS_TOKEN", "hunter2"),
                    ("NATS_CREDS", "/x"),
                ],
                "NATS_CREDS",
                "conflicts with NATS_TOKEN",
            ),
            (
                &[("NATS_URL", "h:1"), ("NATS_CREDS", "/no/such/file.creds")],
                "NATS_CREDS",
                "does not exist",
            ),
            (
                &[("NATS_URL", "h:1"), ("NATS_NKEY", "/no/such/seed.nk")],
                "NATS_NKEY",
                "seed.nk",
            ),
            (
                &[("NATS_URL", "h:1"), ("NATS_CERT", "/c.pem")],
                "NATS_KEY",
                "set both",
            ),
            (
                &[("NATS_URL", "h:1"), ("NATS_CA", "/no/such/ca.pem")],
                "NATS_CA",
                "ca.pem",
            ),
        ];
        for (set, variable, says) in cases {
            let e = NatsConfig::from_vars(vars(set)).unwrap_err();
            assert_eq!(e.field(), *variable, "{set:?}: {e}");
            assert!(e.problem().contains(says), "{set:?}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn serde_form_round_trips_everything_but_secrets() {
        let c = NatsConfig::new("nats://alice:hunter2@127.0.0.1:4222", "a.b")
            .jetstream()
            .ensure_stream("S")
            .credentials(Credentials::Token(Secret::new("t0k3n")));
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("hunter2") && !json.contains("t0k3n"),
            "{json}"
        );
        assert!(
            json.contains(r#""servers":["nats://alice:***@127.0.0.1:4222"]"#),
            "{json}"
        );
        assert!(json.contains(r#""credentials":{"token":"***"}"#), "{json}");
        assert!(json.contains(r#""ack_timeout":"5s""#), "{json}");
        // A placeholder is not a secret.
        let e = serde_json::from_str::<NatsConfig>(&json).unwrap_err();
        assert!(e.to_string().contains("placeholder"), "{e}");
        // Without secrets, the round trip is exact.
        let plain = c.credentials(Credentials::None);
        let mut plain = plain;
        plain.servers = vec!["nats://127.0.0.1:4222".into()];
        let back: NatsConfig =
            serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        assert_eq!(back, plain);
    }

    #[test]
    fn serde_form_defaults_and_short_forms() {
        let c: NatsConfig =
            serde_json::from_str(r#"{"url": "nats://h:1", "delivery": "jetstream"}"#).unwrap();
        assert_eq!(c.servers, ["nats://h:1"]);
        assert_eq!(c.subject, DEFAULT_SUBJECT);
        assert_eq!(c.delivery, NatsConfig::default().jetstream().delivery);
        let c: NatsConfig = serde_json::from_str(
            r#"{"delivery": {"jetstream": {"ack_timeout": "250ms"}}, "credentials": {"user_password": {"user": "u", "password": "p"}}, "subject_suffix": "severity_and_kind"}"#,
        )
        .unwrap();
        assert_eq!(c.servers, [DEFAULT_URL]);
        assert!(matches!(
            c.delivery,
            Delivery::JetStream { ack_timeout, max_acks_in_flight: 1024 } if ack_timeout == Duration::from_millis(250)
        ));
        assert_eq!(
            c.subject_suffix,
            super::super::SubjectSuffix::SeverityAndKind
        );
        for (bad, says) in [
            (r#"{"delivery": "carrier pigeon"}"#, "expected \"core\""),
            (r#"{"connect_timeout": "soon"}"#, "e.g. \"500ms\""),
            (r#"{"connect_timeout": 2}"#, "with a unit"),
            (r#"{"subjet": "a.b"}"#, "unknown field `subjet`"),
        ] {
            let e = serde_json::from_str::<NatsConfig>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
