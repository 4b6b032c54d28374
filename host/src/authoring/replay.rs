//! `callback-host replay`: runs recorded callbacks, or the queue's dead letters, through a plugin
//! directory (say, a new version of a moderation rule) and reports, per event, where the new
//! answer differs from the recorded one, or whether the dead letter is handled now.
//!
//! The plugins run as the server runs them (same limits, grants and config values), inline, with
//! every plugin of the directory in the chain (shadow marks are ignored) and nothing recorded.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::{Config, Delivery};
use crate::dispatch::Callback;
use crate::queue::Admin;
use crate::record;

/// What to replay.
pub enum Source {
    /// The records of a record file (`[record] path`).
    Recorded(PathBuf),
    /// The dead letters of the configured queue.
    DeadLetters,
}

/// What a replay came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events replayed.
    pub replayed: usize,
    /// Recorded callbacks answered as recorded; dead letters handled now.
    pub same_or_handled: usize,
    /// Recorded callbacks answered differently; dead letters that still fail.
    pub differ_or_failing: usize,
    /// Dead letters put back in the queue (`--requeue`).
    pub requeued: usize,
}

/// Replays `source` through the plugins in `plugins`, under `config`, writing one line per event
/// and a summary to `out`. `requeue` puts the dead letters that are handled now back in the queue.
pub async fn replay(
    config: &Config,
    plugins: PathBuf,
    source: Source,
    requeue: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Summary> {
    let mut replaying = config.clone();
    replaying.plugins_dir = plugins;
    replaying.defaults.delivery = Delivery::Inline;
    for settings in replaying.commands.values_mut() {
        settings.delivery = Delivery::Inline;
    }
    replaying.record.before_sample = 0.0;
    replaying.shadow_plugins.clear();
    let host = crate::build(Arc::new(replaying))
        .await
        .context("loading the plugins to replay through")?;
    for error in &host.load_errors {
        writeln!(out, "skipped {error}")?;
    }
    let dispatcher = &host.app.dispatcher;
    let mut summary = Summary::default();
    match source {
        Source::Recorded(path) => {
            for record in record::read(&path)? {
                summary.replayed += 1;
                let Some(command) = dispatcher.command_named(&record.command) else {
                    writeln!(
                        out,
                        "{} {}: no plugin handles this command",
                        record.command, record.operation_id
                    )?;
                    summary.differ_or_failing += 1;
                    continue;
                };
                let mut callback = Callback::read(
                    command,
                    record.operation_id.as_str().into(),
                    record.body.clone().into(),
                    Instant::now(),
                )
                .with_context(|| format!("record {}", record.operation_id))?;
                let chained = dispatcher.run(&mut callback).await;
                let answer: Value = serde_json::from_slice(&chained.answer).unwrap_or_default();
                let changes = differences(&record.answer, &answer);
                if changes.is_empty() {
                    summary.same_or_handled += 1;
                    writeln!(out, "{command} {}: same", record.operation_id)?;
                } else {
                    summary.differ_or_failing += 1;
                    writeln!(
                        out,
                        "{command} {}: differs: {}",
                        record.operation_id,
                        changes.join(", ")
                    )?;
                }
            }
        }
        Source::DeadLetters => {
            let queue = Admin::open(&config.queue).await?;
            let mut handled = Vec::new();
            for (id, letter) in queue.dead_letters().await? {
                summary.replayed += 1;
                let event = &letter.event;
                let failures: Vec<String> = dispatcher
                    .deliver(event, false)
                    .await
                    .into_iter()
                    .filter_map(|d| d.result.err().map(|e| format!("{}: {e}", d.plugin)))
                    .collect();
                if failures.is_empty() {
                    summary.same_or_handled += 1;
                    handled.push(id.clone());
                    writeln!(
                        out,
                        "dead letter {id} {} {}: handled now (was: {})",
                        event.command, event.operation_id, letter.cause
                    )?;
                } else {
                    summary.differ_or_failing += 1;
                    writeln!(
                        out,
                        "dead letter {id} {} {}: still fails: {}",
                        event.command,
                        event.operation_id,
                        failures.join("; ")
                    )?;
                }
            }
            if requeue && !handled.is_empty() {
                summary.requeued = queue.requeue(Some(&handled)).await?;
            }
        }
    }
    writeln!(
        out,
        "replayed {}: {} same or handled, {} differ or still fail{}",
        summary.replayed,
        summary.same_or_handled,
        summary.differ_or_failing,
        if requeue {
            format!(", {} requeued", summary.requeued)
        } else {
            String::new()
        }
    )?;
    Ok(summary)
}

/// Where `new` differs from `old`, field by field (`errCode 0 -> 5001`).
pub fn differences(old: &Value, new: &Value) -> Vec<String> {
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return if old == new {
            Vec::new()
        } else {
            vec![format!("{old} -> {new}")]
        };
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (before, after) = (old.get(key), new.get(key));
            (before != after).then(|| {
                let show = |v: Option<&Value>| v.map_or("(none)".to_owned(), Value::to_string);
                format!("{key} {} -> {}", show(before), show(after))
            })
        })
        .collect()
}
