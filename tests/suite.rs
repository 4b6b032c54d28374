//! The integration suite, one test binary: the example plugins and test fixtures are built from
//! source once for all of it ([`common::wasm_dir`]), and the real `callback-host` binary is
//! started by the tests that need a server.
//!
//! - `app`: the protocol through the app function in process (no port, no plugins).
//! - `protocol`, `callbacks`, `conformance`: OpenIM's requests byte for byte, every command, the
//!   answers OpenIM reads.
//! - `hostile_plugins`, `log_forging`, `memory_budget`, `example_plugins`, `capabilities`,
//!   `outbound_http`: plugins against the limits, the log and the memory budget, the shipped
//!   examples, config values, key-value and outbound HTTP.
//! - `abusive_clients`, `access`, `rejected_callbacks`: clients that misbehave over real sockets;
//!   who may call (every authentication mode, TLS, the admin allow-list); callbacks rejected
//!   before any plugin, counted and shown.
//! - `queue`, `operations`, `trying_rules`, `scaling_out`, `deployment`, `image`: the durable
//!   queue; hot reload, admin endpoints and metrics; shadows, recording and replay; replicas
//!   behind HAProxy; the Kubernetes manifests, the alert rules and the Compose file; the container
//!   image built and run (podman or docker).
//! - `console`: the admin listener's console in a real browser (chromium), its actions, the
//!   misread refusal warning.
//! - `docs`: the README and `docs/`: links and anchors resolve, generated parts in place.
//! - `cli`: the plugin tools (`check`, `call`, `test`); `new_projects`: `new` in every language;
//!   `new_openim_api`: `new --openim-api` in every language, its call checked by its cases.
//! - `first_day`: the checkout's config read by default; a test that cannot run says so.
//! - `fuzz`: everything an untrusted party controls, mutated (`FUZZ_SEED` replays a failure).
//! - `bounded`, `isolation`: a plugin flooding a capability leaves the host's memory flat and the
//!   console's JSON small; no page written by one request reaches the next instance.
//! - `warm_up`: instances built ahead that run one canned call first (`warm_up_call`).
//! - `openim_api`: plugins acting on OpenIM through its API, against a fake of OpenIM's API layer
//!   written from its source (token, envelope, error codes); `openim_api_errors`: its errors as
//!   OpenIM means them (a refused body, a refused sign-in).

mod common;

mod abusive_clients;
mod access;
mod app;
mod bounded;
mod callbacks;
mod capabilities;
mod cli;
mod conformance;
mod console;
mod deployment;
mod docs;
mod example_plugins;
mod example_rules;
mod fake_openim;
mod first_day;
mod fuzz;
mod hostile_plugins;
mod image;
mod isolation;
mod log_forging;
mod memory_budget;
mod new_openim_api;
mod new_projects;
mod openim_api;
mod openim_api_errors;
mod operations;
mod outbound_http;
mod protocol;
mod queue;
mod rejected_callbacks;
mod scaling_out;
mod trying_rules;
mod warm_up;
