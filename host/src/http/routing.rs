//! From an HTTP request to an answer: method and path checks, the bounded body read, validation,
//! and dispatch to the command's plugins.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::config::HttpLimits;
use crate::config::access::Access;
use crate::dispatch::{Callback, Dispatcher};
use crate::history::{Captured, Step, Trace};
use crate::http::access::Denied;
use crate::http::errors::RequestError;
use crate::http::rejected::{self, Rejections};
use crate::http::{console, respond};
use crate::metrics::Metrics;
use crate::outcomes::{Rejection, RequestOutcome};
use crate::protocol::commands::Phase;
use crate::protocol::schema::Catalog;
use crate::queue::Queue;
use crate::runtime::call::Spent;
use crate::untrusted::Untrusted;

/// Everything a request needs; shared by every connection.
pub struct App {
    /// Runs plugins.
    pub dispatcher: Arc<Dispatcher>,
    /// Stores `queued` after-callbacks, when any command is queued.
    pub queue: Option<Arc<Queue>>,
    /// The key-value store plugins share, when any plugin is granted it: `/readyz` checks it.
    pub keyvalue: Option<Arc<crate::capabilities::keyvalue::Backend>>,
    /// Counters and histograms, rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// What one client may hold of the server: timeouts, connections, headers.
    pub limits: HttpLimits,
    /// Who may call.
    pub access: Access,
    /// Callbacks rejected before any plugin, by source and reason: for the log and the console.
    pub rejections: Rejections,
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Callbacks and the admin endpoints (`/healthz`, `/readyz`, `/metrics`).
    All,
    /// Callbacks only: the admin endpoints are on another listener.
    Callbacks,
    /// The admin endpoints only.
    Admin,
}

impl App {
    /// Whether `peer` may connect to a listener of `routes`: a source no configured network
    /// allows is closed at accept, counted and logged as a rejected callback.
    pub fn admits(&self, peer: IpAddr, routes: Routes) -> bool {
        let callbacks = routes != Routes::Admin;
        let admin = routes != Routes::Callbacks;
        if self.access.may_connect(peer, callbacks, admin) {
            return true;
        }
        self.rejections
            .at_accept(&self.metrics, peer, &RequestError::Denied(Denied::Network));
        false
    }

