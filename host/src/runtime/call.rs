//! The one plugin call: the only code that runs a plugin's export. Whoever needs a plugin to run
//! (the chain of a callback, a shadow, the queue's workers, the `call` tool, a JSON plugin's
//! `commands()` at load) hands the [`Runner`] a [`Call`] and gets the export's result or a named
//! [`Failure`]: a permit (so the instance pool never runs out), an instance built ahead, a store
//! from the one builder, or an idle instance in reuse mode, the `delivery` record, the call under
//! its deadline and fuel, the failure's cause, and what the call cost; the used instance and its
//! replacement are left in the request's [`Spent`] for after the answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{ComponentExportIndex, Val};
use wasmtime::{Engine, Store};

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::metrics::{ApiCallNotes, ApiCalls, Metrics};
use crate::runtime::budget::MemoryBudget;
use crate::runtime::limits::Failure;
use crate::runtime::output::CallTag;
use crate::runtime::plugin::{Plugin, WarmInstance};
use crate::runtime::refill::{Refill, handle_params};
use crate::runtime::sandbox::PluginState;
use crate::runtime::stock::{STOCK_SLOTS, Stocked};
use crate::runtime::store::Builder;

/// Runs plugin exports under the host's limits.
pub struct Runner {
    /// What every store is made from: the engine, the settings, the memory budget, the
    /// capabilities.
    builder: Arc<Builder>,
    /// One permit per plugin instance alive at once, so the pooling allocator never runs out:
    /// calls beyond it wait (within their deadline) instead of failing. A call's permit is held
    /// until its instance is dropped.
    permits: Arc<Semaphore>,
    /// The count of instances alive.
    metrics: Arc<Metrics>,
    /// One permit per instance built ahead, all plugins together: their slots of the pool.
    stock_slots: Arc<Semaphore>,
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
    pub allowed: Duration,
    /// The instructions it may execute (when fuel metering is on).
    pub fuel: u64,
    /// Where the used instance goes, to be dropped once the answer is on its way.
    pub spent: &'a Spent,
}

/// What one call came to: its export's result and cost, or why it failed; and the OpenIM API
/// calls it made, whatever came of it.
#[derive(Debug)]
pub struct Ran {
    pub result: Result<(Val, CallStats), Failure>,
    pub api_calls: ApiCallNotes,
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
async fn slot(slots: &Arc<Semaphore>, deadline: Instant) -> Result<OwnedSemaphorePermit, Failure> {
    match Arc::clone(slots).try_acquire_owned() {
        Ok(permit) => Ok(permit),
        Err(_) => match tokio::time::timeout_at(deadline.into(), Arc::clone(slots).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphores are never closed; either way there is no slot before the deadline.
            Ok(Err(_)) | Err(_) => Err(Failure::NoTimeLeft),
        },
    }
}

/// An instance that served its call, with its pool slot and its place in the count of instances
/// alive: dropping it is the instance's end.
pub struct Used {
    /// The store, holding the instance and what it reserved of the memory budget.
    _store: Store<PluginState>,
    /// The call's permit: the instance's slot of the pool, given back with it.
    _slot: OwnedSemaphorePermit,
    /// Counted alive until dropped.
    _alive: InstanceCount,
}

/// The work a request leaves for after its answer: the instances its plugins used (dropping one
/// resets its memory and gives its pool slot back) and the replacements of the instances taken
/// from the plugins' stocks. Neither is work the answer need wait for.
#[derive(Default)]
pub struct Spent(Mutex<Leftovers>);

/// What [`Spent`] holds.
#[derive(Default)]
struct Leftovers {
    used: Vec<Used>,
    refills: Vec<Refill>,
}

impl std::fmt::Debug for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (used, refills) = self
            .0
            .lock()
            .map_or((0, 0), |l| (l.used.len(), l.refills.len()));
        f.debug_struct("Spent")
            .field("used", &used)
            .field("refills", &refills)
            .finish()
    }
}

impl Spent {
    fn leftovers(&self) -> std::sync::MutexGuard<'_, Leftovers> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the used instances and builds the replacements once the current task yields.
    /// Called by the server right before it hands the answer to hyper: the work runs from
    /// tokio's LIFO slot on this same thread (no other thread is woken, no other core touches
    /// the instances' memory) after the connection's task has written the answer and waits for
    /// the next request. The queue's workers call it after each delivery. Dropped instead (a
    /// tool, a shadow), the instances are dropped and no replacement is built.
    pub fn settle_later(self) {
        let leftovers = std::mem::take(&mut *self.leftovers());
        if leftovers.used.is_empty() && leftovers.refills.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(leftovers.settle())),
            Err(_) => drop(leftovers),
        }
    }
}

impl Leftovers {
    /// Drops the used instances first (their slots and memory are the replacements'), then
    /// builds the replacements.
    async fn settle(mut self) {
        self.used.clear();
        for refill in std::mem::take(&mut self.refills) {
            refill.build().await;
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for refill in self.refills.drain(..) {
            refill.stock.abandon();
        }
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
        let permits = Arc::new(Semaphore::new(config.max_concurrent_calls as usize));
        let builder = Arc::new(Builder::new(engine, config, budget, capabilities));
        Self {
            builder,
            permits,
            metrics,
            stock_slots: Arc::new(Semaphore::new(STOCK_SLOTS as usize)),
        }
    }

    /// The engine plugins are compiled with.
    pub fn engine(&self) -> &Engine {
        self.builder.engine()
    }

    /// The settings in force.
    pub fn config(&self) -> &Arc<Config> {
        self.builder.config()
    }

    /// The memory budget all instances share.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        self.builder.budget()
    }

