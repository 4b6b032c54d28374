//! Running a callback through its plugins: a fresh store and instance per plugin call, under the
//! command's deadline, fuel budget and the plugin's memory caps; the first refusal wins, a failure
//! answers by the command's policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::bindings::{self, Delivery};
use crate::config::{CommandSettings, Config, FailurePolicy};
use crate::limits::{DeadlineExceeded, Failure, PluginLimiter};
use crate::metrics::Metrics;
use crate::plugin::{Plugin, WarmInstance};
use crate::protocol::{CallbackResponse, KICK_COMMAND, KickRequest};
use crate::registry::CurrentPlugins;
use crate::sandbox::{CallTag, PluginState};

/// One delivery of a callback, as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The command from the URL.
    pub command: &'static str,
    /// OpenIM's `operationID` header ("" if absent).
    pub operation_id: Arc<str>,
    /// When the request arrived: OpenIM's timeout runs from about here.
    pub received: Instant,
}

/// Runs callbacks through plugins.
pub struct Dispatcher {
    /// The engine all plugins were compiled with.
    engine: Engine,
    /// The plugins of each command; swapped by hot reload.
    plugins: Arc<CurrentPlugins>,
    /// Per-call counters and histograms.
    metrics: Arc<Metrics>,
    /// Timeouts, fuel and policies per command.
    config: Arc<Config>,
    /// One permit per plugin instance alive at once, so the pooling allocator never runs out:
    /// requests beyond it wait (within their deadline) instead of failing.
    permits: Semaphore,
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

impl Dispatcher {
    pub fn new(
        engine: Engine,
        plugins: Arc<CurrentPlugins>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let permits = Semaphore::new(config.max_concurrent_calls as usize);
        Self {
            engine,
            plugins,
            config,
            metrics,
            permits,
        }
    }

    /// The plugins in force, for status reporting.
    pub fn plugins(&self) -> &CurrentPlugins {
        &self.plugins
    }

    /// Answers a kick callback: every kick plugin in order, the first refusal wins. Also returns
    /// the request's outcome for metrics: `ok`, `refused`, `no_plugin`, or the failure kind that
    /// made the `refuse` policy answer.
    pub async fn kick(
        &self,
        request: &Request,
        body: KickRequest,
    ) -> (CallbackResponse, &'static str) {
        let settings = self.config.command(KICK_COMMAND);
        let deadline = request.received + self.config.budget(KICK_COMMAND);
        let wit_request = bindings::KickRequest::from(body);
        let registry = self.plugins.get();
        let plugins = registry.for_command(KICK_COMMAND);
        if plugins.is_empty() {
            return (CallbackResponse::go_on(), "no_plugin");
        }
        for (position, plugin) in plugins.iter().enumerate() {
            let started = Instant::now();
            let outcome = self
                .call_kick(
                    plugin,
                    position,
                    request,
                    &wit_request,
                    deadline,
                    settings.fuel,
                )
                .await;
            let seconds = started.elapsed().as_secs_f64();
            match outcome {
                Ok((answer, stats)) => {
                    let answer = CallbackResponse::from(answer);
                    let refused = answer.is_refusal();
                    let kind = if refused { "refused" } else { "ok" };
                    self.metrics
                        .call(&plugin.name, kind, seconds, Some(stats.fuel_used));
                    tracing::debug!(plugin = %plugin.name, command = request.command,
                        operation_id = %request.operation_id,
                        outcome = kind,
                        fuel_used = stats.fuel_used, elapsed_us = stats.elapsed.as_micros() as u64,
                        "plugin answered");
                    if refused {
                        return (answer, "refused");
                    }
                }
                Err(failure) => {
                    self.metrics
                        .call(&plugin.name, failure.kind(), seconds, None);
                    tracing::warn!(plugin = %plugin.name, command = request.command,
                        operation_id = %request.operation_id, outcome = failure.kind(),
                        policy = ?settings.failure_policy, "plugin failed: {failure}");
                    if let Some(answer) = policy_answer(settings, &plugin.name, &failure) {
                        return (answer, failure.kind());
                    }
                }
            }
        }
        (CallbackResponse::go_on(), "ok")
    }

