//! What plugins may use beyond WASI's nothing, when granted: config values (`wasi:config`),
//! key-value state (`wasi:keyvalue`) on the embedded store and on a real Redis, and the grants
//! that decide it, over HTTP against the real binary.

use crate::common;

use std::time::{Duration, Instant};

use common::{GO_ON, KICK_PATH, Server, component, example, kick_body, openim_request};

/// What the kv-probe fixture answered for `ops` (its results, `;`-separated).
fn probe(server: &Server, ops: &str) -> String {
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

/// A real HTTP/1.1 server on a free loopback port, for plugins to call: `/ok` answers `hello`,
/// `/slow` answers after 10 s, `/huge` sends 3 MiB, `/echo` answers with the request body;
/// every request body is recorded.
struct Upstream {
    port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// When each request arrived.
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl Upstream {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&received);
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let times = std::sync::Arc::clone(&arrivals);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = std::sync::Arc::clone(&log);
                let times = std::sync::Arc::clone(&times);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let body = String::from_utf8_lossy(&body).into_owned();
                    log.lock().unwrap().push(body.clone());
                    times.lock().unwrap().push(Instant::now());
                    let answer = match path.as_str() {
                        "/slow" => {
                            std::thread::sleep(Duration::from_secs(10));
                            "late".to_owned()
                        }
                        "/huge" => "h".repeat(3 << 20),
                        "/echo" => body,
                        _ => "hello".to_owned(),
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                });
            }
        });
        Self {
            port,
            received,
            arrivals,
        }
    }
}

/// The probe inline: these tests watch outbound calls on OpenIM's answer path.
fn http_probe(grant: &str) -> Server {
    Server::start(
        &[("10-fetch.wasm", component("http_probe"))],
        &format!(
            "[defaults]\ntimeout_secs = 2\ndelivery = \"inline\"\n[outbound_http]\nmax_response_bytes = 1048576\n\
             [plugin_grants.10-fetch]\n{grant}"
        ),
    )
}

#[test]
fn outbound_http_reaches_listed_origins_only_within_the_deadline_and_the_caps() {
    let up = Upstream::start();
    let other = Upstream::start();
    let port = up.port;
    let server = http_probe(&format!("http = [\"http://127.0.0.1:{port}\"]\n"));
    // Allowed: the listed origin.
    assert_eq!(
        probe(&server, &format!("get http://127.0.0.1:{port}/ok")),
        "200 5 hello"
    );
    assert_eq!(
        probe(
            &server,
            &format!("post http://127.0.0.1:{port}/echo {{\"a\":1}}")
        ),
        "200 7 {\"a\":1}"
    );
    assert!(
        up.received
            .lock()
            .unwrap()
            .contains(&"{\"a\":1}".to_owned())
    );
    // Denied: another port, another name for the same address.
    for url in [
        format!("http://127.0.0.1:{}/ok", other.port),
        format!("http://localhost:{port}/ok"),
        format!("https://127.0.0.1:{port}/ok"),
    ] {
        let result = probe(&server, &format!("get {url}"));
        assert!(
            result.starts_with("error") && result.contains("HttpRequestDenied"),
            "{url}: {result}"
        );
    }
    assert!(other.received.lock().unwrap().is_empty());
    // Huge: the response cap holds.
    let result = probe(&server, &format!("get http://127.0.0.1:{port}/huge"));
    assert!(
        result.contains("body size exceeds limit: 1048576 bytes"),
        "{result}"
    );
    // Slow: the deadline holds (1.5 s of OpenIM's 2 s), and OpenIM is answered in time.
    let started = Instant::now();
    let response = server.raw(&openim_request(
        KICK_PATH,
        "op-slow",
        kick_body("G", &["u"], &format!("get http://127.0.0.1:{port}/slow")).as_bytes(),
    ));
    assert_eq!(response.body, GO_ON);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.metric("callback_host_plugin_calls_total{plugin=\"10-fetch\",outcome=\"timeout\"}"),
        1.0
    );
    // The slow request is counted when its task, which wasmtime-wasi-http runs apart from the
    // call, is dropped after the call was stopped: a moment after the failure is counted.
    let timeouts =
        "callback_host_outbound_http_requests_total{plugin=\"10-fetch\",outcome=\"timeout\"}";
    server.wait_until("the slow request to be counted", || {
        server.metric(timeouts) > 0.0
    });
    let metrics = Server::get(&server.addr, "/metrics").body;
    for line in [
        // The huge response's headers came back: ok (its body then failed in the plugin).
        "callback_host_outbound_http_requests_total{plugin=\"10-fetch\",outcome=\"ok\"} 3",
        "callback_host_outbound_http_requests_total{plugin=\"10-fetch\",outcome=\"timeout\"} 1",
        "callback_host_outbound_http_requests_total{plugin=\"10-fetch\",outcome=\"denied\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn a_name_that_resolves_to_a_private_address_needs_http_private() {
    let up = Upstream::start();
    let port = up.port;
    let server = http_probe(&format!("http = [\"http://localhost:{port}\"]\n"));
    let result = probe(&server, &format!("get http://localhost:{port}/ok"));
    assert!(result.contains("DestinationIpProhibited"), "{result}");
    let server = http_probe(&format!(
        "http = [\"http://localhost:{port}\"]\nhttp_private = true\n"
    ));
    assert_eq!(
        probe(&server, &format!("get http://localhost:{port}/ok")),
        "200 5 hello"
    );
}