    /// What plugins may use.
    pub fn capabilities(&self) -> &Arc<Capabilities> {
        self.builder.capabilities()
    }

    /// The host's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A replacement for `plugin`'s stock, to build after the answer, when the stock wants one
    /// and a slot and half the memory budget are free.
    fn refill(&self, plugin: &Plugin) -> Option<Refill> {
        let budget = self.budget();
        if budget.in_use_bytes() * 2 > budget.bytes() || !plugin.stock.wants_one() {
            return None;
        }
        let Ok(slot) = Arc::clone(&self.stock_slots).try_acquire_owned() else {
            plugin.stock.abandon();
            return None;
        };
        // What the store is made of, gathered now (reference counts); the store itself is made
        // after the answer, with the instance.
        Some(Refill {
            stock: Arc::clone(&plugin.stock),
            builder: Arc::clone(&self.builder),
            plugin: Arc::clone(&plugin.name),
            limits: plugin.limits,
            granted: self.capabilities().granted(&plugin.capabilities),
            pre: plugin.pre.clone(),
            slot,
        })
    }

    /// Runs `call`: its export's result and what it cost, with the OpenIM API calls it made.
    pub async fn run(&self, call: Call<'_>) -> Ran {
        let notes = call
            .plugin
            .capabilities
            .calls_openim()
            .then(|| Arc::new(ApiCalls::default()));
        let result = self.run_noted(call, notes.clone()).await;
        let api_calls = notes
            .map(|notes| std::mem::take(&mut *notes.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default();
        Ran { result, api_calls }
    }

    async fn run_noted(
        &self,
        call: Call<'_>,
        notes: Option<Arc<ApiCalls>>,
    ) -> Result<(Val, CallStats), Failure> {
        let Call {
            plugin,
            export,
            command,
            operation_id,
            args,
            deadline,
            allowed,
            fuel,
            spent,
        } = call;
        // The plugin's own cap first: a call waiting for it holds no slot of the host's.
        let _plugin_slot = match &plugin.calls {
            Some(calls) => Some(slot(calls, deadline).await?),
            None => None,
        };
        let host_slot = slot(&self.permits, deadline).await?;
        let alive = InstanceCount::new(&self.metrics);
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
        // Where the instance comes from: kept from an earlier request (reuse mode), built ahead
        // (the stock), or built now, for this call. One made before its call starts it now.
        let ready = match plugin.take_idle() {
            Some(WarmInstance {
                store,
                instance,
                uses,
            }) => Some((store, instance, uses)),
            None if plugin.stock.enabled() => plugin.stock.take().map(
                |Stocked {
                     store, instance, ..
                 }| (store, instance, 0),
            ),
            None => None,
        };
        let (mut store, ready_instance, uses) = match ready {
            Some((mut store, instance, uses)) => {
                let values = self.capabilities().config_values(&plugin.capabilities);
                store.data_mut().begin_call(tag, deadline, values);
                (store, Some(instance), uses)
            }
            None => (self.builder.store(plugin, tag, deadline), None, 0),
        };
        store.data_mut().openim.begin_call(notes);
        self.builder
            .arm(&mut store, fuel)
            .map_err(Failure::Instantiate)?;
        let params = match args {
            Args::None => Vec::new(),
            Args::Handle { position, request } => {
                handle_params(operation_id, command, time_left, position, request)
            }
        };
        let run = async {
            let instance = match ready_instance {
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
                .map_err(|e| Failure::classify(e, allowed, fuel))?;
            let [result] = result;
            Ok::<_, Failure>((instance, result))
        };
        let (instance, result) = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::TimeoutInHostCall {
                    allowed_ms: allowed.as_millis(),
                });
            }
        };
        let stats = CallStats {
            fuel_used: if self.config().fuel_metering {
                fuel.saturating_sub(store.get_fuel().unwrap_or(0))
            } else {
                0
            },
            elapsed: started.elapsed(),
            peak_memory_bytes: store.data().limiter.peak_memory_bytes(),
        };
        let retry_later = store.data_mut().openim.retry_later.take();
        // Only an instance that answered is kept for reuse: one that failed is never run again.
        let uses = uses + 1;
        if uses < plugin.limits.reuse_instances {
            plugin.put_idle(WarmInstance {
                store,
                instance,
                uses,
            });
        } else {
            let refill = self.refill(plugin);
            let mut leftovers = spent.leftovers();
            leftovers.used.push(Used {
                _store: store,
                _slot: host_slot,
                _alive: alive,
            });
            leftovers.refills.extend(refill);
        }
        if let Some(reason) = retry_later {
            return Err(Failure::RetryRequested(reason));
        }
        Ok((result, stats))
    }
}

/// Counts a plugin instance as alive while it exists.
struct InstanceCount(Gauge);

impl InstanceCount {
    fn new(metrics: &Metrics) -> Self {
        metrics.instances.inc();
        Self(metrics.instances.clone())
    }
}

impl Drop for InstanceCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}
