//! What a loaded plugin is: its compiled, linked component ready to be instantiated once per
//! call, its limits and grants, the commands it handles and how each is called, and the instances
//! it keeps in reuse mode. Loading one is [`crate::loading::load`]; running it,
//! [`crate::runtime::call`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre};

use crate::capabilities::PluginCapabilities;
use crate::config::PluginLimits;
use crate::runtime::sandbox::PluginState;
use crate::runtime::stock::Stock;

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
    /// Instances built ahead, each for one call (off in reuse mode, which keeps its own).
    pub stock: Arc<Stock>,
    /// What it may use beyond WASI's nothing (config values, key-value, HTTP).
    pub capabilities: PluginCapabilities,
    /// SHA-256 of the file it was loaded from: tells replicas' plugin sets apart in `/readyz`.
    pub sha256: [u8; 32],
    /// Size of that file, for the console.
    pub file_bytes: u64,
    /// When this version was loaded (ms since the Unix epoch), for the console.
    pub loaded_ms: u64,
    /// One permit per call it may have at once (`limits.max_concurrent_calls`), when capped.
    pub calls: Option<Arc<tokio::sync::Semaphore>>,
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

impl Entry {
    /// Which interface: `typed` or `json` (as `check` and the console show it).
    pub fn interface(self) -> &'static str {
        match self {
            Self::Typed(_) => "typed",
            Self::Json(_) => "json",
        }
    }
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

    /// Drops the instances kept for reuse and the ones built ahead (their memory goes back to
    /// the budget); returns how many.
    pub fn drop_idle(&self) -> usize {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        idle.len() + self.stock.drop_all()
    }

    /// Keeps an instance that answered, for a later request.
    pub fn put_idle(&self, instance: WarmInstance) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }
}

/// The plugin name of a file: its name without `.wasm`.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The SHA-256 of a plugin file's bytes: what tells versions apart (reload) and replicas' plugin
/// sets (`/readyz`).
pub fn file_digest(bytes: &[u8]) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).into()
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
