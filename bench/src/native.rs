//! The native baseline: the host's request parsing, the guard policy in plain Rust and the host's
//! answer serialization, on the same hyper/tokio stack, with no Wasm. The ceiling the host is
//! measured against.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use callback_host::protocol::{self, CallbackResponse, KickRequest};

const PROTECTED_USERS: [&str; 3] = ["admin", "owner-bot", "security-officer"];

/// The guard policy, natively.
fn guard(request: &KickRequest) -> CallbackResponse {
    let mut blocked: Vec<&str> = Vec::new();
    for user in &request.kicked_user_ids {
        if PROTECTED_USERS.contains(&user.as_str()) && !blocked.contains(&user.as_str()) {
            blocked.push(user);
        }
    }
    if blocked.is_empty() {
        return CallbackResponse::go_on();
    }
    CallbackResponse::refuse(
        10001,
        "kicking protected users is not allowed",
        format!("protected users: {}", blocked.join(",")),
    )
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => match protocol::parse_kick(&body.to_bytes()) {
            Ok(kick) => (StatusCode::OK, guard(&kick)),
            Err(error) => (
                StatusCode::BAD_REQUEST,
                CallbackResponse::refuse(400, error.to_string(), ""),
            ),
        },
        Err(error) => (
            StatusCode::BAD_REQUEST,
            CallbackResponse::refuse(400, error.to_string(), ""),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.1.to_json())));
    *response.status_mut() = answer.0;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Serves the baseline on an ephemeral port until killed.
pub async fn serve() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
