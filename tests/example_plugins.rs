//! The example plugins end to end, the loading of a plugin directory with broken files in it,
//! and a bounded load.

use crate::common;

use std::io::Write;

use common::{GO_ON, KICK_PATH, Server, component, kick_body, openim_request, read_response};

fn examples() -> Server {
    Server::start(
        &[
            ("10-guard.wasm", component("guard")),
            ("20-audit.wasm", component("audit")),
        ],
        "",
    )
}

#[test]
fn guard_refuses_protected_users_and_audit_logs_the_rest() {
    let server = examples();
    let refused = server.kick_decision(&["user1", "owner-bot", "admin", "admin"], "cleanup");
    assert_eq!(
        refused,
        r#"{"actionCode":0,"errCode":10001,"errMsg":"kicking protected users is not allowed","errDlt":"protected users: owner-bot,admin","nextCode":1}"#
    );
    server.wait_for_log(&[
        "refusing kick of protected users",
        "plugin=10-guard",
        "owner-bot,admin",
    ]);

    // The kick already happened: the audit records it even though the guard "refused" it.
    server.wait_for_log(&["group members kicked", "plugin=20-audit", "owner-bot,admin"]);

    let allowed = server.kick_decision(&["user1", "user2"], "");
    assert_eq!(allowed, GO_ON);
    let line = server.wait_for_log(&["group members kicked", "plugin=20-audit", "user1,user2"]);
    assert!(
        line.contains("kicked=\"user1,user2\"") && line.contains("reason=\"(none given)\""),
        "{line}"
    );

    // Ids are compared exactly: no prefix, case or whitespace games.
    for near_miss in ["Admin", "admin ", "admins", ""] {
        assert_eq!(
            server.kick_decision(&[near_miss], "r"),
            GO_ON,
            "{near_miss:?}"
        );
    }
    // Nothing kicked at all (OpenIM should not send it, but must not be trusted).
    assert_eq!(server.kick_decision(&[], "r"), GO_ON);
}

#[test]
fn broken_files_are_reported_by_name_and_skipped() {
    let dir = common::dir_with_plugins(&[("10-guard.wasm", component("guard"))]);
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("01-text.wasm"), "not wasm at all").unwrap();
    // A core module: the header of WebAssembly version 1.
    std::fs::write(plugins.join("02-core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    // A valid, empty component: implements nothing.
    std::fs::write(plugins.join("03-empty.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    // A component cut short, as a half-finished copy would be.
    let guard = std::fs::read(component("guard")).unwrap();
    std::fs::write(plugins.join("04-truncated.wasm"), &guard[..guard.len() / 2]).unwrap();
    std::fs::write(plugins.join("README.txt"), "ignored: not .wasm").unwrap();

    let server = Server::start_in(dir, "", &[]);
    server.wait_for_log(&[
        "plugin not loaded",
        "01-text.wasm",
        "does not start with the WebAssembly header",
    ]);
    server.wait_for_log(&[
        "plugin not loaded",
        "02-core.wasm",
        "is a core WebAssembly module",
    ]);
    server.wait_for_log(&[
        "plugin not loaded",
        "03-empty.wasm",
        "handles no callback",
        "it exports: nothing",
    ]);
    server.wait_for_log(&["plugin not loaded", "04-truncated.wasm", "is not valid"]);
    server.wait_for_log(&["plugins ready", "10-guard", "skipped=4"]);
    assert!(
        server
            .kick_decision(&["admin"], "r")
            .contains("\"errCode\":10001")
    );
}

#[test]
fn no_plugins_at_all_still_answers() {
    let server = Server::start(&[], "");
    assert_eq!(server.kick(&["admin"], "r").body, GO_ON);
}

#[test]
fn a_thousand_requests_over_32_connections_are_all_answered_correctly() {
    let server = examples();
    const CONNECTIONS: usize = 32;
    const REQUESTS: usize = 1000;
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                let mut checked = 0;
                for i in (c..REQUESTS).step_by(CONNECTIONS) {
                    let protected = i % 3 == 0;
                    let user = format!("user-{i}");
                    let users: Vec<&str> = if protected {
                        vec![&user, "admin"]
                    } else {
                        vec![&user]
                    };
                    let body = kick_body(&format!("G{i}"), &users, "load");
                    stream
                        .write_all(&openim_request(
                            KICK_PATH,
                            &format!("op-{i}"),
                            body.as_bytes(),
                        ))
                        .unwrap();
                    let response = read_response(&mut stream);
                    assert_eq!(response.status, 200, "request {i}");
                    assert_eq!(response.body, GO_ON, "request {i}");
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, REQUESTS);
    // The guard decided each one right: a refusal for exactly the kicks with a protected user.
    let refusals = |log: &str| -> Vec<usize> {
        let mut ops: Vec<usize> = log
            .lines()
            .filter(|l| {
                l.contains("after-callback refused by a plugin") && l.contains("plugin=10-guard")
            })
            .filter_map(|l| {
                l.split("operation_id=op-")
                    .nth(1)?
                    .split('}')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        ops.sort_unstable();
        ops
    };
    let expected: Vec<usize> = (0..REQUESTS).filter(|i| i % 3 == 0).collect();
    server.wait_until("every refusal to be logged", || {
        refusals(&server.log()).len() >= expected.len()
    });
    assert_eq!(refusals(&server.log()), expected);
}
