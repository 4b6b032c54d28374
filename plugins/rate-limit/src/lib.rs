//! Rate limit: refuses a one-to-one message (`callbackBeforeSendSingleMsgCommand`) when its
//! sender has sent more than `max_per_minute` (from `wasi:config`, default 20) in the current
//! minute. The count is a `wasi:keyvalue` increment of `<sender>:<minute>` in the plugin's own
//! bucket; the host's grant gives those keys a time to live, so old minutes disappear by
//! themselves. With the Redis backend the limit holds across host replicas.
//!
//! When the count cannot be read (the store is down, the deadline is near), the message goes
//! on: a rate limiter should not stop a chat because its store failed.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package example:rate-limit;

        world rate-limit {
            include openim:callback/before-send-single-msg-plugin@0.1.0;
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    world: "example:rate-limit/rate-limit",
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
    generate_all,
});

use exports::openim::callback::before_send_single_msg::Guest;
use openim::callback::message_types::SingleMsg;
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line, refuse};
use wasi::config::store as config;
use wasi::keyvalue::{atomics, store};

/// The errCode of a refused message.
const ERR_TOO_MANY: i32 = 20002;
/// Messages a sender may send per minute when the config does not say.
const DEFAULT_MAX_PER_MINUTE: u64 = 20;

fn max_per_minute() -> u64 {
    config::get("max_per_minute")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_PER_MINUTE)
}

/// The number of messages `sender` has sent in the current minute, this one included.
fn count(sender: &str) -> Result<u64, String> {
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs()
        / 60;
    let bucket = store::open("").map_err(|e| format!("{e:?}"))?;
    atomics::increment(&bucket, &format!("{sender}:{minute}"), 1).map_err(|e| format!("{e:?}"))
}

struct RateLimit;

impl Guest for RateLimit {
    fn handle(_delivery: Delivery, request: SingleMsg) -> Response {
        let sender = &request.message.send_id;
        let limit = max_per_minute();
        match count(sender) {
            Ok(sent) if sent > limit => {
                log_line(
                    Level::Info,
                    "refusing a message over the rate limit",
                    &[("sender", sender), ("sent", &sent.to_string())],
                );
                refuse(
                    ERR_TOO_MANY,
                    "too many messages, try again in a minute",
                    format!("at most {limit} messages per minute"),
                )
            }
            Ok(_) => go_on(),
            Err(error) => {
                log_line(
                    Level::Warn,
                    "rate limit unavailable; letting the message go",
                    &[("error", &error)],
                );
                go_on()
            }
        }
    }
}

export!(RateLimit);