    /// Answers one HTTP request. Never fails: every problem becomes a 4xx answer.
    pub async fn handle<B>(
        self: Arc<Self>,
        routes: Routes,
        peer: IpAddr,
        request: Request<B>,
    ) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if routes != Routes::Callbacks && console::serves(request.uri().path()) {
            let parts = console::Parts {
                dispatcher: &self.dispatcher,
                queue: self.queue.as_deref(),
                access: &self.access,
                rejections: &self.rejections,
            };
            return console::handle(parts, peer, request).await;
        }
        if routes != Routes::Callbacks
            && request.method() == Method::GET
            && let Some(response) = self.admin(request.uri().path()).await
        {
            return match self.access.check_admin(peer) {
                Ok(()) => response,
                Err(denied) => {
                    tracing::warn!(%peer, path = request.uri().path(), "admin request refused: {}", RequestError::Denied(denied));
                    respond::json(
                        StatusCode::FORBIDDEN,
                        RequestError::Denied(denied).answer().to_json(),
                    )
                }
            };
        }
        if routes == Routes::Admin {
            return respond::with_body(
                StatusCode::NOT_FOUND,
                "text/plain",
                "admin endpoints: /healthz /readyz /metrics /console\n",
            );
        }
        let received = Instant::now();
        let operation_id: Arc<str> = request
            .headers()
            .get("operationid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into();
        // A cheap, reference-counted copy, kept for the log line of a rejected request.
        let uri = request.uri().clone();
        // Counts the request as abandoned if the client leaves before it is answered.
        let mut pending = Pending {
            app: &self,
            path: uri.path(),
            operation_id: &operation_id,
            received,
            answered: false,
        };
        let mut seen = Seen::default();
        let result = self
            .answer(request, peer, received, &operation_id, &mut seen)
            .await;
        pending.answered = true;
        // Dropped after this task has written the answer (see Spent).
        let spent = std::mem::take(&mut seen.spent);
        let path = uri.path();
        match result {
            Ok((command, answer, outcome)) => {
                self.metrics
                    .request(command, outcome, received.elapsed().as_secs_f64());
                // Shared with the response, not copied.
                let answer = Bytes::from(answer);
                self.keep(
                    command,
                    path,
                    &operation_id,
                    outcome,
                    received,
                    answer.clone(),
                    seen,
                );
                let response = respond::json(StatusCode::OK, answer);
                spent.settle_later();
                response
            }
            Err(error) => {
                let command = self.command_of(path).unwrap_or("unknown");
                let outcome = error.outcome();
                self.metrics
                    .request(command, outcome, received.elapsed().as_secs_f64());
                let request = rejected::Rejected {
                    peer,
                    path,
                    operation_id: &operation_id,
                };
                let reason = self.rejections.reject(&self.metrics, &request, &error);
                let answer = if reason == Rejection::Unauthenticated
                    && self.access.refuse_unauthenticated
                    && Catalog::get()
                        .command(command)
                        .is_some_and(|c| c.spec.phase == Phase::Before)
                {
                    error.refusal()
                } else {
                    error.answer()
                };
                self.keep(
                    command,
                    path,
                    &operation_id,
                    outcome,
                    received,
                    answer.to_json().into(),
                    seen,
                );
                let mut response = respond::json(error.status(), answer.to_json());
                match error {
                    RequestError::MethodNotAllowed(_) => {
                        response
                            .headers_mut()
                            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                    }
                    RequestError::Denied(Denied::Credentials) => {
                        response.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Basic realm=\"callback-host\""),
                        );
                    }
                    // The rest of the body is not read: the connection cannot be reused.
                    RequestError::BodyTooLarge { .. }
                    | RequestError::BodyTimeout(_)
                    | RequestError::HeadersTooLarge(_) => {
                        response.headers_mut().insert(
                            header::CONNECTION,
                            header::HeaderValue::from_static("close"),
                        );
                    }
                    _ => {}
                }
                response
            }
        }
    }

    /// Keeps an answered callback for the console's recent list and charts.
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        command: &'static str,
        path: &str,
        operation_id: &Arc<str>,
        outcome: RequestOutcome,
        received: Instant,
        answer: Bytes,
        seen: Seen,
    ) {
        let micros = received.elapsed().as_micros() as u64;
        self.dispatcher.history().add(Trace {
            path: (command == "unknown").then(|| self.shown_path(path)),
            steps: seen.steps,
            answer,
            body: seen.body,
            stored_ms: seen.stored_ms,
            ..Trace::new(command, Arc::clone(operation_id), outcome, micros)
        });
    }

    /// A path as the console may show it: the secret path segment, if any, hidden.
    fn shown_path(&self, path: &str) -> String {
        let path = match &self.access.secret_path {
            Some(secret) => path.replace(secret.as_str(), "<secret>"),
            None => path.to_owned(),
        };
        Untrusted::capped(&path, 256).to_string()
    }

    async fn answer<B>(
        &self,
        request: Request<B>,
        peer: IpAddr,
        received: Instant,
        operation_id: &Arc<str>,
        seen: &mut Seen,
    ) -> Result<(&'static str, Vec<u8>, RequestOutcome), RequestError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.access
            .check_callback(peer, request.uri().path(), request.headers())
            .map_err(RequestError::Denied)?;
        if request.method() != Method::POST {
            return Err(RequestError::MethodNotAllowed(request.method().clone()));
        }
        self.check_headers(request.headers())?;
        let command = self.command_of(request.uri().path())?;
        let body = self.read_body(request).await?;
        seen.body = self.dispatcher.history().captured(command, &body);
        let mut callback = Callback::read(command, Arc::clone(operation_id), body, received)?;
        let chained = self
            .dispatcher
            .receive(&mut callback, self.queue.as_deref())
            .await;
        seen.steps = chained.steps;
        seen.stored_ms = chained.stored_ms;
        seen.spent = chained.spent;
        Ok((command, chained.answer, chained.outcome))
    }

    /// The command named by the last segment of the path, under any prefix: one OpenIM sends, or
    /// one a JSON plugin declared.
    fn command_of(&self, path: &str) -> Result<&'static str, RequestError> {
        let last = last_segment(path);
        self.dispatcher
            .command_named(last)
            .ok_or_else(|| RequestError::UnknownCommand(last.to_owned()))
    }

    /// The admin endpoints.
    async fn admin(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        match path {
            "/healthz" => Some(respond::with_body(
                StatusCode::OK,
                "application/json",
                "{\"status\":\"ok\"}",
            )),
            "/readyz" => Some(self.readiness().await),
            "/metrics" => Some({
                let probe = self.probe().await;
                if probe.queue_depth.is_some() {
                    self.metrics
                        .queue_oldest_seconds
                        .set(probe.queue_oldest.map_or(0.0, |age| age.as_secs_f64()));
                }
                let budget = self.dispatcher.budget();
                self.metrics.memory_budget.set(budget.bytes() as i64);
                self.metrics
                    .memory_reserved
                    .set(budget.in_use_bytes() as i64);
                self.metrics.sample_process();
                respond::with_body(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    self.metrics.render(),
                )
            }),
            _ => None,
        }
    }

    /// Refuses more headers, or bigger ones, than the limits allow.
    fn check_headers(&self, headers: &http::HeaderMap) -> Result<(), RequestError> {
        let limits = &self.limits;
        if headers.len() > limits.max_headers {
            return Err(RequestError::HeadersTooLarge(format!(
                "{} headers, over the limit of {}",
                headers.len(),
                limits.max_headers
            )));
        }
        // As on the wire: `name: value\r\n`.
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if bytes > limits.max_header_bytes {
            return Err(RequestError::HeadersTooLarge(format!(
                "{bytes} bytes of headers, over the limit of {}",
                limits.max_header_bytes
            )));
        }
        Ok(())
    }

    /// Reads the body, refusing it as soon as it is known to be over the limit.
    async fn read_body<B>(&self, request: Request<B>) -> Result<Bytes, RequestError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limit = self.max_body_bytes;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(RequestError::BodyTooLarge { limit });
        }
        let read = tokio::time::timeout(
            self.limits.read_timeout,
            Limited::new(request.into_body(), limit).collect(),
        );
        match read
            .await
            .map_err(|_| RequestError::BodyTimeout(self.limits.read_timeout))?
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                Err(RequestError::BodyTooLarge { limit })
            }
            Err(error) => Err(RequestError::BodyRead(error.to_string())),
        }
    }
}

