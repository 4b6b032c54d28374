//! Message moderation, the most common use of OpenIM's webhooks:
//!
//! - before a message is sent (`callbackBeforeSendSingleMsgCommand`, `...GroupMsgCommand`), a text
//!   message containing a blocked phrase is refused (errCode 20001, the phrase in `errDlt`);
//! - before it is stored (`callbackBeforeMsgModifyCommand`), banned words in a text message
//!   (contentType 101, content `{"content":"..."}`) are masked with `*`, one per character, and the
//!   message is rewritten; other content types are left alone.
//!
//! The rule itself (and its lists, compiled in) is in `../moderation-policy`, shared with the
//! benchmark's native baseline.

wit_bindgen::generate!({
    path: "../../wit",
    world: "message-moderation-plugin",
    // The shared types and the log come from the helpers; every other type is a record, so
    // `Changes::default()` is "no changes".
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
    additional_derives: [Default],
});

use exports::openim::callback::before_msg_modify::{self, Answer, Changes};
use exports::openim::callback::{before_send_group_msg, before_send_single_msg};
use openim::callback::message_types::{GroupMsg, Message, SingleMsg};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line, refuse, text_of};

/// The errCode of a refused message.
const ERR_BLOCKED: i32 = 20001;

/// Refuses a text message with a blocked phrase; anything else goes on.
fn check_send(delivery: &Delivery, message: &Message) -> Response {
    let Some(text) = text_of(message.content_type, &message.content) else {
        return go_on();
    };
    let Some(phrase) = moderation_policy::blocked_phrase(&text) else {
        return go_on();
    };
    log_line(
        Level::Warn,
        "message refused",
        &[
            ("send_id", &message.send_id),
            ("phrase", phrase),
            ("operation_id", &delivery.operation_id),
        ],
    );
    refuse(
        ERR_BLOCKED,
        "message blocked by moderation",
        format!("blocked phrase: {phrase}"),
    )
}

struct Moderation;

impl before_send_single_msg::Guest for Moderation {
    fn handle(delivery: Delivery, request: SingleMsg) -> Response {
        check_send(&delivery, &request.message)
    }
}

impl before_send_group_msg::Guest for Moderation {
    fn handle(delivery: Delivery, request: GroupMsg) -> Response {
        check_send(&delivery, &request.message)
    }
}

impl before_msg_modify::Guest for Moderation {
    fn handle(_delivery: Delivery, request: before_msg_modify::Request) -> Answer {
        // Only the text changes; any other field of the content document is kept.
        let message = &request.message;
        let content = text_of(message.content_type, &message.content)
            .and_then(|text| moderation_policy::mask(&text))
            .and_then(|masked| {
                let mut content: serde_json::Value = serde_json::from_str(&message.content).ok()?;
                content["content"] = serde_json::Value::String(masked);
                Some(content.to_string())
            });
        Answer {
            response: go_on(),
            changes: Changes {
                content,
                ..Changes::default()
            },
        }
    }
}

export!(Moderation);
