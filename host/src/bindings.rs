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
