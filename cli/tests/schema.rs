//! `schema/report-v1.json` describes exactly what `tidings_core::Report`
//! serializes: reports from every constructor validate, anything else does
//! not, and a field added to the type but not to the schema fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};
use tidings::{Encoded, Report, Severity, Source, SCHEMA_VERSION};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/report-v1.json")
}

fn schema_json() -> Value {
    let text = std::fs::read_to_string(schema_path()).expect("read schema/report-v1.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The compiled schema, with format assertions (uuid, date-time) on.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        let path = schema_path().canonicalize().expect("schema path");
        let index = compiler
            .compile(path.to_str().expect("UTF-8 path"), &mut schemas)
            .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
        Validator { schemas, index }
    }

    fn check(&self, value: &Value) -> Result<(), String> {
        self.schemas
            .validate(value, self.index)
            .map_err(|e| format!("{e}"))
    }

    /// Serializes `report` as tidings does and validates it.
    fn assert_valid(&self, what: &str, report: &Report) {
        let value: Value = serde_json::from_slice(&report.to_json()).expect("JSON");
        if let Err(e) = self.check(&value) {
            panic!("{what}: a report tidings wrote does not validate:\n{e}\n{value:#}");
        }
    }

    fn assert_invalid(&self, what: &str, value: &Value) {
        assert!(self.check(value).is_err(), "{what} validated: {value:#}");
    }
}

#[derive(Debug)]
struct Layer(&'static str, Option<Box<Layer>>);

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Layer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|l| l as _)
    }
}

fn chain_of(depth: usize) -> Layer {
    let mut e = Layer("root cause", None);
    for _ in 1..depth {
        e = Layer("wrapped", Some(Box::new(e)));
    }
    e
}

#[test]
fn reports_from_every_constructor_validate() {
    let v = Validator::new();
    v.assert_valid("new", &Report::new(Severity::Debug, "k", "m"));
    v.assert_valid("error", &Report::error("db_down", "connection refused"));
    v.assert_valid("warning", &Report::warning("slow", "2.4 s"));
    v.assert_valid("info", &Report::info("started", ""));
    v.assert_valid("critical", &Report::critical("disk_full", "no space"));
    v.assert_valid("empty kind and message", &Report::error("", ""));
    v.assert_valid(
        "from_error with a chain",
        &Report::from_error(&chain_of(3)).with_kind("database_failure"),
    );
    v.assert_valid(
        "from_error with a chain cut at 64",
        &Report::from_error(&chain_of(100)),
    );
    v.assert_valid(
        "every setter",
        &Report::error("k", "m")
            .with_severity(Severity::Warning)
            .with_message("changed")
            .with_kind("changed_kind")
            .with_service("billing")
            .with_instance("pod-7")
            .with_backtrace("frame 0\nframe 1"),
    );
    v.assert_valid(
        "captured backtrace (may be empty)",
        &Report::error("k", "m").capture_backtrace(),
    );
}

#[test]
fn every_context_value_type_validates() {
    let v = Validator::new();
    let report = Report::error("k", "m")
        .with_context("null", Value::Null)
        .with_context("unit", ())
        .with_context("bool", true)
        .with_context("int", -42)
        .with_context("u64", u64::MAX)
        .with_context("float", 2.5)
        .with_context("string", "text with \"quotes\" and\nnewlines and ü")
        .with_context("array", vec![json!(1), json!("two"), json!(null)])
        .with_context("empty_array", Vec::<u8>::new())
        .with_context("object", json!({"nested": {"deeper": [1, {"x": false}]}}))
        .with_context("empty_object", json!({}))
        .with_context("", "empty key");
    v.assert_valid("context of every JSON type", &report);
}

