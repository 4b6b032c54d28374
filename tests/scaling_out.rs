//! Replicas behind a load balancer: three hosts behind a real HAProxy, sharing one real Redis
//! for key-value state and the after-callback queue, as the README's "Scaling out" deploys them.

use crate::common;

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    GO_ON, KICK_PATH, Server, component, counted_kick, example, handled_counts, openim_request,
    read_response,
};

const MESSAGE_PATH: &str = "/callbackExample/callbackBeforeSendSingleMsgCommand";

/// Three replicas on one Redis: kicks (after-callbacks, queued) go to a probe that runs the
/// key-value operations their reason names (see [`counted_kick`]); one-to-one messages to the
/// rate-limit example, 20 a minute.
fn replicas(redis: &testkit::Redis) -> Vec<Server> {
    let config = format!(
        "[defaults]\ntimeout_secs = 5\n\
         [plugin_grants.10-probe]\nkeyvalue = true\n\
         [plugin_config.40-rate-limit]\nmax_per_minute = \"20\"\n\
         [plugin_grants.40-rate-limit]\nkeyvalue = true\nkeyvalue_ttl_secs = 120\n\
         [keyvalue]\nbackend = \"redis\"\nredis_url = {url:?}\n\
         [queue]\nbackend = \"redis\"\nredis_url = {url:?}\nworkers = 4\nclaim_idle_ms = 2000\n",
        url = redis.url
    );
    let plugins = [
        ("10-probe.wasm", component("kv_probe")),
        ("40-rate-limit.wasm", example("40-rate-limit.wasm")),
    ];
    (0..3).map(|_| Server::start(&plugins, &config)).collect()
}

