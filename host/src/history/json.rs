//! The console's JSON of a kept callback.

use serde_json::{Value, json};

use super::{Class, Step, Trace};
use crate::untrusted::ANSWER_CAP;

pub(super) fn trace_json(trace: &Trace) -> Value {
    let mut value = json!({
        "at_ms": trace.at_ms,
        "command": trace.command,
        "operation_id": &*trace.operation_id,
        "outcome": trace.outcome.as_str(),
        "class": Class::of(trace.outcome).as_str(),
        "micros": trace.micros,
        "steps": steps_json(&trace.steps),
        "answer": String::from_utf8_lossy(&trace.answer[..trace.answer.len().min(ANSWER_CAP)]),
    });
    if let Some(path) = &trace.path {
        value["path"] = path.as_str().into();
    }
    if let Some(body) = &trace.body {
        value["body"] = json!({
            "text": body.text,
            "bytes": body.bytes,
            "truncated": body.bytes > body.text.len(),
        });
    }
    if let Some(delivery) = &trace.delivery {
        value["delivery"] = json!({
            "at_ms": delivery.at_ms,
            "outcome": delivery.outcome.as_str(),
            "class": Class::of(delivery.outcome).as_str(),
            "micros": delivery.micros,
            "steps": steps_json(&delivery.steps),
            "attempts": delivery.attempts,
        });
    }
    value
}

/// Each plugin's turn, with its OpenIM calls.
fn steps_json(steps: &[Step]) -> Vec<Value> {
    steps
        .iter()
        .map(|s| {
            json!({
                "plugin": &*s.plugin,
                "decision": s.decision.to_json(),
                "micros": s.micros,
                "misread_refusal": s.misread_refusal,
                "api_calls": s.api_calls.first.iter().map(|c| json!({
                    "operation": c.operation,
                    "outcome": c.outcome.as_str(),
                })).collect::<Vec<_>>(),
                "api_calls_total": s.api_calls.total(),
                "api_calls_by_outcome": s.api_calls.by_outcome()
                    .map(|(outcome, count)| (outcome.as_str().to_owned(), Value::from(count)))
                    .collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect()
}
