//! The HTTP endpoint against OpenIM's real requests, byte for byte, and every kind of bad input.

use crate::common;

use std::io::Write;

use common::{GO_ON, KICK_PATH, Server, component, openim_request};

fn examples() -> Server {
    Server::start(
        &[
            ("10-guard.wasm", component("guard")),
            ("20-audit.wasm", component("audit")),
        ],
        "max_body_bytes = 4096\n",
    )
}

/// The request in shared/docs/openim-webhook-protocol.md, exactly as OpenIM's Go client sends it.
const OPENIM_KICK: &[u8] = b"POST /callbackExample/callbackAfterKickGroupCommand HTTP/1.1\r\n\
Host: 127.0.0.1:10006\r\n\
User-Agent: Go-http-client/1.1\r\n\
Content-Length: 143\r\n\
Content-Type: application/json; charset=utf-8\r\n\
Operationid: 1732550000123-imAdmin\r\n\
Accept-Encoding: gzip\r\n\
\r\n\
{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G001\",\"kickedUserIDs\":[\"user123\",\"user456\"],\"reason\":\"Violation of group rules\"}\n";

#[test]
fn answers_the_exact_openim_request() {
    let server = examples();
    let response = server.raw(OPENIM_KICK);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, GO_ON);
    // The audit plugin logged it with OpenIM's operationID from the `Operationid` header.
    server.wait_for_log(&[
        "group members kicked",
        "20-audit",
        "1732550000123-imAdmin",
        "Violation of group rules",
    ]);
}

#[test]
fn go_escaped_body_reaches_the_plugin_decoded() {
    let server = examples();
    // `<`, `>` and `&` arrive as \u003c, \u003e, \u0026; the guard must see the real ids.
    let body = "{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G\\u0026\\u003cx\\u003e\",\
                \"kickedUserIDs\":[\"user1\",\"admin\"],\"reason\":\"spam \\u003c3 \\u0026 more\"}\n";
    // The kick already happened: OpenIM is answered "go on" whatever the guard says.
    let response = server.raw(&openim_request(KICK_PATH, "op-escapes", body.as_bytes()));
    assert_eq!(response.body, GO_ON);
    assert_eq!(
        server.decision("op-escapes"),
        r#"{"actionCode":0,"errCode":10001,"errMsg":"kicking protected users is not allowed","errDlt":"protected users: admin","nextCode":1}"#
    );
    server.wait_for_log(&["refusing kick of protected users", "op-escapes", "G&<x>"]);
    // An after-callback reaches every plugin: the guard's refusal does not hide it from the audit.
    server.wait_for_log(&["group members kicked", "op-escapes}", "spam <3 & more"]);
    let body = body.replace("admin", "user2");
    let response = server.raw(&openim_request(KICK_PATH, "op-escapes-2", body.as_bytes()));
    assert_eq!(response.body, GO_ON);
    assert_eq!(server.decision("op-escapes-2"), GO_ON);
    server.wait_for_log(&[
        "group members kicked",
        "op-escapes-2",
        "spam <3 & more",
        "G&<x>",
    ]);
}

#[test]
fn accepts_the_documented_contenttype_query_and_any_prefix() {
    let server = examples();
    let body = common::kick_body("G1", &["u1"], "");
    for path in [
        "/callbackExample/callbackAfterKickGroupCommand?contenttype=json",
        "/callbackAfterKickGroupCommand",
        "/my/own/prefix/callbackAfterKickGroupCommand",
    ] {
        let response = server.post(path, &body);
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, GO_ON),
            "{path}"
        );
    }
}

#[test]
fn serves_many_requests_on_one_keep_alive_connection() {
    let server = examples();
    let mut stream = server.connect();
    for i in 0..20 {
        let users: &[&str] = if i % 2 == 0 { &["admin"] } else { &["someone"] };
        let body = common::kick_body("G1", users, "r");
        let op = format!("op-keep-alive-{i}");
        stream
            .write_all(&openim_request(KICK_PATH, &op, body.as_bytes()))
            .unwrap();
        let response = common::read_response(&mut stream);
        assert_eq!(response.body, GO_ON, "request {i}");
        let decision: serde_json::Value = serde_json::from_str(&server.decision(&op)).unwrap();
        assert_eq!(
            decision["nextCode"],
            if i % 2 == 0 { 1 } else { 0 },
            "request {i}"
        );
    }
}

