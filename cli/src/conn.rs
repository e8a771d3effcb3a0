//! Connection settings shared by the commands that talk to NATS, with the
//! `nats` CLI's flag and environment names, and a direct async-nats
//! connection for `tail` and `check` whose failures say what went wrong
//! (unreachable, credentials refused, TLS) without ever showing a secret.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
use async_nats::{Client, ConnectErrorKind, Event};
use clap::Args;
use tidings::nats::{Credentials, NatsConfig, Redactor, Secret, DEFAULT_URL};
use tidings::ConfigError;

use crate::Failure;

/// How to reach and authenticate to NATS.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection (flags or the nats CLI's environment variables)")]
pub struct ConnectionArgs {
    /// NATS server URL(s), comma-separated: nats://host:port, tls://host:port
    /// or host:port [default: nats://127.0.0.1:4222; spool replay requires one]
    #[arg(
        short = 's',
        long = "server",
        visible_alias = "nats",
        env = "NATS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub server: Option<String>,
    /// User name (with --password).
    #[arg(long, env = "NATS_USER", hide_env_values = true, value_name = "USER",
          requires = "password", conflicts_with_all = ["token", "creds"])]
    pub user: Option<String>,
    /// Password (with --user); never printed.
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        requires = "user"
    )]
    pub password: Option<String>,
    /// Token; never printed.
    #[arg(
        long,
        env = "NATS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "creds"
    )]
    pub token: Option<String>,
    /// A .creds file (JWT and NKey seed); its content is never printed.
    #[arg(
        long,
        env = "NATS_CREDS",
        hide_env_values = true,
        value_name = "FILE",
        conflicts_with = "nkey"
    )]
    pub creds: Option<PathBuf>,
    /// A file holding an NKey user seed (SU...); its content is never printed.
    #[arg(long, env = "NATS_NKEY", hide_env_values = true, value_name = "FILE",
          conflicts_with_all = ["token", "user"])]
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) to trust for the server's TLS certificate (PEM).
    #[arg(
        long = "tlsca",
        env = "NATS_CA",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM; with --tlskey).
    #[arg(
        long = "tlscert",
        env = "NATS_CERT",
        hide_env_values = true,
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM; with --tlscert); never printed.
    #[arg(
        long = "tlskey",
        env = "NATS_KEY",
        hide_env_values = true,
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Refuse a server that does not speak TLS.
    #[arg(long = "tlsfirst", visible_alias = "require-tls")]
    pub require_tls: bool,
    /// How long to wait for the server when connecting (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

