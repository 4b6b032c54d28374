//! {{name}}: a callback-host plugin for OpenIM's kick callback.

wit_bindgen::generate!({
    path: "wit",
    world: "{{world}}",
    // The shared types and the log come from the helpers (openim-helpers/).
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
});

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line, refuse};

struct Plugin;

impl Guest for Plugin {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        log_line(Level::Info, "kick seen", &[("group_id", &request.group_id)]);
{{openim_api_call}}
        // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
        if request.kicked_user_ids.iter().any(|u| u == "root") {
            return refuse(4001, "root cannot be kicked", delivery.operation_id);
        }
        go_on()
    }
}

export!(Plugin);
