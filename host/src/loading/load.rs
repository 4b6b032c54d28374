//! Loading plugins: compile a `.wasm` file, find the callbacks it handles (the typed interfaces it
//! exports, and the commands its generic JSON interface declares, asked through the one plugin
//! call), and pre-instantiate it against the linker, so that everything that can fail fails at
//! load time, with the file's name and the reason, never on the request path.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, ComponentExportIndex, Linker, Val};

use crate::config::PluginLimits;
use crate::protocol::commands::{self, looks_like_command};
use crate::protocol::schema::Catalog;
use crate::runtime::cache::{CompileCache, Source};
use crate::runtime::call::{Args, Call, Runner, Spent};
use crate::runtime::limits::Failure;
use crate::runtime::plugin::{Entry, Handler, Plugin, plugin_name};
use crate::runtime::sandbox::PluginState;
use crate::runtime::stock::{Stock, WarmUp};
use crate::untrusted::Untrusted;

/// The generic interface: any command as JSON.
pub const JSON_INTERFACE: &str = "openim:callback/json-handler@0.1.0";
/// Most commands a JSON plugin may declare.
const MAX_DECLARED: usize = 256;

/// Why a file in `plugins/` was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "plugin {path} is not a WebAssembly component: {}",
        Untrusted::line(reason)
    )]
    NotAComponent { path: PathBuf, reason: String },
    #[error("plugin {path} is not valid: {}", Untrusted::line(&format!("{cause:#}")))]
    Compile {
        path: PathBuf,
        /// wasmtime's error, with its chain (not named `source`: it is shown in the message).
        cause: wasmtime::Error,
    },
    #[error(
        "plugin {path} handles no callback: it exports no interface of openim:callback (such as openim:callback/kick-group-member@0.1.0 or {JSON_INTERFACE}); it exports: {}",
        Untrusted::line(exports)
    )]
    NoCallbackExport { path: PathBuf, exports: String },
    #[error(
        "plugin {path} declares commands the host cannot take: {}",
        Untrusted::line(reason)
    )]
    Declared { path: PathBuf, reason: String },
    #[error("plugin {path} cannot be linked: {}", Untrusted::line(&format!("{cause:#}")))]
    Link {
        path: PathBuf,
        /// wasmtime's error, with its chain.
        cause: wasmtime::Error,
    },
    #[error(
        "plugin {path} imports what it is not granted: {} (a running `serve` reads \
         [plugin_grants] at start: restart it after changing them)",
        Untrusted::line(reason)
    )]
    NotGranted { path: PathBuf, reason: String },
}

/// Reads a plugin file.
pub fn read_plugin(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// What loading a plugin needs from the host.
pub struct Loading<'a> {
    /// Runs a JSON plugin's `commands()`; its engine compiles, its capabilities say what each
    /// plugin may use.
    pub runner: &'a Runner,
    /// The host's imports.
    pub linker: &'a Linker<PluginState>,
    /// Where compiled plugins are kept, if anywhere.
    pub cache: Option<&'a CompileCache>,
}

/// Compiles and validates the `bytes` of the plugin file at `path`, whose [`file_digest`] is
/// `sha256`.
pub fn load_plugin(
    loading: &Loading<'_>,
    path: &Path,
    bytes: &[u8],
    sha256: [u8; 32],
    limits: PluginLimits,
) -> Result<Plugin, LoadError> {
    let Loading {
        runner,
        linker,
        cache,
    } = *loading;
    let engine = runner.engine();
    check_component_header(bytes).map_err(|reason| LoadError::NotAComponent {
        path: path.to_owned(),
        reason: reason.to_owned(),
    })?;
    let started = Instant::now();
    let compiled = match cache {
        Some(cache) => cache.load_or_compile(engine, bytes),
        None => Component::new(engine, bytes).map(|c| (c, Source::Compiled)),
    };
    let (component, source) = compiled.map_err(|cause| LoadError::Compile {
        path: path.to_owned(),
        cause,
    })?;
    let load_ms = started.elapsed().as_millis();
    let link_error = |cause: wasmtime::Error| LoadError::Link {
        path: path.to_owned(),
        cause,
    };
    let pre = linker.instantiate_pre(&component).map_err(link_error)?;
    let name: Arc<str> = plugin_name(path).into();
    let capabilities = runner.capabilities().for_plugin(&name);
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(import, _)| import.to_owned())
        .collect();
    if let Some(reason) = crate::capabilities::first_denied(
        &name,
        imports.iter().map(String::as_str),
        &capabilities.grants,
    ) {
        return Err(LoadError::NotGranted {
            path: path.to_owned(),
            reason,
        });
    }
    let mut plugin = Plugin {
        name: Arc::clone(&name),
        limits,
        pre,
        handles: Vec::new(),
        idle: Mutex::new(Vec::new()),
        // Made once its handlers are known (a warm-up call needs them).
        stock: Arc::new(Stock::new(0, None, &name, runner.metrics())),
        capabilities,
        sha256,
        file_bytes: bytes.len() as u64,
        loaded_ms: crate::util::unix_ms(),
        calls: limits
            .max_concurrent_calls
            .map(|calls| Arc::new(tokio::sync::Semaphore::new(calls as usize))),
    };
    plugin.handles = handlers(runner, &plugin).map_err(|reason| match reason {
        HandlerError::None => LoadError::NoCallbackExport {
            path: path.to_owned(),
            exports: {
                let exports: Vec<String> = component
                    .component_type()
                    .exports(engine)
                    .map(|(name, _)| name.to_owned())
                    .collect();
                if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.join(", ")
                }
            },
        },
        HandlerError::Declared(reason) => LoadError::Declared {
            path: path.to_owned(),
            reason,
        },
    })?;
    // Reuse mode keeps instances of its own; a stock would only hold slots.
    let stocked = if limits.reuse_instances > 1 {
        0
    } else {
        limits.stock_instances
    };
    let warm_up = (limits.warm_up_call && stocked > 0)
        .then(|| warm_up(&plugin.handles))
        .flatten();
    plugin.stock = Arc::new(Stock::new(stocked, warm_up, &name, runner.metrics()));
    let from = match source {
        Source::Cache => "cache",
        Source::Compiled => "compiled",
    };
    let commands: Vec<&str> = plugin.handles.iter().map(|h| h.command).collect();
    tracing::info!(plugin = %plugin.name, path = %path.display(), size_bytes = bytes.len(), load_ms,
        from, handles = ?commands, "plugin loaded");
    Ok(plugin)
}

