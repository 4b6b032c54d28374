//! The fast path of decoding: a JSON body straight into a record value, with serde's streaming
//! deserializer driven by the shapes, without building a JSON tree first.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use wasmtime::component::Val;

use super::super::schema::{RecordShape, Shape};

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
