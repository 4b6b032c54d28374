//! {{name}}: a callback-host plugin for OpenIM's kick callback.

wit_bindgen::generate!({ path: "wit", world: "kick-plugin" });

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim::callback::log::{Level, log};
use openim::callback::types::{Delivery, Response};

struct Plugin;

impl Guest for Plugin {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        log(Level::Info, "kick seen", &[("group_id".into(), request.group_id.clone())]);
        // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
        let refuse = request.kicked_user_ids.iter().any(|u| u == "root");
        Response {
            action_code: 0,
            err_code: if refuse { 4001 } else { 0 },
            err_msg: if refuse { "root cannot be kicked".into() } else { String::new() },
            err_dlt: if refuse { delivery.operation_id } else { String::new() },
            next_code: if refuse { 1 } else { 0 },
        }
    }
}

export!(Plugin);
