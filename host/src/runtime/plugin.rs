//! Loading plugins: compile a `.wasm` file, find the callbacks it handles (the typed interfaces it
//! exports, and the commands its generic JSON interface declares), and pre-instantiate it against
//! the linker, so that everything that can fail fails at load time, with the file's name and the
//! reason, never on the request path.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre, Linker, Val};
use wasmtime::{Engine, Store};

use crate::capabilities::{Capabilities, PluginCapabilities};
use crate::config::{Config, PluginLimits};
use crate::protocol::commands::{self, looks_like_command};
use crate::protocol::schema::Catalog;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::cache::{CompileCache, Source};
use crate::runtime::limits::Failure;
use crate::runtime::output::CallTag;
use crate::runtime::sandbox::PluginState;
use crate::untrusted::Untrusted;

/// The generic interface: any command as JSON.
pub const JSON_INTERFACE: &str = "openim:callback/json-handler@0.1.0";
/// Most commands a JSON plugin may declare.
const MAX_DECLARED: usize = 256;
/// A plugin ready to be instantiated once per request.
pub struct Plugin {
    /// The file name without `.wasm`: the name in logs and in `[plugins_limits.<name>]`.
    pub name: Arc<str>,
    /// Its resource caps.
    pub limits: PluginLimits,
    /// Compiled, type-checked and linked: instantiating it is the only per-request work left.
    pub pre: InstancePre<PluginState>,
    /// The commands it handles and how each is called, read once at load time.
    pub handles: Vec<Handler>,
    /// Instances kept for reuse (only when `limits.reuse_instances` > 1).
    pub idle: Mutex<Vec<WarmInstance>>,
    /// What it may use beyond WASI's nothing (config values, key-value, HTTP).
    pub capabilities: PluginCapabilities,
    /// SHA-256 of the file it was loaded from: tells replicas' plugin sets apart in `/readyz`.
    pub sha256: [u8; 32],
}

/// An instance kept between requests in reuse mode, with its store.
pub struct WarmInstance {
    /// The store holding the instance.
    pub store: Store<PluginState>,
    /// The instance, for its exports.
    pub instance: Instance,
    /// Requests it has served.
    pub uses: u32,
}

/// One command a plugin handles.
#[derive(Debug, Clone)]
pub struct Handler {
    /// OpenIM's name of the command (interned for a command the host does not know).
    pub command: &'static str,
    /// How it is called.
    pub entry: Entry,
}

/// How a plugin is called for a command.
#[derive(Debug, Clone, Copy)]
pub enum Entry {
    /// The command's typed interface: `handle(delivery, request) -> response | answer`.
    Typed(ComponentExportIndex),
    /// The generic interface: `handle(delivery, body) -> answer JSON`.
    Json(ComponentExportIndex),
}

/// Most instances a plugin in reuse mode keeps idle; more are dropped after their request.
pub const MAX_IDLE_INSTANCES: usize = 4;

impl Plugin {
    /// An idle instance to reuse, if reuse is on and one is waiting.
    pub fn take_idle(&self) -> Option<WarmInstance> {
        if self.limits.reuse_instances <= 1 {
            return None;
        }
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Drops the idle instances (their memory goes back to the budget); returns how many.
    pub fn drop_idle(&self) -> usize {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        idle.len()
    }

    /// Keeps an instance that answered, for a later request.
    pub fn put_idle(&self, instance: WarmInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }
}

/// Why a file in `plugins/` was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {path} is not a WebAssembly component: {}", shown(reason))]
    NotAComponent { path: PathBuf, reason: String },
    #[error("plugin {path} is not valid: {}", shown(reason))]
    Compile { path: PathBuf, reason: String },
    #[error(
        "plugin {path} handles no callback: it exports no interface of openim:callback (such as openim:callback/kick-group-member@0.1.0 or {JSON_INTERFACE}); it exports: {}",
        shown(exports)
    )]
    NoCallbackExport { path: PathBuf, exports: String },
    #[error(
        "plugin {path} declares commands the host cannot take: {}",
        shown(reason)
    )]
    Declared { path: PathBuf, reason: String },
    #[error("plugin {path} cannot be linked: {}", shown(reason))]
    Link { path: PathBuf, reason: String },
    #[error("plugin {path} imports what it is not granted: {}", shown(reason))]
    NotGranted { path: PathBuf, reason: String },
}

/// A load error's reason as it reaches the log: it can quote the component (names in its bytes,
/// what its `commands()` returned), so it is escaped and capped.
fn shown(reason: &str) -> Untrusted<'_> {
    Untrusted::capped(reason, crate::untrusted::LINE_CAP)
}

