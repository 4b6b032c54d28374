//! Audit: writes one structured log line per kick through the host's `log` import, then lets the
//! operation go on.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kick-plugin",
});

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim::callback::log::{Level, log};
use openim::callback::types::{Delivery, Response};

struct Audit;

impl Guest for Audit {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        let reason = if request.reason.is_empty() {
            "(none given)".to_string()
        } else {
            request.reason
        };
        log(
            Level::Info,
            "group members kicked",
            &[
                ("group_id".to_string(), request.group_id),
                ("kicked".to_string(), request.kicked_user_ids.join(",")),
                (
                    "kicked_count".to_string(),
                    request.kicked_user_ids.len().to_string(),
                ),
                ("reason".to_string(), reason),
                ("operation_id".to_string(), delivery.operation_id),
            ],
        );
        Response {
            action_code: 0,
            err_code: 0,
            err_msg: String::new(),
            err_dlt: String::new(),
            next_code: 0,
        }
    }
}

export!(Audit);
