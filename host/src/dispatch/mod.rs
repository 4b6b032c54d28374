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
//!
//! Shadow plugins ([`shadow`]) and the queue's deliveries ([`deliver`]) read answers the same way
//! ([`Dispatcher::answer`]).

mod deliver;
mod reply;
mod shadow;
mod types;

pub use reply::{decode_reply, policy_answer};
pub use types::{Answered, Attempt, Callback, Chained, Input, Reply, Turn};

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::Val;

use crate::config::Config;
use crate::history::{Decision, History, Step};
use crate::metrics::{ApiCallNotes, Metrics};
use crate::outcomes::{CallOutcome, RequestOutcome};
use crate::protocol::answer::Merge;
use crate::protocol::commands::Phase;
use crate::protocol::schema::Command;
use crate::protocol::{self, CallbackResponse};
use crate::queue::Queue;
use crate::record::{self, Record, Recorder};
use crate::registry::{CurrentPlugins, Registry};
use crate::runtime::budget::MemoryBudget;
pub use crate::runtime::call::CallStats;
use crate::runtime::call::{Args, Call, Ran, Runner, Spent};
use crate::runtime::limits::Failure;
use crate::runtime::plugin::Entry;
use crate::untrusted::{ANSWER_CAP, Untrusted};

/// Runs callbacks through plugins.
pub struct Dispatcher {
    /// Runs each plugin call; holds the engine, the permits, the memory budget and what plugins
    /// may use.
    runner: Arc<Runner>,
    /// The plugins of each command; swapped by hot reload.
    plugins: Arc<CurrentPlugins>,
    /// Per-call counters and histograms.
    metrics: Arc<Metrics>,
    /// Timeouts, fuel and policies per command.
    config: Arc<Config>,
    /// Writes sampled before-callbacks and shadow disagreements, when recording is on.
    recorder: Option<Recorder>,
    /// Shadow calls in flight at once (a quarter of `max_concurrent_calls`): beyond it a shadow
    /// call is skipped, so shadows never crowd out live traffic.
    shadow_permits: Semaphore,
    /// What the console shows: shadow disagreements and misread refusals are kept here.
    history: Arc<History>,
    /// The commands that came with no plugin to handle them, each logged once at INFO.
    unhandled: FirstTimes,
}

