//! What the host did lately, kept in memory for the console: the last callbacks with each
//! plugin's decision, per-command counts and latencies over the last minutes, shadow
//! disagreements, answers that do not mean what they seem to, and which commands have their
//! request bodies captured for a while.
//!
//! Everything here is bounded and lost on restart: a ring of callbacks, each cut to a fixed size
//! whatever its plugins did ([`Trace::bounded`]), a window of buckets, and JSON answers of at most
//! [`RECENT_JSON_CAP`] bytes. The durable record of what happened is the log, `/metrics` and the
//! record file.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use bytes::Bytes;

use crate::metrics::ApiCallNotes;
use crate::outcomes::{FailureKind, RequestOutcome};
use bounds::answer_kept;
use json::trace_json;
use series::Bucket;

mod bounds;
mod json;
mod series;

/// Callbacks kept in the ring of recent ones.
pub const RECENT: usize = 500;
/// Shadow disagreements kept.
pub const DISAGREEMENTS: usize = 50;
/// Width of one bucket of the per-command series, in seconds.
pub const BUCKET_SECONDS: u64 = 5;
/// Buckets kept per command: ten minutes.
pub const BUCKETS: usize = 120;
/// Largest captured body kept; longer ones are cut and marked.
pub const CAPTURE_CAP: usize = 16 * 1024;
/// Longest capture an operator may switch on at once.
pub const CAPTURE_MAX_SECONDS: u64 = 3600;
/// Most bytes of the recent callbacks' JSON: the newest that fit are listed, the rest counted.
pub const RECENT_JSON_CAP: usize = 1 << 20;

/// One plugin's turn in a callback's chain.
#[derive(Debug, Clone)]
pub struct Step {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// What it decided.
    pub decision: Decision,
    /// How long its call took, in microseconds.
    pub micros: u64,
    /// It answered `nextCode 1` with a non-zero `actionCode`: OpenIM goes on (see
    /// [`crate::protocol::CallbackResponse::is_misread_refusal`]).
    pub misread_refusal: bool,
    /// The OpenIM API calls it made: the first ones in order, all of them counted.
    pub api_calls: ApiCallNotes,
}

/// What a plugin decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on (with its changes, if any).
    GoOn,
    /// A refusal, with the code, message and detail OpenIM hands to its caller.
    Refused {
        err_code: i32,
        err_msg: String,
        err_dlt: String,
    },
    /// It failed: the failure's kind and what happened.
    Failed { cause: FailureKind, detail: String },
}

impl Decision {
    fn to_json(&self) -> Value {
        match self {
            Self::GoOn => json!({"kind": "go_on"}),
            Self::Refused {
                err_code,
                err_msg,
                err_dlt,
            } => {
                json!({"kind": "refused", "err_code": err_code, "err_msg": err_msg,
                       "err_dlt": err_dlt})
            }
            Self::Failed { cause, detail } => {
                json!({"kind": "failed", "cause": cause.as_str(), "detail": detail})
            }
        }
    }
}

/// A request body kept for the console, when capture is on for its command.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The body, cut at [`CAPTURE_CAP`].
    pub text: String,
    /// Its whole size in bytes.
    pub bytes: usize,
}

/// One callback as the console shows it.
#[derive(Debug, Clone)]
pub struct Trace {
    /// When it was answered (ms since the Unix epoch).
    pub at_ms: u64,
    /// The command (`unknown` when the path named none).
    pub command: &'static str,
    /// The path asked for, when it named no command: the usual "my callback did not arrive".
    pub path: Option<String>,
    /// OpenIM's operationID header.
    pub operation_id: Arc<str>,
    /// What the request came to (as the request metric counts it); for the delivery of a
    /// queued event, `Delivered` or the first plugin failure.
    pub outcome: RequestOutcome,
    /// From request to answer, in microseconds.
    pub micros: u64,
    /// Each plugin's turn, in chain order.
    pub steps: Vec<Step>,
    /// The answer OpenIM got, as sent (shared with the response; cut at 2 KiB when shown).
    pub answer: Bytes,
    /// The request body, when captured.
    pub body: Option<Captured>,
    /// For a queued callback and its deliveries: when the event was stored (its `accepted_ms`),
    /// which with the command and operationID finds the callback's row.
    pub stored_ms: Option<u64>,
    /// For a queued callback: what its latest delivery came to, once one ran (one row shows
    /// both: the answer OpenIM got, then what the plugins did with the event).
    pub delivery: Option<Delivery>,
}

/// A delivery of a queued event, kept on the row of the callback that stored it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When it ended (ms since the Unix epoch).
    pub at_ms: u64,
    /// `Delivered`, or the first plugin failure.
    pub outcome: RequestOutcome,
    /// From the callback's arrival to the delivery's end, in microseconds.
    pub micros: u64,
    /// Each plugin's turn in this delivery.
    pub steps: Vec<Step>,
    /// Deliveries of the event seen so far, this one included.
    pub attempts: u32,
}

