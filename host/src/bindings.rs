//! Rust types generated from `wit/callback.wit` (the `kick-plugin` world).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kick-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use exports::openim::callback::kick_group_member::{
    Guest as KickGuest, GuestIndices as KickIndices, KickRequest,
};
pub use openim::callback::log::Level;
pub use openim::callback::types::{Delivery, Response};

/// The name under which a component exports the kick interface.
pub const KICK_INTERFACE: &str = "openim:callback/kick-group-member@0.1.0";

impl From<crate::protocol::KickRequest> for KickRequest {
    fn from(body: crate::protocol::KickRequest) -> Self {
        Self {
            callback_command: body.callback_command,
            group_id: body.group_id,
            kicked_user_ids: body.kicked_user_ids,
            reason: body.reason,
        }
    }
}

impl From<Response> for crate::protocol::CallbackResponse {
    fn from(answer: Response) -> Self {
        Self {
            action_code: answer.action_code,
            err_code: answer.err_code,
            err_msg: answer.err_msg,
            err_dlt: answer.err_dlt,
            next_code: answer.next_code,
        }
    }
}
