//! Which plugins handle which command, in the order they run, and the handle through which hot
//! reload swaps in a new set while requests in flight keep the set they started with.

use std::sync::{Arc, RwLock};

use crate::plugin::Plugin;
use crate::protocol::KICK_COMMAND;

/// The plugins of each command, in file-name order (`10-guard.wasm` before `20-audit.wasm`).
#[derive(Default)]
pub struct Registry {
    /// Plugins exporting the kick interface.
    kick: Vec<Arc<Plugin>>,
}

impl Registry {
    /// Builds the registry; `plugins` must already be in file-name order.
    pub fn new(plugins: Vec<Arc<Plugin>>) -> Self {
        Self { kick: plugins }
    }

    /// The plugins that handle `command`, in the order they run.
    pub fn for_command(&self, command: &str) -> &[Arc<Plugin>] {
        if command == KICK_COMMAND {
            &self.kick
        } else {
            &[]
        }
    }

    /// Names of every loaded plugin, in order.
    pub fn names(&self) -> Vec<String> {
        self.kick.iter().map(|p| p.name.to_string()).collect()
    }
}

/// The current registry. A request takes the registry once and keeps it to its end, so a swap
/// never changes the plugins of a request in flight.
#[derive(Default)]
pub struct CurrentPlugins(RwLock<Arc<Registry>>);

impl CurrentPlugins {
    /// The registry in force now.
    pub fn get(&self) -> Arc<Registry> {
        // A poisoned lock only means a writer panicked after the swap; the value is whole.
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `registry` in force for requests that start from now on.
    pub fn set(&self, registry: Registry) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
    }
}
