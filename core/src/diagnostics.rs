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
//!
//! # Where they go
//!
//! Each message is a [`tracing`] event with target [`DIAGNOSTICS_TARGET`] (`"tidings"`)
//! at level WARN, with the field `source` when it has one: a program that
//! collects tracing events sees tidings' messages among its own, filtered
//! and formatted the same way. When no tracing subscriber is set (none
//! global, none for this thread) the message goes to stderr instead, as
//! `tidings: <message>`, so it is never lost to a missing subscriber.
//! [`log_to_stderr(false)`](crate::ReporterBuilder::log_to_stderr) makes a
//! reporter silent: neither.
//!
//! The tidings tracing layer (facade feature `tracing`) never turns events
//! of this target, or of any target below it, into reports: there is no
//! loop from a failing sink through its own diagnostics back into the
//! reporter.

use std::collections::HashMap;

use serde::Serialize;

use crate::sync::{lock, Mutex};

/// The tracing target of tidings' own diagnostics. The tidings tracing
/// layer never reports events of this target or below it (`tidings::…`).
pub const DIAGNOSTICS_TARGET: &str = "tidings";

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
        if first && self.to_stderr {
            emit(Some(source), format_args!("{message}"));
        }
        first
    }

    /// Says something that happens rarely (a sink marked down, recovered).
    pub(crate) fn say(&self, args: std::fmt::Arguments<'_>) {
        if self.to_stderr {
            emit(None, args);
        }
    }

    /// Every reason so far, in the order first seen.
    pub(crate) fn list(&self) -> Vec<Diagnostic> {
        lock(&self.seen).list.clone()
    }
}

/// True when a tracing subscriber would see an event emitted here: one
/// set globally, or one set for this thread.
pub(crate) fn tracing_is_listening() -> bool {
    tracing::dispatcher::has_been_set()
        || tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>())
}

/// One diagnostic: a tracing event (target [`DIAGNOSTICS_TARGET`], WARN) when a
/// subscriber is listening, else a line on stderr.
pub(crate) fn emit(source: Option<&str>, args: std::fmt::Arguments<'_>) {
    if tracing_is_listening() {
        match source {
            Some(source) => tracing::warn!(target: "tidings", source, "{source}: {args}"),
            None => tracing::warn!(target: "tidings", "{args}"),
        }
    } else {
        match source {
            Some(source) => eprintln!("tidings: {source}: {args}"),
            None => eprintln!("tidings: {args}"),
        }
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

    /// Collects the events it is given: (target, level, message).
    #[derive(Default, Clone)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<(String, tracing::Level, String)>>>);

    impl tracing::Subscriber for Collect {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.0 = format!("{v:?}");
                    }
                }
            }
            let mut m = Message(String::new());
            event.record(&mut m);
            let meta = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((meta.target().to_owned(), *meta.level(), m.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn diagnostics_are_tracing_events_when_a_subscriber_listens() {
        let collect = Collect::default();
        let seen = collect.0.clone();
        assert!(!tracing_is_listening());
        tracing::subscriber::with_default(collect, || {
            assert!(tracing_is_listening());
            let d = Diagnostics::new(true);
            d.once("spool", "spool full: 10 of 10 bytes used");
            d.once("spool", "spool full: 11 of 10 bytes used");
            d.say(format_args!("sink 'nats' recovered"));
            // Silent means silent, subscriber or not.
            Diagnostics::new(false).say(format_args!("never seen"));
        });
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![
                (
                    DIAGNOSTICS_TARGET.to_owned(),
                    tracing::Level::WARN,
                    "spool: spool full: 10 of 10 bytes used".to_owned()
                ),
                (
                    DIAGNOSTICS_TARGET.to_owned(),
                    tracing::Level::WARN,
                    "sink 'nats' recovered".to_owned()
                ),
            ]
        );
    }
}
