//! What plugins may use beyond WASI's nothing, when granted: config values (`wasi:config`),
//! key-value state (`wasi:keyvalue`) on the embedded store and on a real Redis, and the grants
//! that decide it, over HTTP against the real binary.

use crate::common;

use std::time::{Duration, Instant};

use common::{GO_ON, KICK_PATH, Server, component, example, kick_body, openim_request};

/// What the kv-probe fixture answered for `ops` (its results, `;`-separated).
pub(crate) fn probe(server: &Server, ops: &str) -> String {
    let decision = server.kick_decision(&["u"], ops);
    let json: serde_json::Value = serde_json::from_str(&decision).expect("an answer");
    json["errDlt"].as_str().unwrap_or("").to_owned()
}

/// The guard's answer when `users` are kicked: its refusal, or "go on".
fn guard(server: &Server, users: &[&str]) -> String {
    server.kick_decision(users, "r")
}

#[test]
fn config_values_reach_the_plugin_and_follow_the_file_without_a_restart() {
    let server = Server::start(
        &[("10-guard.wasm", example("10-guard.wasm"))],
        "[plugin_config.10-guard]\nprotected_users = \"alice, bob\"\n",
    );
    assert!(guard(&server, &["alice"]).contains("protected users: alice"));
    // The built-in default list is not used once the config names the users.
    assert_eq!(guard(&server, &["admin"]), GO_ON);
    // Edited: applied without a restart, on the file's change...
    let config = server.dir().join("callback-host.toml");
    std::fs::write(
        &config,
        "[plugin_config.10-guard]\nprotected_users = \"carol\"\n",
    )
    .unwrap();
    server.wait_for_log(&["config reloaded"]);
    assert!(guard(&server, &["carol"]).contains("protected users: carol"));
    assert_eq!(guard(&server, &["alice"]), GO_ON);
    // ...and on SIGHUP.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.wait_for_log(&["SIGHUP: reloading the config"]);
    // A broken file is refused; the values in force stay.
    std::fs::write(&config, "[plugin_config.10-guard\n").unwrap();
    server.wait_for_log(&["config not reloaded"]);
    assert!(guard(&server, &["carol"]).contains("protected users: carol"));
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::copy(
        example("10-guard.wasm"),
        dir.path().join("plugins/10-guard.wasm"),
    )
    .unwrap();
    let server = Server::start_in_env(
        dir,
        "[plugin_config.10-guard]\nprotected_users = \"alice\"\n",
        &[],
        &[("CALLBACK_HOST_PLUGIN__10_GUARD__PROTECTED_USERS", "dave")],
    );
    assert!(guard(&server, &["dave"]).contains("protected users: dave"));
    assert_eq!(guard(&server, &["alice"]), GO_ON);
}

/// The config of the kv-probe tests: `backend` is the `[keyvalue]` section's store keys.
fn kv_config_with(backend: &str, extra: &str) -> String {
    format!(
        "[keyvalue]\n{backend}max_value_bytes = 1000\nmax_entries = 20\n\
         [plugin_grants.10-probe]\nkeyvalue = true\nkeyvalue_buckets = [\"team\"]\n\
         [plugin_grants.20-other]\nkeyvalue = true\nkeyvalue_max_entries = 3\n{extra}"
    )
}

fn kv_config(store: &std::path::Path, extra: &str) -> String {
    kv_config_with(
        &format!(
            "backend = \"embedded\"\npath = {:?}\n",
            store.join("kv.redb").to_str().unwrap()
        ),
        extra,
    )
}

