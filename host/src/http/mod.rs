//! The HTTP side: the accept loop, routing a request to an answer, and the 4xx answers of
//! rejected requests.
//!
//! - [`server`]: the HTTP/1.1 accept loop: the connection cap and graceful shutdown.
//! - [`connection`]: one connection under its read and idle timeouts, closed gracefully.
//! - [`connections`]: the open connections, so that idle ones make room at the caps.
//! - [`routing`]: an HTTP request to an answer (callbacks and the admin endpoints).
//! - [`console`]: the web page of the admin listener and its JSON (what the host is doing).
//! - [`access`]: who may call (Basic credentials, secret path, source networks).
//! - [`respond`]: building an answer (status, content type, body).
//! - `readiness`: the stores this replica needs, probed for `/readyz` and `/metrics`.
//! - [`errors`]: rejected requests and their 4xx answers.
//! - [`rejected`]: rejected callbacks made loud: counted by reason, logged once per source.

pub mod access;
pub mod connection;
pub mod connections;
pub mod console;
pub mod errors;
mod readiness;
pub mod rejected;
pub mod respond;
pub mod routing;
pub mod server;
