//! The console: a web page on the admin listener showing what the host is doing (the plugin set,
//! per-command charts, the recent callbacks with each plugin's decision, the queue, shadow
//! disagreements), and the two actions that change state (capture a command's bodies for a
//! while, requeue dead letters).
//!
//! The page and its script are embedded in the binary (it works offline) and served under a
//! Content-Security-Policy that allows nothing but this origin. The console needs an admin
//! network and, where set, the Basic credentials. Its POSTs take JSON only and refuse
//! cross-site requests. Nothing secret is rendered: no Redis url, password, secret path or
//! plugin config value.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde_json::{Value, json};

use crate::config::access::Access;
use crate::dispatch::Dispatcher;
use crate::history::CAPTURE_MAX_SECONDS;
use crate::http::access::Denied;
use crate::http::rejected::Rejections;
use crate::http::respond;
use crate::queue::Queue;
use crate::runtime::plugin::Plugin;

/// The page, its script and its style, embedded.
const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// Nothing but this origin: no inline script or style, no other host, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Largest body of a console POST.
const MAX_POST_BYTES: usize = 4096;

/// Most recent callbacks one answer lists.
const MAX_LISTED: usize = 500;

/// What the console reads and acts on: the app's parts, lent for one request.
pub struct Parts<'a> {
    /// The plugins in force, the settings, and what the host did lately.
    pub dispatcher: &'a Dispatcher,
    /// The queue, when a command is queued: its depth and dead letters, and requeue.
    pub queue: Option<&'a Queue>,
    /// Who may use the console.
    pub access: &'a Access,
    /// Callbacks rejected before any plugin, by source and reason: shown first.
    pub rejections: &'a Rejections,
}

/// Whether `path` is the console's.
pub fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Answers one request to the console.
pub async fn handle<B>(app: Parts<'_>, peer: IpAddr, request: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Err(denied) = app.access.check_console(peer, request.headers()) {
        tracing::warn!(%peer, path = request.uri().path(), ?denied, "console request refused");
        let mut response = secured(respond::with_body(
            denied_status(denied),
            "text/plain; charset=utf-8",
            "the console answers admin networks (admin_allow) with the Basic credentials, when set\n",
        ));
        if denied == Denied::Credentials {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"callback-host console\""),
            );
        }
        return response;
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let response = match (request.method().clone(), path.as_str()) {
        (Method::GET, "/console" | "/console/") => asset("text/html; charset=utf-8", PAGE),
        (Method::GET, "/console/console.js") => asset("text/javascript; charset=utf-8", SCRIPT),
        (Method::GET, "/console/console.css") => asset("text/css; charset=utf-8", STYLE),
        (Method::GET, "/console/api/overview") => json_ok(&overview(&app).await),
        (Method::GET, "/console/api/series") => json_ok(&app.dispatcher.history().series()),
        (Method::GET, "/console/api/recent") => json_ok(&recent(&app, &query)),
        (Method::POST, "/console/api/capture" | "/console/api/requeue") => {
            match post_body(request).await {
                Ok(body) if path.ends_with("capture") => capture(&app, &body),
                Ok(body) => requeue(&app, &body).await,
                Err((status, why)) => problem(status, &why),
            }
        }
        (_, "/console" | "/console/" | "/console/console.js" | "/console/console.css")
        | (_, "/console/api/overview" | "/console/api/series" | "/console/api/recent") => {
            let mut response = problem(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
            response
        }
        (_, "/console/api/capture" | "/console/api/requeue") => {
            let mut response = problem(StatusCode::METHOD_NOT_ALLOWED, "use POST");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            response
        }
        _ => problem(StatusCode::NOT_FOUND, "no such page of the console"),
    };
    secured(response)
}

fn denied_status(denied: Denied) -> StatusCode {
    match denied {
        Denied::Credentials => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

/// Adds the headers every console answer carries.
fn secured(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn json_ok(value: &Value) -> Response<Full<Bytes>> {
    respond::with_body(StatusCode::OK, "application/json", value.to_string())
}

fn problem(status: StatusCode, error: &str) -> Response<Full<Bytes>> {
    respond::with_body(
        status,
        "application/json",
        json!({ "error": error }).to_string(),
    )
}

/// Reads the body of a console POST: JSON, from this origin, small.
async fn post_body<B>(request: Request<B>) -> Result<Value, (StatusCode, String)>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    same_origin(request.headers()).map_err(|why| (StatusCode::FORBIDDEN, why.to_owned()))?;
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        Limited::new(request.into_body(), MAX_POST_BYTES).collect(),
    )
    .await
    .map_err(|_| {
        (
            StatusCode::REQUEST_TIMEOUT,
            "the body came too slowly".to_owned(),
        )
    })?
    .map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a console request's body is at most {MAX_POST_BYTES} bytes"),
        )
    })?;
    serde_json::from_slice(&read.to_bytes()).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {error}"),
        )
    })
}

