//! The rules of answers and the merge of a chain's changes, on OpenIM's requests (the suite's
//! fixtures) and JSON answers: no plugin, no toolchain.

use serde_json::{Value, json};

use super::*;
use crate::protocol::schema::Catalog;

fn command(name: &str) -> &'static Command {
    Catalog::get()
        .command(name)
        .expect("a command of the catalog")
}

fn request(name: &str) -> Val {
    let fixture = match name {
        "callbackBeforeMsgModifyCommand" => {
            include_str!("../../../../tests/fixtures/requests/callbackBeforeMsgModifyCommand.json")
        }
        "callbackBeforeMembersJoinGroupCommand" => include_str!(
            "../../../../tests/fixtures/requests/callbackBeforeMembersJoinGroupCommand.json"
        ),
        "callbackBeforeUpdateUserInfoExCommand" => include_str!(
            "../../../../tests/fixtures/requests/callbackBeforeUpdateUserInfoExCommand.json"
        ),
        other => panic!("no fixture for {other}"),
    };
    crate::protocol::parse(command(name), fixture).expect("OpenIM's request parses")
}

/// The changes of a JSON answer of `name`.
fn changes(name: &str, answer: Value) -> Val {
    let (_, changes) = from_json(Some(command(name)), &answer.to_string()).expect("a valid answer");
    changes.expect("the command has changes")
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn later_plugins_override_earlier_ones_field_by_field_and_see_their_changes() {
    let name = "callbackBeforeMsgModifyCommand";
    let mut merge = Merge::new(command(name), request(name));
    assert!(!merge.changed);
    let masked = r#"{"content":"hello *** & you"}"#;
    merge
        .apply(&changes(
            name,
            json!({"content": masked, "senderNickname": "first"}),
        ))
        .unwrap();
    merge
        .apply(&changes(name, json!({"senderNickname": "second"})))
        .unwrap();
    assert!(merge.changed);
    let answer = json(&merge.go_on_answer());
    assert_eq!(answer["actionCode"], 0);
    assert_eq!(answer["nextCode"], 0);
    assert_eq!(answer["content"], masked);
    assert_eq!(answer["senderNickname"], "second");
    // The next plugin sees the request with both applied.
    let next: Value = serde_json::from_str(&merge.request_json()).unwrap();
    assert_eq!(next["content"], masked);
    assert_eq!(next["senderNickname"], "second");
    assert_eq!(next["sendID"], "user-alice", "the rest is OpenIM's");
}

#[test]
fn a_content_change_must_be_a_json_document() {
    let name = "callbackBeforeMsgModifyCommand";
    let mut merge = Merge::new(command(name), request(name));
    let error = merge
        .apply(&changes(name, json!({"content": "hello ***"})))
        .unwrap_err();
    assert!(error.0.contains("must be a JSON document"), "{error}");
    assert!(!merge.changed, "nothing of a refused change is applied");
}

#[test]
fn withheld_and_misspelt_fields_are_refused_with_the_reason() {
    let modify = command("callbackBeforeMsgModifyCommand");
    let error = from_json(Some(modify), r#"{"options":{"history":false}}"#).unwrap_err();
    assert!(
        error
            .0
            .contains("`options` is not a change the host offers")
            && error.0.contains("wipe the others"),
        "{error}"
    );
    let user = command("callbackBeforeUpdateUserInfoCommand");
    let error = from_json(Some(user), r#"{"nickname":"Al"}"#).unwrap_err();
    assert!(
        error.0.contains(
            "unknown answer field `nickname`: this command may change nickName, faceURL, ex"
        ),
        "{error}"
    );
    // The five common fields alone: a refusal.
    let (response, changes) =
        from_json(Some(user), r#"{"actionCode":0,"nextCode":1,"errCode":7}"#).unwrap();
    assert!(response.is_refusal() && response.err_code == 7);
    assert!(changes.is_some());
}

#[test]
fn member_changes_apply_to_the_request_entry_of_their_user_and_merge_across_plugins() {
    let name = "callbackBeforeMembersJoinGroupCommand";
    let mut merge = Merge::new(command(name), request(name));
    merge
        .apply(&changes(
            name,
            json!({"memberCallbackList": [{"userID": "user-carol", "ex": "vip"}]}),
        ))
        .unwrap();
    merge
        .apply(&changes(
            name,
            json!({"memberCallbackList": [{"userID": "user-bob", "roleLevel": 60}]}),
        ))
        .unwrap();
    let next: Value = serde_json::from_str(&merge.request_json()).unwrap();
    assert_eq!(next["memberList"][0]["ex"], "", "bob's ex is unchanged");
    assert_eq!(
        next["memberList"][1]["ex"], "vip",
        "carol's is the change's"
    );
    let answer = json(&merge.go_on_answer());
    let list = answer["memberCallbackList"].as_array().unwrap();
    let users: Vec<&str> = list.iter().map(|m| m["userID"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 2, "{answer}");
    assert!(
        users.contains(&"user-bob") && users.contains(&"user-carol"),
        "{answer}"
    );
}

#[test]
fn an_ex_command_may_change_only_what_the_request_carries() {
    let name = "callbackBeforeUpdateUserInfoExCommand";
    let mut merge = Merge::new(command(name), request(name));
    let error = merge
        .apply(&changes(name, json!({"faceURL": "x.png"})))
        .unwrap_err();
    assert!(
        error
            .0
            .contains("changes.faceURL sets a field the request does not carry"),
        "{error}"
    );
    merge
        .apply(&changes(name, json!({"nickName": "Al"})))
        .unwrap();
    assert_eq!(json(&merge.go_on_answer())["nickName"], "Al");
}
