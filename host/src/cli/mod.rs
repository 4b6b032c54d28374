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
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

use callback_host::config::Config;

/// The file every command reads when no `--config` (or `CALLBACK_HOST_CONFIG`) names one, if it
/// is in the current directory: the checkout's own, beside `plugins/`.
pub const DEFAULT_CONFIG: &str = "callback-host.toml";

/// Which config file is in force, and why: said at start, and in the errors a missing grant gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// Named by `--config` or `CALLBACK_HOST_CONFIG`.
    Given(PathBuf),
    /// [`DEFAULT_CONFIG`], found in the current directory.
    Found(PathBuf),
    /// No file: the built-in defaults (no grants, no config values).
    Defaults,
}

impl ConfigFile {
    /// The file named on the command line, else [`DEFAULT_CONFIG`] when it exists here, else none.
    pub fn resolve(given: Option<&Path>) -> Self {
        match given {
            Some(path) => Self::Given(path.to_owned()),
            None if Path::new(DEFAULT_CONFIG).is_file() => {
                Self::Found(PathBuf::from(DEFAULT_CONFIG))
            }
            None => Self::Defaults,
        }
    }

    /// The file to read (and to watch), if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Given(path) | Self::Found(path) => Some(path),
            Self::Defaults => None,
        }
    }

    /// The config it holds, or the defaults.
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(match self.path() {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        })
    }

    /// One line saying which settings are in force.
    pub fn describe(&self) -> String {
        match self {
            Self::Given(path) => format!("config: {}", path.display()),
            Self::Found(path) => format!(
                "config: {} (found in the current directory; --config FILE reads another)",
                path.display()
            ),
            Self::Defaults => format!(
                "config: none (no --config FILE and no ./{DEFAULT_CONFIG}): built-in defaults, \
                 no plugin is granted anything"
            ),
        }
    }

    /// `error`, with a hint when it is a plugin refused for a grant and no file was read: the
    /// grant is most likely in a config file this command was not given.
    pub fn hint(&self, error: anyhow::Error) -> anyhow::Error {
        use callback_host::authoring::tools::ToolError;
        use callback_host::loading::load::LoadError;
        let not_granted = error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<LoadError>(),
                Some(LoadError::NotGranted { .. })
            ) || matches!(
                cause.downcast_ref::<ToolError>(),
                Some(ToolError::Load(LoadError::NotGranted { .. }))
            )
        });
        if not_granted && *self == Self::Defaults {
            error.context(format!(
                "no config file was read, so no plugin is granted anything: name the one with \
                 its [plugin_grants] with --config FILE (or run where ./{DEFAULT_CONFIG} is)"
            ))
        } else {
            error
        }
    }
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