/// The plugin name of a file: its name without `.wasm`.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
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
    /// The engine to compile with.
    pub engine: &'a Engine,
    /// Limits of the load-time call of a JSON plugin.
    pub config: &'a Config,
    /// The host's imports.
    pub linker: &'a Linker<PluginState>,
    /// Where compiled plugins are kept, if anywhere.
    pub cache: Option<&'a CompileCache>,
    /// The memory budget a JSON plugin's load-time `commands()` call counts against.
    pub budget: &'a Arc<MemoryBudget>,
    /// What plugins may use beyond WASI's nothing, and who may use it.
    pub capabilities: &'a Capabilities,
}

/// The SHA-256 of a plugin file's bytes: what tells versions apart (reload) and replicas' plugin
/// sets (`/readyz`).
pub fn file_digest(bytes: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).into()
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
        engine,
        linker,
        cache,
        ..
    } = *loading;
    check_component_header(bytes).map_err(|reason| LoadError::NotAComponent {
        path: path.to_owned(),
        reason: reason.to_owned(),
    })?;
    let started = Instant::now();
    let compiled = match cache {
        Some(cache) => cache.load_or_compile(engine, bytes),
        None => Component::new(engine, bytes).map(|c| (c, Source::Compiled)),
    };
    let (component, source) = compiled.map_err(|e| LoadError::Compile {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })?;
    let load_ms = started.elapsed().as_millis();
    let link_error = |e: wasmtime::Error| LoadError::Link {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    let pre = linker.instantiate_pre(&component).map_err(link_error)?;
    let name: Arc<str> = plugin_name(path).into();
    let capabilities = loading.capabilities.for_plugin(&name);
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
    let handles =
        handlers(loading, &pre, &name, &capabilities, limits).map_err(|reason| match reason {
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
    let from = match source {
        Source::Cache => "cache",
        Source::Compiled => "compiled",
    };
    let commands: Vec<&str> = handles.iter().map(|h| h.command).collect();
    tracing::info!(plugin = %name, path = %path.display(), size_bytes = bytes.len(), load_ms,
        from, handles = ?commands, "plugin loaded");
    Ok(Plugin {
        name,
        limits,
        pre,
        handles,
        idle: Mutex::new(Vec::new()),
        capabilities,
        sha256,
    })
}

enum HandlerError {
    /// It handles nothing.
    None,
    /// Its JSON interface declared something unusable.
    Declared(String),
}

/// The commands a component handles: its typed exports, then what its JSON interface declares.
fn handlers(
    loading: &Loading<'_>,
    pre: &InstancePre<PluginState>,
    name: &Arc<str>,
    capabilities: &PluginCapabilities,
    limits: PluginLimits,
) -> Result<Vec<Handler>, HandlerError> {
    let component = pre.component();
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
        let declared = declared_commands(loading, pre, name, capabilities, limits, list).map_err(
            |failure| HandlerError::Declared(format!("calling commands() failed: {failure}")),
        )?;
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
                    tracing::warn!(plugin = %name, command = declared,
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
    loading: &Loading<'_>,
    pre: &InstancePre<PluginState>,
    name: &Arc<str>,
    capabilities: &PluginCapabilities,
    limits: PluginLimits,
    index: ComponentExportIndex,
) -> Result<Vec<String>, Failure> {
    let Loading { engine, config, .. } = *loading;
    let budget = config.defaults.timeout.saturating_sub(config.safety_margin);
    let fuel = config.defaults.fuel;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| Failure::Instantiate(e.to_string()))?;
                runtime.block_on(async {
                    let deadline = Instant::now() + budget;
                    let tag = Arc::new(CallTag {
                        plugin: Arc::clone(name),
                        command: "(load)",
                        operation_id: "".into(),
                    });
                    let mut store = crate::runtime::store::new_store(
                        engine,
                        config,
                        limits,
                        loading.budget,
                        loading.capabilities.granted(capabilities),
                        tag,
                        deadline,
                    );
                    crate::runtime::store::arm(&mut store, config, fuel)
                        .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
                    let call = async {
                        let instance = pre
                            .instantiate_async(&mut store)
                            .await
                            .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
                        let func = instance
                            .get_func(&mut store, index)
                            .ok_or_else(|| Failure::Instantiate("commands() is missing".into()))?;
                        let mut result = [Val::Bool(false)];
                        func.call_async(&mut store, &[], &mut result)
                            .await
                            .map_err(|e| Failure::classify(e, budget, fuel))?;
                        Ok::<_, Failure>(result)
                    };
                    let [result] = tokio::time::timeout_at(deadline.into(), call)
                        .await
                        .map_err(|_| Failure::TimeoutInHostCall {
                            budget_ms: budget.as_millis(),
                        })??;
                    match result {
                        Val::List(items) => Ok(items
                            .into_iter()
                            .filter_map(|v| match v {
                                Val::String(s) => Some(s),
                                _ => None,
                            })
                            .collect()),
                        _ => Err(Failure::Instantiate("commands() returned no list".into())),
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Failure::Instantiate(
                    "commands() panicked the loader".into(),
                ))
            })
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

/// The `*.wasm` files of a directory, sorted by file name: the order plugins run in.
pub fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
