//! The memory budget of all instances together: calls beyond it wait for memory within their
//! deadline, fail by name when none comes, and instances kept for reuse give theirs back.

use crate::common;
use crate::hostile_plugins::{TIMEOUT, config};

use std::time::{Duration, Instant};

use common::{GO_ON, KICK_PATH, Server, component};

/// The memory budget of these tests, and what the host itself may add to it (its code, the
/// compiled plugins, buffers).
const BUDGET_MIB: u64 = 256;
const OVERHEAD_MIB: u64 = 96;

#[test]
fn memory_hungry_calls_beyond_the_budget_wait_and_the_host_stays_under_it() {
    let server = Server::start(
        &[("10-hostile.wasm", component("hostile"))],
        &format!(
            "memory_budget_mib = {BUDGET_MIB}\nmax_concurrent_calls = 32\n[defaults]\ntimeout_secs = 5\n\
             [plugin_defaults]\nmemory_mib = 64\n"
        ),
    );
    // Warm up: the plugin has run once, so the baseline holds what every call shares.
    assert!(
        server
            .kick_decision(&["u"], "hold 1 0")
            .contains("held 1 MiB")
    );
    let baseline = server.rss_bytes();
    let done = std::sync::atomic::AtomicBool::new(false);
    let peak = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(server.rss_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        // 20 calls of 40 MiB each at once: 800 MiB wanted, 256 MiB allowed.
        let started = Instant::now();
        let calls: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| server.kick_decision(&["u"], "hold 40 300")))
            .collect();
        let decisions: Vec<_> = calls.into_iter().map(|call| call.join()).collect();
        let elapsed = started.elapsed();
        // The sampler stops before anything is asserted (a failed assertion inside the scope
        // would wait for it forever).
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (sampler.join().unwrap(), decisions, elapsed)
    });
    let (peak, decisions, elapsed) = peak;
    // Every call ran to its end within its deadline (none failed for want of memory)...
    for decision in decisions {
        let decision = decision.unwrap();
        assert!(decision.contains("held 40 MiB for 300 ms"), "{decision}");
    }
    // ... and they queued: at most 6 fit at once, so it took several rounds of 300 ms. (How
    // long beyond that depends on the machine's load: the deadline above is the bound.)
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    let mib = |bytes: u64| bytes >> 20;
    assert!(
        peak <= baseline + ((BUDGET_MIB + OVERHEAD_MIB) << 20),
        "peak RSS {} MiB over the baseline {} MiB + budget {BUDGET_MIB} MiB + {OVERHEAD_MIB} MiB",
        mib(peak),
        mib(baseline)
    );
    // Afterwards: what stays resident is bounded by the budget, and shown in /metrics.
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_bytes();
    assert!(
        after <= baseline + (BUDGET_MIB << 20),
        "{} MiB resident after the burst (baseline {} MiB)",
        mib(after),
        mib(baseline)
    );
    let metrics = Server::get(&server.addr, "/metrics").body;
    assert!(metrics.contains(&format!(
        "callback_host_memory_budget_bytes {}",
        BUDGET_MIB << 20
    )));
    // What stays reserved is only the instances built ahead for the next calls (each a fresh
    // instance's few MiB), none of the burst's.
    let reserved = server.metric("callback_host_memory_reserved_bytes");
    let stocked = server.metric("callback_host_stock_ready_instances{plugin=\"10-hostile\"}");
    assert!(
        reserved <= stocked * f64::from(4 << 20),
        "{reserved} bytes reserved with {stocked} instances ready: {metrics}"
    );
    assert!(metrics.contains("callback_host_resident_memory_bytes "));
}

#[test]
fn a_call_that_gets_no_memory_before_its_deadline_fails_by_name() {
    // The JSON fixture takes memory on request (`hold:MIB:MS` in the operationID script), for
    // two commands with different timeouts.
    let server = Server::start(
        &[("10-scripted.wasm", component("scripted"))],
        "memory_budget_mib = 40\nsafety_margin_ms = 500\n[defaults]\ntimeout_secs = 2\n\
         delivery = \"inline\"\n\
         [commands.callbackAfterQuitGroupCommand]\ntimeout_secs = 5\n\
         [plugin_defaults]\nmemory_mib = 32\n",
    );
    let quit = "/callbackExample/callbackAfterQuitGroupCommand";
    let body = common::request_fixture("callbackAfterQuitGroupCommand");
    // 24 of the 40 MiB held for 3 s by a callback with a 5 s timeout...
    let holder = std::thread::spawn({
        let (addr, body) = (server.addr.clone(), body.clone());
        move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            std::io::Write::write_all(
                &mut stream,
                &common::openim_request(quit, r#"{"0":"hold:24:3000"}"#, body.as_bytes()),
            )
            .unwrap();
            common::read_response(&mut stream)
        }
    });
    server.wait_for_log(&["delivered as JSON", "callbackAfterQuitGroupCommand"]);
    // ...so a kick (2 s timeout) that needs 24 MiB more waits until its deadline, and fails by
    // name; OpenIM still gets its answer in time.
    let started = Instant::now();
    let response = server.raw(&common::openim_request(
        KICK_PATH,
        r#"{"0":"hold:24:0"}"#,
        common::kick_body("G", &["u"], "").as_bytes(),
    ));
    assert_eq!(response.body, GO_ON);
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    server.wait_for_log(&[
        "plugin failed",
        "outcome=\"memory_budget\"",
        "did not fit in the host's plugin memory budget of 41943040 bytes",
    ]);
    assert_eq!(holder.join().unwrap().body, GO_ON);
    server.wait_for_log(&["request answered", "hold:24:3000", "outcome=\"ok\""]);
}

#[test]
fn instances_kept_for_reuse_give_their_memory_back_when_it_runs_short() {
    let server = Server::start(
        &[("10-hostile.wasm", component("hostile"))],
        &format!(
            "memory_budget_mib = 40\n{}reuse_instances = 1000\n",
            config("")
        ),
    );
    // One instance grows to 30 MiB and is kept idle: 10 MiB of the budget are left.
    assert!(
        server
            .kick_decision(&["u"], "hold 30 0")
            .contains("held 30 MiB")
    );
    // Two at once: one takes the kept instance, the other needs 30 MiB: the kept instance is
    // dropped when it goes idle again, and both are served.
    let first = common::kick_in_background(server.addr.clone(), "hold 30 300");
    let second = server.kick_decision(&["u"], "hold 30 301");
    assert!(second.contains("held 30 MiB"), "{second}");
    assert_eq!(first.join().unwrap().0.body, GO_ON);
    assert!(server.decision("op-hold 30 300").contains("held 30 MiB"));
    assert!(!server.log().contains("memory_budget"));
}
