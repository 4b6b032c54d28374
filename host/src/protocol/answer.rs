//! Answers: reading what a plugin returned (typed or JSON), merging the changes of a chain of
//! plugins into the request the next one sees and into the answer OpenIM gets, and the rules that
//! keep an answer from hurting OpenIM (see [`super::commands::Rules`]).

use serde_json::{Map, Value};
use wasmtime::component::Val;

use super::CallbackResponse;
use super::convert::{self, describe};
use super::schema::{Command, RecordShape, Shape};
use crate::untrusted::Untrusted;

/// Why a plugin's answer cannot be forwarded. The plugin failed; the command's policy answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAnswer(pub String);

fn invalid(message: impl Into<String>) -> InvalidAnswer {
    InvalidAnswer(message.into())
}

/// Largest `errMsg` and `errDlt`, in bytes: OpenIM shows them to a user.
pub const MAX_ERR_TEXT: usize = 4 << 10;
/// Largest string of a change (a rewritten message `content` among them), in bytes.
pub const MAX_CHANGE_STRING: usize = 64 << 10;
/// Most entries of a list (or map) of a change.
pub const MAX_CHANGE_LIST: usize = 10_000;
/// Largest answer a plugin may return, in bytes: a JSON plugin's text, or what a typed answer's
/// strings and lists take (wasmtime checks it as it copies them out of the plugin, see
/// [`crate::runtime::store`]).
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Checks an answer against the caps above, so that no plugin can make the host send OpenIM
/// (or write to its log) an answer of megabytes.
fn check_caps(response: &CallbackResponse, changes: Option<&Val>) -> Result<(), InvalidAnswer> {
    for (name, text) in [("errMsg", &response.err_msg), ("errDlt", &response.err_dlt)] {
        if text.len() > MAX_ERR_TEXT {
            return Err(invalid(format!(
                "{name} is {} bytes, over the cap of {MAX_ERR_TEXT}",
                text.len()
            )));
        }
    }
    changes.map_or(Ok(()), check_value)
}

fn check_value(value: &Val) -> Result<(), InvalidAnswer> {
    match value {
        Val::String(s) if s.len() > MAX_CHANGE_STRING => Err(invalid(format!(
            "a changed string is {} bytes, over the cap of {MAX_CHANGE_STRING}",
            s.len()
        ))),
        Val::List(items) if items.len() > MAX_CHANGE_LIST => Err(invalid(format!(
            "a changed list has {} entries, over the cap of {MAX_CHANGE_LIST}",
            items.len()
        ))),
        Val::List(items) | Val::Tuple(items) => items.iter().try_for_each(check_value),
        Val::Record(fields) => fields.iter().try_for_each(|(_, v)| check_value(v)),
        Val::Option(Some(inner)) => check_value(inner),
        _ => Ok(()),
    }
}

/// The five common fields of a `response` record value.
pub fn response_from_val(value: &Val) -> Result<CallbackResponse, InvalidAnswer> {
    let Val::Record(fields) = value else {
        return Err(invalid("the answer is not a response record"));
    };
    let mut response = CallbackResponse::go_on();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("action-code", Val::S32(n)) => response.action_code = *n,
            ("err-code", Val::S32(n)) => response.err_code = *n,
            ("err-msg", Val::String(s)) => response.err_msg = s.clone(),
            ("err-dlt", Val::String(s)) => response.err_dlt = s.clone(),
            ("next-code", Val::S32(n)) => response.next_code = *n,
            _ => return Err(invalid(format!("unexpected response field {name}"))),
        }
    }
    Ok(response)
}

/// A typed plugin's answer: the response, and the changes record for commands that have one,
/// within the caps.
pub fn from_typed(
    command: &Command,
    value: Val,
) -> Result<(CallbackResponse, Option<Val>), InvalidAnswer> {
    let (response, changes) = split_typed(command, value)?;
    check_caps(&response, changes.as_ref())?;
    Ok((response, changes))
}

