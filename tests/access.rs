//! Who may call: every authentication mode with right, wrong and missing credentials (OpenIM's
//! Basic-auth form included), TLS, the admin allow-list, the start-up refusals, and directories
//! other users can write to.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{GO_ON, KICK_PATH, Server, component, kick_body};

/// The audit plugin logs every kick it sees: proof of whether a request reached a plugin.
pub(crate) fn audited(config: &str) -> Server {
    Server::start_with_args(
        &[("20-audit.wasm", component("audit"))],
        config,
        &["--admin-listen", "127.0.0.1:0"],
    )
}

/// POSTs a kick to `path` with extra header lines; returns the response.
pub(crate) fn kick(server: &Server, path: &str, op: &str, headers: &str) -> common::HttpResponse {
    let body = kick_body("G", &["u"], op);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:10006\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\n{headers}Content-Type: application/json; charset=utf-8\r\n\
         Operationid: {op}\r\nAccept-Encoding: gzip\r\n\r\n{body}",
        body.len()
    );
    server.raw(request.as_bytes())
}

/// Asserts the request was refused with `status` and `kind`, and never reached the plugin.
pub(crate) fn refused(
    server: &Server,
    response: &common::HttpResponse,
    status: u16,
    kind: &str,
    op: &str,
) {
    assert_eq!(response.status, status, "{response:?}");
    let json = response.json();
    assert_eq!(json["errDlt"], kind);
    // OpenIM reads this shape as "go on".
    assert_eq!(json["actionCode"], 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !server
            .log()
            .lines()
            .any(|l| l.contains("group members kicked") && l.contains(op)),
        "{op} reached the plugin"
    );
}

fn reached(server: &Server, response: &common::HttpResponse, op: &str) {
    assert_eq!((response.status, response.body.as_str()), (200, GO_ON));
    server.wait_for_log(&["group members kicked", op]);
}

