//! The plugin tools of the command line: `check` (which callbacks does a file handle?) and `call`
//! (run one request through a plugin under the configured limits).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::{Capabilities, ImportStatus, import_status};
use crate::config::Config;
use crate::dispatch::{Answered, Attempt, CallStats, Callback, Dispatcher, Input, policy_answer};
use crate::loading::load::{LoadError, Loading, load_plugin, read_plugin};
use crate::metrics::Metrics;
use crate::protocol::answer::Merge;
use crate::protocol::{BodyError, CallbackResponse};
use crate::registry::{CurrentPlugins, Link};
use crate::runtime::budget::MemoryBudget;
use crate::runtime::cache::CompileCache;
use crate::runtime::call::{Runner, Spent};
use crate::runtime::engine;
use crate::runtime::limits::Failure;
use crate::runtime::plugin::{Entry, Plugin, file_digest, plugin_name};

/// A sample kick, used by `call` when given no request.
pub const SAMPLE_KICK: &str = "{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"admin\"],\"reason\":\"Violation of group rules\"}\n";

/// Why a tool could not run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The engine, the linker or the capabilities could not be set up (the error's chain kept).
    #[error("cannot set up the engine: {0:#}")]
    Engine(anyhow::Error),
    #[error("the request has no callbackCommand naming a command OpenIM sends")]
    NoCommand,
    #[error("the plugin does not handle {0} (it handles: {1})")]
    NotHandled(String, String),
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The commands the plugin handles, by OpenIM's names, and through which interface.
    pub handles: Vec<(&'static str, Entry)>,
    /// The callback interfaces the component exports.
    pub exports: Vec<String>,
    /// Everything the component imports, and how the host treats it for this plugin.
    pub imports: Vec<(String, ImportStatus)>,
}

/// The runner a tool calls plugins with (the server's engine, limits and capabilities), and the
/// plugin at `path` loaded with it exactly as the server would.
/// Components this large (a Python, JavaScript or Go runtime inside) take seconds to compile: the
/// tools say so before they start.
const SAY_COMPILING_FROM: usize = 1 << 20;

fn runner_and_plugin(
    path: &Path,
    config: Arc<Config>,
    capabilities: Arc<Capabilities>,
    metrics: Arc<Metrics>,
) -> Result<(Runner, Plugin), ToolError> {
    let engine = engine::build_engine(&config).map_err(|e| ToolError::Engine(e.into()))?;
    let linker = engine::build_linker(&engine).map_err(|e| ToolError::Engine(e.into()))?;
    let budget = Arc::new(MemoryBudget::new(config.memory_budget));
    let runner = Runner::new(engine, Arc::clone(&config), budget, capabilities, metrics);
    let bytes = read_plugin(path)?;
    let limits = config.plugin(&plugin_name(path));
    let cache = compile_cache(&config);
    if bytes.len() >= SAY_COMPILING_FROM
        && !cache
            .as_ref()
            .is_some_and(|c| c.holds(runner.engine(), &bytes))
    {
        // A tool at a terminal: without this line, `check` of a Python plugin is 30 s of silence.
        eprintln!(
            "compiling {} ({} MiB, not in the compile cache yet): a Python or JavaScript plugin \
             takes up to 30 s, once; later runs and the server load it in milliseconds",
            path.display(),
            bytes.len() >> 20
        );
    }
    let loading = Loading {
        runner: &runner,
        linker: &linker,
        cache: cache.as_ref(),
    };
    let plugin = load_plugin(&loading, path, &bytes, file_digest(&bytes), limits)?;
    Ok((runner, plugin))
}

/// The server's compile cache, when its directory exists (or can be made) and is private like
/// the server requires: `check` and `call` then load a plugin the server or an earlier run
/// compiled in milliseconds (a Python or JS component takes seconds to compile). A cache that
/// cannot be used is left out; the tool compiles.
fn compile_cache(config: &Config) -> Option<CompileCache> {
    let dir = config.cache_dir.as_ref()?;
    crate::util::create_private_dir(dir).ok()?;
    crate::runtime::trust::check_private(dir, "the compile cache directory").ok()?;
    Some(CompileCache::new(dir.clone()))
}

