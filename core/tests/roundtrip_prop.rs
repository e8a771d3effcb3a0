//! Every report `report()` accepts round-trips through every format tidings
//! writes and reads: a fallback line (JSON), a spool record, a NATS payload.
//!
//! Context values are generated as a user could make them: arbitrary JSON
//! (any float, nesting far beyond serde_json's read limit of 128, huge
//! keys), put in through `with_context` (any `Serialize`, including floats
//! that are not finite) or straight into `Report::context`. The report is
//! normalized as intake does, then written and read back in each format.

mod strategies;

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;
use tidings_core::context::{DEPTH_MARKER, MAX_CONTEXT_DEPTH};
use tidings_core::spool::{decode_record, encode_record, Record, RecordId};
use tidings_core::{Encoded, Report};

fn key() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => any::<String>(),
        1 => (1usize..20_000).prop_map(|n| "k".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    strategies::json_value(key())
}

/// A value nested `depth` levels deep, alternating arrays and objects.
fn deep(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for level in 0..depth {
        v = if level % 2 == 0 {
            Value::Array(vec![v])
        } else {
            Value::Object([("d".to_owned(), v)].into_iter().collect())
        };
    }
    v
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

/// Holds non-finite floats a `Value` cannot: goes through `with_context`.
#[derive(serde::Serialize, Debug, Clone)]
struct Measurement {
    values: Vec<f64>,
    nested: Option<Box<Measurement>>,
}

fn measurement() -> impl Strategy<Value = Measurement> {
    let leaf = vec(strategies::any_float(), 0..4).prop_map(|values| Measurement {
        values,
        nested: None,
    });
    leaf.prop_recursive(4, 16, 1, |inner| {
        (vec(strategies::any_float(), 0..4), inner).prop_map(|(values, nested)| Measurement {
            values,
            nested: Some(Box::new(nested)),
        })
    })
}

#[derive(Debug, Clone)]
enum Input {
    /// Straight into `report.context` (bypasses `with_context`).
    Direct(String, Value),
    /// Through `with_context`.
    Through(String, Value),
    /// Nested `depth` levels, straight in or through `with_context`.
    Deep(String, usize, bool),
    /// Floats of every kind through `with_context`.
    Floats(String, Measurement),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (key(), json_value()).prop_map(|(k, v)| Input::Direct(k, v)),
        (key(), json_value()).prop_map(|(k, v)| Input::Through(k, v)),
        (key(), 0usize..400, any::<bool>()).prop_map(|(k, d, direct)| Input::Deep(k, d, direct)),
        (key(), measurement()).prop_map(|(k, m)| Input::Floats(k, m)),
    ]
}

fn build(message: String, inputs: Vec<Input>) -> Report {
    let mut report = Report::error("prop", message);
    for input in inputs {
        report = match input {
            Input::Direct(k, v) => {
                report.context.insert(k, v);
                report
            }
            Input::Through(k, v) => report.with_context(k, v),
            Input::Deep(k, depth, true) => {
                report.context.insert(k, deep(depth, Value::from(1)));
                report
            }
            Input::Deep(k, depth, false) => report.with_context(k, deep(depth, Value::from(1))),
            Input::Floats(k, m) => report.with_context(k, m),
        };
    }
    // What intake does to every report it accepts.
    report.normalize();
    report
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_report_round_trips(
        message in any::<String>(),
        inputs in vec(input(), 0..6),
    ) {
        let report = build(message, inputs);

        // Nothing left deeper than the bound (cut parts carry the marker).
        for v in report.context.values() {
            prop_assert!(depth_of(v) <= MAX_CONTEXT_DEPTH);
        }

        // The fallback file / stderr line.
        let line = report.to_json();
        let back = Report::from_json(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &report);

        // A spool record.
        let mut buf = Vec::new();
        let record = Record::Report { id: RecordId::new(7), report: report.clone() };
        if encode_record(&record, &mut buf).is_ok() {
            let (decoded, used) = decode_record(&buf).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(used, buf.len());
            match decoded {
                Record::Report { report: spooled, .. } => {
                    // Whole, or cut to fit a record (marked truncated).
                    if spooled.truncated && !report.truncated {
                        prop_assert_eq!(spooled.id, report.id);
                    } else {
                        prop_assert_eq!(&spooled, &report);
                    }
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }

        // A NATS payload at the default 1 MiB limit.
        let mut payload = Vec::new();
        // (An error means it cannot fit even cut: the sink spills it, as a
        // fallback line, checked above.)
        if let Ok(fit) = report.encode_within(1024 * 1024, &mut payload) {
            let sent = Report::from_json(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(sent.id, report.id);
            if fit == Encoded::Whole {
                prop_assert_eq!(&sent, &report);
            }
        }
    }
}

#[test]
fn depth_at_the_read_limit_is_cut_with_a_marker() {
    // Depths that made serde_json's reader give up (126 and more inside a
    // report) before intake bounded them.
    for depth in [125, 126, 127, 128, 1000] {
        for direct in [true, false] {
            let report = build(
                String::new(),
                vec![Input::Deep("deep".into(), depth, direct)],
            );
            assert!(report.truncated, "{depth}");
            assert!(report
                .to_json()
                .windows(DEPTH_MARKER.len())
                .any(|w| w == DEPTH_MARKER.as_bytes()));
            let back = Report::from_json(&report.to_json()).unwrap();
            assert_eq!(back, report, "{depth} {direct}");
        }
    }
}

#[test]
fn non_finite_floats_keep_a_visible_marker() {
    let r = Report::error("k", "m").with_context(
        "m",
        BTreeMap::from([
            ("nan", f64::NAN),
            ("inf", f64::INFINITY),
            ("ninf", f64::NEG_INFINITY),
        ]),
    );
    assert_eq!(r.context["m"]["nan"], "NaN");
    assert_eq!(r.context["m"]["inf"], "inf");
    assert_eq!(r.context["m"]["ninf"], "-inf");
    assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
}
