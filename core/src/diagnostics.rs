//! tidings' own diagnostics: said once per reason, counted after that.
//!
//! A fault that hits every report (a full spool, a refused subject, a
//! missing stream) must not print one line per report: the first
//! occurrence of each reason is printed, later ones are counted, and the
//! shutdown summary says how often each reason came up. A reason is its
//! message with numbers masked (`report of 5000 bytes` and `report of 7000
//! bytes` are one reason).
//!
//! Lost reports are not diagnostics: each loss is always printed with the
//! report ids (see the spill chain).

use std::collections::HashMap;

use serde::Serialize;

use crate::sync::{lock, Mutex};

/// At most this many distinct reasons are tracked; further ones are
/// printed each time (never silenced), counted together.
const MAX_REASONS: usize = 256;

/// One reason tidings reported, and how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Who said it (`"spool"`, `"sink jetstream"`, …).
    pub source: String,
    /// The first message with this reason.
    pub message: String,
    /// How many times the reason came up (the first included).
    pub count: u64,
}

pub(crate) struct Diagnostics {
    to_stderr: bool,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    index: HashMap<(String, String), usize>,
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(to_stderr: bool) -> Self {
        Diagnostics {
            to_stderr,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Says `message` from `source` unless this reason was said before (then
    /// counts it). Returns true when it was printed.
    pub(crate) fn once(&self, source: &str, message: &str) -> bool {
        let key = (source.to_owned(), reason_key(message));
        let first = {
            let mut seen = lock(&self.seen);
            match seen.index.get(&key) {
                Some(&i) => {
                    seen.list[i].count += 1;
                    false
                }
                None if seen.list.len() < MAX_REASONS => {
                    let i = seen.list.len();
                    seen.list.push(Diagnostic {
                        source: source.to_owned(),
                        message: message.to_owned(),
                        count: 1,
                    });
                    seen.index.insert(key, i);
                    true
                }
                // Too many distinct reasons to track: never silence one.
                None => true,
            }
        };
        if first {
            self.say(format_args!("{source}: {message}"));
        }
        first
    }

    /// Says something that happens rarely (a sink marked down, recovered).
    pub(crate) fn say(&self, args: std::fmt::Arguments<'_>) {
        if self.to_stderr {
            eprintln!("tidings: {args}");
        }
    }

    /// Every reason so far, in the order first seen.
    pub(crate) fn list(&self) -> Vec<Diagnostic> {
        lock(&self.seen).list.clone()
    }
}

/// A message with every run of digits replaced by `#`, so that one reason
/// with varying numbers (sizes, counts, sequence numbers) is one reason.
pub(crate) fn reason_key(message: &str) -> String {
    let mut key = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                key.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            key.push(c);
        }
    }
    key
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason() {
        let d = Diagnostics::new(false);
        assert!(d.once("spool", "spool full: 1024 of 1024 bytes used"));
        for n in 0..1000 {
            assert!(!d.once("spool", &format!("spool full: {n} of 1024 bytes used")));
        }
        assert!(d.once("sink nats", "spool full: 1 of 1024 bytes used"));
        assert!(d.once("spool", "disk full"));
        let list = d.list();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].count, 1001);
        assert_eq!(reason_key("a 12 b 3c"), "a # b #c");
    }
}
