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
});

use exports::openim::callback::before_msg_modify::{self, Answer, Changes};
use exports::openim::callback::{before_send_group_msg, before_send_single_msg};
use openim::callback::log::{Level, log};
use openim::callback::message_types::{GroupMsg, Message, SingleMsg};
use openim::callback::types::{Delivery, Response};

/// OpenIM's content type of a text message.
const TEXT: i32 = 101;
/// The errCode of a refused message.
const ERR_BLOCKED: i32 = 20001;

/// The text of a text message, if it is one.
fn text_of(message: &Message) -> Option<String> {
    if message.content_type != TEXT {
        return None;
    }
    let content: serde_json::Value = serde_json::from_str(&message.content).ok()?;
    content.get("content")?.as_str().map(str::to_owned)
}

fn go_on() -> Response {
    Response {
        action_code: 0,
        err_code: 0,
        err_msg: String::new(),
        err_dlt: String::new(),
        next_code: 0,
    }
}

/// Refuses a text message with a blocked phrase; anything else goes on.
fn check_send(delivery: &Delivery, message: &Message) -> Response {
    let Some(text) = text_of(message) else {
        return go_on();
    };
    let Some(phrase) = moderation_policy::blocked_phrase(&text) else {
        return go_on();
    };
    log(
        Level::Warn,
        "message refused",
        &[
            ("send_id".to_string(), message.send_id.clone()),
            ("phrase".to_string(), phrase.to_string()),
            ("operation_id".to_string(), delivery.operation_id.clone()),
        ],
    );
    Response {
        action_code: 0,
        err_code: ERR_BLOCKED,
        err_msg: "message blocked by moderation".to_string(),
        err_dlt: format!("blocked phrase: {phrase}"),
        next_code: 1,
    }
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
        let content = text_of(&request.message)
            .and_then(|text| moderation_policy::mask(&text))
            .and_then(|masked| {
                let mut content: serde_json::Value =
                    serde_json::from_str(&request.message.content).ok()?;
                content["content"] = serde_json::Value::String(masked);
                Some(content.to_string())
            });
        Answer {
            response: go_on(),
            changes: Changes {
                content,
                recv_id: None,
                group_id: None,
                client_msg_id: None,
                server_msg_id: None,
                sender_platform_id: None,
                sender_nickname: None,
                face_url: None,
                session_type: None,
                msg_from: None,
                content_type: None,
                status: None,
                at_user_list: None,
                attached_info: None,
                ex: None,
            },
        }
    }
}

export!(Moderation);
