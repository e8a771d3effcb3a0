//! Context values: turning any `Serialize` into JSON that every format
//! tidings writes can read back.
//!
//! The rule: **a report `report()` accepts round-trips through every format
//! tidings writes and reads** — a fallback line, a spool record, a NATS
//! payload. Two things in a context value would break it, and both are made
//! visible instead of silently changed or lost:
//!
//! * **Nesting deeper than [`MAX_CONTEXT_DEPTH`]** levels (serde_json refuses
//!   to read JSON nested deeper than 128, so such a report could be written
//!   but never read back): the part below the limit is replaced by the
//!   string [`DEPTH_MARKER`], and the report is marked `truncated`.
//! * **Floats that are not finite** (`NaN`, `±inf`): JSON has no such
//!   numbers, and serde_json writes them as `null`. [`to_context_value`]
//!   writes the strings `"NaN"`, `"inf"` and `"-inf"` instead.
//!
//! ```
//! use tidings_core::Report;
//! let report = Report::error("k", "m").with_context("ratio", f64::NAN);
//! assert_eq!(report.context["ratio"], "NaN");
//! ```
//!
//! This file is longer than most: a `serde::Serializer` is a long list of
//! small methods (every scalar, seven compound kinds, map keys), kept
//! together because they are one thing.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{self, Serialize};
use serde_json::{Map, Number, Value};

/// How deep a context value may nest (arrays and objects inside arrays and
/// objects); deeper parts are replaced by [`DEPTH_MARKER`]. A value that is
/// an array or object counts as one level.
pub const MAX_CONTEXT_DEPTH: usize = 32;

/// What replaces the part of a context value nested deeper than
/// [`MAX_CONTEXT_DEPTH`].
pub const DEPTH_MARKER: &str = "[tidings: nested deeper than 32 levels, cut]";

/// Serializes `value` into a context value: non-finite floats become the
/// strings `"NaN"`, `"inf"`, `"-inf"`, and nesting is cut at
/// [`MAX_CONTEXT_DEPTH`] (returned as `true` when it was). Map keys that are
/// not strings are written as strings (numbers, booleans, chars) as
/// serde_json does; a value that cannot be serialized at all is an error.
pub fn to_context_value<T: Serialize + ?Sized>(value: &T) -> Result<(Value, bool), String> {
    let mut cut = false;
    let v = value
        .serialize(ValueSerializer {
            depth: 0,
            cut: &mut cut,
        })
        .map_err(|e| e.0)?;
    Ok((v, cut))
}

/// Cuts `value` at [`MAX_CONTEXT_DEPTH`] levels in place (for values put
/// into [`Report::context`](crate::Report::context) directly, bypassing
/// [`Report::with_context`](crate::Report::with_context)). Returns true when
/// something was cut.
pub fn bound_depth(value: &mut Value) -> bool {
    bound_at(value, 1)
}

fn bound_at(value: &mut Value, depth: usize) -> bool {
    let nested = matches!(value, Value::Array(_) | Value::Object(_));
    if !nested {
        return false;
    }
    if depth > MAX_CONTEXT_DEPTH {
        *value = Value::String(DEPTH_MARKER.to_owned());
        return true;
    }
    let mut cut = false;
    match value {
        Value::Array(items) => {
            for item in items {
                cut |= bound_at(item, depth + 1);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                cut |= bound_at(item, depth + 1);
            }
        }
        _ => {}
    }
    cut
}

/// Bounds every value of a report's context; true when something was cut.
pub(crate) fn bound_context(context: &mut BTreeMap<String, Value>) -> bool {
    let mut cut = false;
    for value in context.values_mut() {
        cut |= bound_depth(value);
    }
    cut
}

/// A serialization error: the value's own `Serialize` failed.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn float(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String("NaN".to_owned()),
        None if v > 0.0 => Value::String("inf".to_owned()),
        None => Value::String("-inf".to_owned()),
    }
}

