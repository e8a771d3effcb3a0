//! Scrubbing: secrets taken out of a report's content before it leaves the
//! process — before the spool, the fallback file or any sink sees it.
//!
//! On by default. [`Reporter::report`](crate::Reporter::report) scrubs every
//! report it accepts (configure with
//! [`ReporterBuilder::scrub`](crate::ReporterBuilder::scrub)):
//!
//! * **Context keys** that contain (case-insensitively, ignoring `_` and
//!   `-`) one of [`DEFAULT_SCRUB_KEYS`] — `password`, `passwd`, `secret`,
//!   `token`, `api_key`, `authorization`, `cookie`, `credential` — or a key
//!   you add, at any depth of nested objects (and inside arrays), get the
//!   value [`REDACTED`] (`"[redacted]"`), whatever it was (an object
//!   too). So `db_password`, `X-Api-Key`, `refresh_token`, `Set-Cookie`
//!   and `{"auth": {"Authorization": ...}}` are all scrubbed.
//! * **URL user-info** in the message, the cause chain and every string in
//!   the context: `scheme://user:password@host` becomes
//!   `scheme://user:***@host`, and a lone token `scheme://token@host`
//!   becomes `scheme://***@host`.
//!
//! What it does not do: recognise secrets by their look in free text (a
//! password pasted into a message stays), or scrub the kind, the source or
//! the backtrace. The substring match is deliberately broad: `tokens_used`
//! is scrubbed too.
//!
//! Cheap on the hot path: a report with nothing to scrub is only read (no
//! allocation); keys are compared without allocating.
//!
//! ```
//! use tidings_core::scrub::{ScrubConfig, Scrubber};
//! use tidings_core::Report;
//!
//! let scrubber = Scrubber::new(&ScrubConfig::default().key("ssn"));
//! let mut report = Report::error("login", "cannot reach postgres://app:hunter2@db:5432/app")
//!     .with_context("db_password", "hunter2")
//!     .with_context("user", serde_json::json!({"name": "ann", "SSN": "078-05-1120"}))
//!     .with_context("attempt", 3);
//! assert!(scrubber.scrub(&mut report));
//! assert_eq!(report.message, "cannot reach postgres://app:***@db:5432/app");
//! assert_eq!(report.context["db_password"], "[redacted]");
//! assert_eq!(report.context["user"]["SSN"], "[redacted]");
//! assert_eq!(report.context["user"]["name"], "ann");
//! assert_eq!(report.context["attempt"], 3);
//!
//! // Off: reports leave as they are.
//! let mut untouched = Report::error("k", "m").with_context("token", "t");
//! assert!(!Scrubber::new(&ScrubConfig::off()).scrub(&mut untouched));
//! ```

use serde_json::Value;

use crate::report::Report;

/// The context keys scrubbed by default (matched as case-insensitive
/// substrings, ignoring `_` and `-`).
pub const DEFAULT_SCRUB_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "authorization",
    "cookie",
    "credential",
];

/// What a scrubbed value becomes.
pub const REDACTED: &str = "[redacted]";

/// What to scrub: on with [`DEFAULT_SCRUB_KEYS`] by default, extendable
/// with [`key`](Self::key), or [`off`](Self::off).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubConfig {
    enabled: bool,
    keys: Vec<String>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            enabled: true,
            keys: DEFAULT_SCRUB_KEYS.iter().map(|k| (*k).to_owned()).collect(),
        }
    }
}

impl ScrubConfig {
    /// No scrubbing at all: reports leave exactly as reported.
    pub fn off() -> Self {
        ScrubConfig {
            enabled: false,
            keys: Vec::new(),
        }
    }

    /// Also scrubs context keys containing `key` (case-insensitive, `_` and
    /// `-` ignored; at least two characters besides those). Turns
    /// scrubbing on.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.enabled = true;
        self.keys.push(key.into());
        self
    }

    /// True unless [`off`](Self::off).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The key list in force.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// Applies a [`ScrubConfig`] to reports; see the [module docs](self).
#[derive(Clone)]
pub struct Scrubber {
    enabled: bool,
    /// Each key folded (lowercase, no `_`/`-`).
    needles: Vec<Vec<u8>>,
    /// The first two bytes of every needle, as a bit set of 65536 pairs: a
    /// key is only compared where one of them occurs.
    pairs: Vec<u64>,
    /// The shortest needle: shorter keys match none.
    shortest: usize,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .needles
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        f.debug_struct("Scrubber")
            .field("enabled", &self.enabled)
            .field("keys", &keys)
            .finish()
    }
}

