//! The native baselines: the same work as the host and its plugins, in plain Rust on the same
//! hyper/tokio stack, with no Wasm: the ceiling the host is measured against.
//!
//! - `kick`: OpenIM's kick body parsed into a typed struct, the guard policy, "go on" (the kick is
//!   an after-callback).
//! - `moderation`: OpenIM's message bodies parsed into typed structs (as a Rust webhook server
//!   would), the moderation rule (`moderation-policy`, the plugin's own), and the answer.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use std::sync::Arc;

use callback_host::capabilities::keyvalue::{Backend, Limits};
use callback_host::config::{Config, KeyValueBackend};
use callback_host::protocol::CallbackResponse;

use crate::Workload;

const PROTECTED_USERS: [&str; 3] = ["admin", "owner-bot", "security-officer"];

/// OpenIM's kick callback body, all of it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KickRequest {
    callback_command: String,
    #[serde(rename = "groupID")]
    #[allow(dead_code)] // parsed in full, as a webhook server would
    group_id: String,
    #[serde(rename = "kickedUserIDs")]
    kicked_user_ids: Vec<String>,
    #[allow(dead_code)]
    reason: String,
}

/// Parses a kick body and checks its command, as the host does.
fn parse_kick(body: &[u8]) -> Result<KickRequest, String> {
    let request: KickRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if request.callback_command != "callbackAfterKickGroupCommand" {
        return Err(format!(
            "callbackCommand {:?} does not match",
            request.callback_command
        ));
    }
    Ok(request)
}

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

/// OpenIM's message callback body (its common fields, plus recvID or groupID).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // parsed in full, as a webhook server would; only some fields are read
struct Message {
    #[serde(rename = "sendID")]
    send_id: String,
    callback_command: String,
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "operationID")]
    operation_id: String,
    #[serde(rename = "senderPlatformID")]
    sender_platform_id: i32,
    sender_nickname: String,
    session_type: i32,
    msg_from: i32,
    content_type: i32,
    status: i32,
    send_time: i64,
    create_time: i64,
    content: String,
    seq: u32,
    at_user_list: Option<Vec<String>>,
    #[serde(rename = "faceURL")]
    face_url: String,
    ex: String,
    #[serde(rename = "recvID", default)]
    recv_id: String,
    #[serde(rename = "groupID", default)]
    group_id: String,
}

/// The text of a text message.
fn text_of(message: &Message) -> Option<String> {
    if message.content_type != 101 {
        return None;
    }
    let content: serde_json::Value = serde_json::from_str(&message.content).ok()?;
    content.get("content")?.as_str().map(str::to_owned)
}

fn moderate(command: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let message: Message = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let text = text_of(&message);
    if command.ends_with("MsgModifyCommand") {
        let masked = text
            .as_deref()
            .and_then(moderation_policy::mask)
            .and_then(|masked| {
                let mut content: serde_json::Value = serde_json::from_str(&message.content).ok()?;
                content["content"] = serde_json::Value::String(masked);
                Some(content.to_string())
            });
        let mut answer = CallbackResponse::go_on().to_json();
        if let Some(content) = masked {
            answer.pop();
            answer.extend_from_slice(b",\"content\":");
            answer.extend_from_slice(serde_json::Value::String(content).to_string().as_bytes());
            answer.push(b'}');
        }
        return Ok(answer);
    }
    let answer = match text.as_deref().and_then(moderation_policy::blocked_phrase) {
        Some(phrase) => CallbackResponse::refuse(
            20001,
            "message blocked by moderation",
            format!("blocked phrase: {phrase}"),
        ),
        None => CallbackResponse::go_on(),
    };
    Ok(answer.to_json())
}

async fn handle(
    workload: Workload,
    store: Option<Arc<Backend>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let command = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let answer = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => {
            let body = body.to_bytes();
            match workload {
                Workload::Kick => parse_kick(&body).map(|kick| {
                    // An after-callback: the decision is made, the answer is "go on".
                    std::hint::black_box(guard(&kick));
                    CallbackResponse::go_on().to_json()
                }),
                Workload::Moderation => moderate(&command, &body),
                Workload::RateLimitEmbedded | Workload::RateLimitRedis => {
                    rate_limit(store.as_deref().expect("a store"), &body).await
                }
            }
        }
        Err(error) => Err(error.to_string()),
    };
    let (status, answer) = match answer {
        Ok(answer) => (StatusCode::OK, answer),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            CallbackResponse::refuse(400, error, "").to_json(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The part of OpenIM's message body the rate limit reads.
#[derive(Deserialize)]
struct Sender {
    #[serde(rename = "sendID")]
    send_id: String,
}

/// The rate-limit plugin's rule, natively: one increment of `<sender>:<minute>`.
async fn rate_limit(store: &Backend, body: &[u8]) -> Result<Vec<u8>, String> {
    let sender: Sender = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs()
        / 60;
    let limits = Limits {
        max_entries: 100_000,
        ttl: Some(std::time::Duration::from_secs(120)),
    };
    let sent = store
        .increment(
            "p/native",
            &format!("{}:{minute}", sender.send_id),
            1,
            limits,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(if sent > 1_000_000_000 {
        CallbackResponse::refuse(20002, "too many messages", "").to_json()
    } else {
        CallbackResponse::go_on().to_json()
    })
}

/// Serves the baseline of `workload` on an ephemeral port until killed.
pub async fn serve(workload: Workload) -> anyhow::Result<()> {
    // The same store, through the same code, as the host's key-value capability.
    let store = match workload {
        Workload::RateLimitEmbedded | Workload::RateLimitRedis => {
            let mut settings = Config::default().keyvalue;
            if workload == Workload::RateLimitRedis {
                settings.backend = KeyValueBackend::Redis;
                settings.redis_url = std::env::var("BENCH_REDIS_URL").ok();
            } else {
                settings.path = std::env::var("BENCH_KV_PATH")?.into();
            }
            Some(Arc::new(Backend::open(&settings).await?))
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let store = store.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |request| handle(workload, store.clone(), request)),
                )
                .await;
        });
    }
}