/// Buckets, atomics, quotas and privacy, the same on every backend.
fn bucket_semantics(backend: &str) {
    let config = kv_config_with(backend, "");
    let server = Server::start(&[("10-probe.wasm", component("kv_probe"))], &config);
    assert_eq!(
        probe(
            &server,
            "set a 1; get a; exists a; incr n 5; incr n 2; get n; list"
        ),
        "ok;1;true;5;7;7;a,n"
    );
    // A shared bucket only by a name the grant lists.
    assert_eq!(probe(&server, "open team; set t x; get t"), "opened;ok;x");
    assert_eq!(probe(&server, "open secret"), "error Error::AccessDenied");
    // Quotas: value size and keys per bucket, named in the error.
    let big = probe(&server, "big v 1001");
    assert!(
        big.contains("a value of 1001 bytes is over the limit of 1000"),
        "{big}"
    );
    let full = probe(&server, "fill k 30");
    assert!(
        full.contains("the bucket holds 20 keys, the limit"),
        "{full}"
    );
    // Deleting a key frees its place.
    assert_eq!(
        probe(&server, "del a; get a; incr a 1; set z 1"),
        "ok;none;1;error Error::Other(\"the bucket holds 20 keys, the limit\")"
    );
    assert!(
        probe(&server, "set n text; incr n 1")
            .starts_with("ok;error Error::Other(\"the value of \\\"n\\\" is not a decimal number")
    );
    drop(server);

    // Another plugin, same store: it sees its own bucket, not the first one's, and not the
    // shared bucket it was not granted.
    let server = Server::start(&[("20-other.wasm", component("kv_probe"))], &config);
    assert_eq!(probe(&server, "get a; list"), "none;");
    assert_eq!(probe(&server, "open team"), "error Error::AccessDenied");
    let metrics = Server::get(&server.addr, "/metrics").body;
    // Its own quota, from its grant.
    let full = probe(&server, "fill q 5");
    assert!(
        full.contains("the bucket holds 3 keys, the limit"),
        "{full}"
    );
    assert!(
        metrics
            .contains("callback_host_keyvalue_calls_total{plugin=\"20-other\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
}

#[test]
fn buckets_are_private_unless_shared_and_quotas_hold() {
    let store = tempfile::tempdir().unwrap();
    bucket_semantics(&format!(
        "backend = \"embedded\"\npath = {:?}\n",
        store.path().join("kv.redb").to_str().unwrap()
    ));
}

#[test]
fn the_same_on_redis() {
    let redis = common::redis();
    bucket_semantics(&format!(
        "backend = \"redis\"\nredis_url = {:?}\n",
        redis.url
    ));
}

#[test]
fn the_embedded_store_keeps_its_data_across_a_restart_and_keys_expire() {
    let store = tempfile::tempdir().unwrap();
    let config = kv_config(store.path(), "");
    let server = Server::start(&[("10-probe.wasm", component("kv_probe"))], &config);
    assert_eq!(probe(&server, "set kept yes; incr c 3"), "ok;3");
    // Stopped gracefully (SIGTERM): what was written is flushed to the file.
    let dir = server.terminate_and_keep_dir();
    let server = Server::start_in(dir, &config, &[]);
    assert_eq!(probe(&server, "get kept; incr c 1"), "yes;4");
    drop(server);
    // With a time to live, keys disappear after it (counted from their creation).
    let config = kv_config(store.path(), "").replace(
        "[plugin_grants.10-probe]\nkeyvalue = true\n",
        "[plugin_grants.10-probe]\nkeyvalue = true\nkeyvalue_ttl_secs = 1\n",
    );
    let server = Server::start(&[("10-probe.wasm", component("kv_probe"))], &config);
    assert_eq!(probe(&server, "set short x; incr w 1; get short"), "ok;1;x");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(probe(&server, "get short; incr w 1"), "none;1");
}

#[test]
fn a_plugin_importing_what_it_is_not_granted_is_refused_at_load_and_the_rest_serve() {
    let server = Server::start(
        &[
            ("10-guard.wasm", example("10-guard.wasm")),
            ("40-rate-limit.wasm", example("40-rate-limit.wasm")),
        ],
        "",
    );
    server.wait_for_log(&[
        "plugin not loaded",
        "40-rate-limit",
        "imports what it is not granted",
        "needs `keyvalue = true` in [plugin_grants.40-rate-limit]",
    ]);
    assert!(guard(&server, &["admin"]).contains("protected users: admin"));
    // `check` shows each import and whether the config grants it.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[plugin_grants.40-rate-limit]\nkeyvalue = true\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .arg("check")
        .arg(example("40-rate-limit.wasm"))
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "imports wasi:keyvalue/atomics@0.2.0-draft  [granted: keyvalue",
        "imports wasi:config/store@0.2.0-rc.1  [granted: its own [plugin_config] values]",
        "imports openim:callback/log@0.1.0  [host interface]",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .arg("check")
        .arg(example("40-rate-limit.wasm"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs `keyvalue = true`"));
}

/// Sends one-to-one messages from `sender` to `server` and returns how many were refused.
fn send_messages(server: &Server, sender: &str, count: usize) -> usize {
    let body = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    let mut json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["sendID"] = serde_json::Value::String(sender.to_owned());
    let body = format!("{json}\n");
    (0..count)
        .filter(|_| {
            let response = server.raw(&openim_request(
                "/callbackExample/callbackBeforeSendSingleMsgCommand",
                "op-rate",
                body.as_bytes(),
            ));
            assert_eq!(response.status, 200);
            let answer = response.json();
            if answer["nextCode"] == 1 {
                assert_eq!(answer["errCode"], 20002, "{answer}");
                true
            } else {
                false
            }
        })
        .count()
}

const RATE_LIMIT: &str = "[plugin_config.40-rate-limit]\nmax_per_minute = \"4\"\n\
                          [plugin_grants.40-rate-limit]\nkeyvalue = true\nkeyvalue_ttl_secs = 120\n";

#[test]
fn the_rate_limit_example_on_the_embedded_store() {
    let store = tempfile::tempdir().unwrap();
    let server = Server::start(
        &[("40-rate-limit.wasm", example("40-rate-limit.wasm"))],
        &format!(
            "{RATE_LIMIT}[keyvalue]\npath = {:?}\n",
            store.path().join("kv.redb").to_str().unwrap()
        ),
    );
    common::away_from_a_minute_boundary();
    assert_eq!(send_messages(&server, "user-alice", 6), 2);
    assert_eq!(send_messages(&server, "user-bob", 4), 0);
}

#[test]
fn the_rate_limit_holds_across_two_hosts_sharing_one_redis() {
    let redis = common::redis();
    let config = format!(
        "{RATE_LIMIT}[keyvalue]\nbackend = \"redis\"\nredis_url = {:?}\n",
        redis.url
    );
    let plugins = [("40-rate-limit.wasm", example("40-rate-limit.wasm"))];
    let (a, b) = (
        Server::start(&plugins, &config),
        Server::start(&plugins, &config),
    );
    common::away_from_a_minute_boundary();
    // 3 through one host, 3 through the other: the limit of 4 counts both.
    let refused = send_messages(&a, "user-carol", 3) + send_messages(&b, "user-carol", 3);
    assert_eq!(refused, 2);
    // Keys carry the time to live the grant gives them.
    let ttl = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &redis.url,
            "--scan",
            "--pattern",
            "cbh:p/40-rate-limit:user-carol:*",
        ])
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&ttl.stdout).trim().to_owned();
    assert!(!key.is_empty(), "no rate-limit key in redis");
    let ttl = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url, "pttl", &key])
        .output()
        .unwrap();
    let ms: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
    assert!((100_000..=120_000).contains(&ms), "pttl {ms}");
}

#[test]
fn a_redis_that_stops_answering_fails_calls_by_name_within_the_deadline() {
    let redis = common::redis();
    let server = Server::start(
        &[("10-probe.wasm", component("kv_probe"))],
        &format!(
            "[defaults]\ntimeout_secs = 2\n[plugin_grants.10-probe]\nkeyvalue = true\n\
             [keyvalue]\nbackend = \"redis\"\nredis_url = {:?}\n",
            redis.url
        ),
    );
    assert_eq!(probe(&server, "set a 1; get a"), "ok;1");
    drop(redis);
    let started = Instant::now();
    let result = probe(&server, "get a");
    assert!(
        result.starts_with("error Error::Other(\"key-value backend"),
        "{result}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The host keeps serving.
    let response = server.raw(&openim_request(
        KICK_PATH,
        "op-after",
        kick_body("G", &["u"], "list").as_bytes(),
    ));
    assert_eq!(response.body, GO_ON);
}
