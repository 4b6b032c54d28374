//! The chain: running one callback through the plugins that handle its command, the same way for
//! every command. Each plugin call gets a fresh store and instance (or a kept one in reuse mode)
//! under its own deadline, the command's fuel budget and the plugin's memory caps.
//!
//! - Before-callbacks: the first refusal wins and ends the chain. Where the command's answer may
//!   change the operation, each plugin sees the request with the earlier plugins' changes applied,
//!   and the answer carries the merged changes (see [`crate::protocol::answer::Merge`]).
//! - After-callbacks: the operation already happened, so every plugin sees every event and the
//!   answer is always "go on".
//! - A plugin that fails (or never got to run) is failed under the command's policy.
//! - No plugin can starve the ones after it: each keeps back its `reserve` from the deadlines of
//!   the plugins before it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::Val;

use crate::capabilities::Capabilities;
use crate::config::{CommandSettings, Config, FailurePolicy};
use crate::metrics::{Metrics, ShadowLabels};
use crate::protocol::answer::{self, Merge};
use crate::protocol::commands::Phase;
use crate::protocol::schema::Catalog;
use crate::protocol::schema::Command;
use crate::protocol::{self, CallbackResponse};
use crate::record::{self, Record, Recorder};
use crate::registry::{CurrentPlugins, Link, Registry};
use crate::runtime::budget::MemoryBudget;
use crate::runtime::limits::Failure;
use crate::runtime::output::CallTag;
use crate::runtime::plugin::{Entry, Plugin, WarmInstance};
use crate::untrusted::{ANSWER_CAP, Untrusted};

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

/// What a request came to, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every plugin let it go on (possibly with changes).
    Ok,
    /// A plugin refused it.
    Refused,
    /// No plugin handles the command.
    NoPlugin,
    /// A plugin failed and the `refuse` policy answered; the failure's kind.
    Failed(&'static str),
    /// A `queued` after-callback, stored: the queue's workers deliver it.
    Queued,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::NoPlugin => "no_plugin",
            Self::Failed(kind) => kind,
            Self::Queued => "queued",
        }
    }
}

/// What one plugin's call means for the chain.
enum Verdict {
    /// Go on with the next plugin (changes, if any, are merged).
    Next,
    /// A before-callback refused: the answer.
    Refused(CallbackResponse),
    /// The plugin failed, or answered what cannot be forwarded.
    Failed(Failure),
}