#[test]
fn a_plugin_without_an_http_grant_is_refused_at_load() {
    let server = Server::start(&[("10-fetch.wasm", component("http_probe"))], "");
    server.wait_for_log(&[
        "plugin not loaded",
        "10-fetch",
        "needs the origins it may call in `http = [...]` of [plugin_grants.10-fetch]",
    ]);
}

#[test]
fn the_forwarding_example_posts_sent_messages_to_its_endpoint() {
    let up = Upstream::start();
    let port = up.port;
    let server = Server::start(
        &[("50-forward-js.wasm", example("50-forward-js.wasm"))],
        &format!(
            "[plugin_config.50-forward-js]\nurl = \"http://127.0.0.1:{port}/events\"\n\
             [plugin_grants.50-forward-js]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
        ),
    );
    let body = common::request_fixture("callbackAfterSendSingleMsgCommand");
    let response = server.raw(&openim_request(
        "/callbackExample/callbackAfterSendSingleMsgCommand",
        "op-forward",
        body.as_bytes(),
    ));
    assert_eq!(response.body, GO_ON);
    server.wait_for_log(&["forwarded", "op-forward", "status=\"200\""]);
    let received = up.received.lock().unwrap().clone();
    let event: serde_json::Value = serde_json::from_str(received.last().expect("a POST")).unwrap();
    assert_eq!(event["event"], "message-sent");
    assert_eq!(event["operationID"], "op-forward");
    assert_eq!(event["sendID"], "user-alice");
    assert_eq!(event["recvID"], "user-bob");
}

/// A CA and a certificate it signed for 127.0.0.1, made with the openssl command line.
fn certificate_authority(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| common::openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=callback-host test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=upstream",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn outbound_https_checks_the_certificate_against_the_trusted_roots() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificate_authority(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // openssl's own TLS server: answers GET with a status page.
    let mut upstream = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let grant = format!("http = [\"https://127.0.0.1:{port}\"]\n");
    let url = format!("get https://127.0.0.1:{port}/");
    // Trusted through the operator's CA: answered.
    let trusted = Server::start(
        &[("10-fetch.wasm", component("http_probe"))],
        &format!(
            "[outbound_http]\nca_file = {:?}\n[plugin_grants.10-fetch]\n{grant}",
            ca.to_str().unwrap()
        ),
    );
    let result = probe(&trusted, &url);
    assert!(result.starts_with("200 "), "{result}");
    // Only the webpki roots: the certificate is refused.
    let untrusted = http_probe(&grant);
    let result = probe(&untrusted, &url);
    assert!(
        result.starts_with("error") && result.contains("Tls"),
        "{result}"
    );
    let _ = upstream.kill();
    let _ = upstream.wait();
}

#[test]
fn a_plugin_has_at_most_max_concurrent_requests_in_flight() {
    let up = Upstream::start();
    let port = up.port;
    let server = Server::start(
        &[("10-fetch.wasm", component("http_probe"))],
        &format!(
            "[defaults]\ntimeout_secs = 2\ndelivery = \"inline\"\n\
             [outbound_http]\nmax_concurrent = 1\n\
             [plugin_grants.10-fetch]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
        ),
    );
    // Two calls 500 ms apart, each waiting on a slow upstream until its deadline (1.5 s): with
    // one request in flight at most, the second request leaves only when the first call ends.
    let reason: &'static str =
        Box::leak(format!("get http://127.0.0.1:{port}/slow").into_boxed_str());
    let first = common::kick_in_background(server.addr.clone(), reason);
    std::thread::sleep(Duration::from_millis(500));
    let second = common::kick_in_background(server.addr.clone(), reason);
    for call in [first, second] {
        assert_eq!(call.join().unwrap().0.body, GO_ON);
    }
    std::thread::sleep(Duration::from_millis(300));
    let arrivals = up.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(900),
        "the second request left {gap:?} after the first"
    );
}