/// Builds a [`Value`] like `serde_json::to_value`, with the two rules of
/// this module. `depth` is the number of arrays/objects around the value.
struct ValueSerializer<'c> {
    depth: usize,
    cut: &'c mut bool,
}

impl<'c> ValueSerializer<'c> {
    /// Opens an array or object: `None` (and the cut noted) when it would be
    /// deeper than the limit.
    fn open(&mut self) -> Option<usize> {
        if self.depth >= MAX_CONTEXT_DEPTH {
            *self.cut = true;
            None
        } else {
            Some(self.depth + 1)
        }
    }
}

fn marker() -> Value {
    Value::String(DEPTH_MARKER.to_owned())
}

/// The array or object being built, or nothing (cut at the depth limit:
/// elements are ignored, the result is the marker).
struct Compound<'c> {
    depth: Option<usize>,
    cut: &'c mut bool,
    items: Vec<Value>,
    map: Map<String, Value>,
    next_key: Option<String>,
    /// For enum variants: the variant name wrapping the result.
    variant: Option<&'static str>,
}

impl<'c> Compound<'c> {
    fn new(depth: Option<usize>, cut: &'c mut bool, variant: Option<&'static str>) -> Self {
        Compound {
            depth,
            cut,
            items: Vec::new(),
            map: Map::new(),
            next_key: None,
            variant,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<Option<Value>, Error> {
        match self.depth {
            None => Ok(None),
            Some(depth) => value
                .serialize(ValueSerializer {
                    depth,
                    cut: self.cut,
                })
                .map(Some),
        }
    }

    fn wrap(variant: Option<&'static str>, value: Value) -> Value {
        match variant {
            None => value,
            Some(name) => {
                let mut outer = Map::new();
                outer.insert(name.to_owned(), value);
                Value::Object(outer)
            }
        }
    }

    fn end_array(self) -> Value {
        let inner = match self.depth {
            None => marker(),
            Some(_) => Value::Array(self.items),
        };
        Self::wrap(self.variant, inner)
    }

    fn end_object(self) -> Value {
        let inner = match self.depth {
            None => marker(),
            Some(_) => Value::Object(self.map),
        };
        Self::wrap(self.variant, inner)
    }
}

impl<'c> ser::Serializer for ValueSerializer<'c> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Compound<'c>;
    type SerializeTuple = Compound<'c>;
    type SerializeTupleStruct = Compound<'c>;
    type SerializeTupleVariant = Compound<'c>;
    type SerializeMap = Compound<'c>;
    type SerializeStruct = Compound<'c>;
    type SerializeStructVariant = Compound<'c>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        // As serde_json: a number when it fits, else its decimal string.
        Ok(i64::try_from(v)
            .map(Value::from)
            .or_else(|_| u64::try_from(v).map(Value::from))
            .unwrap_or_else(|_| Value::String(v.to_string())))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        Ok(u64::try_from(v)
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_string())))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        Ok(float(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        Ok(float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, Error> {
        Ok(Value::String(variant.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        // `{"variant": value}`: one object level around the value.
        let inner = match self.open() {
            None => return Ok(marker()),
            Some(depth) => value.serialize(ValueSerializer {
                depth,
                cut: self.cut,
            })?,
        };
        Ok(Compound::wrap(Some(variant), inner))
    }
    fn serialize_seq(mut self, _len: Option<usize>) -> Result<Compound<'c>, Error> {
        let depth = self.open();
        Ok(Compound::new(depth, self.cut, None))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'c>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'c>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'c>, Error> {
        // `{"variant": [..]}`: the wrapping object is a level too.
        let depth = self.open().and_then(|d| {
            ValueSerializer {
                depth: d,
                cut: &mut *self.cut,
            }
            .open()
        });
        Ok(Compound::new(depth, self.cut, Some(variant)))
    }
    fn serialize_map(mut self, _len: Option<usize>) -> Result<Compound<'c>, Error> {
        let depth = self.open();
        Ok(Compound::new(depth, self.cut, None))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'c>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'c>, Error> {
        self.serialize_tuple_variant(name, index, variant, len)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if let Some(v) = self.element(value)? {
            self.items.push(v);
        }
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.end_array())
    }
}

/// Tuples, tuple structs and tuple variants are arrays, built like
/// sequences.
macro_rules! array_like {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for Compound<'_> {
            type Ok = Value;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result<Value, Error> {
                Ok(self.end_array())
            }
        }
    };
}

