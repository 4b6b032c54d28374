//! OpenIM's side of the wire: the commands ([`commands`]), the shapes of their requests and answers
//! read from the WIT ([`schema`]), JSON to component values and back ([`convert`]), answers and
//! their rules ([`answer`]), and the validation of a request body.
//!
//! See `docs/openim-protocol.md`: OpenIM POSTs `<base url>/<callbackCommand>` with a JSON body and
//! decodes `{actionCode, errCode, errMsg, errDlt, nextCode}` (plus, for some before-callbacks, the
//! fields to change) from our answer.

pub mod answer;
pub mod commands;
pub mod convert;
pub mod schema;

use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use wasmtime::component::Val;

use self::schema::Command;

/// Returns the static name of a known command, or `None` for anything OpenIM never sends.
pub fn known_command(name: &str) -> Option<&'static str> {
    schema::Catalog::get().command(name).map(|c| c.spec.name)
}

/// The answer OpenIM decodes: int32, int32, string, string, int32, serialized in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackResponse {
    /// 0: the callback was handled. Anything else means "go on" whatever `next_code` says.
    pub action_code: i32,
    /// Returned to OpenIM's caller on refusal.
    pub err_code: i32,
    /// Returned to OpenIM's caller on refusal.
    pub err_msg: String,
    /// Returned to OpenIM's caller on refusal.
    pub err_dlt: String,
    /// 1 together with `action_code == 0` refuses the operation.
    pub next_code: i32,
}

impl CallbackResponse {
    /// "Go on": the operation proceeds.
    pub fn go_on() -> Self {
        Self {
            action_code: 0,
            err_code: 0,
            err_msg: String::new(),
            err_dlt: String::new(),
            next_code: 0,
        }
    }

    /// A refusal carrying the error OpenIM hands to its caller.
    pub fn refuse(err_code: i32, err_msg: impl Into<String>, err_dlt: impl Into<String>) -> Self {
        Self {
            action_code: 0,
            err_code,
            err_msg: err_msg.into(),
            err_dlt: err_dlt.into(),
            next_code: 1,
        }
    }

    /// Whether OpenIM will refuse the operation on this answer (exactly its own test).
    pub fn is_refusal(&self) -> bool {
        self.action_code == 0 && self.next_code == 1
    }

    /// `nextCode 1` with a non-zero `actionCode`: written as a refusal, read by OpenIM as "go on"
    /// (only `actionCode 0` refuses). The mistake OpenIM's users report most.
    pub fn is_misread_refusal(&self) -> bool {
        self.next_code == 1 && self.action_code != 0
    }

    /// The JSON bytes of the answer.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of integers and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a request body was rejected. Each variant's message says exactly what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body is empty; expected a JSON object")]
    Empty,
    #[error("request body is not valid UTF-8: invalid byte at offset {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("request body is truncated JSON: {0}")]
    Truncated(String),
    #[error("request body is malformed JSON: {0}")]
    Malformed(String),
    #[error("request body does not match the {command} schema: {detail}")]
    Schema {
        command: &'static str,
        detail: String,
    },
    #[error("request body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error(
        "request body nests JSON more than {JSON_DEPTH} levels deep (OpenIM's bodies nest a few): {0}"
    )]
    TooDeep(String),
    #[error(
        "callbackCommand {found:?} in the body does not match the command {expected:?} in the URL"
    )]
    CommandMismatch {
        expected: &'static str,
        found: String,
    },
}

impl BodyError {
    /// A short, stable name for logs, metrics and the `errDlt` of a 4xx answer.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::Truncated(_) => "truncated_json",
            Self::Malformed(_) => "malformed_json",
            Self::Schema { .. } => "schema_mismatch",
            Self::NotAnObject(_) => "not_an_object",
            Self::TooDeep(_) => "too_deep",
            Self::CommandMismatch { .. } => "command_mismatch",
        }
    }
}

