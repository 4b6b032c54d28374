//! The example rules end to end through the real host: the moderation (blocked phrases refused,
//! banned words masked), the Python group policy and the Go group-name policy.

use crate::callbacks::{fixture_with, go_on_with, path};
use crate::common;

use serde_json::{Value, json};

use common::{GO_ON, Server, example, request_fixture};

/// A message fixture with this text (or other content).
fn message(command: &str, content_type: i32, content: &str) -> String {
    fixture_with(
        command,
        json!({"contentType": content_type, "content": content}),
    )
}

fn text(text: &str) -> String {
    json!({ "content": text }).to_string()
}

#[test]
fn moderation_refuses_blocked_messages_and_masks_banned_words() {
    let server = Server::start(&[("30-moderation.wasm", example("30-moderation.wasm"))], "");
    for send in [
        "callbackBeforeSendSingleMsgCommand",
        "callbackBeforeSendGroupMsgCommand",
    ] {
        let refused = server.post(
            &path(send),
            &message(send, 101, &text("Get FREE Bitcoin <now> & more")),
        );
        assert_eq!(
            refused.body,
            r#"{"actionCode":0,"errCode":20001,"errMsg":"message blocked by moderation","errDlt":"blocked phrase: free bitcoin","nextCode":1}"#,
            "{send}"
        );
        let clean = server.post(&path(send), &message(send, 101, &text("see you at 5")));
        assert_eq!(clean.body, GO_ON, "{send}");
        // A picture whose content happens to contain the phrase is not a text message.
        let picture = json!({"sourcePicture": {"url": "https://x/free bitcoin.png"}}).to_string();
        assert_eq!(
            server.post(&path(send), &message(send, 102, &picture)).body,
            GO_ON,
            "{send}"
        );
    }
    server.wait_for_log(&["message refused", "plugin=30-moderation", "free bitcoin"]);

    let modify = "callbackBeforeMsgModifyCommand";
    let masked = server.post(
        &path(modify),
        &message(modify, 101, &text("darn it, HECK! 你是坏蛋 ok")),
    );
    assert_eq!(
        masked.json(),
        go_on_with(json!({"content": text("**** it, ****! 你是** ok")}))
    );
    let content: Value = serde_json::from_str(masked.json()["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["content"], "**** it, ****! 你是** ok");
    // Nothing to mask, or not a text message: unchanged.
    assert_eq!(
        server
            .post(&path(modify), &message(modify, 101, &text("hello")))
            .body,
        GO_ON
    );
    let file = json!({"fileName": "darn.txt"}).to_string();
    assert_eq!(
        server
            .post(&path(modify), &message(modify, 105, &file))
            .body,
        GO_ON
    );
}

#[test]
fn python_group_policy_refuses_banned_names_and_forces_verification() {
    let server = Server::start(
        &[(
            "31-group-policy-py.wasm",
            example("31-group-policy-py.wasm"),
        )],
        "",
    );
    let create = "callbackBeforeCreateGroupCommand";
    let refused = server.post(
        &path(create),
        &fixture_with(create, json!({"groupName": "Crypto-Pump club"})),
    );
    assert_eq!(
        refused.body,
        r#"{"actionCode":0,"errCode":30001,"errMsg":"this group name is not allowed","errDlt":"banned word: crypto-pump","nextCode":1}"#
    );
    let forced = server.post(&path(create), &request_fixture(create));
    assert_eq!(forced.json(), go_on_with(json!({"needVerification": 1})));
    let already = server.post(
        &path(create),
        &fixture_with(create, json!({"needVerification": 1})),
    );
    assert_eq!(already.body, GO_ON);
}

#[test]
fn go_group_name_policy_refuses_staff_names_and_tidies_the_rest() {
    let server = Server::start(
        &[("32-group-name-go.wasm", example("32-group-name-go.wasm"))],
        "",
    );
    let set = "callbackBeforeSetGroupInfoCommand";
    let rename =
        |name: &str| server.post(&path(set), &fixture_with(set, json!({"groupName": name})));
    assert_eq!(
        rename("The OFFICIAL rust fans").body,
        r#"{"actionCode":0,"errCode":20010,"errMsg":"group names cannot pass for staff","errDlt":"reserved word: official","nextCode":1}"#
    );
    // A staff word inside another word is not one.
    let kept = rename("Administrators of fun").json();
    assert_eq!(
        (&kept["errCode"], &kept["groupName"]),
        (&json!(0), &json!("Administrators of fun"))
    );
    // Tidied: OpenIM saves the name the answer carries.
    assert_eq!(rename("  Rust \t  fans ").json()["groupName"], "Rust fans");
    let long = "群".repeat(40);
    assert_eq!(rename(&long).json()["groupName"], "群".repeat(32));
    // The other fields are the request's, untouched.
    let answer = rename("Rust  fans").json();
    assert_eq!(
        (
            &answer["nextCode"],
            &answer["introduction"],
            &answer["faceURL"]
        ),
        (
            &json!(0),
            &json!("all about Rust"),
            &json!("https://example.com/g.png")
        )
    );
    let line = server.wait_for_log(&["group name refused", "plugin=32-group-name-go"]);
    assert!(line.contains("word=\"official\""), "{line}");
}
