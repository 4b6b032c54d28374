//! Building an HTTP answer: a status, a content type and a body.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

/// An answer with `status` and `body` of `content_type`.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// A JSON answer (a callback answer, or the host's own).
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    with_body(status, "application/json", body)
}