/// Refuses a state-changing request another site's page could have made: it must say JSON
/// (a cross-site form cannot, and a cross-site script cannot without a preflight this host
/// never grants), and the browser's `Sec-Fetch-Site` and `Origin`, when sent, must say this
/// origin.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !value(header::CONTENT_TYPE.as_str()).is_some_and(|t| t.starts_with("application/json")) {
        return Err("a console action takes Content-Type: application/json");
    }
    if value("sec-fetch-site").is_some_and(|site| site != "same-origin") {
        return Err("cross-site request refused");
    }
    if let Some(origin) = value(header::ORIGIN.as_str()) {
        let host = value(header::HOST.as_str()).unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if authority != Some(host) {
            return Err("cross-site request refused");
        }
    }
    Ok(())
}

/// The plugin set, the files that failed to load, the queue, captures, shadows, misread
/// refusals and rejected callbacks: everything of the page that is not a chart or the recent list.
async fn overview(app: &Parts<'_>) -> Value {
    let dispatcher = &app.dispatcher;
    let config = dispatcher.config();
    let registry = dispatcher.plugins().get();
    let plugins: Vec<Value> = registry
        .plugins
        .iter()
        .map(|plugin| plugin_json(app, plugin))
        .collect();
    let failed: Vec<Value> = dispatcher
        .plugins()
        .failed()
        .into_iter()
        .map(|f| {
            json!({"file": f.file, "reason": f.reason, "at_ms": f.at_ms,
                   "previous_serving": f.previous_serving})
        })
        .collect();
    let mut commands: Vec<Value> = Vec::new();
    for spec in crate::protocol::commands::COMMANDS {
        let chain = registry.chain(spec.name);
        let shadows = registry.shadows(spec.name);
        if chain.is_empty() && shadows.is_empty() {
            continue;
        }
        let settings = config.command(spec.name);
        commands.push(json!({
            "command": spec.name,
            "phase": format!("{:?}", spec.phase).to_lowercase(),
            "chain": chain.iter().map(|l| &*l.plugin.name).collect::<Vec<_>>(),
            "shadows": shadows.iter().map(|l| &*l.plugin.name).collect::<Vec<_>>(),
            "timeout_ms": settings.timeout.as_millis() as u64,
            "failure_policy": format!("{:?}", settings.failure_policy).to_lowercase(),
            "queued": config.queued(spec),
        }));
    }
    let history = dispatcher.history();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now_ms": crate::util::unix_ms(),
        "plugin_set": registry.fingerprint(),
        "plugin_set_since_ms": registry.since_ms(),
        "plugins": plugins,
        "failed": failed,
        "commands": commands,
        "queue": queue_json(app).await,
        "captures": history.captures(),
        "capture_max_seconds": CAPTURE_MAX_SECONDS,
        "disagreements": history.disagreements(),
        "misread_refusals": history.misread_refusals(),
        "rejected": app.rejections.summary(),
        "refuse_unauthenticated": app.access.refuse_unauthenticated,
    })
}

