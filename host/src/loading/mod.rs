//! Loading plugins, in one place: [`load`] compiles, checks and pre-instantiates one file; this
//! module loads the plugin directory, at start and whenever it changes (hot reload), and watches
//! the config file.
//!
//! A scan compares every `*.wasm` (dot-files are ignored) with what is loaded, by content hash: new and changed files are compiled and validated off the request path, removed
//! ones dropped, then the new set is swapped in at once. A file that fails to load leaves the
//! previous good version of that plugin serving. Deploy by writing the file elsewhere (or under a
//! dot-name) and renaming it into place; a copy in progress is only read once the plugin files
//! have been quiet for [`QUIET`] (changes to other files do not count), and a file still
//! incomplete then fails validation and is retried on its next change.

pub mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use wasmtime::component::Linker;

use crate::config::Config;
use crate::loading::load::{LoadError, Loading, load_plugin, read_plugin};
use crate::metrics::{Metrics, ReloadLabels};
use crate::outcomes::ReloadResult;
use crate::registry::{CurrentPlugins, FailedLoad, Registry};
use crate::runtime::cache::CompileCache;
use crate::runtime::call::Runner;
use crate::runtime::plugin::{Plugin, file_digest, plugin_files, plugin_name};
use crate::runtime::sandbox::PluginState;

/// How long the directory must be quiet before a scan.
pub const QUIET: Duration = Duration::from_millis(300);

/// One plugin file as last seen.
struct SeenFile {
    /// SHA-256 of the version last seen.
    seen: [u8; 32],
    /// The plugin serving for this file: the last version that loaded.
    serving: Option<Arc<Plugin>>,
    /// Why the version last seen did not load, when it did not.
    failed: Option<FailedLoad>,
}

/// Loads the plugin directory and keeps it in step with the files.
pub struct Loader {
    /// Compiles with its engine; runs a JSON plugin's `commands()` at load.
    runner: Arc<Runner>,
    /// The host's imports every plugin is linked against.
    linker: Linker<PluginState>,
    /// The plugin directory, each plugin's limits, the shadow plugins.
    config: Arc<Config>,
    /// Where compiled plugins are kept, if anywhere.
    cache: Option<CompileCache>,
    /// Counts reloads.
    metrics: Arc<Metrics>,
    /// The plugin set in force, swapped after each scan.
    current: Arc<CurrentPlugins>,
    /// Every `*.wasm` last seen, by file name.
    files: BTreeMap<String, SeenFile>,
}

impl Loader {
    pub fn new(
        runner: Arc<Runner>,
        linker: Linker<PluginState>,
        metrics: Arc<Metrics>,
        current: Arc<CurrentPlugins>,
    ) -> Self {
        let config = Arc::clone(runner.config());
        let cache = config.cache_dir.clone().map(CompileCache::new);
        Self {
            runner,
            linker,
            config,
            cache,
            metrics,
            current,
            files: BTreeMap::new(),
        }
    }

    /// Brings the loaded plugins in step with the directory and swaps in the result. Returns the
    /// files that failed to load in this scan.
    pub fn scan(&mut self) -> std::io::Result<Vec<LoadError>> {
        let dir = self.config.plugins_dir.clone();
        let paths = plugin_files(&dir)?;
        let mut errors = Vec::new();
        let mut present = BTreeSet::new();
        for path in paths {
            let Some(file) = path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
                continue;
            };
            if file.starts_with('.') {
                continue;
            }
            // A file removed between listing and reading counts as removed.
            let Ok(bytes) = read_plugin(&path) else {
                continue;
            };
            let seen = file_digest(&bytes);
            present.insert(file.clone());
            let previous = self.files.remove(&file);
            let entry = match previous {
                Some(entry) if entry.seen == seen => entry,
                previous => {
                    let serving = previous.and_then(|e| e.serving);
                    self.load(&path, &bytes, seen, serving, &mut errors)
                }
            };
            self.files.insert(file, entry);
        }
        let removed: Vec<String> = self
            .files
            .keys()
            .filter(|f| !present.contains(*f))
            .cloned()
            .collect();
        for file in removed {
            self.files.remove(&file);
            tracing::info!(file, "plugin removed");
            self.metrics
                .reloads
                .get_or_create(&ReloadLabels {
                    result: ReloadResult::Removed,
                })
                .inc();
        }
        let plugins: Vec<Arc<Plugin>> = self
            .files
            .values()
            .filter_map(|e| e.serving.clone())
            .collect();
        self.current.set_failed(
            self.files
                .values()
                .filter_map(|e| e.failed.clone())
                .collect(),
        );
        self.metrics.plugins_loaded.set(plugins.len() as i64);
        self.metrics.set_handles(
            plugins
                .iter()
                .flat_map(|p| p.handles.iter().map(|h| (&p.name, h.command))),
        );
        for name in &self.config.shadow_plugins {
            if !plugins.iter().any(|p| *p.name == **name) {
                tracing::warn!(plugin = %name, "shadow_plugins names a plugin that is not loaded");
            }
        }
        // A scan that changed nothing (a file touched, a version that failed to load) keeps the
        // set in force, and with it the time `/readyz` reports it came into force.
        if !self.current.get().holds(&plugins) {
            self.current
                .set(Registry::new(plugins, &self.config.shadow_plugins));
        }
        Ok(errors)
    }

    fn load(
        &self,
        path: &Path,
        bytes: &[u8],
        seen: [u8; 32],
        previous: Option<Arc<Plugin>>,
        errors: &mut Vec<LoadError>,
    ) -> SeenFile {
        let limits = self.config.plugin(&plugin_name(path));
        let loading = Loading {
            runner: &self.runner,
            linker: &self.linker,
            cache: self.cache.as_ref(),
        };
        match load_plugin(&loading, path, bytes, seen, limits) {
            Ok(plugin) => {
                if previous.is_some() {
                    self.metrics
                        .reloads
                        .get_or_create(&ReloadLabels {
                            result: ReloadResult::Loaded,
                        })
                        .inc();
                }
                SeenFile {
                    seen,
                    serving: Some(Arc::new(plugin)),
                    failed: None,
                }
            }
            Err(error) => {
                let keeps = previous.as_ref().map(|p| p.name.to_string());
                tracing::error!(path = %path.display(), %error, previous_version_kept = keeps.is_some(),
                    "plugin not loaded");
                self.metrics.load_failures.inc();
                self.metrics
                    .reloads
                    .get_or_create(&ReloadLabels {
                        result: ReloadResult::Failed,
                    })
                    .inc();
                let failed = FailedLoad {
                    file: path
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
                    reason: error.to_string(),
                    at_ms: crate::util::unix_ms(),
                    previous_serving: previous.is_some(),
                };
                errors.push(error);
                SeenFile {
                    seen,
                    serving: previous,
                    failed: Some(failed),
                }
            }
        }
    }
}

