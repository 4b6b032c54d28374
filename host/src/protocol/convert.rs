//! OpenIM's JSON to component values and back, driven by the shapes of [`super::schema`].
//!
//! Decoding is as strict as OpenIM's Go encoder is regular: every field it always writes must be
//! there with the right type; `null` stands for an empty list or map and for `none` (Go writes nil
//! slices, maps and pointers as `null`); fields the shape does not know are ignored, so a newer
//! OpenIM that adds fields keeps working.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use wasmtime::component::Val;

use super::schema::{Field, RecordShape, Shape};
use crate::untrusted::Untrusted;

/// Why a JSON value does not fit a shape: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", Untrusted::new(detail), if path.is_empty() { String::new() } else { format!(" at {}", Untrusted::new(path)) })]
pub struct ShapeError {
    /// The JSON path, e.g. `memberList[2].userID`.
    pub path: String,
    /// What is wrong, e.g. "missing field `reason`".
    pub detail: String,
}

fn error(path: &str, detail: String) -> ShapeError {
    ShapeError {
        path: path.to_owned(),
        detail,
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Decodes a JSON object into a record value.
pub fn decode_record(
    record: &RecordShape,
    object: &Map<String, Value>,
    path: &str,
) -> Result<Val, ShapeError> {
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        fields.push((field.wit.clone(), decode_field(field, object, path)?));
    }
    Ok(Val::Record(fields))
}

fn decode_field(field: &Field, object: &Map<String, Value>, path: &str) -> Result<Val, ShapeError> {
    if field.flatten {
        return match &field.shape {
            Shape::Record(inner) => decode_record(inner, object, path),
            Shape::Option(inner) => match &**inner {
                // A nil embedded pointer drops all of its fields.
                Shape::Record(record)
                    if record.fields.iter().any(|f| object.contains_key(&f.json)) =>
                {
                    Ok(Val::Option(Some(Box::new(decode_record(
                        record, object, path,
                    )?))))
                }
                _ => Ok(Val::Option(None)),
            },
            _ => unreachable!("only records are flattened"),
        };
    }
    let at = join(path, &field.json);
    match object.get(&field.json) {
        Some(value) => decode(&field.shape, value, &at),
        None if matches!(field.shape, Shape::Option(_)) => Ok(Val::Option(None)),
        None => Err(error(path, format!("missing field `{}`", field.json))),
    }
}

/// Decodes a JSON value of `shape`.
pub fn decode(shape: &Shape, value: &Value, path: &str) -> Result<Val, ShapeError> {
    let expected = |what: &str| {
        error(
            path,
            format!("invalid type: {}, expected {what}", describe(value)),
        )
    };
    Ok(match (shape, value) {
        (Shape::Option(_), Value::Null) => Val::Option(None),
        (Shape::Option(inner), value) => Val::Option(Some(Box::new(decode(inner, value, path)?))),
        (Shape::List(_), Value::Null) => Val::List(Vec::new()),
        (Shape::List(item), Value::Array(items)) => Val::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| decode(item, v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Shape::List(_), _) => return Err(expected("a sequence")),
        (Shape::Map(_), Value::Null) => Val::List(Vec::new()),
        (Shape::Map(item), Value::Object(entries)) => Val::List(
            entries
                .iter()
                .map(|(k, v)| {
                    Ok(Val::Tuple(vec![
                        Val::String(k.clone()),
                        decode(item, v, &join(path, k))?,
                    ]))
                })
                .collect::<Result<_, ShapeError>>()?,
        ),
        (Shape::Map(_), _) => return Err(expected("an object")),
        (Shape::Record(record), Value::Object(object)) => decode_record(record, object, path)?,
        (Shape::Record(_), _) => return Err(expected("an object")),
        (Shape::String, Value::String(s)) => Val::String(s.clone()),
        (Shape::String, _) => return Err(expected("a string")),
        (Shape::Bool, Value::Bool(b)) => Val::Bool(*b),
        (Shape::Bool, _) => return Err(expected("a boolean")),
        (Shape::S32, Value::Number(n)) => Val::S32(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| expected("a 32-bit integer"))?,
        ),
        (Shape::S64, Value::Number(n)) => {
            Val::S64(n.as_i64().ok_or_else(|| expected("a 64-bit integer"))?)
        }
        (Shape::U32, Value::Number(n)) => Val::U32(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| expected("an unsigned 32-bit integer"))?,
        ),
        (Shape::S32 | Shape::S64 | Shape::U32, _) => return Err(expected("an integer")),
        (Shape::Enum(_), _) => {
            return Err(expected("nothing: enums are not part of OpenIM's JSON"));
        }
    })
}

