//! Audit: writes one structured log line per kick through the host's `log` import, then lets the
//! operation go on.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kick-plugin",
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
});

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line};

struct Audit;

impl Guest for Audit {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        let reason = if request.reason.is_empty() {
            "(none given)"
        } else {
            &request.reason
        };
        log_line(
            Level::Info,
            "group members kicked",
            &[
                ("group_id", &request.group_id),
                ("kicked", &request.kicked_user_ids.join(",")),
                ("kicked_count", &request.kicked_user_ids.len().to_string()),
                ("reason", reason),
                ("operation_id", &delivery.operation_id),
            ],
        );
        go_on()
    }
}

export!(Audit);
