//! `warm_up_call`: an instance built ahead runs the plugin's handler once with a canned request
//! before a request gets it, with every capability refusing and its output dropped; a warm-up
//! that fails turns itself off with one warning. Over HTTP against the real binary.

use crate::common;

use std::time::{Duration, Instant};

use common::{Server, component};

/// The kv-probe, granted key-value, with one instance built ahead, warmed; `extra` is appended.
fn warmed_probe(store: &std::path::Path, extra: &str) -> Server {
    let config = format!(
        "[keyvalue]\nbackend = \"embedded\"\npath = {:?}\n\
         [plugin_grants.10-probe]\nkeyvalue = true\n\
         [plugins_limits.10-probe]\nstock_instances = 1\nwarm_up_call = true\n{extra}",
        store.join("kv.redb").to_str().unwrap()
    );
    Server::start(&[("10-probe.wasm", component("kv_probe"))], &config)
}

/// The kv-probe's `errDlt` for `ops`.
fn probe(server: &Server, ops: &str) -> String {
    let decision = server.kick_decision(&["u"], ops);
    let json: serde_json::Value = serde_json::from_str(&decision).expect("an answer");
    json["errDlt"].as_str().unwrap_or("").to_owned()
}

/// Asks `calls` until an instance built ahead answers (the first call builds its own; its
/// replacement is built after its answer), within 10 s; every answer on the way is one of an
/// instance built for the call.
fn first_warmed(server: &Server) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = probe(server, "calls");
        if !seen.starts_with("0 before") {
            return seen;
        }
        assert_eq!(seen, "0 before; empty reason got none", "a cold instance");
        assert!(Instant::now() < until, "no warmed instance in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stocked_instance_has_run_one_canned_call_that_could_use_nothing() {
    let store = tempfile::tempdir().unwrap();
    let server = warmed_probe(store.path(), "");
    let seen = first_warmed(&server);
    // One call before the request's: the canned one (empty reason), whose key-value calls
    // were refused...
    let (before, got) = seen.split_once("; empty reason got ").expect(&seen);
    assert_eq!(before, "1 before", "{seen}");
    assert!(got.starts_with("error "), "key-value refused: {seen}");
    // ...so it wrote nothing, while the request's own calls are granted.
    assert_eq!(probe(&server, "get calls; incr calls 5"), "none;5");
    // Its stdout line is dropped, not logged as a request's would be.
    assert!(
        !server.log().contains("empty-reason call"),
        "the warm-up's output is in the log:\n{}",
        server.log()
    );
    // Each request still gets an instance of its own.
    for _ in 0..5 {
        let seen = probe(&server, "calls");
        assert!(
            seen.starts_with("1 before") || seen == "0 before; empty reason got none",
            "{seen}"
        );
    }
}

#[test]
fn a_failing_warm_up_call_is_given_up_with_one_warning_and_requests_are_answered() {
    let store = tempfile::tempdir().unwrap();
    let server = warmed_probe(
        store.path(),
        "[plugin_config.10-probe]\npanic_on_empty = \"yes\"\n",
    );
    for _ in 0..10 {
        // A cold instance each time: the warm-up failed and is off for this plugin.
        assert_eq!(probe(&server, "calls"), "0 before; empty reason got none");
        std::thread::sleep(Duration::from_millis(20));
    }
    let warning = server.wait_for_log(&["the warm-up call failed", "10-probe"]);
    assert!(warning.contains("warm_up_call"), "{warning}");
    assert_eq!(
        server.log().matches("the warm-up call failed").count(),
        1,
        "one warning:\n{}",
        server.log()
    );
}
