//! {{name}}: a callback-host plugin for OpenIM's `{{command}}`.

wit_bindgen::generate!({
    path: "wit",
    world: "{{world}}",
});

use exports::openim::callback::{{module}}::{self as callback, Guest};
use openim::callback::log::{Level, log};
use openim::callback::types::{Delivery, Response};

struct Plugin;

impl Guest for Plugin {
    fn handle(delivery: Delivery, request: callback::{{request_type}}) -> {{return_type}} {
        log(
            Level::Info,
            "callback seen",
            &[("request".to_string(), format!("{request:?}"))],
        );
        // Go on (actionCode 0, nextCode 0). To refuse: next_code 1 with your err_code and err_msg.
        let response = Response {
            action_code: 0,
            err_code: 0,
            err_msg: String::new(),
            err_dlt: delivery.operation_id,
            next_code: 0,
        };
        {{rust_answer}}
    }
}

export!(Plugin);
