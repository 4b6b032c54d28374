//! The one plugin call: the only code that runs a plugin's export. Whoever needs a plugin to run
//! (the chain of a callback, a shadow, the queue's workers, the `call` tool, a JSON plugin's
//! `commands()` at load) hands the [`Runner`] a [`Call`] and gets the export's result or a named
//! [`Failure`]: a permit (so the instance pool never runs out), a store from the one builder or an
//! idle instance in reuse mode, the `delivery` record, the call under its deadline and fuel, the
//! failure's cause, and what the call cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{ComponentExportIndex, Val};

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::limits::Failure;
use crate::runtime::output::CallTag;
use crate::runtime::plugin::{Plugin, WarmInstance};
use crate::runtime::store;

/// Runs plugin exports under the host's limits.
pub struct Runner {
    /// The engine every plugin was compiled with (its epoch ticker enforces deadlines).
    engine: Engine,
    /// Fuel metering and epoch settings, and what stores are built with.
    config: Arc<Config>,
    /// One permit per plugin instance alive at once, so the pooling allocator never runs out:
    /// calls beyond it wait (within their deadline) instead of failing.
    permits: Semaphore,
    /// The memory all instances may hold at once.
    budget: Arc<MemoryBudget>,
    /// What plugins may use beyond WASI's nothing.
    capabilities: Arc<Capabilities>,
    /// The count of instances alive.
    metrics: Arc<Metrics>,
}

/// One call of one export of a plugin.
pub struct Call<'a> {
    /// The plugin whose export runs.
    pub plugin: &'a Plugin,
    /// The export.
    pub export: ComponentExportIndex,
    /// The command it is called for (`(load)` for `commands()`), for the log's tags.
    pub command: &'static str,
    /// OpenIM's operationID, for the log's tags and the `delivery` record.
    pub operation_id: &'a Arc<str>,
    /// What the export is given.
    pub args: Args,
    /// When the call must have finished.
    pub deadline: Instant,
    /// The time the call was given in all, named in a timeout's message.
    pub budget: Duration,
    /// The instructions it may execute (when fuel metering is on).
    pub fuel: u64,
}

/// What an export is given.
#[derive(Debug)]
pub enum Args {
    /// Nothing: `commands()`.
    None,
    /// A handler's `(delivery, request)`: the plugin's place in the chain and the request (a
    /// record for a typed interface, a string of JSON for the generic one).
    Handle { position: usize, request: Val },
}

/// A permit of `slots`: at once when one is free (no timer), else the first freed before
/// `deadline`.
async fn slot(
    slots: &Semaphore,
    deadline: Instant,
) -> Result<tokio::sync::SemaphorePermit<'_>, Failure> {
    match slots.try_acquire() {
        Ok(permit) => Ok(permit),
        Err(_) => match tokio::time::timeout_at(deadline.into(), slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphores are never closed; either way there is no slot before the deadline.
            Ok(Err(_)) | Err(_) => Err(Failure::NoTimeLeft),
        },
    }
}

/// What one plugin call cost.
#[derive(Debug, Clone, Copy)]
pub struct CallStats {
    /// Fuel (instructions) the call consumed.
    pub fuel_used: u64,
    /// Wall-clock time of instantiate + call.
    pub elapsed: Duration,
    /// The most linear memory the instance had at once.
    pub peak_memory_bytes: usize,
}

impl Runner {
    pub fn new(
        engine: Engine,
        config: Arc<Config>,
        budget: Arc<MemoryBudget>,
        capabilities: Arc<Capabilities>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let permits = Semaphore::new(config.max_concurrent_calls as usize);
        Self {
            engine,
            config,
            permits,
            budget,
            capabilities,
            metrics,
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

    /// Runs `call`: its export's result, and what it cost.
    pub async fn run(&self, call: Call<'_>) -> Result<(Val, CallStats), Failure> {
        let Call {
            plugin,
            export,
            command,
            operation_id,
            args,
            deadline,
            budget,
            fuel,
        } = call;
        // The plugin's own cap first: a call waiting for it holds no slot of the host's.
        let _plugin_slot = match &plugin.calls {
            Some(calls) => Some(slot(calls, deadline).await?),
            None => None,
        };
        let _slot = slot(&self.permits, deadline).await?;
        let _alive = InstanceCount::new(&self.metrics);
        let started = Instant::now();
        let time_left = deadline.saturating_duration_since(started);
        if time_left.is_zero() {
            return Err(Failure::NoTimeLeft);
        }
        let tag = Arc::new(CallTag {
            plugin: Arc::clone(&plugin.name),
            command,
            operation_id: Arc::clone(operation_id),
        });
        // In reuse mode, an instance from an earlier request; otherwise a fresh store.
        let (mut store, warm_instance, uses) = match plugin.take_idle() {
            Some(WarmInstance {
                mut store,
                instance,
                uses,
            }) => {
                store.data_mut().begin_call(tag, deadline);
                (store, Some(instance), uses)
            }
            None => (
                store::new_store(
                    &self.engine,
                    &self.config,
                    plugin.limits,
                    &self.budget,
                    self.capabilities.granted(&plugin.capabilities),
                    tag,
                    deadline,
                ),
                None,
                0,
            ),
        };
        store::arm(&mut store, &self.config, fuel).map_err(Failure::Instantiate)?;
        let params = match args {
            Args::None => Vec::new(),
            Args::Handle { position, request } => vec![
                Val::Record(vec![
                    ("operation-id".into(), Val::String(operation_id.to_string())),
                    ("command".into(), Val::String(command.to_owned())),
                    (
                        "time-left-ms".into(),
                        Val::U32(u32::try_from(time_left.as_millis()).unwrap_or(u32::MAX)),
                    ),
                    (
                        "chain-position".into(),
                        Val::U32(u32::try_from(position).unwrap_or(u32::MAX)),
                    ),
                ]),
                request,
            ],
        };
        let run = async {
            let instance = match warm_instance {
                Some(instance) => instance,
                None => plugin
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(Failure::Instantiate)?,
            };
            let func = instance.get_func(&mut store, export).ok_or_else(|| {
                Failure::Instantiate(wasmtime::format_err!("the export is missing"))
            })?;
            let mut result = [Val::Bool(false)];
            func.call_async(&mut store, &params, &mut result)
                .await
                .map_err(|e| Failure::classify(e, budget, fuel))?;
            let [result] = result;
            Ok::<_, Failure>((instance, result))
        };
        let (instance, result) = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::TimeoutInHostCall {
                    budget_ms: budget.as_millis(),
                });
            }
        };
        let stats = CallStats {
            fuel_used: if self.config.fuel_metering {
                fuel.saturating_sub(store.get_fuel().unwrap_or(0))
            } else {
                0
            },
            elapsed: started.elapsed(),
            peak_memory_bytes: store.data().limiter.peak_memory_bytes(),
        };
        // Only an instance that answered is kept: one that failed is never run again.
        let uses = uses + 1;
        if uses < plugin.limits.reuse_instances {
            plugin.put_idle(WarmInstance {
                store,
                instance,
                uses,
            });
        }
        Ok((result, stats))
    }
}

/// Counts a plugin instance as alive while it exists.
struct InstanceCount<'a>(&'a Metrics);

impl<'a> InstanceCount<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.instances.inc();
        Self(metrics)
    }
}

impl Drop for InstanceCount<'_> {
    fn drop(&mut self) {
        self.0.instances.dec();
    }
}
