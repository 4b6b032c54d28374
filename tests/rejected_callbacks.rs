//! Callbacks rejected before any plugin (a misconfigured OpenIM): counted by reason, logged once
//! per source with what to check, shown first on the console; and, when the operator asks,
//! before-callbacks failing authentication refused instead of answered "go on".

use crate::access::{audited, kick, refused};
use crate::common;

use std::time::Duration;

use common::{KICK_PATH, Server};

/// GETs `path` from the admin listener with Basic credentials (the console asks for them when
/// callbacks need them).
fn console_get(server: &Server, path: &str, authorization: &str) -> serde_json::Value {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(server.admin_addr.as_deref().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let response = common::read_response(&mut stream);
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

#[test]
fn a_misconfigured_openim_is_counted_by_reason_logged_once_and_shown() {
    let server = audited("[auth]\nbasic_user = \"openim\"\nbasic_password = \"s3cret:pw\"\n");
    let right = "Authorization: Basic b3BlbmltOnMzY3JldDpwdw==\r\n";
    let wrong = "Authorization: Basic b3BlbmltOndyb25n\r\n";
    for i in 0..3 {
        let op = format!("op-wrong-{i}");
        refused(
            &server,
            &kick(&server, KICK_PATH, &op, wrong),
            401,
            "unauthorized",
            &op,
        );
    }
    // A wrong path in OpenIM's webhook url: another reason.
    let response = kick(
        &server,
        "/callbackExample/callbackAfterKickGroup",
        "op-wrong-path",
        right,
    );
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(
        server.metric("callback_host_rejected_requests_total{reason=\"unauthenticated\"}"),
        3.0
    );
    assert_eq!(
        server.metric("callback_host_rejected_requests_total{reason=\"unknown_path\"}"),
        1.0
    );
    // Logged once per source and reason, with what to check, not once per request.
    server.wait_for_log(&["rejected:", "unknown callback command"]);
    let log = server.log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rejected:") && l.contains("unauthenticated"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("user:pass@"), "{}", said[0]);
    assert!(!log.contains("s3cret"), "the password is never logged");

    // The console lists them, per source and reason.
    let overview = console_get(&server, "/console/api/overview", right);
    let rows = overview["rejected"].as_array().unwrap();
    let unauthenticated = rows
        .iter()
        .find(|r| r["reason"] == "unauthenticated")
        .unwrap_or_else(|| panic!("{overview}"));
    assert_eq!(unauthenticated["source"], "127.0.0.1");
    assert_eq!(unauthenticated["count"], 3);
    assert!(
        rows.iter().any(|r| r["reason"] == "unknown_path"),
        "{overview}"
    );
}

#[test]
fn an_operator_may_have_unauthenticated_before_callbacks_refused() {
    let server = audited(
        "[auth]\nbasic_user = \"openim\"\nbasic_password = \"pw\"\nrefuse_unauthenticated = true\n",
    );
    let wrong = "Authorization: Basic b3BlbmltOndyb25n\r\n";
    // A before-callback: OpenIM stops the operation (actionCode 0 and nextCode 1 refuse).
    let body = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    let request = common::openim_request(
        "/callbackExample/callbackBeforeSendSingleMsgCommand",
        "op-refused",
        body.as_bytes(),
    );
    let text = String::from_utf8(request).unwrap();
    let request = text.replacen("\r\n", &format!("\r\n{wrong}"), 1);
    let response = server.raw(request.as_bytes());
    assert_eq!(response.status, 401, "{response:?}");
    let answer = response.json();
    assert_eq!(
        (
            &answer["actionCode"],
            &answer["nextCode"],
            &answer["errCode"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(1),
            &serde_json::json!(401)
        ),
        "{answer}"
    );
    assert_eq!(answer["errDlt"], "unauthorized");
    // An after-callback has happened already: the answer stays "go on".
    refused(
        &server,
        &kick(&server, KICK_PATH, "op-after", wrong),
        401,
        "unauthorized",
        "op-after",
    );
}
