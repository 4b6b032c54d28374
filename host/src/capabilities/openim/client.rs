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
use crate::metrics::{ApiOutcome, Metrics};

/// OpenIM's token error codes (`pkg/common/servererrs/code.go`: 1501 expired to 1507 not
/// exist): the token is fetched again and the request sent once more.
const TOKEN_ERRORS: std::ops::RangeInclusive<i32> = 1501..=1507;

/// Largest answer read from OpenIM.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What kept an OpenIM request from succeeding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiFailure {
    /// OpenIM answered its error envelope.
    #[error("OpenIM answered errCode {code}: {message}")]
    Openim {
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
            });
        let outcome = match &result {
            Ok(_) => ApiOutcome::Ok,
            Err(failure) => failure.outcome(),
        };
        self.metrics.openim_api_token_fetch(outcome);
        let (token, lifetime) = result.inspect_err(|failure| {
            tracing::warn!(admin_user = %self.settings.admin_user, "could not get OpenIM's admin token: {failure}");
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
        if response.status() != StatusCode::OK {
            return Err(unavailable(format!(
                "{route} answered HTTP {}",
                response.status()
            )));
        }
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
        let envelope: Envelope = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("{route} did not answer OpenIM's envelope: {e}")))?;
        if envelope.err_code != 0 {
            return Err(ApiFailure::Openim {
                code: envelope.err_code,
                message: envelope.err_msg,
                detail: envelope.err_dlt,
            });
        }
        Ok(envelope.data)
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
