//! Rust types generated from `wit/` for what the host itself implements: the `log` import.
//! Plugins' exports are called through the shapes of [`crate::protocol::schema`], the same way
//! for every command.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kick-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use openim::callback::log::Level;