impl Trace {
    /// A callback of `command` answered now with `outcome`, `micros` after it arrived; no plugin
    /// steps, answer or body yet.
    pub fn new(
        command: &'static str,
        operation_id: Arc<str>,
        outcome: RequestOutcome,
        micros: u64,
    ) -> Self {
        Self {
            at_ms: crate::util::unix_ms(),
            command,
            path: None,
            operation_id,
            outcome,
            micros,
            steps: Vec::new(),
            answer: Bytes::new(),
            body: None,
            stored_ms: None,
            delivery: None,
        }
    }
}

/// How an outcome counts, for the charts, the filter and the page's colours: the one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The operation goes on: answered `ok`, `queued`, `no_plugin`, or a queued event
    /// `delivered`.
    GoesOn,
    /// A plugin refused it.
    Refused,
    /// Anything else: a failure kind the policy answered, a bad request, a client gone.
    Failed,
}

impl Class {
    pub fn of(outcome: RequestOutcome) -> Self {
        use RequestOutcome as O;
        match outcome {
            O::Ok | O::Queued | O::NoPlugin | O::Delivered => Self::GoesOn,
            O::Refused => Self::Refused,
            O::Failed(_) | O::Rejected(_) | O::Abandoned => Self::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::GoesOn => "go_on",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// A shadow plugin that would have answered differently.
#[derive(Debug, Clone)]
pub struct Disagreement {
    pub at_ms: u64,
    pub command: &'static str,
    pub operation_id: Arc<str>,
    pub plugin: Arc<str>,
    /// The answer OpenIM was given.
    pub given: Value,
    /// What the shadow plugin would have answered.
    pub shadow: Value,
}

/// Misread refusals of one plugin for one command.
#[derive(Debug, Clone, Copy, Default)]
struct Misread {
    /// How many.
    count: u64,
    /// When the last came (ms since the Unix epoch).
    last_ms: u64,
}

/// What the host did lately. Shared by the request path (each answered callback), the chain
/// (shadows, misread refusals) and the console (which reads it).
#[derive(Default)]
pub struct History {
    /// The last [`RECENT`] callbacks, newest last.
    recent: Mutex<VecDeque<Arc<Trace>>>,
    /// Buckets of each command, oldest first, the last [`BUCKETS`].
    series: Mutex<HashMap<&'static str, VecDeque<Bucket>>>,
    /// The last [`DISAGREEMENTS`] shadow disagreements, newest last.
    disagreements: Mutex<VecDeque<Disagreement>>,
    /// Misread refusals seen, by plugin and command: the count, and when last.
    misread: Mutex<BTreeMap<(Arc<str>, &'static str), Misread>>,
    /// Commands whose bodies are captured, until when (ms since the epoch).
    capture: Mutex<BTreeMap<&'static str, u64>>,
    /// Whether any capture was switched on: a request checks this before the lock.
    capturing: AtomicBool,
    /// Callbacks seen since start, for the console's totals.
    total: AtomicU64,
}

impl History {
    /// Keeps one answered callback: in the ring and in its command's bucket.
    pub fn add(&self, trace: Trace) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let slot = trace.at_ms / 1000 / BUCKET_SECONDS;
        {
            let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
            let buckets = series.entry(trace.command).or_default();
            if buckets.back().is_none_or(|b| b.slot != slot) {
                buckets.push_back(Bucket::new(slot));
            }
            while buckets
                .front()
                .is_some_and(|b| b.slot + BUCKETS as u64 <= slot)
            {
                buckets.pop_front();
            }
            let bucket = buckets.back_mut().expect("pushed above");
            bucket.add(trace.outcome, trace.micros);
        }
        self.keep(trace);
    }

    fn keep(&self, trace: Trace) {
        let trace = trace.bounded();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(Arc::new(trace));
    }

    /// Keeps one delivery of a queued event, in the ring only (its callback was counted when it
    /// was answered): on the row of the queued callback that stored it (the same command,
    /// operationID and time stored) while the ring holds it, as a row of its own otherwise.
    pub fn delivered(&self, trace: Trace) {
        let trace = trace.bounded();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let queued = trace.stored_ms.and_then(|stored| {
            recent.iter_mut().rev().find(|t| {
                t.stored_ms == Some(stored)
                    && t.outcome == RequestOutcome::Queued
                    && t.command == trace.command
                    && t.operation_id == trace.operation_id
            })
        });
        if let Some(row) = queued {
            let attempts = row.delivery.as_ref().map_or(1, |d| d.attempts + 1);
            // Copied only if the console holds the row at this moment.
            Arc::make_mut(row).delivery = Some(Delivery {
                attempts,
                at_ms: trace.at_ms,
                outcome: trace.outcome,
                micros: trace.micros,
                steps: trace.steps,
            });
            return;
        }
        drop(recent);
        self.keep(trace);
    }

    /// The recent callbacks, newest first, those of `command` and `outcome` when given (an
    /// outcome of `failed` takes every failure cause): at most `limit` of them, and as many as fit
    /// in [`RECENT_JSON_CAP`] bytes; `omitted` counts the ones left out for that cap.
    pub fn recent(&self, command: Option<&str>, outcome: Option<&str>, limit: usize) -> Value {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // A queued row with its delivery is both outcomes.
        let outcomes = |trace: &Trace| {
            std::iter::once(trace.outcome).chain(trace.delivery.as_ref().map(|d| d.outcome))
        };
        let wanted = |trace: &Trace| {
            command.is_none_or(|c| trace.command == c)
                && outcome.is_none_or(|o| {
                    outcomes(trace).any(|outcome| match o {
                        "failed" => Class::of(outcome) == Class::Failed,
                        "rejected" => matches!(outcome, RequestOutcome::Rejected(_)),
                        o => outcome.as_str() == o,
                    })
                })
        };
        let mut traces: Vec<Value> = Vec::new();
        let mut bytes = 0;
        let mut omitted = 0;
        for trace in recent.iter().rev().filter(|t| wanted(t)).take(limit) {
            if omitted > 0 {
                omitted += 1;
                continue;
            }
            let value = trace_json(trace);
            // The separator, and the value as `to_string` writes it.
            let size = 1 + value.to_string().len();
            if bytes + size > RECENT_JSON_CAP {
                omitted += 1;
            } else {
                bytes += size;
                traces.push(value);
            }
        }
        json!({
            "callbacks": traces,
            "omitted": omitted,
            "total": self.total.load(Ordering::Relaxed),
        })
    }

    /// The newest callback kept with this operationID (the answer, or the delivery of a queued
    /// event).
    pub fn find(&self, operation_id: &str) -> Option<Arc<Trace>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .rev()
            .find(|t| &*t.operation_id == operation_id)
            .cloned()
    }

    /// Each command's buckets over the last ten minutes.
    pub fn series(&self) -> Value {
        let now_slot = crate::util::unix_ms() / 1000 / BUCKET_SECONDS;
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let commands: BTreeMap<&str, Vec<Value>> = series
            .iter()
            .map(|(command, buckets)| {
                let kept = buckets
                    .iter()
                    .filter(|b| b.slot + BUCKETS as u64 > now_slot)
                    .map(Bucket::to_json)
                    .collect();
                (*command, kept)
            })
            .collect();
        json!({
            "bucket_seconds": BUCKET_SECONDS,
            "now_ms": crate::util::unix_ms(),
            "window_seconds": BUCKET_SECONDS * BUCKETS as u64,
            "commands": commands,
        })
    }

    /// Keeps a shadow disagreement.
    pub fn disagreed(&self, mut disagreement: Disagreement) {
        disagreement.given = answer_kept(disagreement.given);
        disagreement.shadow = answer_kept(disagreement.shadow);
        let mut kept = self.disagreements.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == DISAGREEMENTS {
            kept.pop_front();
        }
        kept.push_back(disagreement);
    }

    /// The shadow disagreements, newest first.
    pub fn disagreements(&self) -> Value {
        let kept = self.disagreements.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .rev()
            .map(|d| {
                json!({
                    "at_ms": d.at_ms,
                    "command": d.command,
                    "operation_id": &*d.operation_id,
                    "plugin": &*d.plugin,
                    "given": d.given,
                    "shadow": d.shadow,
                })
            })
            .collect()
    }

    /// Counts a misread refusal of `plugin` for `command`; true the first time (to warn once).
    pub fn misread_refusal(&self, plugin: &Arc<str>, command: &'static str) -> bool {
        let mut seen = self.misread.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry((Arc::clone(plugin), command)).or_default();
        entry.count += 1;
        entry.last_ms = crate::util::unix_ms();
        entry.count == 1
    }

    /// The misread refusals seen, by plugin and command.
    pub fn misread_refusals(&self) -> Value {
        let seen = self.misread.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .map(|((plugin, command), seen)| {
                json!({"plugin": &**plugin, "command": command, "count": seen.count,
                       "last_ms": seen.last_ms})
            })
            .collect()
    }

    /// Captures the bodies of `command` for `seconds` (0: stops).
    pub fn capture(&self, command: &'static str, seconds: u64) {
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        if seconds == 0 {
            capture.remove(command);
        } else {
            let seconds = seconds.min(CAPTURE_MAX_SECONDS);
            capture.insert(command, crate::util::unix_ms() + seconds * 1000);
            self.capturing.store(true, Ordering::Relaxed);
        }
    }

    /// The commands captured now, until when (ms since the epoch).
    pub fn captures(&self) -> BTreeMap<&'static str, u64> {
        let now = crate::util::unix_ms();
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        capture.retain(|_, until| *until > now);
        if capture.is_empty() {
            self.capturing.store(false, Ordering::Relaxed);
        }
        capture.clone()
    }

    /// The body to keep with a callback of `command`, when its capture is on.
    pub fn captured(&self, command: &str, body: &[u8]) -> Option<Captured> {
        if !self.capturing.load(Ordering::Relaxed) {
            return None;
        }
        let until = *self
            .capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(command)?;
        if until <= crate::util::unix_ms() {
            return None;
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(CAPTURE_CAP)]).into_owned();
        Some(Captured {
            text,
            bytes: body.len(),
        })
    }
}

#[cfg(test)]
mod tests;
