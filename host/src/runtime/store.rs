//! The one place a plugin store is made: the plugin's memory caps and the host's memory budget,
//! the call's fuel budget and deadline, and the epoch callback that stops a running plugin at that deadline.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, UpdateDeadline};

use crate::capabilities::Granted;
use crate::config::{Config, PluginLimits};
use crate::runtime::budget::MemoryBudget;
use crate::runtime::limits::{DeadlineExceeded, PluginLimiter};
use crate::runtime::sandbox::{CallTag, PluginState};

/// A fresh store for one plugin instance, with its limits and deadline check.
pub fn new_store(
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

/// Arms a store (new or reused) for one call: the fuel budget and the first epoch check.
pub fn arm(store: &mut Store<PluginState>, config: &Config, fuel: u64) -> wasmtime::Result<()> {
    if config.fuel_metering {
        store.set_fuel(fuel)?;
    }
    if config.epoch_interruption {
        store.set_epoch_deadline(1);
    }
    Ok(())
}
