//! Keeps secrets out of every text a NATS sink produces (errors, logs,
//! stream-check reasons), for both stacks.
//!
//! A [`Redactor`] is built from a [`NatsConfig`] and replaces, in any text:
//!
//! * every configured secret: the token, the password, the NKey seed, and a
//!   password or lone token embedded in a server URL — by `***`;
//! * anything shaped like an NKey seed (`S` + a key-type letter + 56
//!   base32 characters, e.g. from a `.creds` file) — by `***`;
//! * the password in any URL's user-info (`scheme://user:pw@host` becomes
//!   `scheme://user:***@host`), whatever URL a client library quotes.
//!
//! ```
//! use tidings_core::nats::{Credentials, NatsConfig, Redactor, Secret};
//! let config = NatsConfig::new("nats://127.0.0.1:4222", "a.b")
//!     .credentials(Credentials::Token(Secret::new("s3cr3t-t0ken")));
//! let r = Redactor::new(&config);
//! assert_eq!(
//!     r.clean("auth s3cr3t-t0ken failed at nats://bob:pw@10.0.0.1:4222"),
//!     "auth *** failed at nats://bob:***@10.0.0.1:4222"
//! );
//! ```

use std::borrow::Cow;

use super::{Credentials, NatsConfig};
use crate::scrub::scrub_url_userinfo;

/// Replaces secrets in texts: see [`Redactor::clean`] for what it replaces.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// The secrets of `config`: credentials and those embedded in its URLs.
    pub fn new(config: &NatsConfig) -> Self {
        let mut secrets = Vec::new();
        match &config.credentials {
            Credentials::Token(t) => secrets.push(t.expose().to_owned()),
            Credentials::UserPassword { password, .. } => {
                secrets.push(password.expose().to_owned())
            }
            Credentials::NKey(seed) => secrets.push(seed.expose().to_owned()),
            Credentials::None | Credentials::CredsFile(_) => {}
        }
        for url in &config.servers {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            if let Some((userinfo, _)) = rest.rsplit_once('@') {
                // `user:password` hides the password; a lone token hides all.
                let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
                secrets.push(secret.to_owned());
            }
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// `text` with every secret replaced: every configured secret (the
    /// token, the password, the NKey seed, a password or lone token in a
    /// server URL) and anything shaped like an NKey seed by `***`, and the
    /// password in any URL's user-info (`scheme://user:***@host`).
    pub fn clean(&self, text: &str) -> String {
        self.clean_cow(text).into_owned()
    }

    /// As [`clean`](Self::clean), borrowing when there is nothing to hide.
    pub fn clean_cow<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), "***"));
            }
        }
        if let Some(masked) = mask_nkey_seeds(&out) {
            out = Cow::Owned(masked);
        }
        if let Some(scrubbed) = scrub_url_userinfo(&out) {
            out = Cow::Owned(scrubbed);
        }
        out
    }
}

/// Length of an encoded NKey seed.
pub(super) const SEED_LEN: usize = 58;

pub(super) fn is_base32(b: u8) -> bool {
    b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)
}

/// `text` with every NKey-seed-shaped word replaced by `***`, or `None`
/// when there is none.
fn mask_nkey_seeds(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let seed_at = |i: usize| {
        bytes.len() - i >= SEED_LEN
            && bytes[i] == b'S'
            && b"UAONCPX".contains(&bytes[i + 1])
            && bytes[i..i + SEED_LEN].iter().all(|&b| is_base32(b))
            && (i == 0 || !is_base32(bytes[i - 1]))
            && bytes.get(i + SEED_LEN).is_none_or(|&b| !is_base32(b))
    };
    let first = (0..bytes.len()).find(|&i| seed_at(i))?;
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut next = Some(first);
    while let Some(at) = next {
        out.push_str(&text[i..at]);
        out.push_str("***");
        i = at + SEED_LEN;
        next = (i..bytes.len()).find(|&j| seed_at(j));
    }
    out.push_str(&text[i..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::Secret;

    const SEED: &str = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";

    #[test]
    fn hides_passwords_tokens_seeds_and_url_secrets() {
        let config = NatsConfig::new("nats://alice:hunter2@127.0.0.1:4222", "a.b")
            .server("nats://tok3n@127.0.0.1:4223")
            .credentials(Credentials::UserPassword {
                user: "bob".into(),
                password: Secret::new("sw0rdfish"),
            });
        let r = Redactor::new(&config);
        let cleaned = r.clean("auth failed for hunter2, sw0rdfish and tok3n (user bob)");
        assert_eq!(cleaned, "auth failed for ***, *** and *** (user bob)");

        let nkey = NatsConfig::new("nats://127.0.0.1:4222", "a.b")
            .credentials(Credentials::NKey(Secret::new(SEED)));
        let r = Redactor::new(&nkey);
        assert_eq!(r.clean(&format!("seed {SEED}.")), "seed ***.");
        // Any seed-shaped word, configured or not.
        let other = SEED.replace("SUAC", "SAAC");
        assert_eq!(Redactor::default().clean(&other), "***");
        // URL user-info anywhere in a text.
        assert_eq!(
            Redactor::default().clean("dial tls://u:p4ss@h:1 failed"),
            "dial tls://u:***@h:1 failed"
        );
        // Nothing to hide: borrowed.
        assert!(matches!(
            Redactor::default().clean_cow("plain text"),
            Cow::Borrowed(_)
        ));
    }
}
