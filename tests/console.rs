//! The console on the admin listener, in a real browser (Debian's chromium driven by
//! playwright-core), and over HTTP: its JSON, its actions (body capture, requeue) and who may
//! use them; and the misread refusal (`nextCode 1` with `actionCode` not 0), warned about once,
//! counted, and shown by the console and `callback-host call`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{self, KICK_PATH, Server, component, example, kick_body, openim_request};

/// The console's JSON at `path` from the admin listener of `server`.
fn console_json(server: &Server, path: &str) -> Value {
    let response = Server::get(server.admin_addr.as_deref().expect("admin listener"), path);
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    response.json()
}

/// POSTs a console action as the console's own page does (same origin, JSON).
fn console_post(server: &Server, path: &str, body: &Value, extra_headers: &str) -> (u16, Value) {
    let admin = server.admin_addr.as_deref().expect("admin listener");
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(admin).expect("connect");
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let response = common::read_response(&mut stream);
    (response.status, response.json())
}

const SAME_ORIGIN: &str = "Content-Type: application/json\r\nSec-Fetch-Site: same-origin\r\n";

/// A one-to-one message whose text the moderation example refuses.
fn blocked_message() -> String {
    let body = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    let blocked = body.replace(
        r"hello \u003cb\u003eworld\u003c/b\u003e \u0026 you",
        "Get FREE Bitcoin now",
    );
    assert_ne!(body, blocked, "the fixture's text changed");
    blocked
}

