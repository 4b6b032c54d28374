//! Why a request was rejected before reaching any plugin, and the 4xx answer that says so.
//!
//! The answer's body is shaped like a callback answer, so that OpenIM (which never checks the
//! status code) decodes it as "go on": `actionCode` 1 (the callback was not handled), `errCode` the
//! HTTP status, `errMsg` what is wrong, `errDlt` a stable kind, `nextCode` 0.

use http::StatusCode;

use crate::http::access::Denied;
use crate::outcomes::{Rejection, RequestOutcome};
use crate::protocol::{BodyError, CallbackResponse};

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Credentials => {
                "missing or wrong credentials (HTTP Basic, from user:pass@ in OpenIM's webhook url)"
            }
            Self::SecretPath => "the URL lacks this host's secret path segment",
            Self::Network => "the source address is not allowed to call this endpoint",
        })
    }
}

/// A request the host cannot pass to plugins.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Denied(Denied),
    #[error("method {0} not allowed: OpenIM callbacks are POST requests")]
    MethodNotAllowed(http::Method),
    #[error(
        "unknown callback command {0:?} (the last segment of the URL path must be a callback command OpenIM sends, e.g. callbackAfterKickGroupCommand)"
    )]
    UnknownCommand(String),
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request headers too large: {0}")]
    HeadersTooLarge(String),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Body(#[from] BodyError),
}

impl RequestError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Denied(Denied::Credentials) => StatusCode::UNAUTHORIZED,
            Self::Denied(_) => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnknownCommand(_) => StatusCode::NOT_FOUND,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) | Self::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A short, stable name of what is wrong.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(Denied::Credentials) => "unauthorized",
            Self::Denied(Denied::SecretPath) => "forbidden_path",
            Self::Denied(Denied::Network) => "forbidden_network",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::UnknownCommand(_) => "unknown_command",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyRead(_) => "body_read_error",
            Self::Body(body) => body.kind(),
        }
    }

    /// Why, as the operator fixes it (`callback_host_rejected_requests_total{reason}`).
    pub fn rejection(&self) -> Rejection {
        match self {
            Self::Denied(Denied::Credentials | Denied::SecretPath) => Rejection::Unauthenticated,
            Self::Denied(Denied::Network) => Rejection::ForbiddenNetwork,
            Self::UnknownCommand(_) | Self::MethodNotAllowed(_) => Rejection::UnknownPath,
            Self::BodyTooLarge { .. }
            | Self::HeadersTooLarge(_)
            | Self::BodyTimeout(_)
            | Self::BodyRead(_)
            | Self::Body(_) => Rejection::BadBody,
        }
    }

    /// The `outcome` label of the request metric: rejected, and why.
    pub fn outcome(&self) -> RequestOutcome {
        RequestOutcome::Rejected(self.rejection())
    }

    /// The answer that refuses the operation (`actionCode 0`, `nextCode 1`), for an operator who
    /// asked that before-callbacks failing authentication be refused rather than go on
    /// (`[auth] refuse_unauthenticated`).
    pub fn refusal(&self) -> CallbackResponse {
        CallbackResponse {
            action_code: 0,
            next_code: 1,
            ..self.answer()
        }
    }

    /// The answer body (see the module docs).
    pub fn answer(&self) -> CallbackResponse {
        CallbackResponse {
            action_code: 1,
            err_code: i32::from(self.status().as_u16()),
            err_msg: self.to_string(),
            err_dlt: self.kind().to_owned(),
            next_code: 0,
        }
    }
}