/// Which commands were seen already: a line OpenIM could repeat at its message rate is logged
/// the first time only.
#[derive(Debug, Default)]
struct FirstTimes(std::sync::RwLock<std::collections::HashSet<&'static str>>);

impl FirstTimes {
    /// Whether this is the first time `command` is seen.
    fn first(&self, command: &'static str) -> bool {
        let seen = |set: &std::collections::HashSet<&'static str>| set.contains(command);
        if seen(&self.0.read().unwrap_or_else(|e| e.into_inner())) {
            return false;
        }
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(command)
    }
}

impl Dispatcher {
    pub fn new(
        runner: Arc<Runner>,
        plugins: Arc<CurrentPlugins>,
        metrics: Arc<Metrics>,
        recorder: Option<Recorder>,
        history: Arc<History>,
    ) -> Self {
        let config = Arc::clone(runner.config());
        let shadow_permits = Semaphore::new((config.max_concurrent_calls as usize / 4).max(1));
        Self {
            runner,
            plugins,
            config,
            metrics,
            recorder,
            shadow_permits,
            history,
            unhandled: FirstTimes::default(),
        }
    }

    /// What the host did lately, for the console.
    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The memory budget, for status reporting.
    pub fn budget(&self) -> &MemoryBudget {
        self.runner.budget()
    }

    /// Whether a callback of `command` is stored for the queue's workers rather than run now:
    /// a `queued` after-callback that a plugin handles (an event no plugin handles is not worth
    /// storing: it is answered at once).
    fn stores(&self, command: &Command) -> bool {
        self.config.queued(command.spec) && self.plugins.get().serves(command.spec.name)
    }

    /// When the answer to a callback of `command` received at `received` is due: OpenIM's
    /// timeout less the safety margin.
    fn deadline(&self, command: &str, received: Instant) -> Instant {
        received + self.config.time_allowed(command)
    }

    /// The command called `name`: one OpenIM sends, or one a JSON plugin in force declared.
    pub fn command_named(&self, name: &str) -> Option<&'static str> {
        protocol::known_command(name).or_else(|| self.plugins.get().handled(name))
    }

    /// The plugins in force, for status reporting.
    pub fn plugins(&self) -> &CurrentPlugins {
        &self.plugins
    }

    /// Answers one callback as it arrives: a `queued` after-callback is stored for the queue's
    /// workers and answered "go on" at once (inline when the queue is full or failing); any
    /// other runs through its chain now.
    pub async fn receive(
        self: &Arc<Self>,
        callback: &mut Callback,
        queue: Option<&Queue>,
    ) -> Chained {
        if let Some(queue) = queue
            && callback.shape.is_some_and(|c| self.stores(c))
        {
            let deadline = self.deadline(callback.command, callback.received);
            let event = callback.event();
            let stored_ms = event.accepted_ms;
            match queue.append(event, deadline).await {
                Ok(true) => {
                    return Chained {
                        answer: CallbackResponse::go_on().to_json(),
                        outcome: RequestOutcome::Queued,
                        steps: Vec::new(),
                        spent: Spent::default(),
                        stored_ms: Some(stored_ms),
                    };
                }
                Ok(false) => {
                    tracing::warn!(operation_id = %callback.operation_id, "the queue is full: delivering inline");
                }
                Err(error) => {
                    tracing::error!(operation_id = %callback.operation_id, "could not store the event ({error:#}): delivering inline");
                }
            }
        }
        self.run(callback).await
    }

    /// Runs one callback through its chain: the JSON answer for OpenIM and what the request came
    /// to. The chain takes the callback's parsed record.
    #[tracing::instrument(name = "callback", skip_all,
        fields(command = callback.command, operation_id = %callback.operation_id))]
    pub async fn run(self: &Arc<Self>, callback: &mut Callback) -> Chained {
        // One set of plugins for the whole request, shadows included, even across a reload.
        let registry = self.plugins.get();
        let shadowed = (!registry.shadows(callback.command).is_empty()).then(|| callback.copy());
        let mut steps = Vec::new();
        let spent = Spent::default();
        let parsed = callback.parsed.take();
        let (answer, outcome) = self
            .chain(&registry, callback, parsed, &mut steps, &spent)
            .await;
        tracing::debug!(
            outcome = outcome.as_str(),
            elapsed_us = callback.received.elapsed().as_micros() as u64,
            "request answered"
        );
        let phase = callback.shape.map_or(Phase::Before, |c| c.spec.phase);
        if phase == Phase::Before
            && let Some(recorder) = &self.recorder
            && recorder.sampled()
        {
            recorder.record(Record {
                kind: record::Kind::Before,
                command: callback.command.to_owned(),
                operation_id: callback.operation_id.to_string(),
                at_ms: crate::util::unix_ms(),
                body: callback.body().to_owned(),
                answer: serde_json::from_slice(&answer).unwrap_or_default(),
                shadow: None,
            });
        }
        if let Some(shadowed) = shadowed {
            let (dispatcher, given) = (Arc::clone(self), answer.clone());
            tokio::spawn(async move {
                dispatcher.shadow(&registry, shadowed, &given).await;
            });
        }
        Chained {
            answer,
            outcome,
            steps,
            spent,
            stored_ms: None,
        }
    }

    async fn chain(
        &self,
        registry: &Registry,
        callback: &Callback,
        parsed: Option<Val>,
        steps: &mut Vec<Step>,
        spent: &Spent,
    ) -> (Vec<u8>, RequestOutcome) {
        let (command, body) = (callback.shape, callback.body());
        let phase = command.map_or(Phase::Before, |c| c.spec.phase);
        let settings = self.config.command(callback.command);
        let deadline = self.deadline(callback.command, callback.received);
        let chain = registry.chain(callback.command);
        let mut merge = command.zip(parsed).map(|(c, v)| Merge::new(c, v));
        let go_on = |merge: &Option<Merge>| match merge {
            Some(merge) => merge.go_on_answer(),
            None => CallbackResponse::go_on().to_json(),
        };
        if chain.is_empty() {
            // OpenIM sends it at its message rate: said once per command, then at debug level;
            // counted in callback_host_requests_total{outcome="no_plugin"}.
            if self.unhandled.first(callback.command) {
                tracing::info!(
                    outcome = "no_plugin",
                    "no plugin handles this command; answering go on (said once per command: \
                     callback_host_requests_total{{outcome=\"no_plugin\"}} counts them)"
                );
            } else {
                tracing::debug!(
                    outcome = "no_plugin",
                    "no plugin handles this command; answering go on"
                );
            }
            return (go_on(&merge), RequestOutcome::NoPlugin);
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
                .unwrap_or(callback.received);
            let json_body;
            // The last plugin may take the request itself when nothing reads it afterwards.
            let take = position + 1 == chain.len()
                && command.is_some_and(|c| c.changes().is_none() && c.spec.rules.echo.is_empty());
            let input = match (link.entry, &mut merge) {
                (Entry::Typed(_), Some(merge)) if take => {
                    Input::Owned(std::mem::replace(&mut merge.request, Val::Bool(false)))
                }
                (Entry::Typed(_), Some(merge)) => Input::Owned(merge.request.clone()),
                (Entry::Json(_), Some(merge)) if merge.changed => {
                    json_body = merge.request_json();
                    Input::Json(&json_body)
                }
                _ => Input::Json(body),
            };
            let call = Attempt {
                link,
                position,
                callback,
                from: callback.received,
                deadline: plugin_deadline,
                fuel: settings.fuel,
                spent,
            };
            // Only a before-callback's changes count; after-callbacks have none.
            let merge_into = (phase == Phase::Before)
                .then_some(&mut merge)
                .and_then(Option::as_mut);
            let plugin = &link.plugin.name;
            let started = Instant::now();
            let Turn { result, api_calls } = self.answer(call, input, merge_into).await;
            steps.push(step(plugin, started, &result, api_calls));
            match result {
                Ok(Answered { response, .. }) if response.is_refusal() => match phase {
                    Phase::Before => return (response.to_json(), RequestOutcome::Refused),
                    // OpenIM already carried it out: the answer stays "go on", and the next
                    // plugins still see the event.
                    Phase::After => log_after_refusal(plugin, &response),
                },
                Ok(_) => {}
                Err(failure) => {
                    let not_run = matches!(failure, Failure::NoTimeLeft);
                    tracing::warn!(%plugin, outcome = failure.kind().as_str(), policy = ?settings.failure_policy,
                        not_run, "plugin failed: {failure}");
                    if phase == Phase::Before
                        && let Some(answer) = policy_answer(settings, plugin, &failure)
                    {
                        return (answer.to_json(), RequestOutcome::Failed(failure.kind()));
                    }
                }
            }
        }
        (go_on(&merge), RequestOutcome::Ok)
    }

    /// Calls one plugin's handler and reads its answer against the command's shape: the one
    /// path of the chain, shadows, the queue's workers and the `call` tool. Unless the plugin
    /// refused, its changes are applied to `merge` (an answer whose changes break the command's
    /// rules is the plugin's failure). The call is counted (outcome, time, fuel).
    pub async fn answer(
        &self,
        call: Attempt<'_>,
        input: Input<'_>,
        merge: Option<&mut Merge<'_>>,
    ) -> Turn {
        let started = Instant::now();
        let shape = call.callback.shape;
        let plugin = &call.link.plugin.name;
        let (called, api_calls) = self.call(call, input).await;
        let result = called.and_then(|(reply, stats)| {
            let (response, changes) = decode_reply(shape, reply)?;
            if let (false, Some(changes), Some(merge)) = (response.is_refusal(), changes, merge) {
                merge
                    .apply(&changes)
                    .map_err(|invalid| Failure::InvalidAnswer(invalid.0))?;
            }
            Ok(Answered { response, stats })
        });
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(Answered { response, stats }) => {
                tracing::debug!(%plugin, refused = response.is_refusal(), fuel_used = stats.fuel_used,
                    elapsed_us = stats.elapsed.as_micros() as u64, "plugin answered");
                if response.is_misread_refusal() {
                    self.misread_refusal(plugin, call.callback.command, response);
                }
                let outcome = if response.is_refusal() {
                    CallOutcome::Refused
                } else {
                    CallOutcome::Ok
                };
                self.metrics
                    .call(plugin, outcome, seconds, Some(stats.fuel_used));
            }
            Err(failure) => {
                let outcome = CallOutcome::Failed(failure.kind());
                self.metrics.call(plugin, outcome, seconds, None);
            }
        }
        Turn { result, api_calls }
    }

    /// Counts an answer with `nextCode 1` and a non-zero `actionCode` (OpenIM goes on), and warns
    /// the first time a plugin gives one for a command.
    fn misread_refusal(
        &self,
        plugin: &Arc<str>,
        command: &'static str,
        response: &CallbackResponse,
    ) {
        self.metrics.misread_refusal(plugin, command);
        if self.history.misread_refusal(plugin, command) {
            tracing::warn!(%plugin, command, action_code = response.action_code,
                "the plugin answered nextCode 1 with actionCode {}: OpenIM reads that as go on, \
                 not a refusal (only actionCode 0 with nextCode 1 refuses); warned once per plugin \
                 and command, counted in callback_host_misread_refusals_total",
                response.action_code);
        }
    }

    /// One call of one plugin's handler: its reply (or why it failed), and the OpenIM API calls
    /// it made.
    pub async fn call(
        &self,
        call: Attempt<'_>,
        input: Input<'_>,
    ) -> (Result<(Reply, CallStats), Failure>, ApiCallNotes) {
        let Attempt {
            link,
            position,
            callback,
            from,
            deadline,
            fuel,
            spent,
        } = call;
        let (export, argument) = match (link.entry, input) {
            (Entry::Typed(index), Input::Typed(value)) => (index, value.clone()),
            (Entry::Typed(index), Input::Owned(value)) => (index, value),
            (Entry::Json(index), Input::Json(text)) => (index, Val::String(text.to_owned())),
            _ => {
                let unfit = Failure::Host("the request does not fit the plugin's interface");
                return (Err(unfit), ApiCallNotes::default());
            }
        };
        let Ran { result, api_calls } = self
            .runner
            .run(Call {
                plugin: &link.plugin,
                export,
                command: callback.command,
                operation_id: &callback.operation_id,
                args: Args::Handle {
                    position,
                    request: argument,
                },
                deadline,
                allowed: deadline.saturating_duration_since(from),
                fuel,
                spent,
            })
            .await;
        let reply = result.and_then(|(result, stats)| match (link.entry, result) {
            (Entry::Json(_), Val::String(text)) => Ok((Reply::Json(text), stats)),
            (Entry::Json(_), _) => {
                Err(Failure::InvalidAnswer("handle() returned no string".into()))
            }
            (Entry::Typed(_), value) => Ok((Reply::Typed(value), stats)),
        });
        (reply, api_calls)
    }
}

