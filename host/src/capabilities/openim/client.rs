//! The host's one client of OpenIM's REST API: the admin token fetched with OpenIM's secret,
//! kept for every plugin and instance of this replica, refreshed before it expires and once when
//! OpenIM says it is no longer good; each request in OpenIM's envelope (`errCode`, `errMsg`,
//! `errDlt`, `data`) with the `token` and `operationID` headers.
//!
//! Neither the secret nor the token is ever written to a log line, an error or the console:
//! both are [`Secret`]s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::config::openim_api::{ApiOperation, OpenimApiSettings, Secret};
use crate::metrics::Metrics;
use crate::outcomes::ApiOutcome;

/// OpenIM's token error codes (`pkg/common/servererrs/code.go`: 1501 expired to 1507 not
/// exist): the token is fetched again and the request sent once more.
const TOKEN_ERRORS: std::ops::RangeInclusive<i32> = 1501..=1507;

/// Largest answer read from OpenIM.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What kept an OpenIM request from succeeding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiFailure {
    /// OpenIM answered its error envelope (whatever the HTTP status: its validators answer 400).
    #[error("OpenIM answered errCode {code}: {message}")]
    Openim {
        code: i32,
        message: String,
        detail: String,
    },
    /// OpenIM refused the host's sign-in (`/auth/get_admin_token`) with its error envelope: the
    /// admin user or the secret is wrong, and no call succeeds until the config is fixed.
    #[error(
        "OpenIM refused the host's sign-in as its admin user (errCode {code}: {message}): check \
         [openim_api] admin_user and the secret (CALLBACK_HOST_OPENIM_SECRET)"
    )]
    SignInRefused {
        code: i32,
        message: String,
        detail: String,
    },
    /// The deadline passed first.
    #[error("no answer from OpenIM before the deadline")]
    TimedOut,
    /// No connection, another HTTP status, or an answer that is not OpenIM's envelope.
    #[error("OpenIM's API is unavailable: {0}")]
    Unavailable(String),
}

impl ApiFailure {
    /// The metric's outcome.
    pub fn outcome(&self) -> ApiOutcome {
        match self {
            Self::Openim { .. } => ApiOutcome::Openim,
            Self::SignInRefused { .. } => ApiOutcome::SignInRefused,
            Self::TimedOut => ApiOutcome::Timeout,
            Self::Unavailable(_) => ApiOutcome::Unavailable,
        }
    }
}

/// OpenIM's answer envelope (`apiresp.ApiResponse`).
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "errCode")]
    err_code: i32,
    #[serde(rename = "errMsg", default)]
    err_msg: String,
    #[serde(rename = "errDlt", default)]
    err_dlt: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// What an answer of OpenIM's API says: its envelope's `data` on success; OpenIM's error when it
