use super::*;
use crate::untrusted::{ANSWER_CAP, LINE_CAP, MESSAGE_CAP};

fn trace(command: &'static str, outcome: RequestOutcome, micros: u64) -> Trace {
    Trace::new(command, "op".into(), outcome, micros)
}

#[test]
fn percentiles_come_from_the_bins_upper_bounds() {
    let history = History::default();
    for _ in 0..98 {
        history.add(trace("cb", RequestOutcome::Ok, 100));
    }
    history.add(trace("cb", RequestOutcome::Refused, 5_000));
    history.add(trace(
        "cb",
        RequestOutcome::Failed(FailureKind::Timeout),
        5_000,
    ));
    let series = history.series();
    let bucket = &series["commands"]["cb"][0];
    assert_eq!(bucket["count"], 100);
    assert_eq!(bucket["refused"], 1);
    assert_eq!(bucket["failed"]["timeout"], 1);
    let (p50, p99) = (
        bucket["p50_us"].as_u64().unwrap(),
        bucket["p99_us"].as_u64().unwrap(),
    );
    assert!((100..=120).contains(&p50), "p50 {p50}");
    assert!((5_000..=6_000).contains(&p99), "p99 {p99}");
}

#[test]
fn the_ring_keeps_the_newest_and_filters() {
    let history = History::default();
    for i in 0..RECENT + 10 {
        history.add(trace(
            "cb",
            if i % 2 == 0 {
                RequestOutcome::Ok
            } else {
                RequestOutcome::Failed(FailureKind::Fuel)
            },
            i as u64,
        ));
    }
    let all = history.recent(None, None, 1000);
    assert_eq!(all["callbacks"].as_array().unwrap().len(), RECENT);
    assert_eq!(all["callbacks"][0]["micros"], (RECENT + 9) as u64);
    let failed = history.recent(Some("cb"), Some("failed"), 1000);
    assert!(
        failed["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["outcome"] == "fuel")
    );
    assert!(
        history.recent(Some("other"), None, 10)["callbacks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn capture_is_bounded_in_time_and_size() {
    let history = History::default();
    assert!(history.captured("cb", b"{}").is_none());
    history.capture("cb", 60);
    let big = vec![b'a'; CAPTURE_CAP + 10];
    let captured = history.captured("cb", &big).unwrap();
    assert_eq!(captured.text.len(), CAPTURE_CAP);
    assert_eq!(captured.bytes, CAPTURE_CAP + 10);
    assert!(history.captured("other", b"{}").is_none());
    history.capture("cb", 0);
    assert!(history.captured("cb", b"{}").is_none());
    assert!(history.captures().is_empty());
}

/// A trace as large as plugins and a client can make it: a 1 MiB answer, 4 KiB texts from
/// every plugin (cut mid-character), an OpenIM API flood, a long unknown path, a captured body.
fn worst_trace(history: &History, plugins: usize) -> Trace {
    use crate::metrics::{ApiCall, ApiCallNotes};
    use crate::outcomes::ApiOutcome;
    let mut calls = ApiCallNotes::default();
    for _ in 0..100_000 {
        calls.note(ApiCall {
            operation: "kick-group-members",
            outcome: ApiOutcome::RateLimited,
        });
    }
    let mut trace = trace("cb", RequestOutcome::Refused, 1);
    trace.answer = Bytes::from(vec![b'a'; 1 << 20]);
    trace.path = Some("p".repeat(64 << 10));
    trace.body = history.captured("cb", &vec![b'b'; 1 << 20]);
    trace.steps = (0..plugins)
        .map(|_| Step {
            plugin: "10-flood".into(),
            decision: Decision::Refused {
                err_code: 1,
                err_msg: "é".repeat(2 << 10),
                err_dlt: "d".repeat(4 << 10),
            },
            micros: 1,
            misread_refusal: false,
            api_calls: calls.clone(),
        })
        .collect();
    trace
}

#[test]
fn a_kept_trace_is_cut_to_a_few_kib_per_plugin() {
    let history = History::default();
    history.capture("cb", 60);
    let kept = worst_trace(&history, 3).bounded();
    assert_eq!(kept.answer.len(), ANSWER_CAP);
    assert_eq!(kept.path.as_ref().unwrap().len(), MESSAGE_CAP);
    for step in &kept.steps {
        let Decision::Refused {
            err_msg, err_dlt, ..
        } = &step.decision
        else {
            panic!("a refusal stays a refusal");
        };
        assert!(err_msg.len() <= LINE_CAP && err_msg.len() > LINE_CAP - 2);
        assert!(err_msg.chars().all(|c| c == 'é'), "cut on a character");
        assert_eq!(err_dlt.len(), LINE_CAP);
        assert_eq!(step.api_calls.total(), 100_000);
    }
    let json = trace_json(&kept).to_string();
    assert!(json.len() < 32 << 10, "{} bytes", json.len());
    assert!(json.contains("\"api_calls_total\":100000"), "{json:.2000}");
    assert!(json.contains("\"rate_limited\":100000"), "{json:.2000}");
}

#[test]
fn the_recent_json_stays_under_its_cap_whatever_the_ring_holds() {
    let history = History::default();
    history.capture("cb", 60);
    for _ in 0..RECENT {
        history.add(worst_trace(&history, 8));
    }
    let recent = history.recent(None, None, RECENT);
    let listed = recent["callbacks"].as_array().unwrap().len();
    let omitted = recent["omitted"].as_u64().unwrap() as usize;
    assert!(listed > 0, "the newest that fit are listed");
    assert_eq!(listed + omitted, RECENT, "the rest are counted");
    assert!(omitted > 0, "the worst ring does not fit");
    let size = recent.to_string().len();
    assert!(size <= RECENT_JSON_CAP + 100, "{size} bytes");
}

#[test]
fn a_disagreement_keeps_at_most_a_capped_answer() {
    let history = History::default();
    history.disagreed(Disagreement {
        at_ms: 0,
        command: "cb",
        operation_id: "op".into(),
        plugin: "shadow".into(),
        given: json!({"errMsg": "ok"}),
        shadow: json!({"errMsg": "x".repeat(1 << 20)}),
    });
    let kept = history.disagreements();
    assert_eq!(kept[0]["given"]["errMsg"], "ok");
    assert_eq!(kept[0]["shadow"].as_str().unwrap().len(), ANSWER_CAP);
}

#[test]
fn a_delivery_lands_on_the_row_of_the_queued_callback_that_stored_it() {
    let history = History::default();
    // Stored at ms 1 and 2; a callback of the same operationID stored at ms 3 is another row.
    let stored = |op: &str| match op {
        "op-1" => Some(1),
        "op-2" => Some(2),
        _ => Some(99),
    };
    let queued = |op: &str, at| Trace {
        stored_ms: Some(at),
        ..Trace::new("cb", op.into(), RequestOutcome::Queued, 10)
    };
    let delivery = |op: &str, outcome| Trace {
        stored_ms: stored(op),
        ..Trace::new("cb", op.into(), outcome, 900)
    };
    history.add(queued("op-1", 1));
    history.add(queued("op-2", 2));
    history.add(queued("op-1", 3));
    history.delivered(delivery("op-1", RequestOutcome::Failed(FailureKind::Trap)));
    history.delivered(delivery("op-1", RequestOutcome::Delivered));
    // A delivery whose callback the ring no longer holds: a row of its own.
    history.delivered(delivery("op-gone", RequestOutcome::Delivered));

    let all = history.recent(None, None, 100);
    let rows = all["callbacks"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{all}");
    // The newest row of op-1 (stored at ms 3) has no delivery; the one stored at ms 1 has both.
    assert!(rows[1].get("delivery").is_none(), "{all}");
    let op1 = rows
        .iter()
        .find(|r| r["operation_id"] == "op-1" && r.get("delivery").is_some())
        .unwrap();
    assert_eq!(op1["outcome"], "queued");
    assert_eq!(op1["delivery"]["outcome"], "delivered");
    assert_eq!(op1["delivery"]["attempts"], 2);
    assert_eq!(op1["delivery"]["micros"], 900);
    let op2 = rows.iter().find(|r| r["operation_id"] == "op-2").unwrap();
    assert!(op2.get("delivery").is_none(), "{op2}");
    let gone = rows
        .iter()
        .find(|r| r["operation_id"] == "op-gone")
        .unwrap();
    assert_eq!(gone["outcome"], "delivered");

    // The filter finds a merged row by either of its outcomes.
    let ops = |outcome: &str| -> Vec<String> {
        history.recent(None, Some(outcome), 100)["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["operation_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ops("queued"), ["op-1", "op-2", "op-1"]);
    assert_eq!(ops("delivered"), ["op-gone", "op-1"]);
    assert!(ops("failed").is_empty());
    history.delivered(delivery("op-2", RequestOutcome::Failed(FailureKind::Fuel)));
    assert_eq!(ops("failed"), ["op-2"]);
}
