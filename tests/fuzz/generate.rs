//! The fuzzer's inputs: a seedable generator, tricky strings and tokens, valid JSON and component
//! values of a command's shapes, and the structural and byte-level mutations applied to them.

use callback_host::protocol::answer::{MAX_CHANGE_STRING, MAX_ERR_TEXT};
use callback_host::protocol::schema::{RecordShape, Shape};
use serde_json::{Map, Value};
use wasmtime::component::Val;

/// A small, fast, seedable generator (xorshift64*): the fuzzer needs speed and replay, not
/// cryptographic quality.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Strings that have broken JSON and UTF-8 handling elsewhere.
pub(super) const TRICKY_STRINGS: &[&str] = &[
    "",
    "admin",
    "\u{0}",
    "\\",
    "\"",
    "\u{202e}reversed",
    "😀",
    "a\u{301}",
    "\u{fffd}",
    "{\"a\":1}",
    "[1,2",
    "null",
    "<script>&amp;",
];

/// JSON tokens that test number and type handling.
pub(super) const TRICKY_TOKENS: &[&str] = &[
    "null",
    "true",
    "0",
    "-0",
    "1e999",
    "-1",
    "2147483648",
    "-2147483649",
    "4294967296",
    "9223372036854775808",
    "-9223372036854775809",
    "1.5",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "\"",
    ",",
    ":",
    "}",
];

pub(super) fn string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => rng.pick(TRICKY_STRINGS).to_string(),
        5..=7 => format!("user{}", rng.below(1000)),
        8 => "x".repeat(rng.below(5000)),
        _ => "é".repeat(rng.below(300)),
    }
}

pub(super) fn number(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::from(rng.below(10) as i64),
        1 => Value::from(i32::MAX as i64 + rng.below(3) as i64 - 1),
        2 => Value::from(i64::MIN + rng.below(2) as i64),
        3 => Value::from(u32::MAX as u64 + rng.below(2) as u64),
        4 => Value::from(-(rng.below(100) as i64)),
        _ => serde_json::Number::from_f64(rng.below(100) as f64 + 0.5)
            .map_or(Value::Null, Value::Number),
    }
}

/// A valid JSON value of `shape`, as OpenIM would send it.
pub(super) fn json_for(shape: &Shape, rng: &mut Rng, depth: usize) -> Value {
    match shape {
        Shape::Bool => Value::Bool(rng.chance(50)),
        Shape::S32 => Value::from(rng.below(1000) as i64 - 500),
        Shape::S64 => Value::from(rng.next() as i64 / 2),
        Shape::U32 => Value::from(rng.below(1000) as u64),
        Shape::String => Value::String(string(rng)),
        Shape::Enum(cases) => Value::String(rng.pick(cases).clone()),
        Shape::List(inner) => {
            let n = if depth > 3 { 0 } else { rng.below(4) };
            Value::Array((0..n).map(|_| json_for(inner, rng, depth + 1)).collect())
        }
        Shape::Map(inner) => {
            let n = if depth > 3 { 0 } else { rng.below(3) };
            Value::Object(
                (0..n)
                    .map(|_| (string(rng), json_for(inner, rng, depth + 1)))
                    .collect(),
            )
        }
        Shape::Option(inner) => {
            if rng.chance(30) {
                if rng.chance(50) {
                    Value::Null
                } else {
                    json_for(inner, rng, depth)
                }
            } else {
                json_for(inner, rng, depth)
            }
        }
        Shape::Record(record) => {
            let mut object = Map::new();
            record_json(record, rng, depth, &mut object);
            Value::Object(object)
        }
    }
}

pub(super) fn record_json(
    record: &RecordShape,
    rng: &mut Rng,
    depth: usize,
    object: &mut Map<String, Value>,
) {
    for field in &record.fields {
        if field.flatten {
            let inner = match &field.shape {
                Shape::Record(inner) => Some(inner),
                Shape::Option(inner) => match &**inner {
                    Shape::Record(inner) if rng.chance(80) => Some(inner),
                    _ => None,
                },
                _ => None,
            };
            if let Some(inner) = inner {
                record_json(inner, rng, depth + 1, object);
            }
            continue;
        }
        if matches!(field.shape, Shape::Option(_)) && rng.chance(20) {
            continue;
        }
        object.insert(field.json.clone(), json_for(&field.shape, rng, depth + 1));
    }
}