/// The operationIDs of queued events a replica logged handled as a redelivery.
fn redelivered(replicas: &[Server]) -> std::collections::HashSet<String> {
    replicas
        .iter()
        .flat_map(|r| {
            r.log()
                .lines()
                .filter(|l| l.contains("queued event handled") && l.contains("redelivered=true"))
                .filter_map(|l| {
                    let op = l.split("operation_id=").nth(1)?.split('}').next()?;
                    Some(op.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A one-to-one message from `sender`, as OpenIM writes it.
fn message(sender: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(&common::request_fixture(
        "callbackBeforeSendSingleMsgCommand",
    ))
    .unwrap();
    json["sendID"] = sender.into();
    format!("{json}\n")
}

/// Sends one callback on `stream` and returns the status and body of the answer.
fn call(stream: &mut TcpStream, path: &str, operation_id: &str, body: &str) -> (u16, String) {
    stream
        .write_all(&openim_request(path, operation_id, body.as_bytes()))
        .unwrap();
    let response = read_response(stream);
    (response.status, response.body)
}

/// Requests each replica answered, from its `request answered` debug lines.
fn answered(server: &Server) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("request answered"))
        .count()
}

fn signal(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_rate_limit_holds_across_three_replicas_behind_haproxy() {
    let redis = common::redis();
    let replicas = replicas(&redis);
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let proxy = testkit::Haproxy::start(&addrs).unwrap();
    common::away_from_a_minute_boundary();
    let mut stream = TcpStream::connect(&proxy.addr).unwrap();
    let body = message("user-dave");
    let refused = (0..30)
        .filter(|i| {
            let (status, body) = call(&mut stream, MESSAGE_PATH, &format!("op-rate-{i}"), &body);
            assert_eq!(status, 200, "{body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            answer["errCode"] == 20002
        })
        .count();
    // 30 messages spread over three replicas, one count in Redis: 20 pass, 10 are refused.
    assert_eq!(refused, 10);
    for replica in &replicas {
        assert!(
            answered(replica) >= 5,
            "a replica answered too few:\n{}",
            replica.log()
        );
    }
    // The same plugin set everywhere, and /readyz says so.
    let sets: Vec<serde_json::Value> = replicas
        .iter()
        .map(|r| Server::get(&r.addr, "/readyz").json()["plugin_set"].clone())
        .collect();
    assert!(
        sets[0].is_string() && sets.iter().all(|s| *s == sets[0]),
        "{sets:?}"
    );
}

#[test]
fn two_thousand_callbacks_survive_a_sigterm_and_a_sigkill_of_replicas() {
    let redis = common::redis();
    let replicas = Arc::new(replicas(&redis));
    let addrs: Vec<String> = replicas.iter().map(|r| r.addr.clone()).collect();
    let proxy = testkit::Haproxy::start(&addrs).unwrap();
    // Four clients as OpenIM's webhook workers, 500 callbacks each on a keep-alive connection:
    // kicks (after-callbacks, queued) and messages of new senders (before-callbacks, allowed).
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (addr, done) = (proxy.addr.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                let mut wrong = Vec::new();
                for i in 0..500 {
                    let op = format!("op-{client}-{i}");
                    let (status, body) = if i % 2 == 0 {
                        call(&mut stream, KICK_PATH, &op, &counted_kick(&op))
                    } else {
                        call(&mut stream, MESSAGE_PATH, &op, &message(&op))
                    };
                    if status != 200 || body != GO_ON {
                        wrong.push(format!("{op}: {status} {body}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                wrong
            })
        })
        .collect();
    // Bounded: a client that fails stops counting.
    let wait_for = |count: usize| {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::Relaxed) < count {
            assert!(
                std::time::Instant::now() < until,
                "only {} callbacks answered in 60 s",
                done.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // A third of the way: a graceful stop (a rollout); two thirds: a crash.
    wait_for(660);
    signal(&replicas[0], "-TERM");
    wait_for(1330);
    signal(&replicas[1], "-KILL");
    let wrong: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(wrong.is_empty(), "{} wrong answers: {wrong:?}", wrong.len());
    assert!(answered(&replicas[0]) > 0 && answered(&replicas[1]) > 0);

    // Every kick is handled; one held by a stopped replica is claimed by the survivor and
    // delivered again, marked. Each is handled once, or again only as a marked redelivery.
    let kicks: Vec<String> = (0..4)
        .flat_map(|c| (0..500).step_by(2).map(move |i| format!("op-{c}-{i}")))
        .collect();
    let survivor = &replicas[2];
    // Bounded; on a timeout it says which kicks were never counted and what the queue holds.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let counts = handled_counts(&redis);
        let missing: Vec<&String> = kicks
            .iter()
            .filter(|op| !counts.contains_key(*op))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{} queued kicks never handled: {missing:?}; queue depth {}, retries {}; survivor's log:\n{}",
            missing.len(),
            survivor.metric("callback_host_queue_depth "),
            survivor.metric("callback_host_queue_retries_total"),
            survivor.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (counts, again) = (handled_counts(&redis), redelivered(&replicas));
    assert_eq!(counts.len(), kicks.len(), "a kick nobody sent was handled");
    for op in &kicks {
        assert!(
            counts[op] == 1 || again.contains(op),
            "{op} handled {} times, never marked redelivered",
            counts[op]
        );
    }
    survivor.wait_until("the shared queue to be empty", || {
        survivor.metric("callback_host_queue_depth ") == 0.0
    });
}

#[test]
fn an_after_callback_sent_again_to_another_replica_is_handled_once() {
    let redis = common::redis();
    let replicas = replicas(&redis);
    // A balancer's retry: the same kick (operationID and body) reaches a second replica after
    // the first stored it; the same body under another operationID is another event. All three
    // count under one key: two events stored, two handlings.
    let kick = counted_kick("kick");
    for (replica, op) in [(0, "op-twice"), (1, "op-twice"), (2, "op-other")] {
        let mut stream = TcpStream::connect(&replicas[replica].addr).unwrap();
        assert_eq!(
            call(&mut stream, KICK_PATH, op, &kick),
            (200, GO_ON.to_owned())
        );
    }
    replicas[0].wait_until("both events to be handled", || {
        handled_counts(&redis).get("kick").is_some_and(|n| *n >= 2)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(handled_counts(&redis)["kick"], 2);
    assert_eq!(
        replicas[1].metric("callback_host_queue_duplicates_total "),
        1.0
    );
}
