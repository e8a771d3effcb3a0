//! Subjects: what a valid publish subject is, the per-report suffix, and
//! whether a stream's subjects capture ours. Checked here once for both
//! NATS stacks.
//!
//! A subject tidings publishes on is never longer than
//! [`MAX_SUBJECT_LEN`]: the configured subject is limited at build time to
//! [`MAX_CONFIGURED_SUBJECT_LEN`], and the kind appended by
//! [`SubjectSuffix::SeverityAndKind`](super::SubjectSuffix) is cut to
//! [`MAX_KIND_TOKEN_LEN`]. A server closes the connection on a protocol line
//! longer than its `max_control_line` (4 KiB by default); one report with a
//! long kind must not take delivery down for every other report.

use std::borrow::Cow;

/// The longest subject tidings publishes on, suffix included.
pub const MAX_SUBJECT_LEN: usize = 512;
/// The longest subject [`NatsConfig::subject`](super::NatsConfig::subject)
/// may be.
pub const MAX_CONFIGURED_SUBJECT_LEN: usize = 256;
/// The longest kind token appended to the subject; longer kinds are cut
/// (the report itself keeps its whole kind).
pub const MAX_KIND_TOKEN_LEN: usize = 128;

/// Checks a literal NATS subject: dot-separated non-empty tokens, no
/// whitespace, no wildcards (`*`, `>`), at most
/// [`MAX_CONFIGURED_SUBJECT_LEN`] bytes.
///
/// ```
/// use tidings_core::nats::validate_subject;
/// assert!(validate_subject("app.reports").is_ok());
/// assert!(validate_subject("app..reports").is_err());
/// assert!(validate_subject("app.>").is_err());
/// ```
pub fn validate_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if subject.len() > MAX_CONFIGURED_SUBJECT_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_CONFIGURED_SUBJECT_LEN}",
            subject.len()
        ));
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(format!(
                "{subject:?} has an empty token (leading, trailing or double '.')"
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{subject:?} contains whitespace"));
        }
        if token.contains('*') || token.contains('>') {
            return Err(format!(
                "{subject:?} contains a wildcard; publish subjects must be literal"
            ));
        }
    }
    Ok(())
}

/// Makes `s` a valid subject token: `A-Za-z0-9_-` kept, every other
/// character `_`, cut to [`MAX_KIND_TOKEN_LEN`] bytes; empty becomes `_`.
///
/// ```
/// use tidings_core::nats::subject_token;
/// assert_eq!(subject_token("db failure.x"), "db_failure_x");
/// assert_eq!(subject_token(&"k".repeat(5000)).len(), 128);
/// ```
pub fn subject_token(s: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if s.is_empty() {
        return Cow::Borrowed("_");
    }
    if s.len() <= MAX_KIND_TOKEN_LEN && s.chars().all(ok) {
        return Cow::Borrowed(s);
    }
    // One output byte per char (all ASCII), so counting chars bounds bytes.
    Cow::Owned(
        s.chars()
            .take(MAX_KIND_TOKEN_LEN)
            .map(|c| if ok(c) { c } else { '_' })
            .collect(),
    )
}

/// Whether a stream subject `pattern` (may hold `*` and `>`) captures every
/// subject that `filter` (may hold wildcards too) stands for.
///
/// ```
/// use tidings_core::nats::pattern_covers;
/// assert!(pattern_covers("app.>", "app.reports.*"));
/// assert!(pattern_covers("app.*", "app.reports"));
/// assert!(!pattern_covers("app.*", "app.reports.*"));
/// assert!(!pattern_covers("other.>", "app.reports"));
/// ```
pub fn pattern_covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('.');
    let mut f = filter.split('.');
    loop {
        match (p.next(), f.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject of a stream captures everything `filter` stands for.
pub fn stream_covers(stream_subjects: &[String], filter: &str) -> bool {
    stream_subjects.iter().any(|s| pattern_covers(s, filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(validate_subject("tidings.reports").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a.*", "a.>", "a b", "a.b*"] {
            assert!(validate_subject(bad).is_err(), "{bad}");
        }
        assert!(validate_subject(&"a".repeat(MAX_CONFIGURED_SUBJECT_LEN)).is_ok());
        assert!(validate_subject(&"a".repeat(MAX_CONFIGURED_SUBJECT_LEN + 1)).is_err());
        assert_eq!(subject_token("db failure.x"), "db_failure_x");
        assert_eq!(subject_token(""), "_");
        assert_eq!(subject_token(&"é".repeat(500)).len(), MAX_KIND_TOKEN_LEN);
    }

    #[test]
    fn coverage() {
        let rows = [
            ("a.b", "a.b", true),
            ("a.*", "a.b", true),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c", true),
            ("a.>", "a.*.*", true),
            (">", "a", true),
            ("a.*", "a.*", true),
            ("a.*", "a.>", false),
            ("a.*", "a.b.c", false),
            ("a.b", "a.*", false),
            ("a.>", "a", false),
            ("a.b.c", "a.b", false),
            ("x.>", "a.b", false),
        ];
        for (pattern, filter, covers) in rows {
            assert_eq!(
                pattern_covers(pattern, filter),
                covers,
                "{pattern} {filter}"
            );
        }
        assert!(stream_covers(&["x".into(), "a.>".into()], "a.b"));
        assert!(!stream_covers(&[], "a.b"));
    }
}