/// What a plugin is given.
#[derive(Debug)]
pub enum Input<'a> {
    /// The request record, for a typed interface.
    Typed(&'a Val),
    /// The same, when the caller no longer needs it (no copy is made).
    Owned(Val),
    /// The request as JSON, for the generic interface.
    Json(&'a str),
}

/// What a plugin returned, before it is checked.
#[derive(Debug)]
pub enum Reply {
    Typed(Val),
    Json(String),
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
    /// The memory all instances may hold at once; shared with the loader.
    budget: Arc<MemoryBudget>,
    /// What plugins may use beyond WASI's nothing; shared with the loader.
    capabilities: Arc<Capabilities>,
    /// Writes sampled before-callbacks and shadow disagreements, when recording is on.
    recorder: Option<Recorder>,
    /// Shadow calls in flight at once (a quarter of `max_concurrent_calls`): beyond it a shadow
    /// call is skipped, so shadows never crowd out live traffic.
    shadow_permits: Semaphore,
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
        budget: Arc<MemoryBudget>,
        capabilities: Arc<Capabilities>,
        recorder: Option<Recorder>,
    ) -> Self {
        let permits = Semaphore::new(config.max_concurrent_calls as usize);
        let shadow_permits = Semaphore::new((config.max_concurrent_calls as usize / 4).max(1));
        Self {
            engine,
            plugins,
            config,
            metrics,
            permits,
            budget,
            capabilities,
            recorder,
            shadow_permits,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The memory budget, for status reporting.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The command called `name`: one OpenIM sends, or one a JSON plugin in force declared.
    pub fn command_named(&self, name: &str) -> Option<&'static str> {
        protocol::known_command(name).or_else(|| self.plugins.get().handled(name))
    }

    /// The plugins in force, for status reporting.
    pub fn plugins(&self) -> &CurrentPlugins {
        &self.plugins
    }

    /// Answers one callback: the JSON answer for OpenIM and what the request came to.
    /// `command` is `None` for a command the host has no shape for (declared by a JSON plugin);
    /// `parsed` is the request record of a known command.
    #[tracing::instrument(name = "callback", skip_all,
        fields(command = request.command, operation_id = %request.operation_id))]
    pub async fn run(
        self: &Arc<Self>,
        request: &Request,
        command: Option<&Command>,
        parsed: Option<Val>,
        body: &str,
    ) -> (Vec<u8>, Outcome) {
        // One set of plugins for the whole request, shadows included, even across a reload.
        let registry = self.plugins.get();
        let (answer, outcome) = self.chain(&registry, request, command, parsed, body).await;
        tracing::debug!(
            outcome = outcome.as_str(),
            elapsed_us = request.received.elapsed().as_micros() as u64,
            "request answered"
        );
        let phase = command.map_or(Phase::Before, |c| c.spec.phase);
        if phase == Phase::Before
            && let Some(recorder) = &self.recorder
            && recorder.sampled()
        {
            recorder.record(Record {
                kind: record::Kind::Before,
                command: request.command.to_owned(),
                operation_id: request.operation_id.to_string(),
                at_ms: crate::unix_ms(),
                body: body.to_owned(),
                answer: serde_json::from_slice(&answer).unwrap_or_default(),
                shadow: None,
            });
        }
        if !registry.shadows(request.command).is_empty() {
            let (dispatcher, command, operation_id) = (
                Arc::clone(self),
                request.command,
                Arc::clone(&request.operation_id),
            );
            let (body, given) = (body.to_owned(), answer.clone());
            tokio::spawn(async move {
                dispatcher
                    .shadow(&registry, command, operation_id, &body, &given)
                    .await;
            });
        }
        (answer, outcome)
    }

    /// Runs the shadow plugins of `command` on a request that was answered `given`, and counts
    /// (logs, records) whether each would have answered the same. Off the answer path.
    #[tracing::instrument(name = "shadow", skip_all, fields(command, operation_id = %operation_id))]
    async fn shadow(
        &self,
        registry: &Registry,
        command: &'static str,
        operation_id: Arc<str>,
        body: &str,
        given: &[u8],
    ) {
        let shape = Catalog::get().command(command);
        let given: serde_json::Value = serde_json::from_slice(given).unwrap_or_default();
        for link in registry.shadows(command) {
            let plugin = &link.plugin.name;
            let request = Request {
                command,
                operation_id: Arc::clone(&operation_id),
                received: Instant::now(),
            };
            let verdict = match self.shadow_permits.try_acquire() {
                Err(_) => "skipped",
                Ok(_permit) => match self.shadow_answer(link, &request, shape, body).await {
                    Err(failure) => {
                        tracing::warn!(%plugin, outcome = failure.kind(), "shadow plugin failed: {failure}");
                        "failed"
                    }
                    Ok(answer) if answer == given => "agree",
                    Ok(answer) => {
                        tracing::info!(%plugin, given = %Untrusted::capped(&given.to_string(), ANSWER_CAP),
                            shadow = %Untrusted::capped(&answer.to_string(), ANSWER_CAP),
                            "shadow plugin disagrees with the answer given");
                        if let Some(recorder) = &self.recorder {
                            recorder.record(Record {
                                kind: record::Kind::Shadow,
                                command: command.to_owned(),
                                operation_id: operation_id.to_string(),
                                at_ms: crate::unix_ms(),
                                body: body.to_owned(),
                                answer: given.clone(),
                                shadow: Some(record::ShadowAnswer {
                                    plugin: plugin.to_string(),
                                    answer,
                                }),
                            });
                        }
                        "disagree"
                    }
                },
            };
            self.metrics
                .shadow
                .get_or_create(&ShadowLabels {
                    command,
                    plugin: Arc::clone(plugin),
                    verdict,
                })
                .inc();
        }
    }

    /// What one plugin alone would have answered `body`: its refusal, or "go on" with its
    /// changes, in the form OpenIM is answered.
    async fn shadow_answer(
        &self,
        link: &Link,
        request: &Request,
        shape: Option<&Command>,
        body: &str,
    ) -> Result<serde_json::Value, Failure> {
        let parsed = shape
            .map(|s| protocol::parse(s, body))
            .transpose()
            .map_err(|e| Failure::Instantiate(format!("the request no longer parses: {e}")))?;
        let mut merge = shape.zip(parsed).map(|(c, v)| Merge::new(c, v));
        let settings = self.config.command(request.command);
        let deadline = request.received + self.config.budget(request.command);
        let input = match (link.entry, &merge) {
            (Entry::Typed(_), Some(merge)) => Input::Typed(&merge.request),
            _ => Input::Json(body),
        };
        let started = Instant::now();
        let result = self
            .call(link, 0, request, input, deadline, settings.fuel)
            .await
            .and_then(|(reply, stats)| Ok((decode_reply(shape, reply)?, stats)));
        let seconds = started.elapsed().as_secs_f64();
        let ((response, changes), stats) = match result {
            Ok(answered) => answered,
            Err(failure) => {
                self.metrics
                    .call(&link.plugin.name, failure.kind(), seconds, None);
                return Err(failure);
            }
        };
        let outcome = if response.is_refusal() {
            "refused"
        } else {
            "ok"
        };
        self.metrics
            .call(&link.plugin.name, outcome, seconds, Some(stats.fuel_used));
        let answer = if response.is_refusal() {
            response.to_json()
        } else {
            if let (Some(changes), Some(merge)) = (changes, merge.as_mut()) {
                merge
                    .apply(&changes)
                    .map_err(|invalid| Failure::InvalidAnswer(invalid.0))?;
            }
            merge
                .as_ref()
                .map_or_else(|| CallbackResponse::go_on().to_json(), Merge::go_on_answer)
        };
        Ok(serde_json::from_slice(&answer).unwrap_or_default())
    }

    async fn chain(
        &self,
        registry: &Registry,
        request: &Request,
        command: Option<&Command>,
        parsed: Option<Val>,
        body: &str,
    ) -> (Vec<u8>, Outcome) {
        let phase = command.map_or(Phase::Before, |c| c.spec.phase);
        let settings = self.config.command(request.command);
        let deadline = request.received + self.config.budget(request.command);
        let chain = registry.chain(request.command);
        let mut merge = command.zip(parsed).map(|(c, v)| Merge::new(c, v));
        let go_on = |merge: &Option<Merge>| match merge {
            Some(merge) => merge.go_on_answer(),
            None => CallbackResponse::go_on().to_json(),
        };
        if chain.is_empty() {
            tracing::info!(
                outcome = "no_plugin",
                "no plugin handles this command; answering go on"
            );
            return (go_on(&merge), Outcome::NoPlugin);
        }
        // The time kept back for the plugins after each one.
        let mut reserved_after: Vec<Duration> =
            chain.iter().map(|l| l.plugin.limits.reserve).collect();
        let mut after = Duration::ZERO;
        for slot in reserved_after.iter_mut().rev() {
            let own = *slot;
            *slot = after;
            after += own;
        }
        for (position, link) in chain.iter().enumerate() {
            let plugin_deadline = deadline
                .checked_sub(reserved_after[position])
                .unwrap_or(request.received);
            let started = Instant::now();
            let json_body;
            // The last plugin may take the request itself when nothing reads it afterwards.
            let take = position + 1 == chain.len()
                && command.is_some_and(|c| c.changes().is_none() && c.spec.rules.echo.is_empty());
            let input = match (link.entry, &mut merge) {
                (Entry::Typed(_), Some(merge)) if take => {
                    Input::Owned(std::mem::replace(&mut merge.request, Val::Bool(false)))
                }
                (Entry::Typed(_), Some(merge)) => Input::Typed(&merge.request),
                (Entry::Json(_), Some(merge)) if merge.changed => {
                    json_body = merge.request_json();
                    Input::Json(&json_body)
                }
                _ => Input::Json(body),
            };
            let result = self
                .call(
                    link,
                    position,
                    request,
                    input,
                    plugin_deadline,
                    settings.fuel,
                )
                .await
                .and_then(|(reply, stats)| {
                    let (response, changes) = decode_reply(command, reply)?;
                    Ok((response, changes, stats))
                });
            let seconds = started.elapsed().as_secs_f64();
            let plugin = &link.plugin.name;
            // The call's own outcome (`ok` or `refused`, also for an after-callback), and its fuel.
            let (verdict, answered, fuel) = match result {
                Err(failure) => (Verdict::Failed(failure), "ok", None),
                Ok((response, changes, stats)) => {
                    let answered = if response.is_refusal() {
                        "refused"
                    } else {
                        "ok"
                    };
                    tracing::debug!(%plugin, refused = response.is_refusal(), fuel_used = stats.fuel_used,
                        elapsed_us = stats.elapsed.as_micros() as u64, "plugin answered");
                    let verdict = match (phase, response.is_refusal()) {
                        (Phase::Before, true) => Verdict::Refused(response),
                        (Phase::Before, false) => match (changes, &mut merge) {
                            (Some(changes), Some(merge)) => match merge.apply(&changes) {
                                Ok(()) => Verdict::Next,
                                Err(invalid) => Verdict::Failed(Failure::InvalidAnswer(invalid.0)),
                            },
                            _ => Verdict::Next,
                        },
                        (Phase::After, refused) => {
                            if refused {
                                // OpenIM already carried it out: the answer stays "go on", and the
                                // next plugins still see the event.
                                log_after_refusal(plugin, &response);
                            }
                            Verdict::Next
                        }
                    };
                    (verdict, answered, Some(stats.fuel_used))
                }
            };
            match &verdict {
                Verdict::Failed(failure) => {
                    self.metrics.call(plugin, failure.kind(), seconds, None)
                }
                _ => self.metrics.call(plugin, answered, seconds, fuel),
            }
            match verdict {
                Verdict::Next => {}
                Verdict::Refused(response) => return (response.to_json(), Outcome::Refused),
                Verdict::Failed(failure) => {
                    let not_run = matches!(failure, Failure::NoTimeLeft);
                    tracing::warn!(%plugin, outcome = failure.kind(), policy = ?settings.failure_policy,
                        not_run, "plugin failed: {failure}");
                    if phase == Phase::Before
                        && let Some(answer) = policy_answer(settings, plugin, &failure)
                    {
                        return (answer.to_json(), Outcome::Failed(failure.kind()));
                    }
                }
            }
        }
        (go_on(&merge), Outcome::Ok)
    }

    /// Delivers a stored after-callback to the plugins of its command that have not handled it
    /// yet, each under the command's whole budget from its own start; returns each one's result.
    pub async fn deliver(
        &self,
        event: &crate::queue::Event,
        redelivered: bool,
    ) -> Vec<(Arc<str>, Result<(), Failure>)> {
        let Some(command) = protocol::known_command(&event.command) else {
            return Vec::new();
        };
        let shape = Catalog::get().command(command);
        let parsed = match shape.map(|s| protocol::parse(s, &event.body)).transpose() {
            Ok(parsed) => parsed,
            Err(error) => {
                // Validated when it was accepted: only a contract change can do this.
                tracing::error!(%error, "a stored event no longer parses; dead-lettering it");
                return vec![(
                    "(host)".into(),
                    Err(Failure::Instantiate(error.to_string())),
                )];
            }
        };
        let registry = self.plugins.get();
        let settings = self.config.command(command);
        let request = Request {
            command,
            operation_id: event.operation_id.as_str().into(),
            received: Instant::now(),
        };
        let mut results = Vec::new();
        for (position, link) in registry.chain(command).iter().enumerate() {
            let plugin = &link.plugin.name;
            if event.done.iter().any(|done| **done == **plugin) {
                continue;
            }
            let started = Instant::now();
            let deadline = started + self.config.budget(command);
            let input = match (link.entry, &parsed) {
                (Entry::Typed(_), Some(value)) => Input::Typed(value),
                _ => Input::Json(&event.body),
            };
            let result = self
                .call(link, position, &request, input, deadline, settings.fuel)
                .await
                .and_then(|(reply, stats)| {
                    let (response, _) = decode_reply(shape, reply)?;
                    Ok((response, stats))
                });
            let seconds = started.elapsed().as_secs_f64();
            match &result {
                Ok((response, stats)) => {
                    let outcome = if response.is_refusal() {
                        "refused"
                    } else {
                        "ok"
                    };
                    if response.is_refusal() {
                        log_after_refusal(plugin, response);
                    }
                    self.metrics
                        .call(plugin, outcome, seconds, Some(stats.fuel_used));
                }
                Err(failure) => {
                    tracing::warn!(%plugin, outcome = failure.kind(), redelivered, "plugin failed: {failure}");
                    self.metrics.call(plugin, failure.kind(), seconds, None);
                }
            }
            results.push((Arc::clone(plugin), result.map(|_| ())));
        }
        // Shadows see each event once, on its first delivery.
        if event.failures == 0 && !redelivered && !registry.shadows(command).is_empty() {
            let given = match shape.zip(parsed) {
                Some((shape, parsed)) => Merge::new(shape, parsed).go_on_answer(),
                None => CallbackResponse::go_on().to_json(),
            };
            self.shadow(
                &registry,
                command,
                request.operation_id,
                &event.body,
                &given,
            )
            .await;
        }
        results
    }

    /// One call of one plugin, with the deadline at `deadline`.
    pub async fn call(
        &self,
        link: &Link,
        position: usize,
        request: &Request,
        input: Input<'_>,
        deadline: Instant,
        fuel: u64,
    ) -> Result<(Reply, CallStats), Failure> {
        let plugin: &Plugin = &link.plugin;
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
                crate::runtime::store::new_store(
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
        crate::runtime::store::arm(&mut store, &self.config, fuel)
            .map_err(|e| Failure::Instantiate(format!("{e:#}")))?;
        let delivery = Val::Record(vec![
            (
                "operation-id".into(),
                Val::String(request.operation_id.to_string()),
            ),
            ("command".into(), Val::String(request.command.to_owned())),
            (
                "time-left-ms".into(),
                Val::U32(u32::try_from(time_left.as_millis()).unwrap_or(u32::MAX)),
            ),
            (
                "chain-position".into(),
                Val::U32(u32::try_from(position).unwrap_or(u32::MAX)),
            ),
        ]);
        let (index, argument) = match (link.entry, input) {
            (Entry::Typed(index), Input::Typed(value)) => (index, value.clone()),
            (Entry::Typed(index), Input::Owned(value)) => (index, value),
            (Entry::Json(index), Input::Json(text)) => (index, Val::String(text.to_owned())),
            _ => {
                return Err(Failure::Instantiate(
                    "the request does not fit the plugin's interface".into(),
                ));
            }
        };
        let call = async {
            let instance = match warm_instance {
                Some(instance) => instance,
                None => plugin
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| Failure::Instantiate(format!("{e:#}")))?,
            };
            let func = instance
                .get_func(&mut store, index)
                .ok_or_else(|| Failure::Instantiate("the handler export is missing".into()))?;
            let mut result = [Val::Bool(false)];
            func.call_async(&mut store, &[delivery, argument], &mut result)
                .await
                .map_err(|e| Failure::classify(e, budget, fuel))?;
            let [result] = result;
            Ok::<_, Failure>((instance, result))
        };
        let (instance, result) = match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::TimeoutInHostCall {
                    budget_ms: budget.as_millis(),
                });
            }
        };
        let reply = match (link.entry, result) {
            (Entry::Json(_), Val::String(text)) => Reply::Json(text),
            (Entry::Json(_), _) => {
                return Err(Failure::InvalidAnswer("handle() returned no string".into()));
            }
            (Entry::Typed(_), value) => Reply::Typed(value),
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
        Ok((reply, stats))
    }
}

/// Logs the refusal of an after-callback (OpenIM already carried it out: it is answered "go on"),
/// with the plugin's answer.
fn log_after_refusal(plugin: &Arc<str>, response: &CallbackResponse) {
    tracing::info!(%plugin, outcome = "refused",
        answer = %Untrusted::capped(&String::from_utf8_lossy(&response.to_json()), ANSWER_CAP),
        "after-callback refused by a plugin; answering go on");
}

/// What a plugin returned, checked against the command's answer shape: the response, and the
/// changes for commands that have them. An answer that does not fit is the plugin's failure.
pub fn decode_reply(
    command: Option<&Command>,
    reply: Reply,
) -> Result<(CallbackResponse, Option<Val>), Failure> {
    match reply {
        Reply::Typed(value) => command
            .map(|c| answer::from_typed(c, value))
            .unwrap_or_else(|| Err(answer::InvalidAnswer("no shape for a typed answer".into()))),
        Reply::Json(text) => answer::from_json(command, &text),
    }
    .map_err(|e| Failure::InvalidAnswer(e.0))
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
