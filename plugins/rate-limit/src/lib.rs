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
    generate_all,
});

use exports::openim::callback::before_send_single_msg::Guest;
use openim::callback::log::{Level, log};
use openim::callback::message_types::SingleMsg;
use openim::callback::types::{Delivery, Response};
use wasi::config::store as config;
use wasi::keyvalue::{atomics, store};

/// The errCode of a refused message.
const ERR_TOO_MANY: i32 = 20002;
/// Messages a sender may send per minute when the config does not say.
const DEFAULT_MAX_PER_MINUTE: u64 = 20;

fn go_on() -> Response {
    Response {
        action_code: 0,
        err_code: 0,
        err_msg: String::new(),
        err_dlt: String::new(),
        next_code: 0,
    }
}

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
                log(
                    Level::Info,
                    "refusing a message over the rate limit",
                    &[
                        ("sender".to_string(), sender.clone()),
                        ("sent".to_string(), sent.to_string()),
                    ],
                );
                Response {
                    action_code: 0,
                    err_code: ERR_TOO_MANY,
                    err_msg: "too many messages, try again in a minute".into(),
                    err_dlt: format!("at most {limit} messages per minute"),
                    next_code: 1,
                }
            }
            Ok(_) => go_on(),
            Err(error) => {
                log(
                    Level::Warn,
                    "rate limit unavailable; letting the message go",
                    &[("error".to_string(), error)],
                );
                go_on()
            }
        }
    }
}

export!(RateLimit);