/// The canned call that warms `handles`' plugin: its first handler, given its command's request
/// of empty values (for the generic interface, that request's JSON with `callbackCommand`).
fn warm_up(handles: &[Handler]) -> Option<WarmUp> {
    use crate::protocol::convert::{encode_record, sample_record};
    let handler = handles.first()?;
    let shape = Catalog::get().command(handler.command);
    let (export, request) = match handler.entry {
        Entry::Typed(export) => (export, sample_record(&shape?.request)),
        Entry::Json(export) => {
            let mut object = serde_json::Map::new();
            object.insert("callbackCommand".into(), handler.command.into());
            if let Some(shape) = shape {
                encode_record(&shape.request, &sample_record(&shape.request), &mut object);
            }
            (
                export,
                Val::String(serde_json::Value::Object(object).to_string()),
            )
        }
    };
    Some(WarmUp {
        export,
        command: handler.command,
        request,
    })
}

enum HandlerError {
    /// It handles nothing.
    None,
    /// Its JSON interface declared something unusable.
    Declared(String),
}

/// The commands a plugin handles: its typed exports, then what its JSON interface declares.
fn handlers(runner: &Runner, plugin: &Plugin) -> Result<Vec<Handler>, HandlerError> {
    let component = plugin.pre.component();
    let function = |interface: &str, function: &str| {
        let interface = component.get_export_index(None, interface)?;
        component.get_export_index(Some(&interface), function)
    };
    let mut handles = Vec::new();
    for command in Catalog::get().commands() {
        if let Some(index) = function(command.spec.interface, command.spec.function) {
            handles.push(Handler {
                command: command.spec.name,
                entry: Entry::Typed(index),
            });
        }
    }
    if let (Some(list), Some(handle)) = (
        function(JSON_INTERFACE, "commands"),
        function(JSON_INTERFACE, "handle"),
    ) {
        let declared = declared_commands(runner, plugin, list).map_err(|failure| {
            HandlerError::Declared(format!("calling commands() failed: {failure}"))
        })?;
        if declared.len() > MAX_DECLARED {
            return Err(HandlerError::Declared(format!(
                "{} commands, more than {MAX_DECLARED}",
                declared.len()
            )));
        }
        for declared in declared {
            let command = match commands::find(&declared) {
                Some(spec) => spec.name,
                None if looks_like_command(&declared) => {
                    tracing::warn!(plugin = %plugin.name, command = declared,
                        "the plugin declares a command this host does not know; it will be routed to it as JSON");
                    intern(&declared)
                }
                None => {
                    return Err(HandlerError::Declared(format!(
                        "`{}` is not a callback command (callback<Name>Command)",
                        Untrusted::new(&declared)
                    )));
                }
            };
            if handles.iter().any(|h| h.command == command) {
                return Err(HandlerError::Declared(format!(
                    "{command} is handled twice (typed interface and JSON, or declared twice)"
                )));
            }
            handles.push(Handler {
                command,
                entry: Entry::Json(handle),
            });
        }
    }
    if handles.is_empty() {
        return Err(HandlerError::None);
    }
    Ok(handles)
}

/// Calls `commands()` of a JSON plugin once, under the default limits, on a thread of its own (the
/// loader may run inside the server's runtime).
fn declared_commands(
    runner: &Runner,
    plugin: &Plugin,
    export: ComponentExportIndex,
) -> Result<Vec<String>, Failure> {
    let config = runner.config();
    let allowed = config.defaults.timeout.saturating_sub(config.safety_margin);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|_| Failure::Host("the loader's runtime could not start"))?;
                let (result, _) = runtime
                    .block_on(runner.run(Call {
                        plugin,
                        export,
                        command: "(load)",
                        operation_id: &Arc::from(""),
                        args: Args::None,
                        deadline: Instant::now() + allowed,
                        allowed,
                        fuel: config.defaults.fuel,
                        spent: &Spent::default(),
                    }))
                    .result?;
                match result {
                    Val::List(items) => Ok(items
                        .into_iter()
                        .filter_map(|v| match v {
                            Val::String(s) => Some(s),
                            _ => None,
                        })
                        .collect()),
                    _ => Err(Failure::InvalidAnswer("commands() returned no list".into())),
                }
            })
            .join()
            .unwrap_or_else(|_| Err(Failure::Host("commands() panicked the loader")))
    })
}

/// A `'static` name for a command the host does not know, declared by a JSON plugin. Each
/// distinct name is kept once, and only names shaped like commands are taken, so this is bounded.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// Tells a component from a core module or a file that is not WebAssembly at all, so the
/// message says which.
fn check_component_header(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes {
        [0x00, b'a', b's', b'm', _, _, 0x01, 0x00, ..] => Ok(()),
        [0x00, b'a', b's', b'm', _, _, 0x00, 0x00, ..] => Err(
            "it is a core WebAssembly module; build for wasm32-wasip2 or wrap it with `wasm-tools component new`",
        ),
        _ => Err("it does not start with the WebAssembly header `\\0asm`"),
    }
}
