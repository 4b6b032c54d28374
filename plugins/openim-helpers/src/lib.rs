//! Helpers for callback-host plugins in Rust: the answers every plugin writes and the text of a
//! text message. Plugins built without them keep working.
//!
//! The crate holds the bindings of the contract's shared interfaces (`types`, `log`); a plugin
//! uses them instead of generating its own, so that the helpers' `Response` is its `Response`:
//!
//! ```ignore
//! wit_bindgen::generate!({
//!     path: "wit",
//!     world: "kick-plugin",
//!     with: {
//!         "openim:callback/types@0.1.0": openim_helpers::types,
//!         "openim:callback/log@0.1.0": openim_helpers::log,
//!     },
//! });
//! use openim_helpers::{go_on, refuse};
//! ```
//!
//! Add `additional_derives: [Default]` to that `generate!` and every record of the plugin's
//! world gets a default: `Changes::default()` is "no changes", `Answer::default()` goes on.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package openim-helpers:bindings;

        world helpers {
            import openim:callback/types@0.1.0;
            import openim:callback/log@0.1.0;
        }
    ",
    world: "openim-helpers:bindings/helpers",
    generate_all,
});

pub use openim::callback::{log, types};
pub use types::{Delivery, Response};

/// OpenIM's content type of a text message (its content is `{"content":"..."}`).
pub const TEXT: i32 = 101;

/// "Go on": the operation proceeds.
pub fn go_on() -> Response {
    Response {
        action_code: 0,
        err_code: 0,
        err_msg: String::new(),
        err_dlt: String::new(),
        next_code: 0,
    }
}

/// The default answer is "go on": with `additional_derives: [Default]` in a plugin's
/// `generate!`, `Answer::default()` goes on with no changes, and `Changes::default()` changes
/// nothing.
impl Default for Response {
    fn default() -> Self {
        go_on()
    }
}

/// A refusal: OpenIM hands `err_code`, `err_msg` and `err_dlt` to its caller. (`actionCode 0`
/// with `nextCode 1` is the only answer OpenIM takes as a refusal.)
pub fn refuse(err_code: i32, err_msg: impl Into<String>, err_dlt: impl Into<String>) -> Response {
    Response {
        action_code: 0,
        err_code,
        err_msg: err_msg.into(),
        err_dlt: err_dlt.into(),
        next_code: 1,
    }
}

/// The text of a message, when it is a text message (`content_type` 101).
pub fn text_of(content_type: i32, content: &str) -> Option<String> {
    if content_type != TEXT {
        return None;
    }
    let content: serde_json::Value = serde_json::from_str(content).ok()?;
    content.get("content")?.as_str().map(str::to_owned)
}

/// The `content` of a text message saying `text`.
pub fn text_content(text: &str) -> String {
    serde_json::json!({ "content": text }).to_string()
}

/// Writes a line to the host's log with `fields` given as string pairs.
pub fn log_line(level: log::Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    log::log(level, message, &fields);
}
