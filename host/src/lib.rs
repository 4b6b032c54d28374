//! callback-host: a WebAssembly plugin host serving OpenIM's webhook callbacks.
//!
//! OpenIM POSTs `<base url>/<callbackCommand>` with a JSON body; the host validates it, runs it
//! through the sandboxed Wasm components in `plugins/` that handle the command, and answers
//! `{actionCode, errCode, errMsg, errDlt, nextCode}` before OpenIM's timeout.
//!
//! # Layout
//! - [`config`]: settings from the TOML file, flags and environment, plain data at the bottom;
//!   one module per section (per command, per plugin, HTTP and access, the capabilities' grants
//!   and stores, the queue and the record), each with its resolution and checks.
//! - [`webhooks`]: reading OpenIM's own `config/webhooks.yml` (timeouts, enabled callbacks).
//! - [`protocol`]: OpenIM's wire format: the table of the 52 commands, the shapes of their requests
//!   and answers read from `wit/`, JSON to component values and back, the answers' rules.
//! - [`outcomes`]: what things came to (a request, a plugin call, a capability call, an OpenIM
//!   API call, a rejection, a closed connection, a shadow, a reload), each an enum with its label;
//!   the ground floor every room names outcomes from.
//! - [`runtime`]: running plugins: the engine and its epoch ticker, the one store builder, the
//!   sandbox, plugin output, limits, the compile cache, what a plugin is, the instances built
//!   ahead of the calls, and the one plugin call ([`runtime::call::Runner`]) that everything
//!   running plugin code goes through.
//! - [`capabilities`]: what a plugin may use beyond WASI's nothing, when granted: its config
//!   values, key-value buckets, outbound HTTP, OpenIM's API.
//! - [`registry`]: the chain of plugins of each command, in order; the swappable current set.
//! - [`loading`]: loading plugins in one place: a file compiled, checked and pre-instantiated
//!   (`load`), the plugin directory scanned at start and on every change (hot reload), and the
//!   config file watched.
//! - [`dispatch`]: the one chain runner: a callback through its plugins under deadlines and policy;
//!   its `answer` reads, merges and counts a plugin's answer the same way for the chain, shadows,
//!   the queue's workers and the `call` tool.
//! - [`queue`]: the durable queue of `queued` after-callbacks (a redb file behind its journal,
//!   or a Redis stream shared by replicas): answered once stored, delivered by workers (on
//!   threads below the answers' priority) with retries and dead letters.
//! - [`history`]: what the host did lately, in memory for the console: the last callbacks with
//!   each plugin's decision, per-command series, shadow disagreements, body capture.
//! - [`record`]: sampled before-callbacks and shadow disagreements, written for `replay`.
//! - [`origin`]: an origin of outbound HTTP as a grant lists it, and what it allows.
//! - [`metrics`]: Prometheus metrics owned by the app: it counts the outcomes of [`outcomes`].
//! - [`http`]: the accept loop with its connection limits, who may call (auth, TLS), routing a
//!   request to an answer, the 4xx answers.
//! - [`storage`]: the redb files the host writes (key-value, queue), made durable in groups.
//! - [`authoring`]: what plugin authors and operators run beside the server: `check`, `call`,
//!   `test` (cases), `new` (projects from `host/templates/`) and `replay`.
//! - [`untrusted`]: the one rule for text a plugin (or a client) wrote on its way into the log or
//!   an error: escaped and capped.
//! - [`util`]: small helpers of every layer (the time, hex, sibling files, private folders).
//! - `host`: [`build`] wires a [`Host`] from a config: what `serve` and the tests run.

pub mod authoring;
pub mod capabilities;
pub mod config;
pub mod dispatch;
pub mod history;
mod host;
pub mod http;
pub mod loading;
pub mod metrics;
pub mod origin;
pub mod outcomes;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod registry;
pub mod runtime;
pub mod storage;
#[cfg(test)]
mod test_plugins;
pub mod untrusted;
pub mod util;
pub mod webhooks;

pub use host::{Host, build};