array_like!(SerializeTuple, serialize_element);
array_like!(SerializeTupleStruct, serialize_field);
array_like!(SerializeTupleVariant, serialize_field);

impl ser::SerializeMap for Compound<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.next_key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| Error("a map value came without its key".to_owned()))?;
        if let Some(v) = self.element(value)? {
            self.map.insert(key, v);
        }
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(self.end_object())
    }
}

/// Structs and struct variants are objects of their fields.
macro_rules! object_like {
    ($trait:ident) => {
        impl ser::$trait for Compound<'_> {
            type Ok = Value;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                if let Some(v) = self.element(value)? {
                    self.map.insert(key.to_owned(), v);
                }
                Ok(())
            }
            fn end(self) -> Result<Value, Error> {
                Ok(self.end_object())
            }
        }
    };
}

object_like!(SerializeStruct);
object_like!(SerializeStructVariant);

/// Map keys: strings, and scalars written as strings (as serde_json does).
struct KeySerializer;

fn key_error() -> Error {
    Error("a map key must be a string, a number, a bool or a char".to_owned())
}

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    fn serialize_bool(self, v: bool) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_f64(self, v: f64) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, Error> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Error> {
        Err(key_error())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use serde::Serialize;

    fn nested(depth: usize) -> Value {
        let mut v = Value::from(1);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
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

    #[test]
    fn matches_serde_json_for_plain_values() {
        #[derive(Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, u8),
            Struct { a: u8 },
        }
        #[derive(Serialize)]
        struct S {
            a: Vec<Option<i32>>,
            b: std::collections::BTreeMap<u32, String>,
            c: (bool, char),
            d: [E; 4],
            g: f32,
        }
        let s = S {
            a: vec![Some(1), None],
            b: [(7, "x".to_owned())].into_iter().collect(),
            c: (true, 'z'),
            d: [E::Unit, E::New(1), E::Tuple(1, 2), E::Struct { a: 3 }],
            g: 1.5,
        };
        let (ours, cut) = to_context_value(&s).unwrap();
        assert!(!cut);
        assert_eq!(ours, serde_json::to_value(&s).unwrap());
        // Where serde_json gives up (integers beyond 64 bits), the number's
        // decimal text is kept.
        let (big, _) = to_context_value(&(-(1i128 << 100), 1u128 << 100)).unwrap();
        assert_eq!(big[0], (-(1i128 << 100)).to_string());
        assert_eq!(big[1], (1u128 << 100).to_string());
    }

    #[test]
    fn non_finite_floats_are_marked_not_nulled() {
        let (v, _) = to_context_value(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5]).unwrap();
        assert_eq!(v, serde_json::json!(["NaN", "inf", "-inf", 0.5]));
    }

    #[test]
    fn depth_is_cut_with_a_marker() {
        for depth in [0, 1, MAX_CONTEXT_DEPTH, MAX_CONTEXT_DEPTH + 1, 200] {
            let deep = nested(depth);
            let (v, cut) = to_context_value(&deep).unwrap();
            assert_eq!(cut, depth > MAX_CONTEXT_DEPTH, "{depth}");
            assert!(depth_of(&v) <= MAX_CONTEXT_DEPTH, "{depth}");
            let mut direct = deep.clone();
            assert_eq!(bound_depth(&mut direct), depth > MAX_CONTEXT_DEPTH);
            assert_eq!(direct, v, "{depth}");
            if cut {
                assert!(v.to_string().contains(DEPTH_MARKER));
            }
        }
    }

    #[test]
    fn bad_keys_are_errors_not_panics() {
        let mut m = std::collections::BTreeMap::new();
        m.insert(vec![1u8], 1);
        assert!(to_context_value(&m).is_err());
    }
}
