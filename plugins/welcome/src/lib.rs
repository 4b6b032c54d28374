//! Welcome: when someone joins a group (`callbackAfterJoinGroupCommand`, queued by the host), a
//! welcome message is sent to the group through OpenIM's API. OpenIM's request names the group
//! and the inviter, not who joined, so the message greets the group.
//!
//! Needs `openim_api = ["send-message"]` in its grant. Its config: `sender` (the user the
//! message comes from, default `imAdmin`) and `text`. When OpenIM's API is down or slow, the
//! plugin asks to be retried later: the queue delivers the event again (a welcome whose answer
//! was lost may then be sent twice).

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package example:welcome;

        world welcome {
            include openim:callback/after-join-group-plugin@0.1.0;
            import openim:callback/openim-api@0.1.0;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    world: "example:welcome/welcome",
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
    generate_all,
});

use exports::openim::callback::after_join_group::{Guest, Request};
use openim::callback::openim_api::{self as api, ApiError, Content, OutgoingMessage, Recipient};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line};
use wasi::config::store as config;

/// A config value, or its default.
fn setting(key: &str, default: &str) -> String {
    config::get(key)
        .ok()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

struct Welcome;

impl Guest for Welcome {
    fn handle(_delivery: Delivery, request: Request) -> Response {
        let message = OutgoingMessage {
            send_id: setting("sender", "imAdmin"),
            recipient: Recipient::Group(request.group_id.clone()),
            content: Content::Text(setting(
                "text",
                "Welcome to the group! Please read the pinned rules.",
            )),
            sender_nickname: String::new(),
            ex: String::new(),
        };
        match api::send_message(&message) {
            Ok(sent) => log_line(
                Level::Info,
                "welcomed a new member",
                &[
                    ("group_id", &request.group_id),
                    ("server_msg_id", &sent.server_msg_id),
                ],
            ),
            Err(error) => {
                let detail = format!("{error:?}");
                log_line(
                    Level::Warn,
                    "could not send the welcome",
                    &[("group_id", &request.group_id), ("error", &detail)],
                );
                // Down, slow, busy, or the host's sign-in refused (an operator fixes it): try
                // again later. OpenIM's own error on the message would come back the same.
                if matches!(
                    error,
                    ApiError::Unavailable(_)
                        | ApiError::TimedOut
                        | ApiError::RateLimited
                        | ApiError::SignInRefused(_)
                ) {
                    api::retry_later(&detail);
                }
            }
        }
        go_on()
    }
}

export!(Welcome);