/// Any JSON value.
pub(super) fn any_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => number(rng),
        3 => Value::String(string(rng)),
        4 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_json(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (string(rng), any_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// One structural change somewhere in `value`.
pub(super) fn mutate_json(value: &mut Value, rng: &mut Rng) {
    match value {
        Value::Object(object) if !object.is_empty() && rng.chance(70) => {
            let keys: Vec<String> = object.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(6) {
                0 => {
                    object.remove(&key);
                }
                1 => {
                    object.insert(key, any_json(rng, 2));
                }
                2 => {
                    object.insert(key, Value::Null);
                }
                3 => {
                    object.insert(string(rng), any_json(rng, 2));
                }
                _ => mutate_json(object.get_mut(&key).expect("a key of the object"), rng),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.chance(70) => {
            let i = rng.below(items.len());
            match rng.below(4) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => mutate_json(&mut items[i], rng),
            }
        }
        _ => *value = any_json(rng, 1),
    }
}

/// Byte-level changes: what a broken client or proxy could send.
pub(super) fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..=rng.below(3) {
        if bytes.is_empty() {
            bytes.extend_from_slice(rng.pick(TRICKY_TOKENS).as_bytes());
            continue;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.truncate(at),
            2 => {
                let token = rng.pick(TRICKY_TOKENS).as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(64)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy);
            }
            _ => bytes[at] = rng.next() as u8,
        }
    }
}

/// A component value of `shape`: what a plugin built against the contract returns.
pub(super) fn val_for(shape: &Shape, rng: &mut Rng, depth: usize) -> Val {
    match shape {
        Shape::Bool => Val::Bool(rng.chance(50)),
        Shape::S32 => Val::S32(rng.next() as i32),
        Shape::S64 => Val::S64(rng.next() as i64),
        Shape::U32 => Val::U32(rng.next() as u32),
        Shape::String => Val::String(if rng.chance(3) {
            // Past the caps now and then.
            "y".repeat(MAX_CHANGE_STRING + rng.below(10))
        } else {
            string(rng)
        }),
        Shape::Enum(cases) => Val::Enum(rng.pick(cases).clone()),
        Shape::List(inner) => {
            let n = if depth > 3 { 0 } else { rng.below(4) };
            Val::List((0..n).map(|_| val_for(inner, rng, depth + 1)).collect())
        }
        Shape::Map(inner) => {
            let n = if depth > 3 { 0 } else { rng.below(3) };
            Val::List(
                (0..n)
                    .map(|_| {
                        Val::Tuple(vec![
                            Val::String(string(rng)),
                            val_for(inner, rng, depth + 1),
                        ])
                    })
                    .collect(),
            )
        }
        Shape::Option(inner) => {
            if rng.chance(50) {
                Val::Option(None)
            } else {
                Val::Option(Some(Box::new(val_for(inner, rng, depth))))
            }
        }
        Shape::Record(record) => record_val(record, rng, depth),
    }
}

pub(super) fn record_val(record: &RecordShape, rng: &mut Rng, depth: usize) -> Val {
    Val::Record(
        record
            .fields
            .iter()
            .map(|f| (f.wit.clone(), val_for(&f.shape, rng, depth + 1)))
            .collect(),
    )
}

/// The five common fields as a record value.
pub(super) fn response_val(rng: &mut Rng) -> Val {
    let text = |rng: &mut Rng| {
        if rng.chance(5) {
            "z".repeat(MAX_ERR_TEXT + 1)
        } else {
            string(rng)
        }
    };
    Val::Record(vec![
        ("action-code".into(), Val::S32(rng.below(3) as i32)),
        ("err-code".into(), Val::S32(rng.next() as i32)),
        ("err-msg".into(), Val::String(text(rng))),
        ("err-dlt".into(), Val::String(text(rng))),
        ("next-code".into(), Val::S32(rng.below(3) as i32)),
    ])
}

/// Something else than the contract: what a component built against another version returns.
pub(super) fn wrong_val(rng: &mut Rng) -> Val {
    match rng.below(5) {
        0 => Val::String(string(rng)),
        1 => Val::Record(vec![]),
        2 => Val::Record(vec![
            ("response".into(), Val::U32(1)),
            ("changes".into(), Val::Bool(true)),
        ]),
        3 => Val::List(vec![Val::S32(1)]),
        _ => Val::Record(vec![("x".into(), response_val(rng))]),
    }
}