/// Loads `path` exactly as the server would and lists what it handles, exports and imports.
pub fn check(path: &Path, config: &Config) -> Result<CheckReport, ToolError> {
    let config = Arc::new(config.clone());
    let metrics = Arc::new(Metrics::default());
    let capabilities = Arc::new(Capabilities::values_only(
        Arc::clone(&config),
        Arc::clone(&metrics),
    ));
    let (runner, plugin) = runner_and_plugin(path, config, capabilities, metrics)?;
    let engine = runner.engine();
    let ty = plugin.pre.component().component_type();
    let exports = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("openim:callback/"))
        .collect();
    let imports = ty
        .imports(engine)
        .map(|(name, _)| {
            let status = import_status(&plugin.name, name, &plugin.capabilities.grants);
            (name.to_owned(), status)
        })
        .collect();
    let handles = plugin
        .handles
        .iter()
        .map(|h| (h.command, h.entry))
        .collect();
    Ok(CheckReport {
        handles,
        exports,
        imports,
    })
}

/// The outcome of `call`.
#[derive(Debug)]
pub struct CallReport {
    /// What the host would answer OpenIM (the policy answer when the plugin failed).
    pub answer: Vec<u8>,
    /// Why the plugin failed, if it did.
    pub failure: Option<Failure>,
    /// What the call cost (when it finished).
    pub stats: Option<CallStats>,
    /// The plugin's own answer, when it wrote `nextCode 1` with a non-zero `actionCode`: meant
    /// as a refusal, read by OpenIM as "go on".
    pub misread_refusal: Option<CallbackResponse>,
}

/// Runs one request (any command; the body's `callbackCommand` names it) through the plugin at
/// `path` under `config`'s limits, and returns the answer the server would give with that plugin
/// alone.
pub async fn call(path: &Path, config: Arc<Config>, body: &str) -> Result<CallReport, ToolError> {
    let named: String = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| Some(v.get("callbackCommand")?.as_str()?.to_owned()))
        .unwrap_or_default();
    let named = named.as_str();
    let metrics = Arc::new(Metrics::default());
    let capabilities = Arc::new(
        Capabilities::open(Arc::clone(&config), Arc::clone(&metrics))
            .await
            .map_err(ToolError::Engine)?,
    );
    let (runner, plugin) = runner_and_plugin(
        path,
        Arc::clone(&config),
        capabilities,
        Arc::clone(&metrics),
    )?;
    let handler = plugin
        .handles
        .iter()
        .find(|h| h.command == named)
        .cloned()
        .ok_or_else(|| {
            let handled: Vec<&str> = plugin.handles.iter().map(|h| h.command).collect();
            if named.is_empty() {
                ToolError::NoCommand
            } else {
                ToolError::NotHandled(named.to_owned(), handled.join(", "))
            }
        })?;
    let received = Instant::now();
    let mut callback = Callback::read(
        handler.command,
        "callback-host-call".into(),
        body.to_owned().into(),
        received,
    )?;
    let dispatcher = Dispatcher::new(
        Arc::new(runner),
        Arc::new(CurrentPlugins::default()),
        metrics,
        None,
        Arc::new(crate::history::History::default()),
    );
    let settings = config.command(handler.command);
    let deadline = received + config.time_allowed(handler.command);
    let mut merge = callback
        .shape
        .zip(callback.parsed.take())
        .map(|(c, v)| Merge::new(c, v));
    let input = match (&handler.entry, &merge) {
        (Entry::Typed(_), Some(merge)) => Input::Owned(merge.request.clone()),
        _ => Input::Json(body),
    };
    let link = Link {
        plugin: Arc::new(plugin),
        entry: handler.entry,
    };
    // The used instance drops with the tool.
    let spent = Spent::default();
    let call = Attempt {
        link: &link,
        position: 0,
        callback: &callback,
        from: received,
        deadline,
        fuel: settings.fuel,
        spent: &spent,
    };
    let outcome = dispatcher
        .answer(call, input, merge.as_mut())
        .await
        .result
        .map(|Answered { response, stats }| {
            let answer = match &merge {
                Some(merge) if !response.is_refusal() => merge.go_on_answer(),
                _ => response.to_json(),
            };
            let misread = response.is_misread_refusal().then_some(response);
            (answer, stats, misread)
        });
    match outcome {
        Ok((answer, stats, misread_refusal)) => Ok(CallReport {
            answer,
            failure: None,
            stats: Some(stats),
            misread_refusal,
        }),
        Err(failure) => {
            let answer = policy_answer(settings, &link.plugin.name, &failure)
                .unwrap_or_else(CallbackResponse::go_on)
                .to_json();
            Ok(CallReport {
                answer,
                failure: Some(failure),
                stats: None,
                misread_refusal: None,
            })
        }
    }
}
