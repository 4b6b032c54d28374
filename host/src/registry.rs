//! Which plugins handle which command, in the order they run, and the handle through which hot
//! reload swaps in a new set while requests in flight keep the set they started with.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;

use sha2::{Digest as _, Sha256};

use crate::runtime::plugin::{Entry, Plugin};

/// One plugin in a command's chain.
#[derive(Clone)]
pub struct Link {
    pub plugin: Arc<Plugin>,
    /// How the plugin is called for this command.
    pub entry: Entry,
}

/// The chain of each command, in file-name order (`10-guard.wasm` before `20-audit.wasm`).
pub struct Registry {
    /// By command name (OpenIM's), including commands the host does not know that a JSON plugin
    /// declared.
    chains: HashMap<&'static str, Vec<Link>>,
    /// The shadow plugins of each command: run off the answer path, compared, never deciding.
    shadows: HashMap<&'static str, Vec<Link>>,
    /// Every plugin, in order.
    pub plugins: Vec<Arc<Plugin>>,
    /// When this set was put in force (ms since the Unix epoch): a rollout watcher sees a
    /// replica's last reload in `/readyz`.
    since_ms: u64,
}

impl Default for Registry {
    /// No plugins, since now.
    fn default() -> Self {
        Self::new(Vec::new(), &BTreeSet::new())
    }
}

impl Registry {
    /// Builds the registry; `plugins` must already be in file-name order. Those named in
    /// `shadow` go to the shadows of their commands instead of the chains.
    pub fn new(plugins: Vec<Arc<Plugin>>, shadow: &BTreeSet<String>) -> Self {
        let mut chains: HashMap<&'static str, Vec<Link>> = HashMap::new();
        let mut shadows: HashMap<&'static str, Vec<Link>> = HashMap::new();
        for plugin in &plugins {
            let links = if shadow.contains(&*plugin.name) {
                &mut shadows
            } else {
                &mut chains
            };
            for handler in &plugin.handles {
                links.entry(handler.command).or_default().push(Link {
                    plugin: Arc::clone(plugin),
                    entry: handler.entry,
                });
            }
        }
        Self {
            chains,
            shadows,
            plugins,
            since_ms: crate::util::unix_ms(),
        }
    }

    /// Whether any plugin, deciding or shadow, serves `command`.
    pub fn serves(&self, command: &str) -> bool {
        !self.chain(command).is_empty() || !self.shadows(command).is_empty()
    }

    /// The shadow plugins of `command`.
    pub fn shadows(&self, command: &str) -> &[Link] {
        self.shadows.get(command).map_or(&[], Vec::as_slice)
    }

    /// The plugins that handle `command`, in the order they run.
    pub fn chain(&self, command: &str) -> &[Link] {
        self.chains.get(command).map_or(&[], Vec::as_slice)
    }

    /// The static name of a command some plugin handles (for commands the host does not know).
    pub fn handled(&self, command: &str) -> Option<&'static str> {
        self.chains.get_key_value(command).map(|(name, _)| *name)
    }

    /// Drops every plugin's idle instances (when the memory budget runs short); returns how many.
    pub fn drop_idle(&self) -> usize {
        self.plugins.iter().map(|p| p.drop_idle()).sum()
    }

    /// Whether this registry holds exactly `plugins` (the same loaded instances, in order).
    pub fn holds(&self, plugins: &[Arc<Plugin>]) -> bool {
        self.plugins.len() == plugins.len()
            && self
                .plugins
                .iter()
                .zip(plugins)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    /// Names of every loaded plugin, in order.
    pub fn names(&self) -> Vec<String> {
        self.plugins.iter().map(|p| p.name.to_string()).collect()
    }

    /// One digest of the whole set (each plugin's name and file contents, in order): replicas
    /// that serve the same plugins show the same value in `/readyz`. The first 16 hex digits.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for plugin in &self.plugins {
            hasher.update(plugin.name.as_bytes());
            hasher.update([0]);
            hasher.update(plugin.sha256);
        }
        crate::util::hex(&hasher.finalize()[..8])
    }

    /// When this set was put in force (ms since the Unix epoch).
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Each plugin's file digest (the first 16 hex digits of its SHA-256), for `/readyz`.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.plugins
            .iter()
            .map(|p| (p.name.to_string(), crate::util::hex(&p.sha256[..8])))
            .collect()
    }

    /// Every plugin with the commands it handles, for `/readyz`.
    pub fn handles(&self) -> BTreeMap<String, Vec<&'static str>> {
        self.plugins
            .iter()
            .map(|p| {
                (
                    p.name.to_string(),
                    p.handles.iter().map(|h| h.command).collect(),
                )
            })
            .collect()
    }
}

/// The current registry. A request takes the registry once and keeps it to its end, so a swap
/// never changes the plugins of a request in flight.
#[derive(Default)]
pub struct CurrentPlugins {
    /// The registry in force.
    set: ArcSwap<Registry>,
    /// The plugin files of the last scan that did not load, for the console.
    failed: std::sync::Mutex<Vec<FailedLoad>>,
}

/// A plugin file that did not load (its previous version, if any, still serves).
#[derive(Debug, Clone)]
pub struct FailedLoad {
    /// The file's name in the plugin directory.
    pub file: String,
    /// Why, as logged.
    pub reason: String,
    /// When the load was tried (ms since the Unix epoch).
    pub at_ms: u64,
    /// Whether a previous version of the plugin still serves.
    pub previous_serving: bool,
}

impl CurrentPlugins {
    /// The registry in force now.
    pub fn get(&self) -> Arc<Registry> {
        self.set.load_full()
    }

    /// Puts `registry` in force for requests that start from now on.
    pub fn set(&self, registry: Registry) {
        self.set.store(Arc::new(registry));
    }

    /// The files that did not load in the last scan.
    pub fn failed(&self) -> Vec<FailedLoad> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Says which files did not load in the last scan.
    pub fn set_failed(&self, failed: Vec<FailedLoad>) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = failed;
    }
}
