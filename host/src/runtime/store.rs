//! The one place a plugin store is made: the plugin's memory caps and the host's memory budget,
//! the call's fuel budget and deadline, the epoch callback that stops a running plugin at that
//! deadline, and the most a plugin may hand the host at once. The [`Builder`] holds what every
//! store is made from; the calls' runner and the instance stock's filler share one.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, UpdateDeadline};

use crate::capabilities::{Capabilities, Granted};
use crate::config::{Config, PluginLimits};
use crate::protocol::answer::MAX_ANSWER_BYTES;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::limits::{DeadlineExceeded, PluginLimiter};
use crate::runtime::output::CallTag;
use crate::runtime::plugin::Plugin;
use crate::runtime::sandbox::PluginState;

/// What every plugin store is made from.
pub struct Builder {
    /// The engine every plugin was compiled with (its epoch ticker enforces deadlines).
    engine: Engine,
    /// Fuel metering and epoch settings.
    config: Arc<Config>,
    /// The memory all instances may hold at once.
    budget: Arc<MemoryBudget>,
    /// What plugins may use beyond WASI's nothing.
    capabilities: Arc<Capabilities>,
}

impl Builder {
    pub fn new(
        engine: Engine,
        config: Arc<Config>,
        budget: Arc<MemoryBudget>,
        capabilities: Arc<Capabilities>,
    ) -> Self {
        Self {
            engine,
            config,
            budget,
            capabilities,
        }
    }

    /// The engine plugins are compiled with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The settings in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The memory budget all instances share.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// What plugins may use.
    pub fn capabilities(&self) -> &Arc<Capabilities> {
        &self.capabilities
    }

    /// A fresh store for one instance of `plugin`, tagged `tag`, stopped at `deadline`.
    pub fn store(
        &self,
        plugin: &Plugin,
        tag: Arc<CallTag>,
        deadline: Instant,
    ) -> Store<PluginState> {
        let granted = self.capabilities.granted(&plugin.capabilities);
        self.store_with(plugin.limits, granted, tag, deadline)
    }

    /// A fresh store for an instance with these caps and grants (what [`Builder::store`] reads
    /// from a plugin, gathered beforehand).
    pub fn store_with(
        &self,
        limits: PluginLimits,
        granted: Granted,
        tag: Arc<CallTag>,
        deadline: Instant,
    ) -> Store<PluginState> {
        new_store(
            &self.engine,
            &self.config,
            limits,
            &self.budget,
            granted,
            tag,
            deadline,
        )
    }

    /// Arms a store (new, stocked or reused) for one call: the fuel budget and the first epoch
    /// check.
    pub fn arm(&self, store: &mut Store<PluginState>, fuel: u64) -> wasmtime::Result<()> {
        arm(store, &self.config, fuel)
    }
}

/// A fresh store for one plugin instance, with its limits and deadline check.
fn new_store(
    engine: &Engine,
    config: &Config,
    limits: PluginLimits,
    budget: &Arc<MemoryBudget>,
    granted: Granted,
    tag: Arc<CallTag>,
    deadline: Instant,
) -> Store<PluginState> {
    let state = PluginState::new(
        tag,
        PluginLimiter::new(limits),
        Arc::clone(budget),
        deadline,
        granted,
    );
    let mut store = Store::new(engine, state);
    store.limiter_async(|state| state);
    // wasmtime counts what it copies out of the plugin's memory (strings and lists, every alias
    // of the same bytes again) against this, before copying: an answer, or the arguments of one
    // host call, of more than the cap fails before the host holds more than the cap.
    store.set_hostcall_fuel(MAX_ANSWER_BYTES);
    if config.epoch_interruption {
        // Check the deadline at every epoch tick, yielding so other requests run meanwhile.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
    }
    store
}

/// Arms a store for one call: the fuel budget and the first epoch check.
fn arm(store: &mut Store<PluginState>, config: &Config, fuel: u64) -> wasmtime::Result<()> {
    if config.fuel_metering {
        store.set_fuel(fuel)?;
    }
    if config.epoch_interruption {
        store.set_epoch_deadline(1);
    }
    Ok(())
}