fn split_typed(
    command: &Command,
    value: Val,
) -> Result<(CallbackResponse, Option<Val>), InvalidAnswer> {
    if command.changes().is_none() {
        return Ok((response_from_val(&value)?, None));
    }
    let Val::Record(mut fields) = value else {
        return Err(invalid("the answer is not an answer record"));
    };
    let changes = fields.pop().map(|(_, v)| v);
    let response = fields
        .pop()
        .map(|(_, v)| v)
        .ok_or_else(|| invalid("the answer has no response"))?;
    if let (Some(shape), Some(changes)) = (command.changes(), &changes)
        && !convert::conforms_record(shape, changes)
    {
        return Err(invalid(
            "the changes do not have the shape of this command's contract (a component built against another version?)",
        ));
    }
    Ok((response_from_val(&response)?, changes))
}

/// A JSON plugin's answer, checked against the command's answer shape: the five common fields
/// (missing ones are 0 or "") and, where the command has them, the changes (missing ones are
/// unchanged). Any other field is an error, so a misspelt change (`nickname` for `nickName`) is
/// caught instead of silently ignored. For a command the host does not know, only the five fields
/// are read.
pub fn from_json(
    command: Option<&Command>,
    text: &str,
) -> Result<(CallbackResponse, Option<Val>), InvalidAnswer> {
    if text.len() > MAX_ANSWER_BYTES {
        return Err(invalid(format!(
            "the answer is {} bytes, over the cap of {MAX_ANSWER_BYTES}",
            text.len()
        )));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("the answer is not JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(invalid(format!(
            "the answer must be a JSON object, got {}",
            describe(&value)
        )));
    };
    let mut response = CallbackResponse::go_on();
    let int = |key: &str, value: &Value| {
        value
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{key} must be a 32-bit integer, got {}",
                    describe(value)
                ))
            })
    };
    let string = |key: &str, value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("{key} must be a string, got {}", describe(value))))
    };
    let changes = command.and_then(Command::changes);
    for (key, value) in &object {
        match key.as_str() {
            "actionCode" => response.action_code = int(key, value)?,
            "errCode" => response.err_code = int(key, value)?,
            "errMsg" => response.err_msg = string(key, value)?,
            "errDlt" => response.err_dlt = string(key, value)?,
            "nextCode" => response.next_code = int(key, value)?,
            other if changes.is_some_and(|c| c.fields.iter().any(|f| f.json == other)) => {}
            _ if command.is_none() => {}
            other
                if let Some((_, why)) = command.and_then(|c| {
                    c.spec
                        .rules
                        .withheld
                        .iter()
                        .find(|(field, _)| *field == other)
                }) =>
            {
                return Err(invalid(format!(
                    "`{other}` is not a change the host offers: {why}"
                )));
            }
            other => {
                let allowed: Vec<&str> = changes
                    .map(|c| c.fields.iter().map(|f| f.json.as_str()).collect())
                    .unwrap_or_default();
                // The name is the plugin's: escaped and capped, like all its text.
                let other = Untrusted::new(other);
                return Err(invalid(if allowed.is_empty() {
                    format!(
                        "unknown answer field `{other}`: this command's answer has only the five common fields"
                    )
                } else {
                    format!(
                        "unknown answer field `{other}`: this command may change {}",
                        allowed.join(", ")
                    )
                }));
            }
        }
    }
    let changes = match changes {
        Some(shape) => {
            Some(convert::decode_record(shape, &object, "").map_err(|e| invalid(e.to_string()))?)
        }
        None => None,
    };
    check_caps(&response, changes.as_ref())?;
    Ok((response, changes))
}

