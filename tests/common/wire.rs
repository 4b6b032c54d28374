//! OpenIM's side of the wire, as the tests speak it over raw TCP: its requests byte for byte (as
//! its Go client sends them), the answers read back, the fixtures of every command.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use super::repo_root;

/// Sends a kick with `reason` on a new connection from another thread; the thread returns the
/// response and when it arrived.
pub fn kick_in_background(
    addr: String,
    reason: &'static str,
) -> std::thread::JoinHandle<(HttpResponse, Instant)> {
    std::thread::spawn(move || {
        let body = kick_body("G", &["u"], reason);
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(&openim_request(
                KICK_PATH,
                &format!("op-{reason}"),
                body.as_bytes(),
            ))
            .expect("send");
        (read_response(&mut stream), Instant::now())
    })
}

/// The request fixture of `command` (`tests/fixtures/requests/<command>.json`): OpenIM's exact
/// JSON for it, field for field in its structs' order, as Go's encoder writes it.
pub fn request_fixture(command: &str) -> String {
    let path = repo_root().join(format!("tests/fixtures/requests/{command}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// OpenIM's default webhook url prefix plus the kick command.
pub const KICK_PATH: &str = "/callbackExample/callbackAfterKickGroupCommand";

/// The exact answer for "go on".
pub const GO_ON: &str = r#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#;

/// A kick body as Go's json.Encoder writes it: `<`, `>`, `&` escaped, trailing newline.
pub fn kick_body(group: &str, users: &[&str], reason: &str) -> String {
    let body = serde_json::json!({
        "callbackCommand": "callbackAfterKickGroupCommand",
        "groupID": group,
        "kickedUserIDs": users,
        "reason": reason,
    });
    let json = serde_json::to_string(&body).unwrap();
    format!("{}\n", go_escape(&json))
}

/// Go's json.Encoder escapes these three for HTML safety.
pub fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A request with the headers OpenIM's Go client sends.
pub fn openim_request(path: &str, operation_id: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:10006\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Operationid: {operation_id}\r\nAccept-Encoding: gzip\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body.
pub fn read_response(stream: &mut TcpStream) -> HttpResponse {
    try_read_response(stream).unwrap_or_else(|error| panic!("reading the response: {error}"))
}

/// Like [`read_response`], with an error when the connection fails or closes mid-response (a
/// server that was killed).
pub fn try_read_response(stream: &mut TcpStream) -> std::io::Result<HttpResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? != 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed mid-response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    })
}
