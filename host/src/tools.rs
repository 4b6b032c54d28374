//! The plugin tools of the command line: `check` (does a file implement the world?) and `call`
//! (run one request through a plugin under the configured limits).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::bindings;
use crate::config::Config;
use crate::dispatch::{CallStats, Dispatcher, Request, policy_answer};
use crate::engine::{self, EpochTicker};
use crate::limits::Failure;
use crate::metrics::Metrics;
use crate::plugin::{LoadError, Plugin, load_plugin, plugin_name, read_plugin};
use crate::protocol::{CallbackResponse, KICK_COMMAND, KickRequest};
use crate::registry::CurrentPlugins;

/// A sample kick, used by `call` when given no request.
pub const SAMPLE_KICK: &str = "{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"admin\"],\"reason\":\"Violation of group rules\"}\n";

/// Why a tool could not run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot set up the engine: {0}")]
    Engine(String),
}

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The callback interfaces the component exports.
    pub exports: Vec<String>,
    /// Everything the component imports, and whether the host's world provides it.
    pub imports: Vec<String>,
}

fn engine_and_plugin(
    path: &Path,
    config: &Config,
) -> Result<(wasmtime::Engine, Plugin), ToolError> {
    let engine = engine::build_engine(config).map_err(|e| ToolError::Engine(format!("{e:#}")))?;
    let linker = engine::build_linker(&engine).map_err(|e| ToolError::Engine(format!("{e:#}")))?;
    let bytes = read_plugin(path)?;
    let limits = config.plugin(&plugin_name(path));
    let plugin = load_plugin(&engine, &linker, None, path, &bytes, limits)?;
    Ok((engine, plugin))
}

/// Loads `path` exactly as the server would and lists what it exports and imports.
pub fn check(path: &Path, config: &Config) -> Result<CheckReport, ToolError> {
    let (engine, plugin) = engine_and_plugin(path, config)?;
    let ty = plugin.pre.component().component_type();
    let exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("openim:callback/"))
        .collect();
    let imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    Ok(CheckReport { exports, imports })
}

/// The outcome of `call`.
#[derive(Debug)]
pub struct CallReport {
    /// What the host would answer OpenIM (the policy answer when the plugin failed).
    pub answer: CallbackResponse,
    /// Why the plugin failed, if it did.
    pub failure: Option<Failure>,
    /// What the call cost (when it finished).
    pub stats: Option<CallStats>,
}

/// Runs one kick request through the plugin at `path` under `config`'s limits.
pub async fn call(
    path: &Path,
    config: Arc<Config>,
    request: KickRequest,
) -> Result<CallReport, ToolError> {
    let (engine, plugin) = engine_and_plugin(path, &config)?;
    let _ticker = EpochTicker::start(&engine).map_err(|e| ToolError::Engine(e.to_string()))?;
    let dispatcher = Dispatcher::new(
        engine,
        Arc::new(CurrentPlugins::default()),
        Arc::clone(&config),
        Arc::new(Metrics::default()),
    );
    let received = Instant::now();
    let delivery = Request {
        command: KICK_COMMAND,
        operation_id: "callback-host-call".into(),
        received,
    };
    let body = bindings::KickRequest::from(request);
    let settings = config.command(KICK_COMMAND);
    let deadline = received + config.budget(KICK_COMMAND);
    match dispatcher
        .call_kick(&plugin, 0, &delivery, &body, deadline, settings.fuel)
        .await
    {
        Ok((answer, stats)) => Ok(CallReport {
            answer: answer.into(),
            failure: None,
            stats: Some(stats),
        }),
        Err(failure) => {
            let answer = policy_answer(settings, &plugin.name, &failure)
                .unwrap_or_else(CallbackResponse::go_on);
            Ok(CallReport {
                answer,
                failure: Some(failure),
                stats: None,
            })
        }
    }
}
