//! OpenIM's JSON to component values and back, driven by the shapes of [`super::schema`].
//!
//! Decoding is as strict as OpenIM's Go encoder is regular: every field it always writes must be
//! there with the right type; `null` stands for an empty list or map and for `none` (Go writes nil
//! slices, maps and pointers as `null`); fields the shape does not know are ignored, so a newer
//! OpenIM that adds fields keeps working.

use serde_json::{Map, Number, Value};
use wasmtime::component::Val;

use super::schema::{Field, RecordShape, Shape};
use crate::untrusted::Untrusted;

mod body;

pub use body::decode_body;

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

/// The plainest value of `shape`: empty strings and lists, zeros, `false`, no options, the
/// first case of an enum. A request made of it is what a warm-up call is given: it carries
/// nothing of any real callback.
pub fn sample(shape: &Shape) -> Val {
    match shape {
        Shape::Bool => Val::Bool(false),
        Shape::S32 => Val::S32(0),
        Shape::S64 => Val::S64(0),
        Shape::U32 => Val::U32(0),
        Shape::String => Val::String(String::new()),
        Shape::List(_) | Shape::Map(_) => Val::List(Vec::new()),
        Shape::Option(_) => Val::Option(None),
        Shape::Record(record) => sample_record(record),
        Shape::Enum(cases) => Val::Enum(cases.first().cloned().unwrap_or_default()),
    }
}

/// [`sample`] of a record.
pub fn sample_record(record: &RecordShape) -> Val {
    Val::Record(
        record
            .fields
            .iter()
            .map(|field| (field.wit.clone(), sample(&field.shape)))
            .collect(),
    )
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
