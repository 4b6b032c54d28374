//! Running the host in production: hot reload under load, admin endpoints, metrics.

use crate::common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{
    GO_ON, KICK_PATH, Server, component, example, kick_body, openim_request, read_response,
};

fn refused(server: &Server) -> bool {
    server.kick_decision(&["admin"], "r") != GO_ON
}

#[test]
fn hot_reload_under_load_never_fails_a_request() {
    // Inline: every request of the load runs the plugins while they are swapped (queued, the
    // load would be answered from the queue and its backlog would delay the checks' decisions).
    let server = Server::start(
        &[("10-guard.wasm", component("guard"))],
        "[commands.callbackAfterKickGroupCommand]\ndelivery = \"inline\"\n",
    );
    assert!(refused(&server));

    // A load generator that runs through every change and checks every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|c| {
            let (addr, stop, answered) = (
                server.addr.clone(),
                Arc::clone(&stop),
                Arc::clone(&answered),
            );
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = kick_body("G", &["admin", "u"], &format!("load {c} {i}"));
                    stream
                        .write_all(&openim_request(KICK_PATH, "op-load", body.as_bytes()))
                        .unwrap();
                    let response = read_response(&mut stream);
                    assert_eq!(response.status, 200, "{response:?}");
                    let next_code = response.json()["nextCode"].as_i64();
                    assert!(matches!(next_code, Some(0 | 1)), "{response:?}");
                    answered.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();

    // Replace the guard with a plugin that lets everything go on.
    server.deploy(&component("hostile"), "10-guard.wasm");
    server.wait_until("the replaced plugin to answer", || !refused(&server));
    // Add a second guard (in C) after it.
    server.deploy(&example("11-guard-c.wasm"), "15-guard-c.wasm");
    server.wait_until("the added plugin to answer", || refused(&server));
    server.wait_for_log(&["plugin loaded", "15-guard-c"]);
    // A broken file dropped next to the good ones is refused; the others keep serving.
    std::fs::write(
        server.plugin_dir().join("12-broken.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .unwrap();
    server.wait_for_log(&["plugin not loaded", "12-broken.wasm"]);
    assert!(refused(&server));
    // A broken new version of a loaded plugin leaves the previous version serving.
    std::fs::write(server.plugin_dir().join("15-guard-c.wasm"), b"not wasm").unwrap();
    server.wait_for_log(&[
        "plugin not loaded",
        "15-guard-c.wasm",
        "previous_version_kept=true",
    ]);
    assert!(refused(&server));
    // Remove it: nothing refuses any more.
    std::fs::remove_file(server.plugin_dir().join("15-guard-c.wasm")).unwrap();
    server.wait_until("the removed plugin to stop answering", || !refused(&server));
    server.wait_for_log(&["plugin removed", "15-guard-c.wasm"]);

    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().expect("a request failed during reload");
    }
    assert!(answered.load(Ordering::Relaxed) > 0);
}

#[test]
fn health_readiness_and_metrics_after_a_known_sequence() {
    let server = Server::start(&[("10-guard.wasm", component("guard"))], "");
    let health = Server::get(&server.addr, "/healthz");
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let ready = Server::get(&server.addr, "/readyz");
    assert_eq!(ready.json()["plugins"], serde_json::json!(["10-guard"]));

    assert_eq!(
        ready.json()["handles"]["10-guard"],
        serde_json::json!(["callbackAfterKickGroupCommand"])
    );

    for _ in 0..3 {
        assert_ne!(server.kick_decision(&["admin"], "r"), GO_ON);
    }
    for _ in 0..2 {
        assert_eq!(server.kick_decision(&["u"], "r"), GO_ON);
    }
    assert_eq!(server.post(KICK_PATH, "{").status, 400);
    let quit = common::request_fixture("callbackAfterQuitGroupCommand");
    assert_eq!(
        server.post("/x/callbackAfterQuitGroupCommand", &quit).body,
        GO_ON
    );

    let metrics = Server::get(&server.addr, "/metrics").body;
    for line in [
        // The kick is an after-callback, queued by default: every one is answered "go on" once
        // stored, whatever a plugin says; the workers handled all five.
        r#"callback_host_requests_total{command="callbackAfterKickGroupCommand",outcome="queued"} 5"#,
        "callback_host_queue_handled_total 5",
        "callback_host_queue_depth 0",
        r#"callback_host_requests_total{command="callbackAfterKickGroupCommand",outcome="bad_body"} 1"#,
        r#"callback_host_requests_total{command="callbackAfterQuitGroupCommand",outcome="no_plugin"} 1"#,
        r#"callback_host_plugin_calls_total{plugin="10-guard",outcome="refused"} 3"#,
        r#"callback_host_plugin_calls_total{plugin="10-guard",outcome="ok"} 2"#,
        r#"callback_host_plugin_call_seconds_count{plugin="10-guard"} 5"#,
        r#"callback_host_plugin_call_fuel_count{plugin="10-guard"} 5"#,
        r#"callback_host_request_seconds_count{command="callbackAfterKickGroupCommand"} 6"#,
        "callback_host_plugin_instances 0",
        "callback_host_plugins_loaded 1",
        "callback_host_plugin_load_failures_total 0",
        r#"callback_host_plugin_handles{plugin="10-guard",command="callbackAfterKickGroupCommand"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no line {line:?} in\n{metrics}"
        );
    }
}