#[test]
fn the_console_in_a_real_browser_shows_a_dropped_plugin_and_who_refused_a_callback() {
    common::toolchains();
    let secret_value = "do-not-render-this-value";
    // The welcome example calls OpenIM's API; with no [openim_api] its calls answer
    // not-configured, and the console shows them under its turn all the same.
    let server = Server::start_with_args(
        &[
            ("10-guard.wasm", example("10-guard.wasm")),
            ("30-moderation.wasm", example("30-moderation.wasm")),
            ("61-welcome.wasm", example("61-welcome.wasm")),
        ],
        &format!(
            "[plugin_config.10-guard]\nprotected_users = \"{secret_value}\"\n\
             [plugin_grants.61-welcome]\nopenim_api = [\"send-message\"]\n"
        ),
        &["--admin-listen", "127.0.0.1:0"],
    );
    let admin = server.admin_addr.clone().expect("admin listener");
    // Some traffic for the charts: messages that go on, kicks.
    let message = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    for _ in 0..5 {
        server.post(
            "/callbackExample/callbackBeforeSendSingleMsgCommand",
            &message,
        );
        server.kick(&["u1"], "spam");
    }
    let join = common::request_fixture("callbackAfterJoinGroupCommand");
    server.raw(&common::openim_request(
        "/callbackExample/callbackAfterJoinGroupCommand",
        "op-browser-welcome",
        join.as_bytes(),
    ));
    let artifacts = common::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    let spec = json!({
        "console": format!("http://{admin}/console"),
        "callbacks": format!("http://{}", server.addr),
        "drop": {
            "from": example("20-audit.wasm"),
            "to": server.plugin_dir().join("20-audit.wasm"),
            "plugin": "20-audit",
        },
        "refusal": {
            "path": "/callbackExample/callbackBeforeSendSingleMsgCommand",
            "body": blocked_message(),
            "operationID": "op-browser-refusal",
        },
        "screenshot": screenshot,
        "rejected": { "path": "/callbackExample/callbackNoSuchCommand" },
        "api_row": { "operationID": "op-browser-welcome" },
    });
    let output = Command::new("node")
        .arg(common::repo_root().join("tests/browser/console.mjs"))
        .arg(spec.to_string())
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "the browser test failed:\n{}\n{}\nhost log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(seen["errors"], json!([]), "the browser's console: {seen}");
    assert_eq!(seen["requests_failed"], json!([]), "{seen}");
    assert_eq!(seen["title"], "callback-host console");
    assert_eq!(
        seen["plugins_before"],
        json!(["10-guard", "30-moderation", "61-welcome"])
    );
    // A queued after-callback is one row: queued, then delivered, with its plugins' calls.
    let welcome = seen["api_row"].as_str().unwrap();
    assert!(
        welcome.contains("61-welcome")
            && welcome.contains("OpenIM: send-message not_configured")
            && welcome.contains("queued")
            && welcome.contains("→ delivered"),
        "{welcome}"
    );
    assert_eq!(seen["first_section"], "recent-section", "{seen}");
    assert_eq!(
        seen["nav"],
        json!([
            "#recent-section",
            "#commands-section",
            "#plugins-section",
            "#queue-section",
            "#shadows-section"
        ])
    );
    let shown_after = seen["plugin_shown_after_ms"].as_u64().unwrap();
    assert!(
        shown_after < 10_000,
        "the dropped plugin took {shown_after} ms to show"
    );
    assert!(
        seen["refusal_answer"]
            .as_str()
            .unwrap()
            .contains(r#""errCode":20001"#),
        "{seen}"
    );
    let row = seen["refusal_row"].as_str().unwrap();
    assert!(
        row.contains("op-browser-refusal")
            && row.contains("30-moderation")
            && row.contains("refused 20001"),
        "{row}"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
    // The rejected callback is the first thing on the page, with what to check.
    assert_eq!(seen["rejected_is_first"], "rejected-section", "{seen}");
    let rejected = seen["rejected_text"].as_str().unwrap();
    assert!(
        rejected.contains("127.0.0.1")
            && rejected.contains("unknown_path")
            && rejected.contains("callbackNoSuchCommand")
            && rejected.contains("webhook url"),
        "{rejected}"
    );
    // The README's picture is this test's, copied only when asked
    // (`scripts/update-console-screenshot.sh`): a test run leaves the tree as it found it.
    if std::env::var_os("UPDATE_CONSOLE_SCREENSHOT").is_some() {
        std::fs::copy(&screenshot, common::repo_root().join("docs/console.png")).unwrap();
    }

    // Nothing secret is rendered: the plugin's config values show by key only.
    let overview = Server::get(&admin, "/console/api/overview").body;
    assert!(overview.contains("protected_users"), "{overview}");
    assert!(!overview.contains(secret_value), "{overview}");
}

#[test]
fn body_capture_and_requeue_are_console_actions_that_refuse_cross_site_requests() {
    let queue = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        &[("10-hostile.wasm", component("hostile"))],
        &format!(
            "[commands.callbackAfterKickGroupCommand]\ndelivery = \"queued\"\n\
             [queue]\npath = {:?}\nmax_attempts = 1\n",
            queue.path().join("queue.redb").to_str().unwrap()
        ),
        &["--admin-listen", "127.0.0.1:0"],
    );
    let capture = json!({"command": "callbackAfterKickGroupCommand", "seconds": 60});
    // What another site's page could send is refused, and changes nothing.
    for (headers, why) in [
        ("Content-Type: text/plain\r\n", "a form's content type"),
        (
            "Content-Type: application/json\r\nSec-Fetch-Site: cross-site\r\n",
            "a cross-site fetch",
        ),
        (
            "Content-Type: application/json\r\nOrigin: http://evil.example\r\n",
            "another origin",
        ),
    ] {
        let (status, answer) = console_post(&server, "/console/api/capture", &capture, headers);
        assert_eq!(status, 403, "{why}: {answer}");
    }
    assert_eq!(
        console_json(&server, "/console/api/overview")["captures"],
        json!({})
    );
    let (status, answer) = console_post(&server, "/console/api/capture", &capture, SAME_ORIGIN);
    assert_eq!((status, &answer["seconds"]), (200, &json!(60)), "{answer}");

    // A kick that panics the plugin: its body is captured, it is dead-lettered after its one
    // attempt, and the console lists the dead letter with the cause.
    let kick = kick_body("G-captured", &["u1"], "panic");
    let response = server.raw(&openim_request(KICK_PATH, "op-captured", kick.as_bytes()));
    assert_eq!(response.status, 200);
    server.wait_for_log(&["queued event dead-lettered", "op-captured"]);
    let recent = console_json(
        &server,
        "/console/api/recent?command=callbackAfterKickGroupCommand",
    );
    let callbacks = recent["callbacks"].as_array().unwrap();
    // One row: the answer (queued, with the captured body), then its failed delivery.
    let queued = callbacks
        .iter()
        .find(|c| c["operation_id"] == "op-captured")
        .expect("the queued answer");
    assert_eq!(queued["outcome"], "queued", "{queued}");
    assert_eq!(queued["body"]["text"], kick.as_str());
    assert_eq!(queued["body"]["truncated"], false);
    let delivered = &queued["delivery"];
    assert_eq!(delivered["outcome"], "trap", "{queued}");
    assert_eq!(delivered["attempts"], 1, "{queued}");
    assert_eq!(delivered["steps"][0]["plugin"], "10-hostile");
    assert_eq!(delivered["steps"][0]["decision"]["cause"], "trap");
    assert_eq!(
        callbacks
            .iter()
            .filter(|c| c["operation_id"] == "op-captured")
            .count(),
        1
    );
    let overview = console_json(&server, "/console/api/overview");
    let letters = overview["queue"]["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{overview}");
    assert_eq!(letters[0]["operation_id"], "op-captured");
    assert!(
        letters[0]["cause"]
            .as_str()
            .unwrap()
            .contains("10-hostile: trap"),
        "{}",
        letters[0]
    );

    // The plugin is fixed (hot reload), and the dead letter requeued from the console is
    // delivered to it.
    // In force once the console shows it (its load is logged before the set is swapped in).
    let fixed = example("10-guard.wasm");
    let fixed_bytes = std::fs::metadata(&fixed).unwrap().len();
    server.deploy(&fixed, "10-hostile.wasm");
    server.wait_until("the fixed plugin to be in force", || {
        console_json(&server, "/console/api/overview")["plugins"][0]["file_bytes"] == fixed_bytes
    });
    let id = letters[0]["id"].clone();
    let (status, _) = console_post(
        &server,
        "/console/api/requeue",
        &json!({ "ids": [id] }),
        "Content-Type: text/plain\r\n",
    );
    assert_eq!(status, 403);
    let (status, answer) = console_post(
        &server,
        "/console/api/requeue",
        &json!({ "ids": [id] }),
        SAME_ORIGIN,
    );
    assert_eq!((status, &answer["requeued"]), (200, &json!(1)), "{answer}");
    server.wait_for_log(&["queued event handled", "op-captured"]);
    let overview = console_json(&server, "/console/api/overview");
    assert_eq!(overview["queue"]["dead_letters"], json!([]), "{overview}");

    // Capture switched off: later bodies are not kept.
    let stop = json!({"command": "callbackAfterKickGroupCommand", "seconds": 0});
    assert_eq!(
        console_post(&server, "/console/api/capture", &stop, SAME_ORIGIN).0,
        200
    );
    server.raw(&openim_request(
        KICK_PATH,
        "op-not-captured",
        kick.as_bytes(),
    ));
    let recent = console_json(&server, "/console/api/recent?outcome=queued");
    let later = recent["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["operation_id"] == "op-not-captured")
        .expect("the later kick");
    assert!(later.get("body").is_none(), "{later}");
}

#[test]
fn a_misread_refusal_is_warned_once_counted_and_shown_by_the_console_and_call() {
    let server = Server::start_with_args(
        &[("10-hostile.wasm", component("hostile"))],
        "[commands.callbackAfterKickGroupCommand]\ndelivery = \"inline\"\n",
        &["--admin-listen", "127.0.0.1:0"],
    );
    for _ in 0..3 {
        let response = server.kick(&["u1"], "misread");
        assert_eq!(response.status, 200);
    }
    let warning = "OpenIM reads that as go on";
    server.wait_for_log(&[warning, "10-hostile", "callbackAfterKickGroupCommand"]);
    let warnings = server.log().lines().filter(|l| l.contains(warning)).count();
    assert_eq!(warnings, 1, "warned once per plugin and command");
    assert_eq!(
        server.metric(
            "callback_host_misread_refusals_total{plugin=\"10-hostile\",command=\"callbackAfterKickGroupCommand\"}"
        ),
        3.0
    );
    let overview = console_json(&server, "/console/api/overview");
    assert_eq!(overview["misread_refusals"][0]["count"], 3, "{overview}");
    let recent = console_json(&server, "/console/api/recent?limit=1");
    let step = &recent["callbacks"][0]["steps"][0];
    assert_eq!(step["misread_refusal"], true, "{recent}");
    assert_eq!(step["decision"]["kind"], "go_on", "{recent}");

    // `callback-host call` says it next to the answer.
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("kick.json");
    std::fs::write(&request, kick_body("G001", &["u1"], "misread")).unwrap();
    let plugin: PathBuf = component("hostile");
    let output = Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .arg("call")
        .arg(&plugin)
        .arg(&request)
        .env(
            "CALLBACK_HOST_CACHE_DIR",
            common::repo_root().join("target/test-compile-cache"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: the plugin answered nextCode 1 with actionCode 1 (errCode 4243)"),
        "{stderr}"
    );
    // And a plugin that refuses rightly draws no warning.
    std::fs::write(&request, kick_body("G001", &["u1"], "file")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .arg("call")
        .arg(&plugin)
        .arg(&request)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning"));
}
