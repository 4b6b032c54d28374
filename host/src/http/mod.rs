//! The HTTP side: the accept loop, routing a request to an answer, and the 4xx answers of
//! rejected requests.
//!
//! - [`server`]: the HTTP/1.1 accept loop with graceful shutdown.
//! - [`routing`]: an HTTP request to an answer (callbacks and the admin endpoints).
//! - [`errors`]: rejected requests and their 4xx answers.

pub mod errors;
pub mod routing;
pub mod server;
