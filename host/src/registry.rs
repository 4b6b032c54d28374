//! Which plugins handle which command, in the order they run.

use std::sync::Arc;

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
    pub fn new(plugins: Vec<Plugin>) -> Self {
        Self {
            kick: plugins.into_iter().map(Arc::new).collect(),
        }
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
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kick.iter().map(|p| &*p.name)
    }
}
