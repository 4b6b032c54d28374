//! The protocol through the app itself, in process: the app is built by the same function the
//! server runs (`callback_host::build`) and requests are handed to it as HTTP requests without a
//! port, a child process or a plugin toolchain. What needs the wire (keep-alive, slow clients,
//! chunked bodies, TLS) and what needs plugins stays in the end-to-end modules.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::Bytes;
use callback_host::config::Config;
use callback_host::http::routing::{App, Routes};
use callback_host::protocol::commands::{COMMANDS, CommandSpec};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::common::{self, GO_ON};

/// The app with no plugin, on a temporary directory (its queue and plugin directory), kept alive
/// with it.
struct InProcess {
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like [`InProcess::start`], with `change` made to the config first.
    async fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("plugin dir");
        let mut config = Config {
            plugins_dir: plugins,
            max_body_bytes: 4096,
            ..Config::default()
        };
        config.queue.path = dir.path().join("queue.redb");
        change(&mut config);
        let host = callback_host::build(Arc::new(config))
            .await
            .expect("the app builds");
        Self {
            app: host.app,
            _dir: dir,
        }
    }

    /// Hands the app one request as OpenIM sends it (from loopback) and returns its status,
    /// content type and body.
    async fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
        let openim = [
            ("user-agent", "Go-http-client/1.1"),
            ("content-type", "application/json; charset=utf-8"),
            ("operationid", "op-in-process"),
        ];
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (status, headers, body) = self.request(loopback, method, path, &openim, body).await;
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body)
    }
}

/// An answer of the app: status, headers, body.
type Answer = (u16, http::HeaderMap, String);