fn counted(server: &Server, outcome: &str) -> f64 {
    let metrics = Server::get(server.admin_addr.as_deref().unwrap(), "/metrics").body;
    let prefix = format!(
        "callback_host_requests_total{{command=\"callbackAfterKickGroupCommand\",outcome=\"{outcome}\"}}"
    );
    metrics
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn basic_credentials_as_openim_sends_them() {
    let server = audited("[auth]\nbasic_user = \"openim\"\nbasic_password = \"s3cret:pw\"\n");
    // OpenIM's webhook url http://openim:s3cret:pw@host:10006/callbackExample: Go's client sends
    // the url's user info as a Basic Authorization header.
    let right = "Authorization: Basic b3BlbmltOnMzY3JldDpwdw==\r\n";
    reached(
        &server,
        &kick(&server, KICK_PATH, "op-basic-right", right),
        "op-basic-right",
    );
    let wrong = "Authorization: Basic b3BlbmltOndyb25n\r\n";
    let response = kick(&server, KICK_PATH, "op-basic-wrong", wrong);
    refused(&server, &response, 401, "unauthorized", "op-basic-wrong");
    assert_eq!(
        response.header("www-authenticate"),
        Some("Basic realm=\"callback-host\"")
    );
    let response = kick(&server, KICK_PATH, "op-basic-missing", "");
    refused(&server, &response, 401, "unauthorized", "op-basic-missing");
    assert_eq!(counted(&server, "unauthenticated"), 2.0);
}

#[test]
fn a_secret_path_segment() {
    let secret = "k7Qx-2mNp9-Lr4tZ8w";
    let server = audited(&format!("[auth]\nsecret_path = \"{secret}\"\n"));
    let path = format!("/{secret}/callbackExample/callbackAfterKickGroupCommand");
    reached(
        &server,
        &kick(&server, &path, "op-path-right", ""),
        "op-path-right",
    );
    let wrong = "/k7Qx-2mNp9-Lr4tZ8W/callbackExample/callbackAfterKickGroupCommand";
    refused(
        &server,
        &kick(&server, wrong, "op-path-wrong", ""),
        403,
        "forbidden_path",
        "op-path-wrong",
    );
    refused(
        &server,
        &kick(&server, KICK_PATH, "op-path-missing", ""),
        403,
        "forbidden_path",
        "op-path-missing",
    );
    assert_eq!(counted(&server, "unauthenticated"), 2.0);
}

#[test]
fn source_networks_for_callbacks_and_for_the_admin_endpoints() {
    let outside = audited(
        "[auth]\nallow = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nadmin_allow = [\"10.0.0.0/8\"]\n",
    );
    // A source no configured network allows is closed at accept, on either listener: it holds
    // no connection slot, and OpenIM (if it is OpenIM) sees a transport error, not "go on".
    let closed_at_accept = |addr: &str, request: &[u8]| {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        assert!(
            answer.is_empty(),
            "answered: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            read.is_ok() || read.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
            "not closed"
        );
    };
    for i in 0..3 {
        let body = kick_body("G", &["u"], "op-net-out");
        closed_at_accept(
            &outside.addr,
            &common::openim_request(KICK_PATH, &format!("op-net-out-{i}"), body.as_bytes()),
        );
    }
    let admin = outside.admin_addr.as_deref().unwrap();
    for path in ["/metrics", "/readyz", "/healthz"] {
        closed_at_accept(
            admin,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
    }
    // Said once per source and listener kind, with what to check.
    outside.wait_for_log(&["connection closed at accept", "[auth] allow"]);
    std::thread::sleep(Duration::from_millis(200));
    let said = outside
        .log()
        .lines()
        .filter(|l| l.contains("connection closed at accept"))
        .count();
    assert_eq!(said, 1, "{}", outside.log());
    assert!(!outside.log().contains("group members kicked"));
    let inside = audited("[auth]\nallow = [\"127.0.0.1\"]\n");
    reached(
        &inside,
        &kick(&inside, KICK_PATH, "op-net-in", ""),
        "op-net-in",
    );
    // The admin endpoints answer loopback by default.
    assert_eq!(
        Server::get(inside.admin_addr.as_deref().unwrap(), "/healthz").status,
        200
    );
    // CALLBACK_HOST_ADMIN_ALLOW sets the admin networks over the file (a container reached
    // through a published port): here one that leaves loopback out, then one that lets it in.
    for (networks, allowed) in [("10.88.0.0/16", false), ("10.88.0.0/16, 127.0.0.1", true)] {
        let server = Server::start_in_env(
            common::dir_with_plugins(&[("20-audit.wasm", component("audit"))]),
            "[auth]\nadmin_allow = [\"127.0.0.0/8\"]\n",
            &["--admin-listen", "127.0.0.1:0"],
            &[("CALLBACK_HOST_ADMIN_ALLOW", networks)],
        );
        let admin = server.admin_addr.clone().unwrap();
        if allowed {
            assert_eq!(Server::get(&admin, "/healthz").status, 200, "{networks}");
        } else {
            closed_at_accept(&admin, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        }
    }
    // A network it cannot read stops the start, naming the variable.
    let dir = common::dir_with_plugins(&[]);
    std::fs::write(dir.path().join("c.toml"), "").unwrap();
    let output = common::callback_host()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config", "c.toml"])
        .env("CALLBACK_HOST_ADMIN_ALLOW", "10.88.0.0/16,bridge")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("auth.admin_allow (from CALLBACK_HOST_ADMIN_ALLOW)")
            && said.contains("\"bridge\" is not an address or network"),
        "{said}"
    );
}

#[test]
fn every_check_configured_must_pass() {
    let server = audited(
        "[auth]\nbasic_user = \"openim\"\nbasic_password = \"pw\"\nallow = [\"127.0.0.0/8\"]\n\
         secret_path = \"0123456789abcdef\"\n",
    );
    let path = "/0123456789abcdef/callbackExample/callbackAfterKickGroupCommand";
    let auth = "Authorization: Basic b3BlbmltOnB3\r\n";
    reached(
        &server,
        &kick(&server, path, "op-all-right", auth),
        "op-all-right",
    );
    refused(
        &server,
        &kick(&server, path, "op-all-noauth", ""),
        401,
        "unauthorized",
        "op-all-noauth",
    );
    refused(
        &server,
        &kick(&server, KICK_PATH, "op-all-nopath", auth),
        403,
        "forbidden_path",
        "op-all-nopath",
    );
}

fn serve_output(config: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .arg("serve")
        .args(args)
        .arg("--plugins")
        .arg(dir.path().join("plugins"))
        .arg("--config")
        .arg(dir.path().join("c.toml"))
        .env_remove("CALLBACK_HOST_LISTEN")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_reachable_address_without_any_check_is_refused_at_start() {
    // Refused before binding: nothing listens on the other interfaces.
    for (config, args) in [
        ("", &["--listen", "0.0.0.0:0"][..]),
        ("listen = \"0.0.0.0:0\"\n", &[][..]),
    ] {
        let (ok, stderr) = serve_output(config, args);
        assert!(!ok);
        for part in [
            "invalid config auth",
            "0.0.0.0:0",
            "basic_user",
            "secret_path",
            "allow",
            "open = true",
        ] {
            assert!(stderr.contains(part), "{part:?} missing from {stderr}");
        }
    }
    let (ok, stderr) = serve_output(
        "[auth]\nsecret_path = \"short\"\n",
        &["--listen", "127.0.0.1:0"],
    );
    assert!(!ok);
    assert!(stderr.contains("auth.secret_path"), "{stderr}");
    let (ok, stderr) = serve_output(
        "[auth]\nbasic_user = \"openim\"\n",
        &["--listen", "127.0.0.1:0"],
    );
    assert!(!ok);
    assert!(stderr.contains("CALLBACK_HOST_BASIC_PASSWORD"), "{stderr}");
}

#[test]
fn an_explicit_opt_out_is_logged_loudly() {
    let server = audited("[auth]\nopen = true\n");
    server.wait_for_log(&[
        "WARN",
        "ANYONE who can reach this port can call the callbacks",
    ]);
    reached(&server, &kick(&server, KICK_PATH, "op-open", ""), "op-open");
}

/// A self-signed certificate for 127.0.0.1 made with the openssl command line.
fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    common::openssl(
        dir,
        &[
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
            "/CN=callback-host-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    (dir.join("cert.pem"), dir.join("key.pem"))
}

#[test]
fn tls_with_a_configured_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let server = audited(&format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n[auth]\nbasic_user = \"openim\"\nbasic_password = \"pw\"\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    ));
    let curl = |user: &str, op: &str| {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(["-u", user, "-H", &format!("operationID: {op}")])
            .args(["-H", "Content-Type: application/json; charset=utf-8"])
            .args(["--data-binary", &kick_body("G", &["u"], op)])
            .arg(format!("https://{}{KICK_PATH}", server.addr))
            .output()
            .expect("run curl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(curl("openim:pw", "op-tls"), GO_ON);
    server.wait_for_log(&["group members kicked", "op-tls"]);
    let refused: serde_json::Value =
        serde_json::from_str(&curl("openim:nope", "op-tls-wrong")).unwrap();
    assert_eq!(refused["errDlt"], "unauthorized");
    // Plain HTTP to the TLS port gets no answer.
    let mut stream = server.connect();
    std::io::Write::write_all(
        &mut stream,
        &common::openim_request(KICK_PATH, "op-plain", b"{}"),
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let read = std::io::Read::read(&mut stream, &mut buf).unwrap_or(0);
    assert!(
        !buf[..read].starts_with(b"HTTP/1.1 200"),
        "plain HTTP was answered"
    );
}

#[cfg(unix)]
#[test]
fn directories_other_users_can_write_to_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let serve = || {
        Command::new(env!("CARGO_BIN_EXE_callback-host"))
            .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
            .arg(&plugins)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = serve();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the plugin directory")
            && stderr.contains("writable by other users")
            && stderr.contains("chmod go-w"),
        "{stderr}"
    );
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o775)).unwrap();
    let output = serve();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the compile cache directory") && stderr.contains("mode 775"),
        "{stderr}"
    );
    // A cache directory the host creates itself is private.
    let fresh = dir.path().join("fresh/cache");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = Server::start_with_args(&[], "", &["--cache-dir", fresh.to_str().unwrap()]);
    assert_eq!(Server::get(&server.addr, "/healthz").status, 200);
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
