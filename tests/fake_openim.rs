//! Plugins acting on OpenIM through its API (`openim:callback/openim-api`), against a server of
//! the tests' own that answers as OpenIM's API layer does. OpenIM's API needs MongoDB, Kafka and
//! etcd, so it cannot run here; [`FakeOpenim`] is written from OpenIM's source
//! (`internal/api/router.go`: the routes, `/auth/get_admin_token` the one route without a token,
//! `GinParseOperationID` and `GinParseToken`; `apiresp`: the envelope, HTTP 200 for errors too,
//! but 400 with 1001 `ArgsError` for a body gin's validators refuse (`binding:"required"`);
//! `pkg/common/servererrs/code.go`: 1001 bad arguments, 1002 no permission, 1501 token expired,
//! 1507 token does not exist; `internal/rpc/auth`: `expireTimeSeconds` is the token's lifetime).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// OpenIM's secret in these tests: it must never show in a log line, an answer or the console.
pub(crate) const SECRET: &str = "openim-secret-7f3a9c";
/// The admin user OpenIM's share.yml names.
const ADMIN: &str = "imAdmin";

/// How the fake answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// As OpenIM does.
    Up,
    /// HTTP 503, as an API that is down behind its proxy.
    Down,
    /// Answers after this long.
    Slow(Duration),
}

/// One request the fake took, past its token check.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) route: String,
    pub(crate) body: Value,
    pub(crate) operation_id: String,
}

#[derive(Default)]
struct State {
    /// Tokens issued: value, when, lifetime.
    tokens: Vec<(String, Instant, Duration)>,
    /// `/auth/get_admin_token` calls that issued a token.
    fetches: u32,
    /// Requests of the other routes that passed the token check.
    taken: Vec<Taken>,
    /// Requests refused for their token, by errCode.
    token_refusals: Vec<i32>,
    /// Every header value seen, to look for the secret where it does not belong.
    headers: Vec<String>,
    /// Connections accepted (each may carry many requests: HTTP/1.1 keep-alive).
    connections: u32,
}

/// OpenIM's API layer, as far as the host uses it.
pub(crate) struct FakeOpenim {
    port: u16,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
}

impl FakeOpenim {
    pub(crate) fn start(lifetime: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let mode = Arc::new(Mutex::new(Mode::Up));
        let (shared, switch) = (Arc::clone(&state), Arc::clone(&mode));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, mode) = (Arc::clone(&shared), Arc::clone(&switch));
                state.lock().unwrap().connections += 1;
                std::thread::spawn(move || serve(stream, &state, &mode, lifetime));
            }
        });
        Self { port, state, mode }
    }

    pub(crate) fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub(crate) fn fetches(&self) -> u32 {
        self.state.lock().unwrap().fetches
    }

    pub(crate) fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    pub(crate) fn taken(&self) -> Vec<Taken> {
        self.state.lock().unwrap().taken.clone()
    }

    /// Forgets every token issued, as OpenIM does when a token is kicked (1507 next time).
    pub(crate) fn forget_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// The token errors it answered, in order.
    pub(crate) fn token_refusals(&self) -> Vec<i32> {
        self.state.lock().unwrap().token_refusals.clone()
    }

    /// The first token it issued.
    pub(crate) fn first_token(&self) -> String {
        self.state.lock().unwrap().tokens[0].0.clone()
    }

    /// Every header value it was sent.
    pub(crate) fn headers(&self) -> Vec<String> {
        self.state.lock().unwrap().headers.clone()
    }

    /// The host's `[openim_api]` section for this server.
    pub(crate) fn section(&self) -> String {
        format!(
            "[openim_api]\nurl = \"http://127.0.0.1:{}\"\nadmin_user = \"{ADMIN}\"\n",
            self.port
        )
    }
}

/// Answers the HTTP/1.1 requests of one connection, kept open between them as gin does.
fn serve(
    stream: std::net::TcpStream,
    state: &Mutex<State>,
    mode: &Mutex<Mode>,
    lifetime: Duration,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while answer_one(&mut reader, &mut stream, state, mode, lifetime) {}
}

/// Reads one request and answers it; false at the connection's end.
fn answer_one(
    reader: &mut BufReader<std::net::TcpStream>,
    stream: &mut std::net::TcpStream,
    state: &Mutex<State>,
    mode: &Mutex<Mode>,
    lifetime: Duration,
) -> bool {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return false;
    }
    let route = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let (mut length, mut token, mut operation_id) = (0, None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        let value = value.trim().to_owned();
        state.lock().unwrap().headers.push(value.clone());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "token" => token = Some(value),
            "operationid" => operation_id = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let current = *mode.lock().unwrap();
    if let Mode::Slow(delay) = current {
        std::thread::sleep(delay);
    }
    let (status, answer) = if current == Mode::Down {
        (503, json!("service unavailable"))
    } else {
        envelope(state, &route, body, token, operation_id, lifetime)
    };
    let answer = answer.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
        answer.len()
    )
    .is_ok()
}