#[test]
fn a_truncated_report_validates() {
    let v = Validator::new();
    let big = Report::from_error(&chain_of(40))
        .with_message("x".repeat(20_000))
        .with_context("blob", "y".repeat(20_000))
        .with_backtrace("frame\n".repeat(1000));
    let mut buf = Vec::new();
    for max in [600, 2_000, 30_000] {
        let fit = big.encode_within(max, &mut buf).expect("fits");
        assert_eq!(fit, Encoded::Truncated, "{max}");
        let value: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(value["truncated"], json!(true));
        if let Err(e) = v.check(&value) {
            panic!("truncated to {max}: {e}\n{value:#}");
        }
    }
}

#[test]
fn what_tidings_does_not_write_does_not_validate() {
    let v = Validator::new();
    let good: Value = serde_json::from_slice(&Report::error("k", "m").to_json()).unwrap();
    assert!(v.check(&good).is_ok());
    let mut bad = Vec::new();
    let mut with = |f: &dyn Fn(&mut Value), what: &str| {
        let mut x = good.clone();
        f(&mut x);
        bad.push((what.to_owned(), x));
    };
    with(&|x| x["new_field"] = json!(1), "an unknown top-level field");
    with(
        &|x| x["source"]["zone"] = json!("a"),
        "an unknown source field",
    );
    with(&|x| x["schema"] = json!(2), "a newer schema");
    with(&|x| x["severity"] = json!("fatal"), "an unknown severity");
    with(&|x| x["id"] = json!("not-a-uuid"), "a bad id");
    with(
        &|x| x["timestamp"] = json!("2024-05-01 12:00:00"),
        "a bad timestamp",
    );
    with(&|x| x["truncated"] = json!(false), "truncated: false");
    with(&|x| x["chain"] = json!([]), "an empty chain");
    with(&|x| x["context"] = json!([1]), "context not an object");
    with(
        &|x| {
            x.as_object_mut().unwrap().remove("kind");
        },
        "no kind",
    );
    with(&|x| x["source"]["pid"] = json!(-1), "a negative pid");
    for (what, value) in bad {
        v.assert_invalid(&what, &value);
    }
}

/// The keys of an object in the schema's `properties`.
fn properties(schema: &Value, pointer: &str) -> BTreeSet<String> {
    schema
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("schema has no {pointer}"))
        .keys()
        .cloned()
        .collect()
}

/// A report with every optional field set, built by naming every field:
/// adding a field to `Report` or `Source` makes this fail to compile until
/// the field is set here, and then `the_schema_names_every_field` fails
/// until the schema describes it.
fn report_with_every_field() -> Report {
    let Report {
        schema,
        id,
        timestamp,
        severity,
        kind,
        message,
        source,
        context: _,
        chain: _,
        backtrace: _,
        truncated: _,
        fingerprint: _,
    } = Report::error("k", "m");
    let Source {
        service: _,
        instance: _,
        host,
        pid,
    } = source;
    Report {
        schema,
        id,
        timestamp,
        severity,
        kind,
        message,
        source: Source {
            service: "billing".into(),
            instance: "pod-7".into(),
            host,
            pid,
        },
        context: [("k".to_owned(), json!(1))].into_iter().collect(),
        chain: vec!["cause".into()],
        backtrace: Some("frame".into()),
        truncated: true,
        fingerprint: Some(tidings::Fingerprint::from_key("k")),
    }
}

#[test]
fn the_schema_names_every_field() {
    let schema = schema_json();
    let report = report_with_every_field();
    let value: Value = serde_json::from_slice(&report.to_json()).unwrap();
    let written: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
    let described = properties(&schema, "/properties");
    assert_eq!(
        written, described,
        "the fields a report is written with and the fields schema/report-v1.json describes \
         differ: update the schema (and SCHEMA_VERSION if readers must notice)"
    );
    let written: BTreeSet<String> = value["source"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        written,
        properties(&schema, "/properties/source/properties"),
        "source fields differ from the schema's"
    );
    assert_eq!(
        schema.pointer("/properties/schema/const"),
        Some(&json!(SCHEMA_VERSION)),
        "the schema file describes another SCHEMA_VERSION"
    );
    assert_eq!(schema.pointer("/additionalProperties"), Some(&json!(false)));
    Validator::new().assert_valid("every field set", &report);
}
