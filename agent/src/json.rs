//! The agent's JSON: a reader for the two small documents it reads (`/etc/board.json`, its own
//! `enrollment.json`) and a pretty writer for what it prints (`snapshot --json`, `parse`) and
//! writes (`enrollment.json`).
//!
//! Why not serde_json: the agent must stay under 1.5 MiB on `mips_24kc` (packaging/README.md,
//! "Size"), and serde_json cost it about 90 KB there (its serializers instantiated for every
//! printed type twice, the deserializer, the float formatter). This module is one
//! `serde::Serializer` that builds a [`Value`] (so every type is instantiated once), a printer,
//! and a recursive-descent reader; the tests compare it with serde_json (a dev-dependency) on
//! every fixture and on random input, so the output is byte-for-byte what serde_json printed:
//!
//! - [`to_value`] is `serde_json::to_value` (object keys sorted, as in serde_json's `Value`;
//!   `f32` widened to `f64`), used by `parse`;
//! - [`to_value_in_order`] is what `serde_json::to_string_pretty(&x)` prints for `x` (fields in
//!   declaration order, `f32` printed as `f32`), used by `snapshot --json` and enrollment.json;
//! - [`to_string_pretty`] prints like serde_json's `PrettyFormatter` (two-space indent), numbers
//!   as serde_json 1.0.154 does (zmij's shortest round-trip float form, `null` for NaN/infinity).
//!
//! The reader accepts RFC 8259 JSON as serde_json does (nesting up to 128 levels) and rejects
//! anything else with a message and position ("expected `:` at line 3 column 9"); it never
//! panics. It keeps numbers as their text, since the agent reads no fractional number.

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

/// A JSON value. Objects keep their members in order (with [`to_value`]: sorted by key).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number, as its JSON text.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object (the last one, if it is repeated, as serde_json keeps it);
    /// None for a missing member or when this is not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// An object's members sorted by key, a repeated key once with its last value: the order
    /// and content of serde_json's `Map`.
    pub fn sorted_members(&self) -> Vec<(&str, &Value)> {
        let mut out: Vec<(&str, &Value)> = Vec::new();
        if let Value::Object(m) = self {
            for (k, v) in m {
                match out.binary_search_by(|(o, _)| (*o).cmp(k.as_str())) {
                    Ok(i) => out[i].1 = v,
                    Err(i) => out.insert(i, (k, v)),
                }
            }
        }
        out
    }

    /// What kind of value this is, for error messages ("a string", "an object"...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Why a value could not be serialized or a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// A document is not valid JSON: what was wrong and where (1-based line and byte column).
    #[error("{msg} at line {line} column {column}")]
    Syntax {
        msg: &'static str,
        line: usize,
        column: usize,
    },
    /// A value cannot be written as JSON (a map key that is not a string, number or bool), or
    /// a `Serialize` impl failed.
    #[error("{0}")]
    Serialize(String),
}

impl ser::Error for JsonError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        JsonError::Serialize(msg.to_string())
    }
}

// --- writer ------------------------------------------------------------------------------------

/// `value` as `serde_json::to_value` makes it: object keys sorted (repeats: the last wins), `f32`
/// widened to `f64`.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, JsonError> {
    value.serialize(Serializer { sorted: true })
}

/// `value` with struct fields and map entries in their order and `f32` printed as `f32`: what
/// `serde_json::to_string_pretty(value)` prints, once passed to [`to_string_pretty`].
pub fn to_value_in_order<T: Serialize + ?Sized>(value: &T) -> Result<Value, JsonError> {
    value.serialize(Serializer { sorted: false })
}

/// `value` printed like serde_json's `to_string_pretty`: two-space indent, `"key": value`, empty
/// arrays and objects as `[]` and `{}`, no final newline.
pub fn to_string_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, value, 0);
    out
}