impl InProcess {
    /// Hands the app any request from `peer`.
    async fn request(
        &self,
        peer: IpAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:10006");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        let response = Arc::clone(&self.app)
            .handle(Routes::All, peer, request)
            .await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

/// `path` of `command` under OpenIM's default webhook url.
fn path(command: &str) -> String {
    format!("/callbackExample/{command}")
}

/// Whether `answer` is "go on" for `command` with no plugin: exactly [`GO_ON`], or, for the
/// commands whose answer OpenIM applies whole (`setGroupInfo`), "go on" carrying the request's
/// value of each field it copies back.
fn goes_on(command: &CommandSpec, answer: &str) -> bool {
    if command.rules.echo.is_empty() {
        return answer == GO_ON;
    }
    let Ok(Value::Object(json)) = serde_json::from_str::<Value>(answer) else {
        return false;
    };
    answer.starts_with(&GO_ON[..GO_ON.len() - 1]) && json.len() == 5 + command.rules.echo.len()
}

#[tokio::test]
async fn every_command_with_no_plugin_goes_on_with_the_exact_answer() {
    let host = InProcess::start().await;
    assert_eq!(COMMANDS.len(), 52);
    for command in COMMANDS {
        let body = common::request_fixture(command.name);
        let (status, content_type, answer) = host
            .call("POST", &path(command.name), body.as_bytes())
            .await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "{}: {answer}",
            command.name
        );
        assert!(goes_on(command, &answer), "{}: {answer}", command.name);
    }
}

/// Removes `field` from a fixture body (a JSON object).
fn without(body: &str, field: &str) -> Option<String> {
    let mut value: Value = serde_json::from_str(body).expect("fixture is JSON");
    value.as_object_mut()?.remove(field)?;
    Some(value.to_string())
}

#[tokio::test]
async fn every_command_refuses_each_kind_of_bad_body_with_a_clear_4xx() {
    let host = InProcess::start().await;
    for command in COMMANDS {
        let name = command.name;
        let fixture = common::request_fixture(name);
        let other = COMMANDS
            .iter()
            .find(|c| c.name != name)
            .expect("another command")
            .name;
        let mut cases: Vec<(&str, Vec<u8>, u16, &str, String)> = vec![
            (
                "empty",
                Vec::new(),
                400,
                "empty_body",
                "request body is empty".into(),
            ),
            (
                "cut",
                fixture.as_bytes()[..fixture.len() / 2].to_vec(),
                400,
                "truncated_json",
                "truncated JSON".into(),
            ),
            (
                "array",
                b"[1]".to_vec(),
                400,
                "not_an_object",
                "must be a JSON object, got an array".into(),
            ),
            (
                "latin-1",
                b"{\"callbackCommand\":\"\xe9\"}".to_vec(),
                400,
                "invalid_utf8",
                "not valid UTF-8".into(),
            ),
            (
                "another command's name",
                fixture.replacen(name, other, 1).into_bytes(),
                400,
                "command_mismatch",
                format!("does not match the command {name:?} in the URL"),
            ),
            (
                "over the size limit",
                vec![b' '; 5000],
                413,
                "body_too_large",
                "over the limit of 4096 bytes".into(),
            ),
        ];
        // A field the command's shape requires, dropped (every body has its callbackCommand
        // and at least one field of its own).
        let value: Value = serde_json::from_str(&fixture).expect("fixture is JSON");
        let required = value
            .as_object()
            .expect("fixture is an object")
            .keys()
            .find(|k| *k != "callbackCommand" && without(&fixture, k).is_some())
            .cloned();
        if let Some(field) = &required
            && let Some(body) = without(&fixture, field)
        {
            let (status, _, answer) = host.call("POST", &path(name), body.as_bytes()).await;
            // Optional fields may be left out; a required one is named in the refusal.
            if status != 200 {
                cases.push((
                    "a required field left out",
                    body.into_bytes(),
                    400,
                    "schema_mismatch",
                    format!("missing field `{field}`"),
                ));
            } else {
                assert!(
                    goes_on(command, &answer),
                    "{name} without {field}: {answer}"
                );
            }
        }
        for (case, body, status, kind, message) in cases {
            let (got, content_type, answer) = host.call("POST", &path(name), &body).await;
            assert_eq!(
                (got, content_type.as_str()),
                (status, "application/json"),
                "{name}, {case}: {answer}"
            );
            let json: Value = serde_json::from_str(&answer).expect("a JSON answer");
            assert_eq!(json["errDlt"], kind, "{name}, {case}: {answer}");
            assert!(
                json["errMsg"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&message),
                "{name}, {case}: {answer} lacks {message:?}"
            );
            // Shaped so OpenIM reads it as "go on", never as a refusal.
            assert_eq!(
                (json["actionCode"].as_i64(), json["nextCode"].as_i64()),
                (Some(1), Some(0)),
                "{name}, {case}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_named_and_admin_endpoints_answer() {
    let host = InProcess::start().await;
    let (status, _, answer) = host
        .call(
            "POST",
            "/callbackExample/callbackAfterNothingCommand",
            b"{}",
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("unknown callback command \\\"callbackAfterNothingCommand\\\""));
    let kick = path("callbackAfterKickGroupCommand");
    let (status, _, answer) = host.call("GET", &kick, b"").await;
    assert_eq!(status, 405, "{answer}");
    assert!(answer.contains("method GET not allowed"), "{answer}");
    // Any prefix before the command, and OpenIM's query string, reach the same command.
    let body = common::kick_body("G1", &["u1"], "");
    for url in [
        "/callbackExample/callbackAfterKickGroupCommand?contentType=json",
        "/any/prefix/callbackAfterKickGroupCommand",
    ] {
        let answer = host.call("POST", url, body.as_bytes()).await;
        assert_eq!(answer.0, 200, "{url}: {answer:?}");
        assert_eq!(answer.2, GO_ON, "{url}");
    }
    let (status, _, health) = host.call("GET", "/healthz", b"").await;
    assert_eq!(status, 200, "{health}");
    let (status, _, ready) = host.call("GET", "/readyz", b"").await;
    assert_eq!(status, 200, "{ready}");
    // The requests above are counted by command and outcome.
    let (status, _, metrics) = host.call("GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    for (outcome, count) in [("no_plugin", 2), ("unknown_path", 1)] {
        let line = format!(
            "callback_host_requests_total{{command=\"callbackAfterKickGroupCommand\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_console_needs_an_admin_network_and_the_credentials_and_renders_no_secret() {
    const PASSWORD: &str = "console-password-never-shown";
    const SECRET_PATH: &str = "s3cret-path-segment-0123456789";
    let host = InProcess::start_with(|config| {
        config.access.basic = Some(callback_host::config::access::Credentials {
            user: "openim".into(),
            password: PASSWORD.into(),
        });
        config.access.secret_path = Some(SECRET_PATH.into());
    })
    .await;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("openim:{PASSWORD}")
        )
    );
    let authorized = [("authorization", auth.as_str())];
    // Without the credentials: asked for them; from another network: refused even with them.
    let (status, headers, _) = host.request(loopback, "GET", "/console", &[], b"").await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let elsewhere = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let (status, _, _) = host
        .request(elsewhere, "GET", "/console", &authorized, b"")
        .await;
    assert_eq!(status, 403);
    // The page, its script and style, under a policy that allows this origin only.
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let (status, headers, body) = host.request(loopback, "GET", path, &authorized, b"").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        // Nothing is loaded from elsewhere: no script, style or font of another origin.
        for marker in ["src=\"http", "href=\"http", "url(http", "import("] {
            assert!(
                !body.contains(marker),
                "{path} loads from elsewhere: {marker}"
            );
        }
    }
    // Callbacks with the secret path, one to a command that does not exist: the console shows
    // the path asked for, with the secret hidden.
    let body = common::kick_body("G1", &["u1"], "");
    for command in ["callbackAfterKickGroupCommand", "callbackAfterTypoCommand"] {
        host.request(
            loopback,
            "POST",
            &format!("/{SECRET_PATH}/{command}"),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await;
    }
    let mut rendered = String::new();
    for path in [
        "/console/api/overview",
        "/console/api/series",
        "/console/api/recent",
    ] {
        let (status, _, body) = host.request(loopback, "GET", path, &authorized, b"").await;
        assert_eq!(status, 200, "{path}: {body}");
        rendered.push_str(&body);
    }
    assert!(
        rendered.contains("/<secret>/callbackAfterTypoCommand"),
        "{rendered}"
    );
    assert!(
        rendered.contains("callbackAfterKickGroupCommand"),
        "{rendered}"
    );
    assert!(
        !rendered.contains(PASSWORD) && !rendered.contains(SECRET_PATH),
        "{rendered}"
    );
    // Wrong methods and pages are named.
    let (status, headers, _) = host
        .request(loopback, "POST", "/console/api/overview", &authorized, b"")
        .await;
    assert_eq!((status, headers["allow"].to_str().unwrap()), (405, "GET"));
    let (status, _, _) = host
        .request(loopback, "GET", "/console/nothing", &authorized, b"")
        .await;
    assert_eq!(status, 404);
    // A capture for a command that does not exist is refused with the reason.
    let (status, _, answer) = host
        .request(
            loopback,
            "POST",
            "/console/api/capture",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            br#"{"command":"callbackNothing","seconds":10}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        answer.contains(r#"no command \"callbackNothing\""#),
        "{answer}"
    );
}