/// Decodes a JSON body straight into a record value, without building a JSON tree first: the fast
/// path for valid bodies. What it accepts, [`decode_record`] accepts with the same value (checked
/// by the fuzzer). It may refuse a body the precise path accepts (a key given twice, the first
/// time with a wrong type: the precise path keeps the last), and its errors say less (no path);
/// so a caller falls back to [`decode_record`] for the verdict and the reason.
pub fn decode_body(record: &RecordShape, body: &[u8]) -> Result<Val, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = RecordSeed(record).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A record being filled from a JSON object: one slot per field; flattened records nest.
enum Slot {
    Leaf(Option<Val>),
    Flat(Vec<Slot>),
}

fn slots(record: &RecordShape) -> Vec<Slot> {
    record
        .fields
        .iter()
        .map(|field| match (&field.shape, field.flatten) {
            (Shape::Record(inner), true) => Slot::Flat(slots(inner)),
            (Shape::Option(inner), true) => match &**inner {
                Shape::Record(inner) => Slot::Flat(slots(inner)),
                _ => Slot::Leaf(None),
            },
            _ => Slot::Leaf(None),
        })
        .collect()
}

/// Whether any leaf of a flattened record was set.
fn any_set(slots: &[Slot]) -> bool {
    slots.iter().any(|slot| match slot {
        Slot::Leaf(value) => value.is_some(),
        Slot::Flat(inner) => any_set(inner),
    })
}

/// The record value of filled slots, or the JSON name of a missing field.
fn finish(record: &RecordShape, slots: Vec<Slot>) -> Result<Val, String> {
    let mut fields = Vec::with_capacity(slots.len());
    for (field, slot) in record.fields.iter().zip(slots) {
        let value = match (slot, &field.shape) {
            (Slot::Leaf(Some(value)), _) => value,
            (Slot::Leaf(None), Shape::Option(_)) => Val::Option(None),
            (Slot::Leaf(None), _) => return Err(field.json.clone()),
            (Slot::Flat(inner), Shape::Record(shape)) => finish(shape, inner)?,
            (Slot::Flat(inner), Shape::Option(shape)) => match &**shape {
                Shape::Record(shape) if any_set(&inner) => {
                    Val::Option(Some(Box::new(finish(shape, inner)?)))
                }
                _ => Val::Option(None),
            },
            (Slot::Flat(_), _) => unreachable!("only records are flattened"),
        };
        fields.push((field.wit.clone(), value));
    }
    Ok(Val::Record(fields))
}

struct RecordSeed<'s>(&'s RecordShape);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Val;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// Skips a value no field reads, parsing it as the precise path does (so a number no float can
/// hold is refused by both, where skipping it unparsed would accept it).
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut filled = slots(self.0);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(path) = self.0.lookup.get(key.as_ref()) else {
                map.next_value_seed(Skip)?;
                continue;
            };
            let (mut record, mut slots) = (self.0, &mut filled);
            for (depth, index) in path.iter().enumerate() {
                let field = &record.fields[*index];
                if depth + 1 == path.len() {
                    slots[*index] = Slot::Leaf(Some(map.next_value_seed(ShapeSeed(&field.shape))?));
                    break;
                }
                let inner = match &field.shape {
                    Shape::Record(inner) => inner,
                    Shape::Option(inner) => match &**inner {
                        Shape::Record(inner) => inner,
                        _ => unreachable!("only records are flattened"),
                    },
                    _ => unreachable!("only records are flattened"),
                };
                let Slot::Flat(next) = &mut slots[*index] else {
                    unreachable!("flattened fields have nested slots")
                };
                (record, slots) = (inner, next);
            }
        }
        finish(self.0, filled)
            .map_err(|name| serde::de::Error::custom(format!("missing field `{name}`")))
    }
}