/// The changes of a chain so far, and the request with them applied.
#[derive(Debug)]
pub struct Merge<'c> {
    command: &'c Command,
    /// The request as the next plugin sees it.
    pub request: Val,
    /// The merged value of each field of the changes record (`None` = unchanged).
    changes: Vec<Option<Val>>,
    /// Whether any change was applied, i.e. whether the request differs from OpenIM's body.
    pub changed: bool,
}

impl<'c> Merge<'c> {
    pub fn new(command: &'c Command, request: Val) -> Self {
        let fields = command.changes().map_or(0, |c| c.fields.len());
        Self {
            command,
            request,
            changes: vec![None; fields],
            changed: false,
        }
    }

    /// Checks one plugin's changes against the command's rules and, when all are valid, applies
    /// them: later plugins override earlier ones field by field.
    pub fn apply(&mut self, changes: &Val) -> Result<(), InvalidAnswer> {
        let Some(shape) = self.command.changes() else {
            return Ok(());
        };
        let Val::Record(fields) = changes else {
            return Err(invalid("the changes are not a record"));
        };
        let rules = self.command.spec.rules;
        let mut set = Vec::new();
        for (index, (field, (_, value))) in shape.fields.iter().zip(fields).enumerate() {
            let Val::Option(Some(value)) = value else {
                continue;
            };
            if rules.json_fields.contains(&field.wit.as_str()) {
                let Val::String(text) = &**value else {
                    continue;
                };
                if let Err(error) = serde_json::from_str::<Value>(text) {
                    return Err(invalid(format!(
                        "changes.{} must be a JSON document (OpenIM refuses the message otherwise): {error}",
                        field.json
                    )));
                }
            }
            if rules.only_if_present
                && matches!(
                    slot(&self.command.request, &mut self.request, &field.wit),
                    Some((Val::Option(None), _))
                )
            {
                return Err(invalid(format!(
                    "changes.{} sets a field the request does not carry; OpenIM would crash on this answer",
                    field.json
                )));
            }
            set.push((index, (**value).clone()));
        }
        for (index, value) in set {
            let field = &shape.fields[index];
            let merged = match (self.changes[index].take(), &field.shape) {
                (Some(earlier), Shape::Option(inner)) => merge_keyed(inner, earlier, value),
                (_, _) => value,
            };
            let keyed = self
                .command
                .spec
                .rules
                .applies_to
                .iter()
                .find(|(change, _)| *change == field.wit);
            if let Some((_, target)) = keyed {
                if let Some((target, _)) = slot(&self.command.request, &mut self.request, target) {
                    apply_by_user(target, &merged);
                }
            } else if let Some((target, target_shape)) =
                slot(&self.command.request, &mut self.request, &field.wit)
            {
                *target = match target_shape {
                    Shape::Option(_) => Val::Option(Some(Box::new(merged.clone()))),
                    _ => merged.clone(),
                };
            }
            self.changes[index] = Some(merged);
            self.changed = true;
        }
        Ok(())
    }

    /// The request as JSON, for a JSON plugin after earlier plugins changed it.
    pub fn request_json(&self) -> String {
        let mut object = Map::new();
        convert::encode_record(&self.command.request, &self.request, &mut object);
        Value::Object(object).to_string()
    }

    /// The answer OpenIM gets when no plugin refused: "go on" with the merged changes, and the
    /// request's value of every field OpenIM copies back unconditionally.
    pub fn go_on_answer(&self) -> Vec<u8> {
        let mut extra = Map::new();
        if let Some(shape) = self.command.changes() {
            for (field, change) in shape.fields.iter().zip(&self.changes) {
                if let Some(change) = change {
                    let Shape::Option(inner) = &field.shape else {
                        continue;
                    };
                    extra.insert(field.json.clone(), convert::encode(inner, change));
                }
            }
        }
        for wit in self.command.spec.rules.echo {
            let request = &self.command.request;
            let Some((field_index, field)) = request.field(wit) else {
                continue;
            };
            let Val::Record(values) = &self.request else {
                continue;
            };
            let json = self
                .command
                .changes()
                .and_then(|c| c.field(wit))
                .map_or(field.json.as_str(), |(_, f)| f.json.as_str());
            extra.insert(
                json.to_owned(),
                convert::encode(&field.shape, &values[field_index].1),
            );
        }
        with_fields(&CallbackResponse::go_on(), &extra)
    }
}

