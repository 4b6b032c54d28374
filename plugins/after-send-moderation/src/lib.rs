//! Moderation after the send: `callbackAfterSendSingleMsgCommand` and
//! `callbackAfterSendGroupMsgCommand`, queued by the host (OpenIM never waits for them), run a
//! check too slow or too unsure for the before-callback: here, blocked phrases in disguise
//! ("f r e e  b 1 t c 0 i n"); in real life an image, video or link check. A message that fails
//! it is revoked through OpenIM's API, and its sender is warned in a one-to-one message.
//!
//! Needs `openim_api = ["revoke-message", "send-message"]` in its grant. Its config:
//! `warn_from` (the user the warning comes from, default `imAdmin`) and `warning` (its text).
//!
//! When OpenIM's API is down or slow, the plugin asks to be retried later: the queue delivers the
//! event again, and a revoke done twice is answered "already revoked" (1404), taken as done.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package example:after-send-moderation;

        world after-send-moderation {
            include openim:callback/after-send-single-msg-plugin@0.1.0;
            include openim:callback/after-send-group-msg-plugin@0.1.0;
            import openim:callback/openim-api@0.1.0;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    world: "example:after-send-moderation/after-send-moderation",
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
    generate_all,
});

use exports::openim::callback::{after_send_group_msg, after_send_single_msg};
use openim::callback::message_types::{GroupMsg, Message, SingleMsg};
use openim::callback::openim_api::{
    self as api, ApiError, Content, Conversation, OutgoingMessage, Recipient,
};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line, text_of};
use wasi::config::store as config;

/// OpenIM's "message already revoked": a revoke done before (by an earlier delivery).
const ALREADY_REVOKED: i32 = 1404;

/// A config value, or its default.
fn setting(key: &str, default: &str) -> String {
    config::get(key)
        .ok()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Whether a failed call is worth trying again later: OpenIM's API was down, slow or busy, or
/// refused the host's sign-in (fixed by an operator, then the queue's retry or requeue does it).
/// OpenIM's own error on the call (e.g. 1001 for a body it refuses) would come back the same.
fn transient(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Unavailable(_)
            | ApiError::TimedOut
            | ApiError::RateLimited
            | ApiError::SignInRefused(_)
    )
}

/// Checks a sent message; revokes it and warns its sender when it fails the check.
fn moderate(message: &Message, conversation: Conversation) -> Response {
    let Some(text) = text_of(message.content_type, &message.content) else {
        return go_on();
    };
    let Some(phrase) = moderation_policy::disguised_phrase(&text) else {
        return go_on();
    };
    let seq = i64::from(message.seq);
    let revoked = match api::revoke_message(&message.send_id, &conversation, seq) {
        Err(ApiError::Openim(error)) if error.code == ALREADY_REVOKED => Ok(()),
        other => other,
    };
    if let Err(error) = revoked {
        return failed("revoke-message", &error);
    }
    log_line(
        Level::Info,
        "revoked a message with a disguised blocked phrase",
        &[
            ("sender", &message.send_id),
            ("seq", &seq.to_string()),
            ("phrase", phrase),
        ],
    );
    let warning = OutgoingMessage {
        send_id: setting("warn_from", "imAdmin"),
        recipient: Recipient::User(message.send_id.clone()),
        content: Content::Text(setting(
            "warning",
            "Your message was removed: it breaks this server's rules.",
        )),
        sender_nickname: String::new(),
        ex: String::new(),
    };
    match api::send_message(&warning) {
        Ok(_) => go_on(),
        Err(error) => failed("send-message", &error),
    }
}

/// Logs a failed OpenIM call; asks for the event again when the failure may pass.
fn failed(operation: &str, error: &ApiError) -> Response {
    let detail = format!("{error:?}");
    log_line(
        Level::Warn,
        "OpenIM API call failed",
        &[("operation", operation), ("error", &detail)],
    );
    if transient(error) {
        api::retry_later(&format!("{operation}: {detail}"));
    }
    go_on()
}

struct AfterSendModeration;

impl after_send_single_msg::Guest for AfterSendModeration {
    fn handle(_delivery: Delivery, request: SingleMsg) -> Response {
        let conversation =
            Conversation::Single((request.message.send_id.clone(), request.recv_id.clone()));
        moderate(&request.message, conversation)
    }
}

impl after_send_group_msg::Guest for AfterSendModeration {
    fn handle(_delivery: Delivery, request: GroupMsg) -> Response {
        moderate(
            &request.message,
            Conversation::Group(request.group_id.clone()),
        )
    }
}

export!(AfterSendModeration);