#[test]
fn admin_endpoints_can_have_their_own_address() {
    let server = Server::start_with_args(&[], "", &["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin_addr.clone().unwrap();
    assert_eq!(Server::get(&admin, "/healthz").status, 200);
    assert!(
        Server::get(&admin, "/metrics")
            .body
            .contains("callback_host_plugins_loaded 0")
    );
    // Not on the callback address, and no callbacks on the admin address.
    assert_eq!(Server::get(&server.addr, "/metrics").status, 405);
    let mut stream = std::net::TcpStream::connect(&admin).unwrap();
    stream
        .write_all(&openim_request(
            KICK_PATH,
            "op",
            kick_body("G", &["u"], "").as_bytes(),
        ))
        .unwrap();
    assert_eq!(read_response(&mut stream).status, 404);
    assert_eq!(server.kick(&["u"], "r").body, GO_ON);
}

#[test]
fn openim_webhooks_yml_sets_the_deadline() {
    let webhooks = common::repo_root().join("tests/fixtures/webhooks.yml");
    let server = Server::start_with_args(
        &[("hostile.wasm", component("hostile"))],
        "",
        &["--openim-webhooks", webhooks.to_str().unwrap()],
    );
    server.wait_for_log(&[
        "enabled in OpenIM's webhooks.yml",
        "callbackAfterKickGroupCommand",
        "timeout_ms=2000",
    ]);
    server.wait_for_log(&["callbackBeforeSendSingleMsgCommand", "timeout_ms=4000"]);
    server.wait_for_log(&["ignored", "afterGroupMsgRevoke"]);
    // afterKickGroupMember.timeout is 2 s: plugins get 2 s less the 500 ms margin.
    assert_eq!(server.kick(&["u"], "sleep").body, GO_ON);
    server.wait_for_log(&[
        "plugin failed",
        "blocked in a host call at the deadline (1500 ms)",
    ]);
}

#[test]
fn an_invalid_webhooks_yml_is_rejected_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.yml");
    std::fs::write(&path, "url: http://127.0.0.1:10006/callbackExample\nafterKickGroupMember:\n  enable: true\n  timeout: soon\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--openim-webhooks"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for part in [
        path.to_str().unwrap(),
        "afterKickGroupMember.timeout",
        "must be a whole number of seconds",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from {stderr}");
    }
}

#[test]
fn a_corrupt_compile_cache_entry_is_rebuilt_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_owned();
    let start = || {
        Server::start_with_args(
            &[("10-guard.wasm", component("guard"))],
            "",
            &["--cache-dir", &cache_arg],
        )
    };
    let first = start();
    first.wait_for_log(&["plugin loaded", "10-guard", "from=\"compiled\""]);
    drop(first);
    // One entry, and its checksum beside it.
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].with_extension("cwasm.sha256").exists());
    let second = start();
    second.wait_for_log(&["plugin loaded", "10-guard", "from=\"cache\""]);
    drop(second);
    // Flip one byte in the middle of the entry.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&entries[0], &bytes).unwrap();
    let third = start();
    third.wait_for_log(&[
        "corrupt compile cache entry; rebuilding",
        "checksum mismatch",
    ]);
    third.wait_for_log(&["plugin loaded", "10-guard", "from=\"compiled\""]);
    assert!(refused(&third));
}

#[test]
fn json_logs_carry_the_operation_id_plugin_and_outcome() {
    let server = Server::start_with_args(
        &[("hostile.wasm", component("hostile"))],
        "",
        &["--log-json"],
    );
    assert_eq!(server.kick(&["u"], "panic").body, GO_ON);
    let line = server.wait_for_log(&["plugin failed"]);
    let json: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["level"], "WARN");
    assert_eq!(json["fields"]["plugin"], "hostile");
    assert_eq!(json["span"]["operation_id"], "op-test");
    assert_eq!(json["fields"]["outcome"], "trap");
}

#[test]
fn a_file_written_continuously_beside_the_plugins_does_not_stop_hot_reload() {
    let server = Server::start(&[], "");
    let dir = server.plugin_dir();
    let stop = Arc::new(AtomicBool::new(false));
    // A log written every 50 ms, far more often than the 300 ms of quiet a reload waits for.
    let writer = {
        let (stop, log) = (Arc::clone(&stop), dir.join("host.log"));
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                writeln!(file, "a line").unwrap();
                file.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    assert!(!refused(&server));
    server.deploy(&component("guard"), "10-guard.wasm");
    server.wait_until("the new plugin to answer", || refused(&server));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn a_sigterm_while_the_host_starts_stops_it_gracefully_once_started() {
    // A fresh compile cache: the Go guard takes seconds to compile, so the signal, sent when the
    // first plugin is loaded, comes while the host is still starting.
    let dir = common::dir_with_plugins(&[
        ("10-guard.wasm", component("guard")),
        ("14-guard-go.wasm", example("14-guard-go.wasm")),
    ]);
    let plugins = dir.path().join("plugins");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(&plugins)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // The config in force is said first; the signal goes once the first plugin is loaded.
    let mut seen = String::new();
    while !seen.contains("plugin loaded plugin=10-guard") {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(read > 0, "the host ended before loading 10-guard:\n{seen}");
        assert!(
            !line.contains("plugin loaded plugin=14-guard-go"),
            "{seen}{line}"
        );
        seen.push_str(&line);
    }
    common::sigterm(child.id());
    let log = std::io::read_to_string(stderr).unwrap();
    let exit = child.wait().unwrap();
    // Not killed by the signal: the host finished starting, then stopped as it does when serving.
    assert!(exit.success(), "{exit:?}; log after the first line:\n{log}");
    assert!(log.contains("plugin loaded plugin=14-guard-go"), "{log}");
    assert!(
        log.contains("stopping: finishing the requests in flight"),
        "{log}"
    );
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    assert!(
        stdout.starts_with("listening on http://127.0.0.1:"),
        "{stdout}"
    );
}
