//! Shadow plugins: run beside the chain, off the answer path, on the same request; what each
//! would have answered is compared with the answer given, counted, logged and recorded.

use std::sync::Arc;
use std::time::Instant;

use super::{Attempt, Callback, Dispatcher, Input};
use crate::history::Disagreement;
use crate::metrics::ShadowLabels;
use crate::outcomes::ShadowVerdict;
use crate::protocol::CallbackResponse;
use crate::protocol::answer::Merge;
use crate::record::{self, Record};
use crate::registry::{Link, Registry};
use crate::runtime::call::Spent;
use crate::runtime::limits::Failure;
use crate::runtime::plugin::Entry;
use crate::untrusted::{ANSWER_CAP, Untrusted};

impl Dispatcher {
    /// Runs the shadow plugins of `command` on a request that was answered `given`, and counts
    /// (logs, records) whether each would have answered the same. Off the answer path.
    #[tracing::instrument(name = "shadow", skip_all,
        fields(command = callback.command, operation_id = %callback.operation_id))]
    pub(super) async fn shadow(&self, registry: &Registry, callback: Callback, given: &[u8]) {
        let (command, operation_id) = (callback.command, Arc::clone(&callback.operation_id));
        let given: serde_json::Value = serde_json::from_slice(given).unwrap_or_default();
        for link in registry.shadows(command) {
            let plugin = &link.plugin.name;
            let spent = Spent::default();
            let verdict = match self.shadow_permits.try_acquire() {
                Err(_) => ShadowVerdict::Skipped,
                Ok(_permit) => match self.shadow_answer(link, &callback, &spent).await {
                    Err(failure) => {
                        tracing::warn!(%plugin, outcome = failure.kind().as_str(), "shadow plugin failed: {failure}");
                        ShadowVerdict::Failed
                    }
                    Ok(answer) if answer == given => ShadowVerdict::Agree,
                    Ok(answer) => {
                        tracing::info!(%plugin, given = %Untrusted::capped(&given.to_string(), ANSWER_CAP),
                            shadow = %Untrusted::capped(&answer.to_string(), ANSWER_CAP),
                            "shadow plugin disagrees with the answer given");
                        self.history.disagreed(Disagreement {
                            at_ms: crate::util::unix_ms(),
                            command,
                            operation_id: Arc::clone(&operation_id),
                            plugin: Arc::clone(plugin),
                            given: given.clone(),
                            shadow: answer.clone(),
                        });
                        if let Some(recorder) = &self.recorder {
                            recorder.record(Record {
                                kind: record::Kind::Shadow,
                                command: command.to_owned(),
                                operation_id: operation_id.to_string(),
                                at_ms: crate::util::unix_ms(),
                                body: callback.body().to_owned(),
                                answer: given.clone(),
                                shadow: Some(record::ShadowAnswer {
                                    plugin: plugin.to_string(),
                                    answer,
                                }),
                            });
                        }
                        ShadowVerdict::Disagree
                    }
                },
            };
            // Off the answer path already: the used instance goes, its replacement is built.
            spent.settle_later();
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
    /// changes, in the form OpenIM is answered. It has the command's whole time from its own
    /// start; its used instance goes to `spent`.
    async fn shadow_answer(
        &self,
        link: &Link,
        callback: &Callback,
        spent: &Spent,
    ) -> Result<serde_json::Value, Failure> {
        let parsed = callback.parsed.clone();
        let mut merge = callback.shape.zip(parsed).map(|(c, v)| Merge::new(c, v));
        let settings = self.config.command(callback.command);
        let started = Instant::now();
        let deadline = self.deadline(callback.command, started);
        let input = match (link.entry, &merge) {
            (Entry::Typed(_), Some(merge)) => Input::Owned(merge.request.clone()),
            _ => Input::Json(callback.body()),
        };
        let call = Attempt {
            link,
            position: 0,
            callback,
            from: started,
            deadline,
            fuel: settings.fuel,
            spent,
        };
        let answered = self.answer(call, input, merge.as_mut()).await.result?;
        let answer = if answered.response.is_refusal() {
            answered.response.to_json()
        } else {
            merge
                .as_ref()
                .map_or_else(|| CallbackResponse::go_on().to_json(), Merge::go_on_answer)
        };
        Ok(serde_json::from_slice(&answer).unwrap_or_default())
    }
}
