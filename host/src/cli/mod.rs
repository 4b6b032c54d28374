//! What each command of the command line does; `main.rs` holds the commands and their flags.
//!
//! - [`serve`]: the server: config from file, flags and OpenIM's webhooks.yml, listeners, signals.
//! - [`tools`]: the plugin authors' tools: `check`, `call`, `new`, `replay`.
//! - [`queue`]: `queue stats|dead-letters|requeue|purge`.
//! - [`probe`]: `probe URL`, the container's health check.
//! - [`log_writer`]: the log's writer, in batches from a thread of its own.

pub mod log_writer;
pub mod probe;
pub mod queue;
pub mod serve;
pub mod tools;

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use callback_host::config::Config;

/// The config file at `path`, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

/// The one tokio runtime builder: every command that needs a runtime runs on one of these.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Logs to stderr from a thread of its own, in batches ([`log_writer`]), so that no request ever
/// waits on log I/O or wakes a thread; when the writer falls behind, lines are dropped rather
/// than requests slowed. Keep the guard until exit: dropping it writes what is pending.
pub fn init_logging(json: bool) -> log_writer::Flush {
    init_logging_at(json, "info")
}

/// Like [`init_logging`], at `level` unless `RUST_LOG` says otherwise.
pub fn init_logging_at(json: bool, level: &str) -> log_writer::Flush {
    let (writer, guard) = log_writer::BatchWriter::stderr();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}