/// carries one, whatever the HTTP status (its validators answer 400 with errCode 1001, its
/// handlers 200); `unavailable` for anything else (a proxy's 502, an answer not OpenIM's).
fn read_envelope(
    route: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<serde_json::Value, ApiFailure> {
    match (serde_json::from_slice::<Envelope>(bytes), status) {
        (Ok(envelope), _) if envelope.err_code != 0 => Err(ApiFailure::Openim {
            code: envelope.err_code,
            message: envelope.err_msg,
            detail: envelope.err_dlt,
        }),
        (Ok(envelope), StatusCode::OK) => Ok(envelope.data),
        (Err(error), StatusCode::OK) => Err(ApiFailure::Unavailable(format!(
            "{route} did not answer OpenIM's envelope: {error}"
        ))),
        (_, status) => Err(ApiFailure::Unavailable(format!(
            "{route} answered HTTP {status}"
        ))),
    }
}

/// The admin token as kept.
struct AdminToken {
    /// The token itself.
    value: Secret,
    /// When it is fetched again: at nine tenths of its life, before OpenIM expires it.
    refresh_at: Instant,
}

/// The client of one replica.
pub struct Client {
    /// Where OpenIM is, and who the host signs in as.
    settings: OpenimApiSettings,
    /// TLS for an `https` address, with the trusted roots of outbound HTTP.
    tls: tokio_rustls::TlsConnector,
    /// The token; the lock makes concurrent callers wait for one fetch rather than each fetch.
    token: tokio::sync::Mutex<Option<AdminToken>>,
    /// Connections kept open between requests (HTTP/1.1 keep-alive), the most recent last.
    idle: std::sync::Mutex<Vec<Sender>>,
    /// Counts token fetches.
    metrics: std::sync::Arc<Metrics>,
}

impl Client {
    pub fn new(
        settings: OpenimApiSettings,
        tls: tokio_rustls::TlsConnector,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        Self {
            settings,
            tls,
            token: tokio::sync::Mutex::new(None),
            idle: std::sync::Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// Calls `operation` with `body` under the admin token, by `deadline` (and within the
    /// configured timeout): the envelope's `data` on success.
    pub async fn call(
        &self,
        operation: ApiOperation,
        body: &serde_json::Value,
        operation_id: &str,
        deadline: Instant,
    ) -> Result<serde_json::Value, ApiFailure> {
        let deadline = deadline.min(Instant::now() + self.settings.timeout);
        let attempt = async {
            let token = self.token(operation_id).await?;
            match self
                .post(operation.route(), body, Some(&token), operation_id)
                .await
            {
                Err(ApiFailure::Openim { code, .. }) if TOKEN_ERRORS.contains(&code) => {
                    tracing::info!(
                        code,
                        "OpenIM refused the admin token: fetching a new one, then trying once more"
                    );
                    let token = self.renew(&token, operation_id).await?;
                    self.post(operation.route(), body, Some(&token), operation_id)
                        .await
                }
                other => other,
            }
        };
        tokio::time::timeout_at(deadline.into(), attempt)
            .await
            .unwrap_or(Err(ApiFailure::TimedOut))
    }

    /// The token in force, fetched when there is none or it is due for refresh.
    async fn token(&self, operation_id: &str) -> Result<Secret, ApiFailure> {
        let mut held = self.token.lock().await;
        if let Some(token) = &*held
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch(operation_id).await?;
        let value = fresh.value.clone();
        *held = Some(fresh);
        Ok(value)
    }

    /// A token other than `refused`: the one another caller fetched meanwhile, or a new one.
    async fn renew(&self, refused: &Secret, operation_id: &str) -> Result<Secret, ApiFailure> {
        let mut held = self.token.lock().await;
        if let Some(token) = &*held
            && token.value != *refused
        {
            return Ok(token.value.clone());
        }
        *held = None;
        let fresh = self.fetch(operation_id).await?;
        let value = fresh.value.clone();
        *held = Some(fresh);
        Ok(value)
    }

    /// `POST /auth/get_admin_token` with the secret.
    async fn fetch(&self, operation_id: &str) -> Result<AdminToken, ApiFailure> {
        let body = serde_json::json!({
            "secret": self.settings.secret.expose(),
            "userID": self.settings.admin_user,
        });
        let result = self
            .post("/auth/get_admin_token", &body, None, operation_id)
            .await
            .and_then(|data| {
                let token = data["token"].as_str().filter(|t| !t.is_empty());
                let lifetime = data["expireTimeSeconds"].as_i64().unwrap_or(0);
                match token {
                    Some(token) => Ok((token.to_owned(), lifetime)),
                    None => Err(ApiFailure::Unavailable(
                        "/auth/get_admin_token answered no token".into(),
                    )),
                }
            })
            .map_err(|failure| match failure {
                ApiFailure::Openim {
                    code,
                    message,
                    detail,
                } => ApiFailure::SignInRefused {
                    code,
                    message,
                    detail,
                },
                other => other,
            });
        let outcome = match &result {
            Ok(_) => ApiOutcome::Ok,
            Err(failure) => failure.outcome(),
        };
        self.metrics.openim_api_token_fetch(outcome);
        let (token, lifetime) = result.inspect_err(|failure| match failure {
            // Nothing will work until an operator acts: an error, not a warning.
            ApiFailure::SignInRefused { detail, .. } => {
                tracing::error!(admin_user = %self.settings.admin_user, detail = %crate::untrusted::Untrusted::line(detail),
                    "{failure}");
            }
            _ => {
                tracing::warn!(admin_user = %self.settings.admin_user, "could not get OpenIM's admin token: {failure}");
            }
        })?;
        let lifetime = Duration::from_secs(u64::try_from(lifetime).unwrap_or(0));
        tracing::info!(admin_user = %self.settings.admin_user, expires_in_s = lifetime.as_secs(),
            "fetched OpenIM's admin token");
        Ok(AdminToken {
            value: Secret::new(token),
            refresh_at: Instant::now() + lifetime / 10 * 9,
        })
    }

    /// One request in OpenIM's envelope: its `data` when `errCode` is 0. Sent on a connection
    /// kept from an earlier request when one is open, and again on a new one if that connection
    /// turns out closed before the request went out.
    async fn post(
        &self,
        route: &str,
        body: &serde_json::Value,
        token: Option<&Secret>,
        operation_id: &str,
    ) -> Result<serde_json::Value, ApiFailure> {
        let unavailable = |what: String| ApiFailure::Unavailable(what);
        let base = &self.settings.url;
        let path = format!("{}{route}", base.path().trim_end_matches('/'));
        let authority = base.authority().expect("checked when the config was read");
        let body = Bytes::from(body.to_string());
        let request = || {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(&path)
                .header(header::HOST, authority.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .header("operationID", operation_id);
            if let Some(token) = token {
                request = request.header("token", token.expose());
            }
            request
                .body(Full::new(body.clone()))
                .map_err(|e| unavailable(format!("the request could not be made: {e}")))
        };
        let (mut sender, response) = match self.kept().await {
            Some(mut sender) => match sender.send_request(request()?).await {
                // Closed by OpenIM while it was kept, before this request went out.
                Err(error) if error.is_canceled() => {
                    let mut sender = self.connect().await?;
                    let response = sender.send_request(request()?).await;
                    (sender, response)
                }
                response => (sender, response),
            },
            None => {
                let mut sender = self.connect().await?;
                let response = sender.send_request(request()?).await;
                (sender, response)
            }
        };
        let response = response.map_err(|e| unavailable(format!("{route}: {e}")))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| unavailable(format!("reading {route}'s answer: {e}")))?
            .to_bytes();
        // The answer was read whole: the connection may carry the next request.
        if !sender.is_closed() {
            let _ = sender.ready().await;
            self.keep(sender);
        }
        read_envelope(route, status, &bytes)
    }

    /// A kept connection that is still open and ready, if any.
    async fn kept(&self) -> Option<Sender> {
        loop {
            let sender = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
    }

    /// Keeps an open connection for a later request (the oldest goes beyond [`MAX_KEPT`]).
    fn keep(&self, sender: Sender) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_KEPT {
            idle.remove(0);
        }
        idle.push(sender);
    }

    /// A new HTTP/1.1 connection to OpenIM's API (TLS for `https`).
    async fn connect(&self) -> Result<Sender, ApiFailure> {
        let unavailable = |what: String| ApiFailure::Unavailable(what);
        let base = &self.settings.url;
        let authority = base.authority().expect("checked when the config was read");
        let https = base.scheme_str() == Some("https");
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| unavailable(format!("connecting to {authority}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let handshake = if https {
            let name = ServerName::try_from(authority.host().to_owned())
                .map_err(|e| unavailable(format!("{authority}: {e}")))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| unavailable(format!("TLS with {authority}: {e}")))?;
            handshake(tls).await
        } else {
            handshake(tcp).await
        };
        handshake.map_err(|e| unavailable(format!("HTTP with {authority}: {e}")))
    }
}

/// The sending half of a connection to OpenIM's API.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Connections kept open between requests, at most.
const MAX_KEPT: usize = 8;

/// An HTTP/1.1 connection over `stream`, driven by its own task for as long as it is open (it
/// closes when its sender is dropped or OpenIM closes it).
async fn handshake<S>(stream: S) -> Result<Sender, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openims_envelope_is_read_on_any_status_and_only_its_own_answers_are_unavailable() {
        let read = |status: u16, body: &str| {
            read_envelope(
                "/msg/send_msg",
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
        };
        assert_eq!(
            read(
                200,
                r#"{"errCode":0,"errMsg":"","errDlt":"","data":{"a":1}}"#
            ),
            Ok(serde_json::json!({"a": 1}))
        );
        // OpenIM's validators: HTTP 400 and the envelope.
        let refused = ApiFailure::Openim {
            code: 1001,
            message: "ArgsError".into(),
            detail: "Key: 'SendMsgReq.SendMsg.SendID' ...".into(),
        };
        let body = r#"{"errCode":1001,"errMsg":"ArgsError","errDlt":"Key: 'SendMsgReq.SendMsg.SendID' ..."}"#;
        assert_eq!(read(400, body), Err(refused.clone()));
        assert_eq!(read(200, body), Err(refused));
        // Not OpenIM's answers.
        assert_eq!(
            read(502, "<html>bad gateway</html>"),
            Err(ApiFailure::Unavailable(
                "/msg/send_msg answered HTTP 502 Bad Gateway".into()
            ))
        );
        assert_eq!(
            read(500, r#"{"errCode":0,"errMsg":"","errDlt":""}"#).map_err(|e| e.outcome()),
            Err(ApiOutcome::Unavailable)
        );
        assert_eq!(
            read(200, "not json").map_err(|e| e.outcome()),
            Err(ApiOutcome::Unavailable)
        );
    }
}
