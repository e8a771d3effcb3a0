//! What a payload holds (a message `tail` receives, a line of the file
//! `replay` reads), as far as this tidings reads it: one answer for both.

use serde_json::Value;
use tidings::{Report, SCHEMA_VERSION};

/// A payload, understood as far as this tidings can.
pub enum Parsed {
    /// A report of a schema this tidings reads.
    Report(Box<Report>),
    /// A report with a newer schema: its JSON.
    Newer {
        /// Its `schema`.
        schema: u64,
        /// The whole payload as JSON.
        value: Value,
    },
    /// Not a report: why.
    Invalid(String),
}

/// Reads `payload`: a report; else, read as JSON, a newer schema (its
/// `schema` field above [`SCHEMA_VERSION`]) or a report after all (JSON that
/// only reads as a report once it is a value, e.g. with a repeated key);
/// else why not. A report of this schema, the common case, is read once.
pub fn parse(payload: &[u8]) -> Parsed {
    if let Ok(report) = Report::from_json(payload) {
        if report.schema <= SCHEMA_VERSION {
            return Parsed::Report(Box::new(report));
        }
    }
    let value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return Parsed::Invalid(format!("not valid JSON: {e}")),
    };
    match value.get("schema").and_then(Value::as_u64) {
        Some(schema) if schema > u64::from(SCHEMA_VERSION) => Parsed::Newer { schema, value },
        _ => match serde_json::from_value::<Report>(value) {
            Ok(r) => Parsed::Report(Box::new(r)),
            Err(e) => Parsed::Invalid(format!("JSON, but not a report: {e}")),
        },
    }
}
