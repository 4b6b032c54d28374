//! From an HTTP request to an answer: method and path checks, the bounded body read, validation,
//! and dispatch to the command's plugins.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::dispatch::{self, Dispatcher};
use crate::http::errors::RequestError;
use crate::metrics::Metrics;
use crate::protocol::schema::Catalog;
use crate::protocol::{self, CallbackResponse};

/// Everything a request needs; shared by every connection.
pub struct App {
    /// Runs plugins.
    pub dispatcher: Dispatcher,
    /// Counters and histograms, rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
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
    /// Answers one HTTP request. Never fails: every problem becomes a 4xx answer.
    pub async fn handle<B>(
        self: Arc<Self>,
        routes: Routes,
        request: Request<B>,
    ) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if routes != Routes::Callbacks
            && request.method() == Method::GET
            && let Some(response) = self.admin(request.uri().path())
        {
            return response;
        }
        if routes == Routes::Admin {
            return text_response(
                StatusCode::NOT_FOUND,
                "text/plain",
                "admin endpoints: /healthz /readyz /metrics\n".into(),
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
        match self.answer(request, received, &operation_id).await {
            Ok((command, answer, outcome)) => {
                self.metrics
                    .request(command, outcome.as_str(), received.elapsed().as_secs_f64());
                json_bytes(StatusCode::OK, answer)
            }
            Err(error) => {
                let path = uri.path();
                let command = self.command_of(path).unwrap_or("unknown");
                self.metrics
                    .request(command, "bad_request", received.elapsed().as_secs_f64());
                tracing::warn!(%path, operation_id = %operation_id, outcome = "bad_request",
                    kind = error.kind(), "rejected: {error}");
                let mut response = json_response(error.status(), &error.answer());
                if matches!(error, RequestError::MethodNotAllowed(_)) {
                    response
                        .headers_mut()
                        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
                }
                response
            }
        }
    }

    async fn answer<B>(
        &self,
        request: Request<B>,
        received: Instant,
        operation_id: &Arc<str>,
    ) -> Result<(&'static str, Vec<u8>, dispatch::Outcome), RequestError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if request.method() != Method::POST {
            return Err(RequestError::MethodNotAllowed(request.method().clone()));
        }
        let command = self.command_of(request.uri().path())?;
        let body = self.read_body(request).await?;
        let delivery = dispatch::Request {
            command,
            operation_id: Arc::clone(operation_id),
            received,
        };
        let text = protocol::text(&body)?;
        let shape = Catalog::get().command(command);
        let parsed = match shape {
            Some(shape) => Some(protocol::parse(shape, text)?),
            None => {
                protocol::parse_object(command, text)?;
                None
            }
        };
        let (answer, outcome) = self.dispatcher.run(&delivery, shape, parsed, text).await;
        Ok((command, answer, outcome))
    }

    /// The command named by the last segment of the path, under any prefix: one OpenIM sends, or
    /// one a JSON plugin declared.
    fn command_of(&self, path: &str) -> Result<&'static str, RequestError> {
        let last = last_segment(path);
        protocol::known_command(last)
            .or_else(|| self.dispatcher.plugins().get().handled(last))
            .ok_or_else(|| RequestError::UnknownCommand(last.to_owned()))
    }

    /// The admin endpoints.
    fn admin(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        match path {
            "/healthz" => Some(text_response(
                StatusCode::OK,
                "application/json",
                "{\"status\":\"ok\"}".into(),
            )),
            "/readyz" => {
                let registry = self.dispatcher.plugins().get();
                let body = serde_json::json!({
                    "ready": true,
                    "plugins": registry.names(),
                    "handles": registry.handles(),
                })
                .to_string();
                Some(text_response(StatusCode::OK, "application/json", body))
            }
            "/metrics" => Some(text_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.render(),
            )),
            _ => None,
        }
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
        match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                Err(RequestError::BodyTooLarge { limit })
            }
            Err(error) => Err(RequestError::BodyRead(error.to_string())),
        }
    }
}

/// The last segment of a path: where OpenIM puts the command.
fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn json_response(status: StatusCode, answer: &CallbackResponse) -> Response<Full<Bytes>> {
    json_bytes(status, answer.to_json())
}

fn json_bytes(status: StatusCode, answer: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_on_the_last_segment_under_any_prefix() {
        let kick = "callbackAfterKickGroupCommand";
        assert_eq!(
            last_segment("/callbackExample/callbackAfterKickGroupCommand"),
            kick
        );
        assert_eq!(last_segment("/a/b/callbackAfterKickGroupCommand/"), kick);
        assert_eq!(last_segment("/callbackAfterKickGroupCommand"), kick);
        assert_eq!(last_segment("/"), "");
    }
}