#[test]
fn commands_without_plugins_go_on_at_once() {
    let server = examples();
    let body = "{\"callbackCommand\":\"callbackAfterQuitGroupCommand\",\"groupID\":\"G1\",\"userID\":\"u1\"}\n";
    let response = server.post("/callbackExample/callbackAfterQuitGroupCommand", body);
    assert_eq!((response.status, response.body.as_str()), (200, GO_ON));
    server.wait_for_log(&[
        "no plugin handles this command",
        "callbackAfterQuitGroupCommand",
    ]);
    // A before-callback nobody handles is not blocked either.
    let body = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    let response = server.post(
        "/callbackExample/callbackBeforeSendSingleMsgCommand?key=e30=",
        &body,
    );
    assert_eq!((response.status, response.body.as_str()), (200, GO_ON));
}

/// One bad request: what is sent, the status, the `errDlt` kind and a part of the message.
struct Bad {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    kind: &'static str,
    message: &'static str,
}

fn bad(
    name: &'static str,
    path: &str,
    body: &[u8],
    status: u16,
    kind: &'static str,
    message: &'static str,
) -> Bad {
    Bad {
        name,
        request: openim_request(path, "op-bad", body),
        status,
        kind,
        message,
    }
}

#[test]
fn every_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let server = examples();
    let kick = KICK_PATH;
    // 2,000 arrays deep (4,000 bytes: under this server's body limit).
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    let cases = vec![
        Bad {
            name: "wrong method",
            request: format!("GET {kick} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            status: 405,
            kind: "method_not_allowed",
            message: "method GET not allowed",
        },
        bad("unknown path", "/callbackExample/callbackAfterNothingCommand", b"{}", 404, "unknown_command", "unknown callback command \"callbackAfterNothingCommand\""),
        bad("empty body", kick, b"", 400, "empty_body", "request body is empty"),
        bad("malformed JSON", kick, b"{\"callbackCommand\" \"x\"}", 400, "malformed_json", "malformed JSON: expected `:`"),
        bad("truncated JSON", kick, b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G", 400, "truncated_json", "truncated JSON"),
        bad("wrong type", kick, b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G\",\"kickedUserIDs\":\"u1\",\"reason\":\"\"}", 400, "schema_mismatch", "invalid type: string \"u1\", expected a sequence"),
        bad("missing field", kick, b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"G\",\"kickedUserIDs\":[]}", 400, "schema_mismatch", "missing field `reason`"),
        bad("not an object", kick, b"[\"callbackAfterKickGroupCommand\"]", 400, "not_an_object", "must be a JSON object, got an array"),
        bad("nested too deep", kick, deep.as_bytes(), 400, "too_deep", "more than 128 levels deep"),
        bad("nested too deep, unclosed", kick, &deep.as_bytes()[..2000], 400, "too_deep", "more than 128 levels deep"),
        bad("invalid UTF-8", kick, b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\",\"groupID\":\"\xc3\x28\",\"kickedUserIDs\":[],\"reason\":\"\"}", 400, "invalid_utf8", "not valid UTF-8: invalid byte at offset 62"),
        bad("command mismatch", kick, b"{\"callbackCommand\":\"callbackAfterQuitGroupCommand\",\"groupID\":\"G\",\"kickedUserIDs\":[],\"reason\":\"\"}", 400, "command_mismatch", "does not match the command \"callbackAfterKickGroupCommand\" in the URL"),
        bad("mismatch on an unhandled command", "/x/callbackAfterQuitGroupCommand", b"{\"callbackCommand\":\"callbackAfterKickGroupCommand\"}", 400, "command_mismatch", "does not match"),
        bad("body over the limit", kick, &vec![b' '; 5000], 413, "body_too_large", "over the limit of 4096 bytes"),
    ];
    for case in cases {
        let response = server.raw(&case.request);
        assert_eq!(response.status, case.status, "{}: {response:?}", case.name);
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{}",
            case.name
        );
        let json = response.json();
        assert_eq!(json["errDlt"], case.kind, "{}: {response:?}", case.name);
        let message = json["errMsg"].as_str().unwrap();
        assert!(
            message.contains(case.message),
            "{}: {message:?} lacks {:?}",
            case.name,
            case.message
        );
        // Shaped like an answer OpenIM decodes as "go on", never as a refusal.
        assert_eq!(
            (json["actionCode"].as_i64(), json["nextCode"].as_i64()),
            (Some(1), Some(0)),
            "{}",
            case.name
        );
        // And the next valid request is still served.
        let next = server.kick_decision(&["admin"], "after a bad request");
        assert!(
            next.contains("\"errCode\":10001"),
            "after {}: {next}",
            case.name
        );
    }
    let response = server.raw(format!("GET {kick} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(response.header("allow"), Some("POST"));
}

#[test]
fn a_chunked_body_over_the_limit_is_refused_too() {
    let server = examples();
    let mut request =
        format!("POST {KICK_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..10 {
        request.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, " ".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = server.raw(&request);
    assert_eq!(response.status, 413, "{response:?}");
}
