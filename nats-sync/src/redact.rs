//! Keeps secrets out of error messages and logs.

use tidings_core::nats::{Credentials, NatsConfig};

/// Replaces every configured secret (password, token, a password or token
/// in a server URL) in a text with `***`.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(crate) fn new(config: &NatsConfig) -> Self {
        let mut secrets = Vec::new();
        match &config.credentials {
            Credentials::Token(t) => secrets.push(t.expose().to_owned()),
            Credentials::UserPassword { password, .. } => {
                secrets.push(password.expose().to_owned())
            }
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

    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::nats::Secret;

    #[test]
    fn hides_passwords_tokens_and_url_secrets() {
        let config = NatsConfig::new("nats://alice:hunter2@127.0.0.1:4222", "a.b")
            .server("nats://tok3n@127.0.0.1:4223")
            .credentials(Credentials::UserPassword {
                user: "bob".into(),
                password: Secret::new("sw0rdfish"),
            });
        let r = Redactor::new(&config);
        let cleaned = r.clean("auth failed for hunter2, sw0rdfish and tok3n (user bob)");
        assert_eq!(cleaned, "auth failed for ***, *** and *** (user bob)");
    }
}