/// OpenIM's error envelope, as its handlers and middleware answer it (HTTP 200).
fn error(code: i32, message: &str, detail: &str) -> (u16, Value) {
    (
        200,
        json!({"errCode": code, "errMsg": message, "errDlt": detail}),
    )
}

/// The fields gin's binding requires of each route's body (`binding:"required"` in OpenIM's
/// request structs), as (field, the name its error gives it).
fn required(route: &str) -> &'static [(&'static str, &'static str)] {
    match route {
        "/msg/send_msg" => &[("sendID", "SendMsgReq.SendMsg.SendID")],
        "/group/mute_group_member" => &[("groupID", "MuteGroupMemberReq.GroupID")],
        "/group/cancel_mute_group_member" => &[("groupID", "CancelMuteGroupMemberReq.GroupID")],
        "/group/kick_group" => &[("groupID", "KickGroupMemberReq.GroupID")],
        _ => &[],
    }
}

/// The HTTP status and body OpenIM's API layer answers `route` with: 200 and its envelope (errors
/// included), but 400 and the ArgsError envelope for a body its validators refuse.
fn envelope(
    state: &Mutex<State>,
    route: &str,
    body: Value,
    token: Option<String>,
    operation_id: Option<String>,
    lifetime: Duration,
) -> (u16, Value) {
    let ok = |data: Value| {
        (
            200,
            json!({"errCode": 0, "errMsg": "", "errDlt": "", "data": data}),
        )
    };
    // mw.GinParseOperationID: every route needs one.
    let Some(operation_id) = operation_id.filter(|id| !id.is_empty()) else {
        return error(1001, "ArgsError", "header must have operationID");
    };
    let mut state = state.lock().unwrap();
    if route == "/auth/get_admin_token" {
        if body["secret"] != SECRET {
            return error(1002, "NoPermissionError", "secret invalid");
        }
        if body["userID"] != ADMIN {
            return error(1001, "ArgsError", "userID is error.");
        }
        state.fetches += 1;
        let token = format!("admin-token-{}-{}", state.fetches, operation_id.len());
        state.tokens.push((token.clone(), Instant::now(), lifetime));
        return ok(json!({"token": token, "expireTimeSeconds": lifetime.as_secs()}));
    }
    // GinParseToken: the header, then the token's state.
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return error(1001, "ArgsError", "header must have token");
    };
    let issued = state.tokens.iter().find(|(t, ..)| *t == token).cloned();
    match issued {
        None => {
            state.token_refusals.push(1507);
            return error(1507, "TokenNotExistError", "");
        }
        Some((_, at, life)) if at.elapsed() > life => {
            state.token_refusals.push(1501);
            return error(1501, "TokenExpiredError", "");
        }
        Some(_) => {}
    }
    // Past the middleware, gin binds the body and validates it, before the handler runs.
    for (field, name) in required(route) {
        if body[*field].as_str().is_none_or(str::is_empty) {
            let detail = format!(
                "Key: '{name}' Error:Field validation for '{}' failed on the 'required' tag",
                name.rsplit('.').next().unwrap_or(name)
            );
            let (_, refusal) = error(1001, "ArgsError", &detail);
            return (400, refusal);
        }
    }
    state.taken.push(Taken {
        route: route.to_owned(),
        body: body.clone(),
        operation_id,
    });
    match route {
        "/msg/send_msg" => ok(json!({
            "serverMsgID": format!("srv-{}", state.taken.len()),
            "clientMsgID": "cli-x",
            "sendTime": 1_732_550_000_999_i64,
        })),
        "/msg/revoke_msg"
        | "/group/mute_group_member"
        | "/group/cancel_mute_group_member"
        | "/group/kick_group" => ok(json!({})),
        "/user/get_users_info" => ok(json!({
            "usersInfo": body["userIDs"].as_array().into_iter().flatten().map(|id| json!({
                "userID": id, "nickname": format!("nick of {}", id.as_str().unwrap_or("")),
                "faceURL": "", "ex": "", "createTime": 1, "appMangerLevel": 1, "globalRecvMsgOpt": 0,
            })).collect::<Vec<_>>(),
        })),
        _ => error(404, "route not found", route),
    }
}
