//! Queued after-callbacks: a stored event delivered to the plugins of its command that have not
//! handled it yet (the queue's workers call this through [`crate::queue::Deliver`]).

use std::sync::Arc;
use std::time::Instant;

use super::{Attempt, Callback, Dispatcher, Input, Turn, log_after_refusal, step};
use crate::history::Trace;
use crate::outcomes::RequestOutcome;
use crate::protocol::answer::Merge;
use crate::protocol::{self, CallbackResponse};
use crate::queue::{Deliver, Delivered, Event};
use crate::runtime::call::Spent;
use crate::runtime::limits::Failure;
use crate::runtime::plugin::Entry;

impl Dispatcher {
    /// Delivers a stored after-callback to the plugins of its command that have not handled it
    /// yet, each with the command's whole time from its own start; returns each one's result.
    pub async fn deliver(&self, event: &Event, redelivered: bool) -> Vec<Delivered> {
        let Some(command) = protocol::known_command(&event.command) else {
            return Vec::new();
        };
        let operation_id = event.operation_id.as_str().into();
        let read = Callback::read(
            command,
            operation_id,
            event.body.clone().into(),
            Instant::now(),
        );
        let callback = match read {
            Ok(callback) => callback,
            Err(error) => {
                // Validated when it was accepted: only a contract change can do this.
                tracing::error!(%error, "a stored event no longer parses; dead-lettering it");
                return vec![Delivered {
                    plugin: "(host)".into(),
                    result: Err(Failure::Unparsable(error.to_string())),
                }];
            }
        };
        let registry = self.plugins.get();
        let settings = self.config.command(command);
        // Shadows see each event once, on its first delivery.
        let shadowed =
            (event.failures == 0 && !redelivered && !registry.shadows(command).is_empty())
                .then(|| callback.copy());
        let mut results = Vec::new();
        let mut steps = Vec::new();
        let spent = Spent::default();
        for (position, link) in registry.chain(command).iter().enumerate() {
            let plugin = &link.plugin.name;
            if event.done.iter().any(|done| **done == **plugin) {
                continue;
            }
            let input = match (link.entry, &callback.parsed) {
                (Entry::Typed(_), Some(value)) => Input::Owned(value.clone()),
                _ => Input::Json(callback.body()),
            };
            let started = Instant::now();
            let call = Attempt {
                link,
                position,
                callback: &callback,
                from: started,
                deadline: self.deadline(command, started),
                fuel: settings.fuel,
                spent: &spent,
            };
            let Turn { result, api_calls } = self.answer(call, input, None).await;
            steps.push(step(plugin, started, &result, api_calls));
            match &result {
                Ok(answered) if answered.response.is_refusal() => {
                    log_after_refusal(plugin, &answered.response);
                }
                Ok(_) => {}
                Err(failure) => {
                    tracing::warn!(%plugin, outcome = failure.kind().as_str(), redelivered, "plugin failed: {failure}");
                }
            }
            results.push(Delivered {
                plugin: Arc::clone(plugin),
                result: result.map(|_| ()),
            });
        }
        // The used instances dropped and their replacements built after this delivery, on the
        // deliveries' threads (below the answers' priority).
        spent.settle_later();
        let failed = results.iter().find_map(|d| d.result.as_ref().err());
        self.history.delivered(Trace {
            steps,
            stored_ms: Some(event.accepted_ms),
            ..Trace::new(
                command,
                Arc::clone(&callback.operation_id),
                failed.map_or(RequestOutcome::Delivered, |f| {
                    RequestOutcome::Failed(f.kind())
                }),
                callback.received.elapsed().as_micros() as u64,
            )
        });
        if let Some(shadowed) = shadowed {
            let given = match callback.shape.zip(callback.parsed) {
                Some((shape, parsed)) => Merge::new(shape, parsed).go_on_answer(),
                None => CallbackResponse::go_on().to_json(),
            };
            self.shadow(&registry, shadowed, &given).await;
        }
        results
    }
}

impl Deliver for Dispatcher {
    fn deliver(
        &self,
        event: &Event,
        redelivered: bool,
    ) -> impl std::future::Future<Output = Vec<Delivered>> + Send {
        Dispatcher::deliver(self, event, redelivered)
    }
}