/// A value of a shape.
struct ShapeSeed<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Val;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        match self.0 {
            Shape::Record(record) => RecordSeed(record).deserialize(deserializer),
            Shape::Option(_) | Shape::List(_) | Shape::Map(_) => {
                deserializer.deserialize_option(self)
            }
            Shape::String => deserializer.deserialize_string(self),
            Shape::Bool => deserializer.deserialize_bool(self),
            Shape::S32 | Shape::S64 | Shape::U32 => deserializer.deserialize_i64(self),
            Shape::Enum(_) => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self.0 {
            Shape::Bool => "a boolean",
            Shape::String => "a string",
            Shape::S32 | Shape::S64 | Shape::U32 => "an integer",
            Shape::List(_) => "a sequence",
            Shape::Map(_) | Shape::Record(_) => "an object",
            Shape::Option(_) => "a value or null",
            Shape::Enum(_) => "nothing",
        })
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Val, E> {
        match self.0 {
            Shape::Option(_) => Ok(Val::Option(None)),
            Shape::List(_) | Shape::Map(_) => Ok(Val::List(Vec::new())),
            _ => Err(E::invalid_type(serde::de::Unexpected::Option, &self)),
        }
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Val, D::Error> {
        match self.0 {
            Shape::Option(inner) => Ok(Val::Option(Some(Box::new(
                ShapeSeed(inner).deserialize(deserializer)?,
            )))),
            Shape::List(_) => deserializer.deserialize_seq(self),
            Shape::Map(_) => deserializer.deserialize_map(self),
            _ => ShapeSeed(self.0).deserialize(deserializer),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let Shape::List(item) = self.0 else {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &self,
            ));
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(value) = seq.next_element_seed(ShapeSeed(item))? {
            items.push(value);
        }
        Ok(Val::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let Shape::Map(item) = self.0 else {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Map,
                &self,
            ));
        };
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(ShapeSeed(item))?;
            entries.push(Val::Tuple(vec![Val::String(key), value]));
        }
        Ok(Val::List(entries))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Val, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Val, E> {
        match self.0 {
            Shape::String => Ok(Val::String(v)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Str(&v), &self)),
        }
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Val, E> {
        match self.0 {
            Shape::Bool => Ok(Val::Bool(v)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Bool(v), &self)),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Val, E> {
        let out_of_range = || E::invalid_value(serde::de::Unexpected::Signed(v), &self);
        match self.0 {
            Shape::S32 => i32::try_from(v).map(Val::S32).map_err(|_| out_of_range()),
            Shape::S64 => Ok(Val::S64(v)),
            Shape::U32 => u32::try_from(v).map(Val::U32).map_err(|_| out_of_range()),
            _ => Err(E::invalid_type(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Val, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Val, E> {
        Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
    }
}

/// Whether `value` has `shape`. A component's answer is lifted by the component's own types: a
/// component built against another contract could export a known interface with other types, and
/// nothing it returns may be trusted to fit before this says so.
pub fn conforms(shape: &Shape, value: &Val) -> bool {
    match (shape, value) {
        (Shape::Bool, Val::Bool(_))
        | (Shape::S32, Val::S32(_))
        | (Shape::S64, Val::S64(_))
        | (Shape::U32, Val::U32(_))
        | (Shape::String, Val::String(_))
        | (Shape::Option(_), Val::Option(None)) => true,
        (Shape::Option(inner), Val::Option(Some(value))) => conforms(inner, value),
        (Shape::List(item), Val::List(items)) => items.iter().all(|v| conforms(item, v)),
        (Shape::Map(item), Val::List(entries)) => entries.iter().all(|entry| {
            matches!(entry, Val::Tuple(pair)
                if matches!(pair.as_slice(), [Val::String(_), value] if conforms(item, value)))
        }),
        (Shape::Record(record), value) => conforms_record(record, value),
        (Shape::Enum(cases), Val::Enum(case)) => cases.contains(case),
        _ => false,
    }
}

/// Whether `value` is a record of `record`'s shape.
pub fn conforms_record(record: &RecordShape, value: &Val) -> bool {
    let Val::Record(fields) = value else {
        return false;
    };
    record.fields.len() == fields.len()
        && record
            .fields
            .iter()
            .zip(fields)
            .all(|(field, (name, value))| field.wit == *name && conforms(&field.shape, value))
}

/// Encodes a record value as JSON fields of `object` (flattened fields go into it directly).
pub fn encode_record(record: &RecordShape, value: &Val, object: &mut Map<String, Value>) {
    let Val::Record(fields) = value else { return };
    for (field, (_, value)) in record.fields.iter().zip(fields) {
        if field.flatten {
            match (&field.shape, value) {
                (Shape::Record(inner), value) => encode_record(inner, value, object),
                (Shape::Option(inner), Val::Option(Some(value))) => {
                    if let Shape::Record(inner) = &**inner {
                        encode_record(inner, value, object);
                    }
                }
                _ => {}
            }
        } else {
            object.insert(field.json.clone(), encode(&field.shape, value));
        }
    }
}

/// Encodes a value of `shape` as JSON.
pub fn encode(shape: &Shape, value: &Val) -> Value {
    match (shape, value) {
        (Shape::Option(_), Val::Option(None)) => Value::Null,
        (Shape::Option(inner), Val::Option(Some(value))) => encode(inner, value),
        (Shape::List(item), Val::List(items)) => {
            Value::Array(items.iter().map(|v| encode(item, v)).collect())
        }
        (Shape::Map(item), Val::List(entries)) => Value::Object(
            entries
                .iter()
                .filter_map(|entry| match entry {
                    Val::Tuple(pair) => match pair.as_slice() {
                        [Val::String(key), value] => Some((key.clone(), encode(item, value))),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
        ),
        (Shape::Record(record), value) => {
            let mut object = Map::new();
            encode_record(record, value, &mut object);
            Value::Object(object)
        }
        (_, Val::String(s)) => Value::String(s.clone()),
        (_, Val::Bool(b)) => Value::Bool(*b),
        (_, Val::S32(n)) => Value::Number(Number::from(*n)),
        (_, Val::S64(n)) => Value::Number(Number::from(*n)),
        (_, Val::U32(n)) => Value::Number(Number::from(*n)),
        (_, Val::Enum(case)) => Value::String(case.clone()),
        _ => Value::Null,
    }
}

/// Names a JSON value's kind the way serde does in its messages (`string "u1"`).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests;
