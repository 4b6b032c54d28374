//! `wasi:config/store`: each plugin reads its own values from `[plugin_config.<name>]` (and the
//! environment), and nothing else. Values are swapped in when the config is reloaded (SIGHUP or
//! a change of the file); a call sees the values of when it started.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use crate::config::Config;

/// `wasi:config/store`: always there, the plugin's own values.
pub const CAPABILITY: super::Capability = super::Capability {
    imports: "wasi:config/",
    status: |_, _, _| super::ImportStatus::Config,
};

/// Every plugin's values, swapped as a whole on reload.
#[derive(Default)]
pub struct ConfigValues {
    /// By plugin name.
    current: RwLock<Arc<HashMap<String, Arc<WasiConfigVariables>>>>,
}

impl ConfigValues {
    pub fn new(config: &Config) -> Self {
        let values = Self::default();
        values.set(config);
        values
    }

    /// Takes the values of `config`.
    pub fn set(&self, config: &Config) {
        let values = config
            .plugin_values
            .iter()
            .map(|(plugin, map)| {
                (
                    plugin.clone(),
                    Arc::new(WasiConfigVariables::from_iter(
                        map.iter().map(|(k, v)| (k.clone(), v.clone())),
                    )),
                )
            })
            .collect();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(values);
    }

    /// The values of `plugin` now (none when it has no section).
    pub fn of(&self, plugin: &str) -> Arc<WasiConfigVariables> {
        let current = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        current.get(plugin).cloned().unwrap_or_else(empty)
    }
}

fn empty() -> Arc<WasiConfigVariables> {
    static EMPTY: std::sync::OnceLock<Arc<WasiConfigVariables>> = std::sync::OnceLock::new();
    Arc::clone(EMPTY.get_or_init(|| Arc::new(WasiConfigVariables::new())))
}

/// Adds `wasi:config/store` for store data that gives the calling plugin's values (one plugin's
/// [`ConfigValues::of`]).
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WasiConfig<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_config::add_to_linker(linker, view)
}
