//! {{name}}: a callback-host plugin for OpenIM's `{{command}}`.

wit_bindgen::generate!({
    path: "wit",
    world: "{{world}}",
    // The shared types and the log come from the helpers (openim-helpers/).
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
});

use exports::openim::callback::{{module}}::{self as callback, Guest};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, go_on, log_line};

struct Plugin;

impl Guest for Plugin {
    fn handle(delivery: Delivery, request: callback::{{request_type}}) -> {{return_type}} {
        log_line(
            Level::Info,
            "callback seen",
            &[("request", &format!("{request:?}")), ("operation_id", &delivery.operation_id)],
        );
{{openim_api_call}}
        // Go on. To refuse: openim_helpers::refuse(err_code, err_msg, err_dlt).
        let response = go_on();
        {{rust_answer}}
    }
}

export!(Plugin);