impl Default for Scrubber {
    fn default() -> Self {
        Scrubber::new(&ScrubConfig::default())
    }
}

/// Longest key folded on the stack; longer ones are folded on the heap.
const STACK_KEY: usize = 64;

fn fold_byte(b: u8) -> Option<u8> {
    match b {
        b'_' | b'-' => None,
        b => Some(b.to_ascii_lowercase()),
    }
}

impl Scrubber {
    /// A scrubber for `config`.
    pub fn new(config: &ScrubConfig) -> Scrubber {
        let needles: Vec<Vec<u8>> = config
            .keys
            .iter()
            .map(|k| k.bytes().filter_map(fold_byte).collect::<Vec<u8>>())
            .filter(|n| n.len() >= 2)
            .collect();
        let mut pairs = vec![0u64; 1024];
        for needle in &needles {
            let p = (needle[0] as usize) << 8 | needle[1] as usize;
            pairs[p / 64] |= 1 << (p % 64);
        }
        Scrubber {
            enabled: config.enabled,
            shortest: needles.iter().map(Vec::len).min().unwrap_or(usize::MAX),
            needles,
            pairs,
        }
    }

    /// A scrubber that changes nothing.
    pub fn off() -> Scrubber {
        Scrubber::new(&ScrubConfig::off())
    }

    /// True when values under `key` are scrubbed.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let bytes = key.as_bytes();
        if bytes.len() < self.shortest {
            return false;
        }
        let needs_fold = bytes
            .iter()
            .any(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
        let mut stack: [u8; STACK_KEY];
        let heap: Vec<u8>;
        let folded: &[u8] = if !needs_fold {
            bytes
        } else if bytes.len() <= STACK_KEY {
            stack = [0; STACK_KEY];
            let mut n = 0;
            for &b in bytes {
                if let Some(f) = fold_byte(b) {
                    stack[n] = f;
                    n += 1;
                }
            }
            &stack[..n]
        } else {
            heap = bytes.iter().copied().filter_map(fold_byte).collect();
            &heap
        };
        // Only where a needle's first two bytes occur is anything compared.
        for (i, pair) in folded.windows(2).enumerate() {
            let p = (pair[0] as usize) << 8 | pair[1] as usize;
            if self.pairs[p / 64] & (1 << (p % 64)) != 0 {
                let rest = &folded[i..];
                if self.needles.iter().any(|n| rest.starts_with(n)) {
                    return true;
                }
            }
        }
        false
    }

    /// Scrubs `report` in place; true when something was changed.
    pub fn scrub(&self, report: &mut Report) -> bool {
        if !self.enabled {
            return false;
        }
        let mut changed = scrub_string(&mut report.message);
        for cause in &mut report.chain {
            changed |= scrub_string(cause);
        }
        for (key, value) in report.context.iter_mut() {
            changed |= self.scrub_entry(key, value);
        }
        changed
    }

    fn scrub_entry(&self, key: &str, value: &mut Value) -> bool {
        if self.is_sensitive_key(key) {
            if value.as_str() == Some(REDACTED) {
                return false;
            }
            *value = Value::String(REDACTED.to_owned());
            return true;
        }
        self.scrub_value(value)
    }

    fn scrub_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => scrub_string(s),
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.scrub_value(item);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for (key, item) in map.iter_mut() {
                    changed |= self.scrub_entry(key, item);
                }
                changed
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
}

fn scrub_string(s: &mut String) -> bool {
    match scrub_url_userinfo(s) {
        Some(clean) => {
            *s = clean;
            true
        }
        None => false,
    }
}

/// Where the next `://` starts in `bytes` (a vectorised search: most
/// texts have none, and are only read).
fn find_scheme_end(bytes: &[u8]) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"://"));
    if bytes.len() < 32 {
        return bytes.windows(3).position(|w| w == b"://");
    }
    FINDER.find(bytes)
}

