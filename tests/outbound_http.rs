//! Outbound HTTP (`wasi:http`) of plugins granted it: the origins listed only, within the
//! deadline and the caps, private addresses only with `http_private`, HTTPS checked against the
//! trusted roots; against real HTTP(S) servers the tests start.

use crate::capabilities::probe;
use crate::common;

use std::time::{Duration, Instant};

use common::{GO_ON, KICK_PATH, Server, component, example, kick_body, openim_request};

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
