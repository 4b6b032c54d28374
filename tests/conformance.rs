//! One policy, five languages: the guard plugin written in Rust, C, JavaScript, Python and Go must
//! give byte-identical answers to the same corpus of OpenIM requests, through the real HTTP host.

use crate::common;

use common::{GO_ON, Server, example};

/// The guard policy, stated once: refuse when a protected user is kicked, listing each protected
/// id once, in the order kicked.
fn expected_answer(users: &[String]) -> String {
    const PROTECTED: [&str; 3] = ["admin", "owner-bot", "security-officer"];
    let mut blocked: Vec<&str> = Vec::new();
    for user in users {
        if PROTECTED.contains(&user.as_str()) && !blocked.contains(&user.as_str()) {
            blocked.push(user);
        }
    }
    if blocked.is_empty() {
        return GO_ON.to_owned();
    }
    let dlt = serde_json::to_string(&format!("protected users: {}", blocked.join(","))).unwrap();
    format!(
        r#"{{"actionCode":0,"errCode":10001,"errMsg":"kicking protected users is not allowed","errDlt":{dlt},"nextCode":1}}"#
    )
}

/// (group, kicked users, reason)
fn corpus() -> Vec<(String, Vec<String>, String)> {
    let s = |v: &[&str]| v.iter().map(|u| u.to_string()).collect::<Vec<_>>();
    let mut cases = vec![
        (
            "G001".into(),
            s(&["user123", "user456"]),
            "Violation of group rules".into(),
        ),
        ("G001".into(), s(&["admin"]), String::new()),
        (
            "G002".into(),
            s(&["owner-bot", "u1", "owner-bot", "admin"]),
            "dupes".into(),
        ),
        (
            "群组-一".into(),
            s(&["用户一", "admin", "Ünïcødé"]),
            "违反群规 🚫 <b>&amp;</b>".into(),
        ),
        (
            "群组-二".into(),
            s(&["用户二", "Ünïcødé", "😀"]),
            "非ASCII 理由 \u{1F600}".into(),
        ),
        (
            "G003".into(),
            s(&["Admin", "admin ", " admin", "admins", ""]),
            "near misses".into(),
        ),
        ("G004".into(), Vec::new(), "nobody".into()),
        ("G005".into(), s(&["security-officer"]), "x".repeat(10_000)),
    ];
    let mut big: Vec<String> = (0..200).map(|i| format!("member-{i:03}")).collect();
    cases.push(("G-big".into(), big.clone(), "a 200-member kick".into()));
    big[150] = "security-officer".into();
    cases.push((
        "G-big".into(),
        big,
        "a 200-member kick with a protected one".into(),
    ));
    cases
}

fn run_corpus(plugin_file: &str) {
    let server = Server::start(&[(plugin_file, example(plugin_file))], "");
    let plugin = plugin_file.trim_end_matches(".wasm");
    for (i, (group, users, reason)) in corpus().into_iter().enumerate() {
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let body = common::kick_body(&group, &refs, &reason);
        assert_eq!(
            server.decide(common::KICK_PATH, &body),
            expected_answer(&users),
            "{plugin} case {i}: {group} {users:?}"
        );
    }
    // Every language logs its refusals through the host's log import.
    let line = server.wait_for_log(&[
        "refusing kick of protected users",
        &format!("plugin={plugin}"),
    ]);
    assert!(line.contains("protected=\"admin\""), "{line}");
    assert!(!server.log().contains("plugin failed"), "{}", server.log());
}

#[test]
fn rust_guard() {
    run_corpus("10-guard.wasm");
}

#[test]
fn c_guard() {
    run_corpus("11-guard-c.wasm");
}

#[test]
fn javascript_guard() {
    run_corpus("12-guard-js.wasm");
}

#[test]
fn python_guard() {
    run_corpus("13-guard-py.wasm");
}

#[test]
fn go_guard() {
    run_corpus("14-guard-go.wasm");
}
