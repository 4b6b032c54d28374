//! A plugin that calls a capability in a loop until its deadline, as a retry loop written wrongly
//! or a hostile author would (a million calls a callback): the host's memory stays where it was,
//! and the console's JSON stays small and still says how many calls there were.

use std::time::Duration;

use serde_json::Value;

use crate::common::{self, Server, component};
use crate::fake_openim::{FakeOpenim, SECRET};

/// Floods per capability, after the warm-up ones.
const FLOODS: usize = 10;
/// How much the host's resident memory may grow over [`FLOODS`] floods: allocator noise, not a
/// note per call (24 bytes a call was a few MiB a flood).
const RSS_GROWTH: u64 = 4 << 20;

/// The flood plugin, granted one OpenIM operation, its own bucket and one origin, with OpenIM's
/// timeout of 2 s (the plugin floods for about 1.3 s of it), inline.
fn flood_server(fake: &FakeOpenim) -> Server {
    let config = format!(
        "safety_margin_ms = 500\n[defaults]\ntimeout_secs = 2\ndelivery = \"inline\"\n{}\n\
         [plugin_grants.10-flood]\nopenim_api = [\"kick-group-members\"]\nkeyvalue = true\n\
         http = [\"http://127.0.0.1:10\"]\n",
        fake.section()
    );
    let dir = common::dir_with_plugins(&[("10-flood.wasm", component("flood"))]);
    Server::start_in_env(
        dir,
        &config,
        &["--admin-listen", "127.0.0.1:0"],
        &[("CALLBACK_HOST_OPENIM_SECRET", SECRET)],
    )
}

/// One flood of `kind`: the number of calls the plugin says it made.
fn flood(server: &Server, kind: &str) -> u64 {
    let decision = server.kick_decision(&["u1"], kind);
    let answer: Value = serde_json::from_str(&decision).expect("the flood's refusal");
    assert_eq!(answer["errMsg"], "flooded", "{decision}");
    answer["errDlt"].as_str().unwrap().parse().unwrap()
}

/// The console's recent callbacks, as the page fetches them.
fn recent_callbacks(server: &Server) -> (Value, usize) {
    let response = Server::get(
        server.admin_addr.as_deref().unwrap(),
        "/console/api/recent?limit=500",
    );
    assert_eq!(response.status, 200, "{}", response.body);
    (response.json(), response.body.len())
}

#[test]
fn a_plugin_flooding_any_capability_leaves_the_hosts_memory_flat() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = flood_server(&fake);
    for kind in ["api", "api-ungranted", "kv", "http", "log"] {
        // Warm-up: the pool's slots, the allocator's arenas, the metric's labels.
        for _ in 0..2 {
            flood(&server, kind);
        }
        let before = server.rss_bytes();
        let calls: u64 = (0..FLOODS).map(|_| flood(&server, kind)).sum();
        let after = server.rss_bytes();
        // A loop, even on a loaded machine and a debug build (a key-value read takes tens of µs).
        assert!(
            calls > 1_000 * FLOODS as u64,
            "{kind}: only {calls} calls in {FLOODS} floods: the plugin did not loop"
        );
        assert!(
            after <= before + RSS_GROWTH,
            "{kind}: {calls} calls took the host from {} to {} KiB",
            before >> 10,
            after >> 10
        );
        eprintln!(
            "{kind}: {calls} calls in {FLOODS} floods, RSS {} -> {} KiB",
            before >> 10,
            after >> 10
        );
    }
}

#[test]
fn the_console_counts_every_openim_call_and_shows_the_first_twenty() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = flood_server(&fake);
    let calls = flood(&server, "api");
    assert!(calls > 1_000, "only {calls} calls: the plugin did not loop");
    let (recent, bytes) = recent_callbacks(&server);
    let step = &recent["callbacks"][0]["steps"][0];
    assert_eq!(step["plugin"], "10-flood");
    assert_eq!(step["api_calls_total"], calls, "every call counted: {step}");
    assert_eq!(step["api_calls"].as_array().unwrap().len(), 20);
    let by_outcome = step["api_calls_by_outcome"].as_object().unwrap();
    assert_eq!(
        by_outcome
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        calls
    );
    // The burst of the rate cap (10, and what refilled meanwhile) reached OpenIM, the rest of
    // the first 20 were rate-limited; past 20 calls, each was refused on the spot.
    let count = |outcome: &str| by_outcome.get(outcome).and_then(Value::as_u64).unwrap_or(0);
    assert!(count("ok") >= 10, "{step}");
    assert_eq!(count("ok") + count("rate_limited"), 20, "{step}");
    assert_eq!(by_outcome["call_cap"], calls - 20, "{step}");
    assert!(bytes < 16 << 10, "one flood's JSON is {bytes} bytes");
    assert_eq!(
        server.metric(
            "callback_host_openim_api_calls_total{plugin=\"10-flood\",\
             operation=\"kick-group-members\",outcome=\"call_cap\"}"
        ),
        (calls - 20) as f64
    );

    // A full page of floods: the JSON the page polls stays under its cap.
    for _ in 0..10 {
        flood(&server, "api-ungranted");
    }
    let (recent, bytes) = recent_callbacks(&server);
    assert!(bytes <= (1 << 20) + 100, "the recent JSON is {bytes} bytes");
    let step = &recent["callbacks"][0]["steps"][0];
    assert!(
        step["api_calls_by_outcome"]["not_granted"]
            .as_u64()
            .unwrap()
            >= 20,
        "{step}"
    );
}
