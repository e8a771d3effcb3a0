//! Reports from [`tracing`] events: a [`Layer`] that turns events at or
//! above a level (default ERROR) into reports, with the feature `tracing`.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//!
//! let (reporter, guard) = tidings::blocking::init()?;
//! let subscriber = tracing_subscriber::registry().with(tidings::tracing::layer(&reporter));
//! tracing::subscriber::with_default(subscriber, || {
//!     let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream timed out");
//!     let _span = tracing::error_span!("checkout", order = 7).entered();
//!     tracing::info!("not reported: below ERROR");
//!     tracing::error!(kind = "payment_failed", error = &err as &dyn std::error::Error, attempt = 3, "payment failed");
//! });
//! assert_eq!(guard.shutdown_blocking().stats.delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # From an event to a report
//!
//! | report | from the event |
//! |---|---|
//! | [`severity`](crate::Report::severity) | the level: ERROR → `error`, WARN → `warning`, INFO → `info`, DEBUG and TRACE → `debug` |
//! | [`kind`](crate::Report::kind) | the field `kind`, else the event's target |
//! | [`message`](crate::Report::message) | the message; with none, the `error` field's message |
//! | [`chain`](crate::Report::chain) | the field `error`, when it holds a `dyn Error` (`error = &err as &dyn Error`): its message, then each `source()` (without a message of its own, the event takes the error's message and the chain starts at its source) |
//! | [`context`](crate::Report::context) | every other field of the event, under its name (numbers, booleans and strings as such, anything else as its `Debug` text); and `tracing`: `{ target, level, location, spans }`, `spans` being the span stack, outermost first, each `{ name, fields }` |
//!
//! An `error` field given by `Display` or `Debug` (`error = %e`) has lost
//! its chain by then: it is kept as a context string. An
//! [`anyhow::Error`](https://docs.rs/anyhow) gives its whole chain as
//! `error = AsRef::<dyn std::error::Error>::as_ref(&e)`.
//!
//! # What is never reported
//!
//! * Events below the level ([`TidingsLayer::level`]). The test is one
//!   comparison, so an event the layer does not take costs next to nothing
//!   (`BENCHMARKS.md`). The layer never disables an event for the other
//!   layers: it answers `enabled` with yes and filters in `on_event`.
//! * tidings' own events: target [`DIAGNOSTICS_TARGET`](crate::DIAGNOSTICS_TARGET)
//!   (`tidings`), anything below it (`tidings::…`) and tidings' crates
//!   (`tidings_…`). A failing sink says so through tracing; were that
//!   reported, the report would go to the failing sink and say so again.
//! * By default, the events of the NATS clients tidings publishes with
//!   (targets `async_nats…` and `nats…`): while NATS is down they describe
//!   tidings' own failure to deliver, which its diagnostics and
//!   [`Stats`](crate::Stats) already say. If the program uses those
//!   clients itself, [`TidingsLayer::nats_client_events`] turns them on.
//!
//! The layer is filterable like any other: `.with_filter(…)`
//! (`tracing_subscriber::filter::Targets`, `EnvFilter`, a closure) narrows
//! what it sees further.
//!
//! A report the reporter refuses (queue full under `Overflow::Reject`,
//! shutdown under `Late::Refuse`) is counted in
//! [`Stats::refused`](crate::Stats::refused) and not retried: the event
//! has gone on to the other layers regardless.

use std::fmt;

use ::tracing::field::{Field, Visit};
use ::tracing::span::{Attributes, Id, Record};
use ::tracing::{Event, Level, Subscriber};
use ::tracing_subscriber::layer::Context;
use ::tracing_subscriber::registry::LookupSpan;
pub use ::tracing_subscriber::Layer;
use serde_json::{Map, Value};

use crate::targets::{is_nats_client, is_tidings};
use crate::{Report, Reporter, Severity};

/// The layer reporting `reporter`'s events at ERROR and above. Add it to
/// a `tracing_subscriber::registry()` (or any subscriber with span
/// lookup).
pub fn layer(reporter: &Reporter) -> TidingsLayer {
    TidingsLayer {
        reporter: reporter.clone(),
        level: Level::ERROR,
        nats_client_events: false,
    }
}

/// A [`Layer`] that reports events; see the [module docs](self).
#[derive(Clone)]
pub struct TidingsLayer {
    reporter: Reporter,
    level: Level,
    nats_client_events: bool,
}

impl TidingsLayer {
    /// Reports events at `level` and above (more severe) instead of ERROR.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Also reports the events of the NATS clients tidings publishes with
    /// (targets `async_nats…`, `nats…`). Off by default; see the
    /// [module docs](self#what-is-never-reported).
    pub fn nats_client_events(mut self, yes: bool) -> Self {
        self.nats_client_events = yes;
        self
    }

    /// True when an event of this level and target becomes a report.
    pub fn captures(&self, level: &Level, target: &str) -> bool {
        // tracing orders levels by verbosity: ERROR is the smallest.
        level <= &self.level
            && !is_tidings(target)
            && (self.nats_client_events || !is_nats_client(target))
    }
}

impl fmt::Debug for TidingsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TidingsLayer")
            .field("level", &self.level)
            .field("nats_client_events", &self.nats_client_events)
            .finish()
    }
}

/// A span's fields, kept in its extensions from creation on.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for TidingsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields.context));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(SpanFields(map)) => map.extend(fields.context),
            None => extensions.insert(SpanFields(fields.context)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !self.captures(meta.level(), meta.target()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);

        let spans: Vec<Value> = ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let fields = span
                    .extensions()
                    .get::<SpanFields>()
                    .map(|f| f.0.clone())
                    .unwrap_or_default();
                serde_json::json!({ "name": span.name(), "fields": fields })
            })
            .collect();
        let location = match (meta.file(), meta.line()) {
            (Some(file), Some(line)) => Value::String(format!("{file}:{line}")),
            _ => Value::Null,
        };
        let tracing_context = serde_json::json!({
            "target": meta.target(),
            "level": meta.level().as_str(),
            "location": location,
            "spans": spans,
        });

        let Fields {
            message,
            kind,
            mut error,
            mut context,
        } = fields;
        let message = match message {
            Some(m) => m,
            None if !error.is_empty() => error.remove(0),
            None => String::new(),
        };
        let kind = kind.unwrap_or_else(|| meta.target().to_owned());
        context.insert("tracing".to_owned(), tracing_context);

        let mut report = Report::new(severity(meta.level()), kind, message);
        report.chain = error;
        for (key, value) in context {
            report = report.with_context(key, value);
        }
        // Refused: counted in the reporter's stats; the event goes on to
        // the other layers either way.
        let _ = self.reporter.report(report);
    }
}

fn severity(level: &Level) -> Severity {
    match *level {
        Level::ERROR => Severity::Error,
        Level::WARN => Severity::Warning,
        Level::INFO => Severity::Info,
        _ => Severity::Debug,
    }
}

/// The fields of an event or a span.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    kind: Option<String>,
    /// The `error` field's message and sources, when it held a `dyn Error`.
    error: Vec<String>,
    context: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::String(s)) => self.message = Some(s),
            ("kind", Value::String(s)) => self.kind = Some(s),
            (name, value) => {
                self.context.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // Not finite: the report's context writes it as "NaN"/"inf".
        let value = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        let value = i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value = u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() != "error" {
            self.put(field, value.to_string().into());
            return;
        }
        // The same walk as Report::from_error, the error's own message first.
        let from = Report::from_error(value);
        self.error = std::iter::once(from.message).chain(from.chain).collect();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}