/// What the console keeps of a request besides its answer, gathered on its way.
#[derive(Default)]
struct Seen {
    /// Each plugin's turn.
    steps: Vec<Step>,
    /// The body, when its command's capture is on.
    body: Option<Captured>,
    /// The instances the chain used, released once the answer goes to hyper.
    spent: Spent,
    /// When its event was stored, for a queued callback.
    stored_ms: Option<u64>,
}

/// A callback request not answered yet. Dropped before it is answered, the client left (OpenIM
/// gave up at its timeout, or the connection broke): logged and counted, never silent.
struct Pending<'a> {
    /// Names the command for the metric.
    app: &'a App,
    /// The request's path.
    path: &'a str,
    /// OpenIM's id of the operation, for the log.
    operation_id: &'a str,
    /// When the request arrived.
    received: Instant,
    /// Set once the answer is made.
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let command = self.app.command_of(self.path).unwrap_or("unknown");
        let elapsed = self.received.elapsed();
        self.app
            .metrics
            .request(command, RequestOutcome::Abandoned, elapsed.as_secs_f64());
        self.app.dispatcher.history().add(Trace::new(
            command,
            self.operation_id.into(),
            RequestOutcome::Abandoned,
            elapsed.as_micros() as u64,
        ));
        tracing::warn!(
            path = self.path,
            operation_id = self.operation_id,
            outcome = "abandoned",
            elapsed_ms = elapsed.as_millis() as u64,
            "the client left before the answer (OpenIM gives up at its timeout)"
        );
    }
}

/// The last segment of a path: where OpenIM puts the command.
fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests;
