//! Loading plugins: compile a `.wasm` file, check that it is a component exporting a callback
//! interface this host knows, and pre-instantiate it against the linker, so that everything that
//! can fail fails at load time, with the file's name and the reason, never on the request path.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use crate::bindings::{KICK_INTERFACE, KickGuest, KickIndices};
use crate::cache::{CompileCache, Source};
use crate::config::PluginLimits;
use crate::sandbox::PluginState;

/// A plugin ready to be instantiated once per request.
pub struct Plugin {
    /// The file name without `.wasm`: the name in logs and in `[plugins_limits.<name>]`.
    pub name: Arc<str>,
    /// Its resource caps.
    pub limits: PluginLimits,
    /// Compiled, type-checked and linked: instantiating it is the only per-request work left.
    pub pre: InstancePre<PluginState>,
    /// Where the kick interface's functions are in an instance.
    pub kick: KickIndices,
    /// Instances kept for reuse (only when `limits.reuse_instances` > 1).
    pub idle: Mutex<Vec<WarmInstance>>,
}

/// An instance kept between requests in reuse mode, with its store.
pub struct WarmInstance {
    /// The store holding the instance.
    pub store: Store<PluginState>,
    /// Its kick interface.
    pub guest: KickGuest,
    /// Requests it has served.
    pub uses: u32,
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
    #[error("plugin {path} is not a WebAssembly component: {reason}")]
    NotAComponent { path: PathBuf, reason: String },
    #[error("plugin {path} is not valid: {reason}")]
    Compile { path: PathBuf, reason: String },
    #[error(
        "plugin {path} does not implement the kick-plugin world: it does not export {KICK_INTERFACE} (it exports: {exports})"
    )]
    NoCallbackExport { path: PathBuf, exports: String },
    #[error("plugin {path} cannot be linked: {reason}")]
    Link { path: PathBuf, reason: String },
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

/// Compiles and validates the `bytes` of the plugin file at `path`.
pub fn load_plugin(
    engine: &Engine,
    linker: &Linker<PluginState>,
    cache: Option<&CompileCache>,
    path: &Path,
    bytes: &[u8],
    limits: PluginLimits,
) -> Result<Plugin, LoadError> {
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
    if component.get_export_index(None, KICK_INTERFACE).is_none() {
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        return Err(LoadError::NoCallbackExport {
            path: path.to_owned(),
            exports: if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            },
        });
    }
    let link_error = |e: wasmtime::Error| LoadError::Link {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    };
    let pre = linker.instantiate_pre(&component).map_err(link_error)?;
    let kick = KickIndices::new(&pre).map_err(link_error)?;
    let name: Arc<str> = plugin_name(path).into();
    let from = match source {
        Source::Cache => "cache",
        Source::Compiled => "compiled",
    };
    tracing::info!(plugin = %name, path = %path.display(), size_bytes = bytes.len(), load_ms,
        from, "plugin loaded");
    Ok(Plugin {
        name,
        limits,
        pre,
        kick,
        idle: Mutex::new(Vec::new()),
    })
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