/// One plugin's turn, as the console shows it: its decision, since `started`.
fn step(
    plugin: &Arc<str>,
    started: Instant,
    result: &Result<Answered, Failure>,
    api_calls: ApiCallNotes,
) -> Step {
    Step {
        api_calls,
        plugin: Arc::clone(plugin),
        decision: match result {
            Ok(Answered { response, .. }) if response.is_refusal() => Decision::Refused {
                err_code: response.err_code,
                err_msg: response.err_msg.clone(),
                err_dlt: response.err_dlt.clone(),
            },
            Ok(_) => Decision::GoOn,
            Err(failure) => Decision::Failed {
                cause: failure.kind(),
                detail: failure.to_string(),
            },
        },
        micros: started.elapsed().as_micros() as u64,
        misread_refusal: result
            .as_ref()
            .is_ok_and(|a| a.response.is_misread_refusal()),
    }
}

/// Logs the refusal of an after-callback (OpenIM already carried it out: it is answered "go on"),
/// with the plugin's answer.
fn log_after_refusal(plugin: &Arc<str>, response: &CallbackResponse) {
    tracing::info!(%plugin, outcome = "refused",
        answer = %Untrusted::capped(&String::from_utf8_lossy(&response.to_json()), ANSWER_CAP),
        "after-callback refused by a plugin; answering go on");
}

#[cfg(test)]
mod tests;