/// The answer's JSON: the five fields in OpenIM's order, then `extra`.
pub fn with_fields(response: &CallbackResponse, extra: &Map<String, Value>) -> Vec<u8> {
    let mut json = response.to_json();
    if extra.is_empty() {
        return json;
    }
    json.pop(); // the closing brace
    for (key, value) in extra {
        json.push(b',');
        json.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
        json.push(b':');
        json.extend_from_slice(value.to_string().as_bytes());
    }
    json.push(b'}');
    json
}

/// Merges two values of a change: lists of records with a `user-id` (one entry per member) are
/// merged by user, later entries winning field by field; anything else is replaced.
fn merge_keyed(shape: &Shape, earlier: Val, later: Val) -> Val {
    let Shape::List(item) = shape else {
        return later;
    };
    let Shape::Record(record) = &**item else {
        return later;
    };
    let Some((key, _)) = record.field("user-id") else {
        return later;
    };
    let (Val::List(mut merged), Val::List(entries)) = (earlier, later.clone()) else {
        return later; // not reached: both were checked against the list's shape
    };
    for entry in entries {
        let Val::Record(new) = &entry else { continue };
        let existing = merged
            .iter_mut()
            .find(|m| matches!(m, Val::Record(old) if old[key].1 == new[key].1));
        match existing {
            Some(Val::Record(old)) => {
                for (slot, (_, value)) in old.iter_mut().zip(new) {
                    if !matches!(value, Val::Option(None)) {
                        slot.1 = value.clone();
                    }
                }
            }
            _ => merged.push(entry),
        }
    }
    Val::List(merged)
}

/// Applies change entries (records with a `user-id`) to the request's list of records of the same
/// users: each field both have takes the change's value, where the change sets one.
fn apply_by_user(target: &mut Val, changes: &Val) {
    let (Val::List(entries), Val::List(changes)) = (target, changes) else {
        return;
    };
    let user = |fields: &[(String, Val)]| {
        fields
            .iter()
            .find(|(name, _)| name == "user-id")
            .map(|(_, v)| v.clone())
    };
    for change in changes {
        let Val::Record(change) = change else {
            continue;
        };
        let Some(who) = user(change) else { continue };
        for entry in entries.iter_mut() {
            let Val::Record(fields) = entry else { continue };
            if user(fields).as_ref() != Some(&who) {
                continue;
            }
            for (name, value) in fields.iter_mut() {
                let set = change.iter().find_map(|(n, v)| match v {
                    Val::Option(Some(v)) if n == name => Some(&**v),
                    _ => None,
                });
                if let Some(v) = set
                    && std::mem::discriminant(v) == std::mem::discriminant(value)
                {
                    *value = v.clone();
                }
            }
        }
    }
}

/// The request field named `wit` (at the top level or inside a flattened record), with its shape.
fn slot<'v, 's>(
    record: &'s RecordShape,
    value: &'v mut Val,
    wit: &str,
) -> Option<(&'v mut Val, &'s Shape)> {
    let Val::Record(values) = value else {
        return None;
    };
    if let Some((index, field)) = record.field(wit) {
        return Some((&mut values[index].1, &field.shape));
    }
    for (field, (_, value)) in record.fields.iter().zip(values.iter_mut()) {
        if !field.flatten {
            continue;
        }
        match (&field.shape, value) {
            (Shape::Record(inner), value) => return slot(inner, value, wit),
            (Shape::Option(inner), Val::Option(Some(value))) => {
                if let Shape::Record(inner) = &**inner {
                    return slot(inner, value, wit);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