    /// One call of one plugin in a fresh store, under the kick command's limits, with the deadline
    /// at `deadline`.
    pub async fn call_kick(
        &self,
        plugin: &Plugin,
        position: usize,
        request: &Request,
        body: &bindings::KickRequest,
        deadline: Instant,
        fuel: u64,
    ) -> Result<(bindings::Response, CallStats), Failure> {
        let budget = deadline.saturating_duration_since(request.received);
        // Usually a slot is free; only wait (with a timer) when all are taken.
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout_at(deadline.into(), self.permits.acquire()).await {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; either way there is no slot before the deadline.
                    Ok(Err(_)) | Err(_) => return Err(Failure::NoTimeLeft),
                }
            }
        };
        let _alive = InstanceCount::new(&self.metrics);
        let started = Instant::now();
        let time_left = deadline.saturating_duration_since(started);
        if time_left.is_zero() {
            return Err(Failure::NoTimeLeft);
        }
        let tag = Arc::new(CallTag {
            plugin: Arc::clone(&plugin.name),
            command: request.command,
            operation_id: Arc::clone(&request.operation_id),
        });
        // In reuse mode, an instance from an earlier request; otherwise a fresh store.
        let warm = plugin.take_idle();
        let (mut store, warm_guest, uses) = match warm {
            Some(WarmInstance {
                mut store,
                guest,
                uses,
            }) => {
                store.data_mut().begin_call(tag, deadline);
                (store, Some(guest), uses)
            }
            None => (self.new_store(plugin, tag, deadline), None, 0),
        };
        if self.config.fuel_metering {
            store
                .set_fuel(fuel)
                .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        }
        if self.config.epoch_interruption {
            store.set_epoch_deadline(1);
        }
        let delivery = Delivery {
            operation_id: request.operation_id.to_string(),
            command: request.command.to_owned(),
            time_left_ms: u32::try_from(time_left.as_millis()).unwrap_or(u32::MAX),
            chain_position: u32::try_from(position).unwrap_or(u32::MAX),
        };
        let call = async {
            let guest = match warm_guest {
                Some(guest) => guest,
                None => {
                    let instance = plugin
                        .pre
                        .instantiate_async(&mut store)
                        .await
                        .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
                    plugin
                        .kick
                        .load(&mut store, &instance)
                        .map_err(|e| Failure::Instantiate(format!("{e:#}")))?
                }
            };
            let answer = guest
                .call_handle_kick(&mut store, &delivery, body)
                .await
                .map_err(|e| Failure::classify(e, budget, fuel))?;
            Ok::<_, Failure>((guest, answer))
        };
        let (guest, answer) = match tokio::time::timeout_at(deadline.into(), call).await {
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
            plugin.put_idle(WarmInstance { store, guest, uses });
        }
        Ok((answer, stats))
    }

    /// A fresh store for one plugin instance, with its limits and deadline check.
    fn new_store(
        &self,
        plugin: &Plugin,
        tag: Arc<CallTag>,
        deadline: Instant,
    ) -> Store<PluginState> {
        let state = PluginState::new(tag, PluginLimiter::new(plugin.limits), deadline);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.epoch_interruption {
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
}

/// The answer the command's failure policy gives when `plugin` failed: a refusal under `refuse`,
/// `None` (go on with the next plugin) under `continue`.
pub fn policy_answer(
    settings: &CommandSettings,
    plugin: &str,
    failure: &Failure,
) -> Option<CallbackResponse> {
    match settings.failure_policy {
        FailurePolicy::Continue => None,
        FailurePolicy::Refuse => Some(CallbackResponse::refuse(
            settings.refuse_err_code,
            settings.refuse_err_msg.clone(),
            format!("plugin {plugin} failed: {}", failure.kind()),
        )),
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