fn plugin_json(app: &Parts<'_>, plugin: &Plugin) -> Value {
    let config = app.dispatcher.config();
    let limits = &plugin.limits;
    let grants = &plugin.capabilities.grants;
    let handles: Vec<Value> = plugin
        .handles
        .iter()
        .map(|h| {
            json!({
                "command": h.command,
                "interface": h.entry.interface(),
            })
        })
        .collect();
    json!({
        "name": &*plugin.name,
        "file_bytes": plugin.file_bytes,
        "sha256": crate::util::hex(&plugin.sha256),
        "loaded_ms": plugin.loaded_ms,
        "shadow": config.shadow_plugins.contains(&*plugin.name),
        "handles": handles,
        "grants": {
            "keyvalue": grants.keyvalue.is_some(),
            "keyvalue_buckets": grants.keyvalue.as_ref().map(|g| g.buckets.clone()).unwrap_or_default(),
            "keyvalue_ttl_seconds": grants.keyvalue.as_ref().and_then(|g| g.ttl).map(|t| t.as_secs()),
            "http": grants.http.iter().flat_map(|g| &g.origins).map(ToString::to_string).collect::<Vec<_>>(),
            "http_private": grants.http.as_ref().is_some_and(|g| g.private),
            // The keys only: values may be secrets.
            "config_keys": config.plugin_values.get(&*plugin.name)
                .map(|values| values.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        },
        "limits": {
            "memory_bytes": limits.memory_bytes,
            "max_instances": limits.max_instances,
            "reuse_instances": limits.reuse_instances,
            "reserve_ms": limits.reserve.as_millis() as u64,
            "max_concurrent_calls": limits.max_concurrent_calls,
        },
        // Instances built ahead: ready now, the most kept, calls that found one or built their own.
        "stock": plugin.stock.status(),
    })
}

async fn queue_json(app: &Parts<'_>) -> Value {
    let Some(queue) = &app.queue else {
        return Value::Null;
    };
    let (depth, oldest) = match queue.stats().await {
        Ok(stats) => stats,
        Err(error) => return json!({ "error": format!("{error:#}") }),
    };
    let dead = match queue.dead_letters().await {
        Ok(letters) => letters
            .into_iter()
            .rev()
            .take(MAX_LISTED)
            .map(|(id, letter)| {
                json!({
                    "id": id,
                    "command": letter.event.command,
                    "operation_id": letter.event.operation_id,
                    "accepted_ms": letter.event.accepted_ms,
                    "failures": letter.event.failures,
                    "done": letter.event.done,
                    "cause": letter.cause,
                })
            })
            .collect(),
        Err(error) => {
            return json!({ "depth": depth, "error": format!("{error:#}") });
        }
    };
    json!({
        "backend": queue.backend(),
        "depth": depth,
        "oldest_seconds": oldest.map(|age| age.as_secs_f64()),
        "dead_letters": Value::Array(dead),
    })
}

/// `?command=...&outcome=...&limit=...`: the recent callbacks, filtered.
fn recent(app: &Parts<'_>, query: &str) -> Value {
    let mut command = None;
    let mut outcome = None;
    let mut limit = 100;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("command", value)) if !value.is_empty() => command = Some(value),
            Some(("outcome", value)) if !value.is_empty() => outcome = Some(value),
            Some(("limit", value)) => {
                limit = value.parse().unwrap_or(limit).min(MAX_LISTED);
            }
            _ => {}
        }
    }
    app.dispatcher.history().recent(command, outcome, limit)
}

/// `{"command": ..., "seconds": N}`: captures the command's bodies for N seconds (0 stops).
fn capture(app: &Parts<'_>, body: &Value) -> Response<Full<Bytes>> {
    let Some(name) = body["command"].as_str() else {
        return problem(StatusCode::BAD_REQUEST, "give the command to capture");
    };
    let Some(command) = app.dispatcher.command_named(name) else {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!(
                "no command {name:?} (OpenIM's callbackCommand names, such as callbackBeforeSendSingleMsgCommand)"
            ),
        );
    };
    let Some(seconds) = body["seconds"].as_u64() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "give seconds: how long to capture (0 stops)",
        );
    };
    let seconds = seconds.min(CAPTURE_MAX_SECONDS);
    app.dispatcher.history().capture(command, seconds);
    tracing::info!(command, seconds, "console: request bodies captured");
    json_ok(&json!({"command": command, "seconds": seconds}))
}

/// `{"ids": [...]}` (or `{}` for every one): puts dead letters back in the queue.
async fn requeue(app: &Parts<'_>, body: &Value) -> Response<Full<Bytes>> {
    let Some(queue) = &app.queue else {
        return problem(
            StatusCode::CONFLICT,
            "no command is queued: there is no queue",
        );
    };
    let ids: Option<Vec<String>> = body.get("ids").and_then(Value::as_array).map(|ids| {
        ids.iter()
            .map(|id| match id {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            })
            .collect()
    });
    match queue.requeue(ids.as_deref()).await {
        Ok(requeued) => {
            tracing::info!(requeued, "console: dead letters requeued");
            json_ok(&json!({ "requeued": requeued }))
        }
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("could not requeue: {error:#}"),
        ),
    }
}