fn write_pretty(out: &mut String, value: &Value, depth: usize) {
    fn newline(out: &mut String, depth: usize) {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(members) if members.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_pretty(out, v, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, k);
                out.push_str(": ");
                write_pretty(out, v, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped as serde_json does: `"`, `\`, and the control characters
/// (`\b \t \n \f \r`, the others as `\u00xx`); everything else as it is.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite float as serde_json 1.0.154 prints it (zmij): the shortest digits that read back to
/// the same value; plain notation with at least one fractional digit (`1.0`, `0.001`) when the
/// decimal exponent is in `fixed` (f64: -5..=15, f32: -6..=12), otherwise `1.5e+16`, `1e-7`.
/// `sci` is Rust's shortest `{:e}` form of the same value (`-1.234e-7`), which has the same
/// digits. Non-finite values are `null`, as serde_json prints them.
fn float_text(
    finite: bool,
    sci: String,
    exact: f64,
    fixed: std::ops::RangeInclusive<i32>,
) -> Value {
    if !finite {
        return Value::Null;
    }
    let (neg, rest) = match sci.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, sci.as_str()),
    };
    // `{:e}` always writes an exponent; the digits are 1 to 17 ASCII digits around a dot.
    let (mantissa, exp) = rest.split_once('e').unwrap_or((rest, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = half_to_even(digits, exp, exact);
    let mut s = String::with_capacity(digits.len() + 8);
    if neg {
        s.push('-');
    }
    let n = digits.len() as i32;
    if fixed.contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else if n - 1 <= exp {
            s.push_str(&digits);
            for _ in 0..(exp - (n - 1)) {
                s.push('0');
            }
            s.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(exp as usize + 1);
            s.push_str(int);
            s.push('.');
            s.push_str(frac);
        }
    } else {
        let (first, more) = digits.split_at(1);
        s.push_str(first);
        if !more.is_empty() {
            s.push('.');
            s.push_str(more);
        }
        let _ = write!(
            s,
            "e{}{}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    Value::Number(s)
}

fn f64_value(v: f64) -> Value {
    float_text(v.is_finite(), format!("{v:e}"), v, -5..=15)
}

fn f32_value(v: f32) -> Value {
    float_text(v.is_finite(), format!("{v:e}"), v.into(), -6..=12)
}

/// The shortest digits `digits` (of a value whose first digit is at 10^`exp`), with a tie
/// settled as zmij settles it: when `exact` lies exactly halfway between two numbers of that
/// many digits, Rust's formatter takes the upper one and zmij the even one (87979023283264.125
/// prints as `...264.12`). Checked on the exact decimal expansion (an f64 has at most 767
/// significant digits).
fn half_to_even(digits: String, exp: i32, exact: f64) -> String {
    let n = digits.len();
    let full = format!("{:.800e}", exact.abs());
    let Some((m, e)) = full.split_once('e') else {
        return digits;
    };
    if e.parse::<i32>().ok() != Some(exp) {
        return digits;
    }
    let all: Vec<u8> = m.bytes().filter(|c| *c != b'.').collect();
    let tie = all.get(n) == Some(&b'5') && all[n + 1..].iter().all(|c| *c == b'0');
    if !tie {
        return digits;
    }
    let lower = &all[..n];
    if lower[n - 1].is_multiple_of(2) {
        // The even one is the lower: the exact value's first n digits.
        return String::from_utf8_lossy(lower).into_owned();
    }
    digits
}

/// The one serde serializer: builds a [`Value`]. `sorted`: serde_json `Value` semantics (keys
/// sorted, `f32` widened); otherwise the order and `f32` form of serde_json's writer.
#[derive(Clone, Copy)]
struct Serializer {
    sorted: bool,
}

/// Collects the elements of a sequence, tuple or the fields of a variant.
struct SeqBuilder {
    ser: Serializer,
    items: Vec<Value>,
    /// For tuple variants: the variant name the array is wrapped in.
    variant: Option<&'static str>,
}

/// Collects the members of a map, struct or struct variant.
struct MapBuilder {
    ser: Serializer,
    members: Vec<(String, Value)>,
    next_key: Option<String>,
    variant: Option<&'static str>,
}

impl Serializer {
    #[inline(never)]
    fn object(self, members: Vec<(String, Value)>) -> Value {
        if !self.sorted {
            return Value::Object(members);
        }
        let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len());
        for (k, v) in members {
            match out.binary_search_by(|(o, _)| o.as_str().cmp(&k)) {
                Ok(i) => out[i].1 = v,
                Err(i) => out.insert(i, (k, v)),
            }
        }
        Value::Object(out)
    }

    #[inline(never)]
    fn wrap(self, variant: Option<&'static str>, v: Value) -> Value {
        match variant {
            Some(name) => self.object(vec![(name.to_string(), v)]),
            None => v,
        }
    }
}

impl ser::Serializer for Serializer {
    type Ok = Value;
    type Error = JsonError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, JsonError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, JsonError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, JsonError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, JsonError> {
        self.serialize_i64(v.into())
    }
    #[inline(never)]
    fn serialize_i64(self, v: i64) -> Result<Value, JsonError> {
        Ok(Value::Number(v.to_string()))
    }
    /// Beyond 64 bits: serde_json's writer prints it, its `Value` cannot hold it.
    fn serialize_i128(self, v: i128) -> Result<Value, JsonError> {
        if self.sorted && i64::try_from(v).is_err() && u64::try_from(v).is_err() {
            return Err(JsonError::Serialize("number out of range".to_string()));
        }
        Ok(Value::Number(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, JsonError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, JsonError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, JsonError> {
        self.serialize_u64(v.into())
    }
    #[inline(never)]
    fn serialize_u64(self, v: u64) -> Result<Value, JsonError> {
        Ok(Value::Number(v.to_string()))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, JsonError> {
        if self.sorted && u64::try_from(v).is_err() {
            return Err(JsonError::Serialize("number out of range".to_string()));
        }
        Ok(Value::Number(v.to_string()))
    }
    #[inline(never)]
    fn serialize_f32(self, v: f32) -> Result<Value, JsonError> {
        Ok(if self.sorted {
            f64_value(v.into())
        } else {
            f32_value(v)
        })
    }
    #[inline(never)]
    fn serialize_f64(self, v: f64) -> Result<Value, JsonError> {
        Ok(f64_value(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, JsonError> {
        Ok(Value::String(v.to_string()))
    }
    #[inline(never)]
    fn serialize_str(self, v: &str) -> Result<Value, JsonError> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, JsonError> {
        Ok(Value::Array(
            v.iter().map(|b| Value::Number(b.to_string())).collect(),
        ))
    }
    fn serialize_none(self) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, JsonError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, JsonError> {
        Ok(Value::Null)
    }
    #[inline(never)]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, JsonError> {
        Ok(Value::String(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, JsonError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, JsonError> {
        let v = value.serialize(self)?;
        Ok(self.wrap(Some(variant), v))
    }
    #[inline(never)]
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, JsonError> {
        Ok(SeqBuilder {
            ser: self,
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, JsonError> {
        Ok(SeqBuilder {
            ser: self,
            items: Vec::with_capacity(len),
            variant: Some(variant),
        })
    }
    #[inline(never)]
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, JsonError> {
        Ok(MapBuilder {
            ser: self,
            members: Vec::with_capacity(len.unwrap_or(0)),
            next_key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, JsonError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, JsonError> {
        let mut m = self.serialize_map(Some(len))?;
        m.variant = Some(variant);
        Ok(m)
    }
}

impl SeqBuilder {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        let v = value.serialize(self.ser)?;
        self.push_value(v);
        Ok(())
    }
    // Out of line, like the other non-generic steps: one copy instead of one per element type.
    #[inline(never)]
    fn push_value(&mut self, v: Value) {
        self.items.push(v);
    }
    fn finish(self) -> Result<Value, JsonError> {
        Ok(self.ser.wrap(self.variant, Value::Array(self.items)))
    }
}

/// The four serde traits of a sequence-like value differ only in their method's name.
macro_rules! seq_impls {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for SeqBuilder {
            type Ok = Value;
            type Error = JsonError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
                self.push(value)
            }
            fn end(self) -> Result<Value, JsonError> {
                self.finish()
            }
        }
    )*};
}

seq_impls!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl MapBuilder {
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), JsonError> {
        let v = value.serialize(self.ser)?;
        self.push_member(key, v);
        Ok(())
    }
    #[inline(never)]
    fn push_member(&mut self, key: &str, v: Value) {
        self.members.push((key.to_string(), v));
    }
    fn finish(self) -> Result<Value, JsonError> {
        let obj = self.ser.object(self.members);
        Ok(self.ser.wrap(self.variant, obj))
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = JsonError;
    /// Keys as serde_json writes them: strings, and numbers, booleans and chars as their text.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.next_key = Some(match key.serialize(Serializer { sorted: false })? {
            Value::String(s) | Value::Number(s) => s,
            Value::Bool(b) => b.to_string(),
            _ => return Err(JsonError::Serialize("key must be a string".to_string())),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        let key = self
            .next_key
            .take()
            .ok_or_else(|| JsonError::Serialize("map value without a key".to_string()))?;
        self.field(&key, value)
    }
    fn end(self) -> Result<Value, JsonError> {
        self.finish()
    }
}

/// A struct and a struct variant are printed alike (the variant wrapped by [`MapBuilder::finish`]).
macro_rules! struct_impls {
    ($($tr:ident),*) => {$(
        impl ser::$tr for MapBuilder {
            type Ok = Value;
            type Error = JsonError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), JsonError> {
                self.field(key, value)
            }
            fn end(self) -> Result<Value, JsonError> {
                self.finish()
            }
        }
    )*};
}

struct_impls!(SerializeStruct, SerializeStructVariant);

// --- reader ------------------------------------------------------------------------------------

/// How deeply arrays and objects may nest (serde_json's limit): deeper input is an error, not a
/// stack overflow.
const MAX_DEPTH: usize = 128;

/// Reads one JSON document (surrounding whitespace allowed, nothing else after it).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let v = r.value()?;
    r.skip_ws();
    if r.pos < r.s.len() {
        return Err(r.err("trailing characters"));
    }
    Ok(v)
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Reader<'_> {
    /// An error about the byte at the current position: its line and column (1-based), or the
    /// end of the last line at the end of the input, as serde_json counts them.
    fn err(&self, msg: &'static str) -> JsonError {
        self.err_after(msg, usize::from(self.pos < self.s.len()))
    }

    /// An error placed `extra` bytes after the last byte read.
    fn err_after(&self, msg: &'static str, extra: usize) -> JsonError {
        let upto = &self.s[..self.pos.min(self.s.len())];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        let column = upto.iter().rev().take_while(|b| **b != b'\n').count() + extra;
        JsonError::Syntax { msg, line, column }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("EOF while parsing a value")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.enter()?;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        if self.list_end(b']', "expected `,` or `]`")? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.enter()?;
                let mut members = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        match self.peek() {
                            Some(b'"') => {}
                            None => return Err(self.err("EOF while parsing an object")),
                            Some(_) => return Err(self.err("key must be a string")),
                        }
                        let key = self.string()?;
                        self.skip_ws();
                        match self.peek() {
                            Some(b':') => self.pos += 1,
                            None => return Err(self.err("EOF while parsing an object")),
                            Some(_) => return Err(self.err("expected `:`")),
                        }
                        let v = self.value()?;
                        members.push((key, v));
                        if self.list_end(b'}', "expected `,` or `}`")? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Object(members))
            }
            Some(_) => Err(self.err("expected value")),
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("recursion limit exceeded"));
        }
        self.pos += 1;
        Ok(())
    }

    /// After an element: `,` (more follow: false) or `close` (done: true).
    fn list_end(&mut self, close: u8, msg: &'static str) -> Result<bool, JsonError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    return Err(self.err("trailing comma"));
                }
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            None => Err(self.err(if close == b']' {
                "EOF while parsing a list"
            } else {
                "EOF while parsing an object"
            })),
            Some(_) => Err(self.err(msg)),
        }
    }

    fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, JsonError> {
        for &b in word.as_bytes() {
            match self.peek() {
                Some(c) if c == b => self.pos += 1,
                None => return Err(self.err("EOF while parsing a value")),
                Some(_) => return Err(self.err("expected ident")),
            }
        }
        Ok(v)
    }

    /// A number, checked against JSON's grammar and kept as its text.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.err("invalid number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.number_err()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.number_err());
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.number_err());
            }
            self.digits();
        }
        // ASCII only, so slicing on these byte positions is on char boundaries.
        Ok(Value::Number(
            String::from_utf8_lossy(&self.s[start..self.pos]).into_owned(),
        ))
    }

    /// A digit was expected: the input ended, or something else came.
    fn number_err(&self) -> JsonError {
        self.err(if self.pos < self.s.len() {
            "invalid number"
        } else {
            "EOF while parsing a value"
        })
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// A string literal (at its opening quote), unescaped.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.err("EOF while parsing a string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    // The input is a &str and escapes add whole chars: always UTF-8.
                    return String::from_utf8(out)
                        .map_err(|_| self.err("invalid unicode code point"));
                }
                b'\\' => {
                    self.pos += 1;
                    let c = match self.peek() {
                        None => return Err(self.err("EOF while parsing a string")),
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let c = self.unicode_escape()?;
                            let mut buf = [0; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        Some(_) => return Err(self.err("invalid escape")),
                    };
                    self.pos += 1;
                    out.push(c as u8);
                }
                0..=0x1f => {
                    return Err(self
                        .err("control character (\\u0000-\\u001F) found while parsing a string"))
                }
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// The code point of `XXXX` after `\u` (and of a following `\uXXXX` low surrogate).
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.err("unexpected end of hex escape"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err_after("lone leading surrogate in hex escape", 0));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.err_after("lone leading surrogate in hex escape", 0))
            }
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid unicode code point"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        if self.s.len() - self.pos < 4 {
            self.pos = self.s.len();
            return Err(self.err("EOF while parsing a string"));
        }
        let mut v = 0;
        for _ in 0..4 {
            let d = (self.s[self.pos] as char)
                .to_digit(16)
                .ok_or_else(|| self.err("invalid escape"))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn via_serde(v: &serde_json::Value) -> String {
        serde_json::to_string_pretty(v).unwrap()
    }

    #[test]
    fn floats_print_as_serde_json_prints_them() {
        let f64s = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e15,
            1e16,
            1.5e16,
            123456789012345680.0,
            1e-5,
            1.2e-5,
            1e-6,
            1.5e-7,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            100.0,
            0.3,
            2.5e-300,
        ];
        for f in f64s {
            assert_eq!(
                to_string_pretty(&f64_value(f)),
                serde_json::to_string(&f).unwrap(),
                "{f:e}"
            );
        }
        let f32s = [
            0.0f32, 1.0, 0.1, 1e12, 1e13, 1.5e13, 1e-6, 1e-7, 3.4e38, 1e-45, 20.5,
        ];
        for f in f32s {
            assert_eq!(
                to_string_pretty(&f32_value(f)),
                serde_json::to_string(&f).unwrap(),
                "{f:e}"
            );
        }
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(to_string_pretty(&f64_value(f)), "null");
        }
        assert_eq!(to_string_pretty(&f32_value(f32::NAN)), "null");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn any_f64_prints_as_serde_json(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assert_eq!(to_string_pretty(&f64_value(f)), serde_json::to_string(&f).unwrap());
        }

        #[test]
        fn any_f32_prints_as_serde_json(bits in any::<u32>()) {
            let f = f32::from_bits(bits);
            prop_assert_eq!(to_string_pretty(&f32_value(f)), serde_json::to_string(&f).unwrap());
            // Widened, as in serde_json's Value.
            prop_assert_eq!(to_string_pretty(&to_value(&f).unwrap()), via_serde(&serde_json::to_value(f).unwrap()));
        }

        #[test]
        fn any_string_prints_and_reads_back_as_serde_json(s in any::<String>(), ctl in "[\\x00-\\x1f\"\\\\/]{0,8}") {
            let s = format!("{s}{ctl}");
            let mine = to_string_pretty(&to_value(&s).unwrap());
            prop_assert_eq!(&mine, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(parse(&mine).unwrap(), Value::String(s));
        }

        /// Random JSON-ish text: never a panic, and accepted exactly when serde_json accepts it.
        #[test]
        fn garbage_is_an_error_exactly_when_serde_json_says_so(s in "[\\[\\]{}:,\" \\\\a-fnul0-9.eE+\\-]{0,40}") {
            let ours = parse(&s);
            let theirs = serde_json::from_str::<serde_json::Value>(&s);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} vs {:?}", s, ours, theirs);
            // Numbers keep their text here (serde_json reformats `0E0` as `0.0`): compare the
            // rest.
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                if !s.contains(|c: char| c.is_ascii_digit()) {
                    prop_assert_eq!(to_string_pretty(&a), via_serde(&b));
                }
            }
        }

        /// Documents serde_json writes read back to the same thing (objects sorted as serde_json
        /// sorts them).
        #[test]
        fn serde_json_documents_read_back(v in arb_json()) {
            let text = serde_json::to_string(&v).unwrap();
            let ours = parse(&text).unwrap();
            prop_assert_eq!(to_string_pretty(&ours), via_serde(&v));
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            ".{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn bad_documents_are_errors_with_serde_jsons_message_and_position() {
        let mut wrong = Vec::new();
        for text in [
            "",
            " \n ",
            "{\n  \"a\" 1}",
            "[1, 2",
            "[1,]",
            "{\"a\": 1,}",
            "{\"a\": tru}",
            "nul",
            "{1: 2}",
            "{\"a\"",
            "\"a\u{1}\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "\"abc",
            "01",
            "-",
            "-a",
            "1.e5",
            "1e",
            "{} x",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
        ] {
            let ours = parse(text).unwrap_err().to_string();
            let theirs = serde_json::from_str::<serde_json::Value>(text)
                .unwrap_err()
                .to_string();
            if ours != theirs {
                wrong.push(format!("{text:?}: {ours} | serde_json: {theirs}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            parse(&deep),
            Err(JsonError::Syntax {
                msg: "recursion limit exceeded",
                ..
            })
        ));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        // Far too deep for any stack: still an error.
        assert!(parse(&"{\"a\":".repeat(100_000)).is_err());
    }

    #[test]
    fn escapes_and_surrogates_are_read() {
        assert_eq!(
            parse(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap(),
            Value::String("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}".into())
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value_as_serde_json_does() {
        let v = parse(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(v.get("b"), Some(&Value::Number("3".into())));
        let sorted: Vec<&str> = v.sorted_members().iter().map(|(k, _)| *k).collect();
        assert_eq!(sorted, ["a", "b"]);
        assert_eq!(v.sorted_members()[1].1, &Value::Number("3".into()));
        assert_eq!(Value::Null.get("a"), None);
    }

    #[derive(serde::Serialize)]
    enum E {
        Unit,
        New(u8),
        Tuple(i8, String),
        Struct { z: f32, a: Option<bool> },
    }

    #[derive(serde::Serialize)]
    struct S {
        zeta: Vec<E>,
        alpha: std::collections::BTreeMap<u16, ()>,
        bytes: (char, [u8; 2]),
        unit: (),
        empty: Vec<u8>,
        nested: std::collections::HashMap<bool, i128>,
        big: u128,
    }

    #[test]
    fn every_serde_shape_prints_as_serde_json() {
        let s = S {
            zeta: vec![
                E::Unit,
                E::New(7),
                E::Tuple(-3, "x\ny".into()),
                E::Struct { z: 0.1, a: None },
            ],
            alpha: [(2, ()), (10, ())].into_iter().collect(),
            bytes: ('é', [1, 255]),
            unit: (),
            empty: vec![],
            nested: [(true, -5)].into_iter().collect(),
            big: 1 << 64,
        };
        assert_eq!(
            to_string_pretty(&to_value_in_order(&s).unwrap()),
            serde_json::to_string_pretty(&s).unwrap()
        );
        // serde_json's Value holds no number beyond 64 bits; its writer does.
        assert!(to_value(&s).is_err() && serde_json::to_value(&s).is_err());
        let s = S { big: 1, ..s };
        assert_eq!(
            to_string_pretty(&to_value(&s).unwrap()),
            via_serde(&serde_json::to_value(&s).unwrap())
        );
        // A key serde_json refuses is refused here too.
        let bad: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        assert!(to_value(&bad).is_err() && serde_json::to_value(&bad).is_err());
    }
}