/// Whether a change to `path` can change the plugins: a `*.wasm` file not named with a leading dot.
fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
        && path
            .file_name()
            .is_some_and(|name| !name.to_string_lossy().starts_with('.'))
}

/// Runs `act` on a thread named `name` after each burst of `changes`, once they have been quiet
/// for [`QUIET`] (a copy in progress writes many times), until the sender side is dropped. Our
/// own rather than a debouncer crate's: the events are filtered before they count (only plugin
/// files, only the config file), and SIGHUP sends into the same channel.
fn after_each_burst(
    name: &str,
    changes: mpsc::Receiver<()>,
    mut act: impl FnMut() + Send + 'static,
) -> notify::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while changes.recv().is_ok() {
                loop {
                    match changes.recv_timeout(QUIET) {
                        Ok(()) => continue,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                act();
            }
        })
        .map(drop)
        .map_err(notify::Error::io)
}

/// Watches the plugin directory and rescans after each burst of changes, on a thread of its own,
/// until dropped.
pub struct Watch {
    /// Dropping it ends the event stream, and with it the thread.
    _watcher: notify::RecommendedWatcher,
}

impl Watch {
    /// Starts watching `loader`'s directory.
    pub fn start(mut loader: Loader) -> notify::Result<Self> {
        let dir: PathBuf = loader.config.plugins_dir.clone();
        let (events, changes) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Only plugin files count: a log or pid file written continuously next to them
                // must not keep the directory from ever being quiet.
                if event
                    .is_ok_and(|e| e.paths.is_empty() || e.paths.iter().any(|p| is_plugin_file(p)))
                {
                    let _ = events.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        after_each_burst("plugin-watch", changes, move || {
            if let Err(error) = loader.scan() {
                tracing::error!(dir = %dir.display(), %error, "cannot scan the plugin directory");
            }
        })?;
        Ok(Self { _watcher: watcher })
    }
}

/// Re-reads the config file when it changes or on [`ConfigWatch::trigger`] (SIGHUP), and hands
/// the new config to `apply`, on a thread of its own, until dropped. A file that fails to parse
/// is logged and the settings in force stay.
pub struct ConfigWatch {
    /// Dropping it ends the event stream, and with it the thread.
    _watcher: notify::RecommendedWatcher,
    /// Asks for a reload (SIGHUP).
    trigger: mpsc::Sender<()>,
}

impl ConfigWatch {
    /// Starts watching the config file at `path`.
    pub fn start(path: PathBuf, apply: impl Fn(Config) + Send + 'static) -> notify::Result<Self> {
        let (events, changes) = mpsc::channel::<()>();
        let name = path.file_name().map(|n| n.to_owned());
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let sender = events.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Editors replace the file (a rename into place): watch the directory.
                if event.is_ok_and(|e| e.paths.iter().any(|p| p.file_name() == name.as_deref())) {
                    let _ = sender.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        after_each_burst("config-watch", changes, move || match Config::load(&path) {
            Ok(config) => apply(config),
            Err(error) => {
                tracing::error!(%error, "config not reloaded; the settings in force stay");
            }
        })?;
        Ok(Self {
            _watcher: watcher,
            trigger: events,
        })
    }

    /// Asks for a reload now.
    pub fn trigger(&self) {
        let _ = self.trigger.send(());
    }
}

#[cfg(test)]
mod tests;