/// Parses a duration such as `5s`, `500ms`, `10m`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(v)
        .map_err(|e| format!("expected a duration such as 5s, 500ms or 10m ({e})"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

impl ConnectionArgs {
    /// The server URL(s) to use: --server / NATS_URL, else the default
    /// (`tail`, `check`, `replay`; `spool replay` requires one).
    pub fn server_or_default(&self) -> String {
        self.server
            .clone()
            .unwrap_or_else(|| DEFAULT_URL.to_owned())
    }

    /// The credentials the flags name, but for --nkey: its seed is read
    /// once, by [`nats_config`](Self::nats_config), which names the flag
    /// when the file holds no seed.
    fn credentials(&self) -> Credentials {
        if let Some(token) = &self.token {
            Credentials::Token(Secret::new(token.clone()))
        } else if let (Some(user), Some(password)) = (&self.user, &self.password) {
            Credentials::UserPassword {
                user: user.clone(),
                password: Secret::new(password.clone()),
            }
        } else if let Some(path) = &self.creds {
            Credentials::CredsFile(path.clone())
        } else {
            Credentials::None
        }
    }

    /// Validated settings for a tidings NATS sink publishing on `subject`;
    /// errors name the flag at fault.
    pub fn nats_config(
        &self,
        servers: &str,
        subject: &str,
        jetstream: bool,
    ) -> Result<NatsConfig, Failure> {
        let mut urls = server_urls(servers);
        let first = urls
            .next()
            .ok_or_else(|| Failure::usage("--server: no server URL given"))?;
        let mut config = NatsConfig::new(first, subject);
        for url in urls {
            config = config.server(url);
        }
        if let Some(path) = &self.nkey {
            let credentials = Credentials::nkey_seed_file(path)
                .map_err(|e| Failure::usage(format!("--nkey: {}", e.problem())))?;
            config = config.credentials(credentials);
        } else {
            config = config.credentials(self.credentials());
        }
        if let Some(ca) = &self.tls_ca {
            config = config.tls_ca_file(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config = config.tls_client_cert(cert.clone(), key.clone());
        }
        if self.require_tls {
            config = config.require_tls();
        }
        config.connect_timeout = self.connect_timeout;
        config.client_name = "tidings-cli".to_owned();
        if jetstream {
            config = config.jetstream();
        }
        config
            .validate()
            .map_err(|e| config_failure(&e, |problem| self.redact(problem)))?;
        Ok(config)
    }

    /// `text` with the secrets of the settings these flags make taken out,
    /// by tidings' [`Redactor`]: the password, the token and any secret in a
    /// --server URL, anything shaped like an NKey seed (--nkey's, a .creds
    /// file's), and the password in any URL's user-info, all become `***`.
    pub fn redact(&self, text: &str) -> String {
        let settings = NatsConfig {
            servers: self
                .server
                .as_deref()
                .map_or_else(Vec::new, |s| server_urls(s).collect()),
            ..NatsConfig::default().credentials(self.credentials())
        };
        Redactor::new(&settings).clean(text)
    }

    /// How the flags authenticate, for messages (no secret; no file read).
    pub fn auth_description(&self) -> String {
        if self.token.is_some() {
            "a token".to_owned()
        } else if let (Some(user), Some(_)) = (&self.user, &self.password) {
            format!("user {user:?}")
        } else if let Some(path) = &self.creds {
            format!("credentials file {}", path.display())
        } else if self.nkey.is_some() {
            "an NKey seed".to_owned()
        } else {
            "no credentials".to_owned()
        }
    }
}

/// The URLs of a comma-separated --server value, blanks left out.
fn server_urls(servers: &str) -> impl Iterator<Item = String> + '_ {
    servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A settings error as a usage failure (exit code 2) naming the flag at
/// fault: `--tlsca: cannot read …`, the problem passed through `clean`
/// (which takes out the secrets it may quote).
pub fn config_failure(e: &ConfigError, clean: impl FnOnce(&str) -> String) -> Failure {
    Failure::usage(format!("{}: {}", flag_of(e.field()), clean(e.problem())))
}

/// Whether `get_stream` failed because the stream does not exist (and not
/// because it could not be asked).
pub fn stream_not_found(e: &GetStreamError) -> bool {
    matches!(
        e.kind(),
        GetStreamErrorKind::JetStream(ref api) if api.code() == 404
    )
}

/// The command-line flag behind one of [`NatsConfig::validate`]'s field names.
fn flag_of(field: &str) -> &'static str {
    match field {
        "nats.url" => "--server",
        "nats.subject" => "--subject",
        "nats.credentials" => "--creds",
        "nats.ensure_stream" => "--stream",
        "nats.connect_timeout" => "--connect-timeout",
        "nats.tls.ca_file" => "--tlsca",
        "nats.tls.client_cert" => "--tlscert",
        "nats.tls.client_key" => "--tlskey",
        _ => "NATS settings",
    }
}

/// Why a connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectProblem {
    /// Nothing answered (refused, timed out, DNS).
    Unreachable,
    /// The server answered and refused the credentials.
    Auth,
    /// The TLS handshake failed.
    Tls,
}

/// A failed connection attempt: what kind, and a message without secrets.
#[derive(Debug)]
pub struct ConnectFailure {
    /// What kind of failure.
    pub problem: ConnectProblem,
    /// What async-nats said, secrets removed.
    pub message: String,
}

impl ConnectFailure {
    /// As a command failure (exit code 3), with what to change.
    pub fn into_failure(self, config: &NatsConfig, args: &ConnectionArgs) -> Failure {
        let servers = config.redacted_servers().join(",");
        Failure::nats(match self.problem {
            ConnectProblem::Unreachable => format!(
                "cannot connect to {servers}: {}; is nats-server running there? \
                 (set it with --server or NATS_URL)",
                self.message
            ),
            ConnectProblem::Auth => format!(
                "{servers} refused {}: {}; check --user/--password, --token or --creds \
                 (NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS)",
                args.auth_description(),
                self.message
            ),
            ConnectProblem::Tls => format!("TLS with {servers} failed: {}", self.message),
        })
    }
}

/// What to do with the connection's events.
pub type EventHook = Box<dyn Fn(Event) + Send + Sync>;

/// Connects once (no retry of the first connection): the client, or why
/// not. After it connected, the client reconnects for ever. `on_event` sees
/// the connection's events (disconnected, reconnected).
pub async fn connect(
    config: &NatsConfig,
    args: &ConnectionArgs,
    on_event: Option<EventHook>,
) -> Result<Result<Client, ConnectFailure>, Failure> {
    // The sink's own options: credentials, TLS and its verifier, the same
    // decisions as every tidings NATS sink on tokio.
    let (servers, mut options) = tidings::tokio::connect_options(config)
        .await
        .map_err(|e| config_failure(&e, |problem| args.redact(problem)))?;
    if let Some(hook) = on_event {
        options = options.event_callback(move |event| {
            hook(event);
            std::future::ready(())
        });
    }
    Ok(match options.connect(servers).await {
        Ok(client) => Ok(client),
        Err(e) => {
            let problem = match e.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    ConnectProblem::Auth
                }
                ConnectErrorKind::Tls => ConnectProblem::Tls,
                _ => ConnectProblem::Unreachable,
            };
            Err(ConnectFailure {
                problem,
                message: args.redact(&e.to_string()),
            })
        }
    })
}

/// A multi-thread tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start a tokio runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings::nats::pattern_covers;

    #[test]
    fn subject_patterns() {
        assert!(pattern_covers("tidings.reports", "tidings.reports"));
        assert!(pattern_covers("tidings.>", "tidings.reports"));
        assert!(pattern_covers("tidings.>", "tidings.reports.error.db"));
        assert!(pattern_covers("tidings.*", "tidings.reports"));
        assert!(pattern_covers("tidings.reports.>", "tidings.reports.>"));
        assert!(pattern_covers("tidings.reports.>", "tidings.reports.*"));
        assert!(!pattern_covers("tidings.*", "tidings.reports.error"));
        assert!(!pattern_covers("tidings.reports.>", "tidings.reports"));
        assert!(!pattern_covers("tidings.reports", "tidings.reports.>"));
        assert!(!pattern_covers("tidings.*", "tidings.>"));
        assert!(!pattern_covers("other", "tidings.reports"));
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        let args = ConnectionArgs {
            server: None,
            user: Some("alice".into()),
            password: Some("hunter2".into()),
            token: None,
            creds: None,
            nkey: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            connect_timeout: Duration::from_secs(1),
        };
        assert_eq!(args.redact("bad password hunter2!"), "bad password ***!");
        assert!(!args.auth_description().contains("hunter2"));
        let e = args
            .nats_config("http://alice:hunter2@127.0.0.1:1", "a.b", false)
            .unwrap_err();
        assert!(e.message.starts_with("--server: "), "{}", e.message);
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}
