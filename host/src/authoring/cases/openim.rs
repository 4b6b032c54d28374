//! OpenIM's API as `callback-host test` stands it in: an HTTP server on a loopback port that the
//! host's real client calls (admin token, envelope and all), answering each operation as the case
//! says (`[openim_api."<operation>"]`, "ok" by default; `[openim_api."sign-in"]` for the host's
//! sign-in) and keeping the operations that reached it, for `expect.openim_calls`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::openim_api::{ApiOperation, OpenimApiSettings, Secret};

/// How the stand-in answers one operation in a case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandInAnswer {
    /// OpenIM's `errCode` (0, the default, is success).
    #[serde(default)]
    pub err_code: i32,
    #[serde(default)]
    pub err_msg: String,
    #[serde(default)]
    pub err_dlt: String,
    /// The envelope's `data` on success (e.g. `usersInfo` for `get-users-info`).
    pub data: Option<toml::Value>,
    /// Answer HTTP 503, as an API that is down.
    #[serde(default)]
    pub unavailable: bool,
    /// The HTTP status of an error envelope (default 200, as OpenIM's handlers answer; its
    /// validators answer 400 with errCode 1001 for a body they refuse).
    pub http_status: Option<u16>,
}

/// The name a case gives the host's sign-in (`/auth/get_admin_token`) among the operations.
pub const SIGN_IN: &str = "sign-in";

/// OpenIM's "token does not exist" (1507): what it answers a token it no longer knows.
const TOKEN_NOT_EXIST: i32 = 1507;

/// What the stand-in knows and saw.
#[derive(Default)]
struct Script {
    /// The current case's answers, by operation name.
    answers: BTreeMap<String, StandInAnswer>,
    /// The operations called in the current case, in order.
    calls: Vec<&'static str>,
}

/// The running stand-in; stops when dropped.
pub struct StandIn {
    /// Where it listens.
    address: SocketAddr,
    /// The case's answers and the calls seen.
    script: Arc<Mutex<Script>>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&shared);
                let service = hyper::service::service_fn(move |request| {
                    let script = Arc::clone(&script);
                    async move { Ok::<_, std::convert::Infallible>(answer(&script, request)) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        Ok(Self {
            address,
            script,
            task,
        })
    }

    /// The `[openim_api]` settings that send the host's client here.
    pub fn settings(&self) -> OpenimApiSettings {
        OpenimApiSettings {
            url: format!("http://{}", self.address)
                .parse()
                .expect("an address is a URI"),
            admin_user: "imAdmin".into(),
            secret: Secret::new("callback-host-test".into()),
            timeout: Duration::from_secs(5),
        }
    }

    /// Starts a case: its answers in, the calls seen so far out.
    pub fn begin(&self, answers: BTreeMap<String, StandInAnswer>) -> anyhow::Result<()> {
        for name in answers.keys() {
            anyhow::ensure!(
                name == SIGN_IN || ApiOperation::ALL.iter().any(|op| op.as_str() == name),
                "[openim_api.{name:?}]: no such operation (they are: {}, and {SIGN_IN} for the \
                 host's sign-in)",
                ApiOperation::ALL.map(ApiOperation::as_str).join(", ")
            );
        }
        for (name, given) in &answers {
            if let Some(status) = given.http_status {
                anyhow::ensure!(
                    (100..600).contains(&status),
                    "[openim_api.{name:?}] http_status = {status}: not an HTTP status"
                );
            }
        }
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        script.answers = answers;
        script.calls.clear();
        Ok(())
    }

    /// The operations called since [`StandIn::begin`].
    pub fn calls(&self) -> Vec<&'static str> {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .clone()
    }
}

/// Answers one request as OpenIM's API layer would, from the script.
fn answer<B>(script: &Mutex<Script>, request: Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let envelope = |data: Value| json!({"errCode": 0, "errMsg": "", "errDlt": "", "data": data});
    let mut script = script.lock().unwrap_or_else(|e| e.into_inner());
    // A sign-in the case refuses: as with a secret rotated on OpenIM's side, the token the host
    // holds is no longer known either, so no operation gets through.
    let refused_sign_in = script
        .answers
        .get(SIGN_IN)
        .filter(|given| given.unavailable || given.err_code != 0)
        .cloned();
    if path == "/auth/get_admin_token" {
        return match refused_sign_in {
            Some(given) => scripted(&given),
            None => json_response(envelope(
                json!({"token": "stand-in-token", "expireTimeSeconds": 86_400}),
            )),
        };
    }
    let Some(operation) = ApiOperation::ALL.into_iter().find(|op| op.route() == path) else {
        return json_response(json!({"errCode": 404, "errMsg": "no such route", "errDlt": path}));
    };
    if refused_sign_in.is_some() {
        return json_response(
            json!({"errCode": TOKEN_NOT_EXIST, "errMsg": "TokenNotExistError", "errDlt": ""}),
        );
    }
    script.calls.push(operation.as_str());
    let given = script.answers.get(operation.as_str()).cloned();
    drop(script);
    match given {
        Some(given) if given.unavailable || given.err_code != 0 => scripted(&given),
        Some(StandInAnswer {
            data: Some(data), ..
        }) => json_response(envelope(serde_json::to_value(data).unwrap_or_default())),
        _ if operation == ApiOperation::SendMessage => json_response(envelope(json!({
            "serverMsgID": "stand-in-server-msg",
            "clientMsgID": "stand-in-client-msg",
            "sendTime": crate::util::unix_ms(),
        }))),
        _ => json_response(envelope(json!({}))),
    }
}

/// The failure a case scripts: HTTP 503 for `unavailable`, else its error envelope.
fn scripted(given: &StandInAnswer) -> Response<Full<Bytes>> {
    if given.unavailable {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Full::new(Bytes::from_static(b"unavailable")))
            .expect("a static response");
    }
    let mut response = json_response(json!({
        "errCode": given.err_code,
        "errMsg": given.err_msg,
        "errDlt": given.err_dlt,
    }));
    *response.status_mut() = given
        .http_status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::OK); // checked at `begin`
    response
}

fn json_response(body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a JSON response")
}