/// `text` with the password of every URL's user-info replaced by `***`
/// (`user:pw@` → `user:***@`, a lone `token@` → `***@`), or `None` when
/// there is nothing to replace (no allocation then).
///
/// ```
/// use tidings_core::scrub::scrub_url_userinfo;
/// assert_eq!(
///     scrub_url_userinfo("see https://ann:pw@x.example/a?b@c").as_deref(),
///     Some("see https://ann:***@x.example/a?b@c")
/// );
/// assert_eq!(scrub_url_userinfo("nats://host:4222 user@example"), None);
/// ```
pub fn scrub_url_userinfo(text: &str) -> Option<String> {
    let mut out: Option<String> = None;
    // How much of `text` is already in `out`.
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = find_scheme_end(&text.as_bytes()[from..]) {
        let start = from + found + 3;
        let authority_len = text[start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ',' | ';'
                ) || c.is_whitespace()
            })
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + authority_len];
        from = start + authority_len;
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let (keep, secret) = match userinfo.find(':') {
            Some(colon) => (&userinfo[..=colon], &userinfo[colon + 1..]),
            None => ("", userinfo),
        };
        if secret.is_empty() || secret == "***" {
            continue;
        }
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        o.push_str(&text[copied..start]);
        o.push_str(keep);
        o.push_str("***");
        copied = start + at;
    }
    let mut o = out?;
    o.push_str(&text[copied..]);
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_default_key_at_any_depth() {
        let s = Scrubber::default();
        for key in [
            "password",
            "DB_PASSWORD",
            "passwd",
            "client_secret",
            "refresh-token",
            "X-Api-Key",
            "apiKey",
            "Authorization",
            "Set-Cookie",
            "aws_credentials",
        ] {
            assert!(s.is_sensitive_key(key), "{key}");
        }
        for key in ["user", "attempt", "path", "host"] {
            assert!(!s.is_sensitive_key(key), "{key}");
        }
        let long = format!("{}token", "x".repeat(300));
        assert!(s.is_sensitive_key(&long));
        // Folded on the heap (longer than the stack buffer).
        assert!(s.is_sensitive_key(&format!("{}_TOKEN", "X".repeat(100))));
        assert!(!s.is_sensitive_key(&"X-".repeat(100)));

        let mut r = Report::error("k", "m")
            .with_context(
                "request",
                json!({"headers": {"Authorization": "Bearer abc", "Accept": "*/*"},
                       "list": [{"cookie": "c=1"}, "https://u:p@h/x"]}),
            )
            .with_context("token", json!({"nested": "object"}));
        assert!(s.scrub(&mut r));
        assert_eq!(r.context["request"]["headers"]["Authorization"], REDACTED);
        assert_eq!(r.context["request"]["headers"]["Accept"], "*/*");
        assert_eq!(r.context["request"]["list"][0]["cookie"], REDACTED);
        assert_eq!(r.context["request"]["list"][1], "https://u:***@h/x");
        assert_eq!(r.context["token"], REDACTED);
        // Scrubbing twice changes nothing more.
        assert!(!s.scrub(&mut r));
    }

    #[test]
    fn urls_in_message_and_chain() {
        let s = Scrubber::default();
        let mut r = Report::error("k", "a nats://t0k@h:1 and redis://:pw@r:6379, ok");
        r.chain = vec!["dial amqp://guest:guest@mq/vh failed".into()];
        assert!(s.scrub(&mut r));
        assert_eq!(r.message, "a nats://***@h:1 and redis://:***@r:6379, ok");
        assert_eq!(r.chain[0], "dial amqp://guest:***@mq/vh failed");
    }

    #[test]
    fn user_keys_and_off() {
        let s = Scrubber::new(&ScrubConfig::default().key("ssn"));
        let mut r = Report::error("k", "m").with_context("user_ssn", "1");
        assert!(s.scrub(&mut r));
        assert_eq!(r.context["user_ssn"], REDACTED);
        let mut r = Report::error("k", "https://u:p@h").with_context("password", "p");
        let before = r.clone();
        assert!(!Scrubber::off().scrub(&mut r));
        assert_eq!(r, before);
    }

    #[test]
    fn nothing_to_scrub_is_left_alone() {
        assert_eq!(scrub_url_userinfo("no url here"), None);
        assert_eq!(scrub_url_userinfo("https://h/a@b"), None);
        assert_eq!(scrub_url_userinfo("https://u:***@h"), None);
        let s = Scrubber::default();
        let mut r = Report::error("k", "plain").with_context("user", "ann");
        assert!(!s.scrub(&mut r));
    }
}
