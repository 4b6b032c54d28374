//! Running plugins: everything between a compiled component and one sandboxed call.
//!
//! - [`call`]: the one plugin call: permit, store or ready instance, delivery, deadline, failure
//!   cause, cost; the used instance dropped once the answer is on its way ([`call::Spent`]).
//!   Everything that runs a plugin goes through its [`call::Runner`].
//! - [`stock`]: instances built ahead, off the request path, each for one call.
//! - [`refill`]: the replacement of a stocked instance, built after the answer and warmed when
//!   asked; the arguments a handler is given.
//! - [`background`]: the lower priority of the threads that work beside the answers.
//! - [`engine`]: the wasmtime engine (pooling allocator, fuel, epochs), the linker, the epoch ticker.
//! - [`store`]: the one place a plugin store is made (limits, fuel, deadline, epoch callback):
//!   its [`store::Builder`].
//! - [`sandbox`]: the store data of one call: WASI that grants nothing, plugin output and the
//!   `log` import routed to the host's log.
//! - [`output`]: a plugin's stdout, stderr and `log` import lines: one budget per call, escaped.
//! - [`budget`]: the memory budget all plugin instances share.
//! - [`limits`]: the resource limiter and the names of the ways a call fails.
//! - [`cache`]: the on-disk cache of compiled plugins, checksummed.
//! - [`plugin`]: what a loaded plugin is: its linked component, limits, grants, handlers, idle
//!   instances.
//! - [`trust`]: refusing plugin and cache directories that other users can write to.
//! - [`bindings`]: Rust types generated from `wit/` for the host's own imports (`log`).

pub mod background;
pub mod bindings;
pub mod budget;
pub mod cache;
pub mod call;
pub mod engine;
pub mod limits;
pub mod output;
pub mod plugin;
pub mod refill;
pub mod sandbox;
pub mod stock;
pub mod store;
pub mod trust;