/// What every command's body must be: non-empty UTF-8 text. Checked once per request; the
/// parsers take the text.
pub fn text(body: &[u8]) -> Result<&str, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    std::str::from_utf8(body).map_err(|e| BodyError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// How deep serde_json lets JSON nest before it stops reading (its recursion limit).
const JSON_DEPTH: u32 = 128;

/// Maps a serde_json error to the body error that names its category.
fn json_error(command: &'static str, err: serde_json::Error) -> BodyError {
    // serde_json files its recursion limit under syntax errors and does not export the code:
    // its message is the only mark.
    if err.to_string().starts_with("recursion limit exceeded") {
        return BodyError::TooDeep(err.to_string());
    }
    match err.classify() {
        Category::Eof => BodyError::Truncated(err.to_string()),
        Category::Syntax | Category::Io => BodyError::Malformed(err.to_string()),
        Category::Data => BodyError::Schema {
            command,
            detail: err.to_string(),
        },
    }
}

/// Parses and validates the body of `command` into the request record plugins receive.
pub fn parse(command: &Command, body: &str) -> Result<Val, BodyError> {
    // The fast path: straight into the request record, when the body is valid and names the
    // command of the URL (or none).
    if let Ok(value) = convert::decode_body(&command.request, body.as_bytes())
        && body_command_matches(&value, command.spec.name)
    {
        return Ok(value);
    }
    // Otherwise the slow path says exactly what is wrong.
    let object = parse_object(command.spec.name, body)?;
    convert::decode_record(&command.request, &object, "").map_err(|e| BodyError::Schema {
        command: command.spec.name,
        detail: e.to_string(),
    })
}

/// Whether a decoded request's `callback-command` (when it has one) is `command`.
fn body_command_matches(value: &Val, command: &str) -> bool {
    let Val::Record(fields) = value else {
        return false;
    };
    fields
        .iter()
        .all(|(name, value)| match (name.as_str(), value) {
            ("callback-command", Val::String(found)) => found == command,
            ("message", inner) => body_command_matches(inner, command),
            _ => true,
        })
}

/// Parses a body as a JSON object whose `callbackCommand`, when present, matches the URL: all
/// that can be checked of a command the host has no shape for.
pub fn parse_object(
    command: &'static str,
    body: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, BodyError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| json_error(command, e))?;
    let serde_json::Value::Object(object) = value else {
        return Err(BodyError::NotAnObject(json_kind(&value)));
    };
    match object.get("callbackCommand") {
        None => {}
        Some(serde_json::Value::String(found)) if found == command => {}
        Some(serde_json::Value::String(found)) => {
            return Err(BodyError::CommandMismatch {
                expected: command,
                found: found.clone(),
            });
        }
        Some(other) => {
            return Err(BodyError::Schema {
                command,
                detail: format!("callbackCommand must be a string, got {}", json_kind(other)),
            });
        }
    }
    Ok(object)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENIM_BODY: &[u8] = b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"user456\"],\"reason\":\"a \\u003c b \\u0026 c\"}\n";

    fn parse_kick(body: &[u8]) -> Result<Val, BodyError> {
        let kick = schema::Catalog::get()
            .command("callbackAfterKickGroupCommand")
            .unwrap();
        parse(kick, text(body)?)
    }

    #[test]
    fn parses_go_encoder_output_with_escapes_and_newline() {
        let request = parse_kick(OPENIM_BODY).expect("valid body");
        let Val::Record(fields) = request else {
            panic!("a record")
        };
        assert_eq!(fields[1].1, Val::String("G001".into()));
        assert_eq!(
            fields[2].1,
            Val::List(vec![
                Val::String("user123".into()),
                Val::String("user456".into())
            ])
        );
        assert_eq!(fields[3].1, Val::String("a < b & c".into()));
    }

    #[test]
    fn names_each_kind_of_bad_body() {
        assert_eq!(parse_kick(b"").unwrap_err(), BodyError::Empty);
        assert_eq!(
            parse_kick(b"{\"a\":\"\xff\"}").unwrap_err().kind(),
            "invalid_utf8"
        );
        assert_eq!(
            parse_kick(b"{\"callbackCommand\":").unwrap_err().kind(),
            "truncated_json"
        );
        assert_eq!(parse_kick(b"{,}").unwrap_err().kind(), "malformed_json");
        // Nested past serde_json's limit, closed or not: too deep, not malformed or truncated.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_kick(deep.as_bytes()).unwrap_err().kind(), "too_deep");
        let unclosed = "[".repeat(100_000);
        assert_eq!(
            parse_kick(unclosed.as_bytes()).unwrap_err().kind(),
            "too_deep"
        );
        let object = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_kick(object.as_bytes()).unwrap_err().kind(),
            "too_deep"
        );
        assert_eq!(
            parse_kick(b"[1]").unwrap_err(),
            BodyError::NotAnObject("an array")
        );
        let missing =
            parse_kick(b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\"}").unwrap_err();
        assert!(
            missing.to_string().contains("missing field `groupID`"),
            "{missing}"
        );
    }

    #[test]
    fn answer_serializes_in_openim_field_order() {
        let json = String::from_utf8(CallbackResponse::refuse(7, "no", "why").to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"actionCode":0,"errCode":7,"errMsg":"no","errDlt":"why","nextCode":1}"#
        );
    }
}
