use super::*;

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
