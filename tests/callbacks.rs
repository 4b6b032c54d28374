//! Every OpenIM callback through the real host over HTTP: each of the 52 commands in OpenIM's exact
//! JSON reaches a plugin that handles it (typed and as JSON) and a bad body gets a clear 4xx; the
//! chain's rules for before-callbacks that change the operation (the example rules: `example_rules`).

use crate::common;

use serde_json::{Value, json};

use common::{GO_ON, Server, component, openim_request, request_fixture};

/// Every command, from the fixtures' file names.
fn commands() -> Vec<String> {
    let dir = common::repo_root().join("tests/fixtures/requests");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 52);
    names
}

pub(crate) fn path(command: &str) -> String {
    format!("/callbackExample/{command}")
}

/// POSTs `body` to `command` with `script` as the operationID (see tests/fixtures/scripted).
fn scripted(server: &Server, command: &str, body: &str, script: Value) -> Value {
    let response = server.raw(&openim_request(
        &path(command),
        &script.to_string(),
        body.as_bytes(),
    ));
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

/// A fixture with some fields replaced.
pub(crate) fn fixture_with(command: &str, changes: Value) -> String {
    let mut body: Value = serde_json::from_str(&request_fixture(command)).unwrap();
    for (key, value) in changes.as_object().unwrap() {
        body[key] = value.clone();
    }
    body.to_string()
}

/// The answer OpenIM gets for "go on" plus these fields.
pub(crate) fn go_on_with(fields: Value) -> Value {
    let mut answer: Value = serde_json::from_str(GO_ON).unwrap();
    for (key, value) in fields.as_object().unwrap() {
        answer[key] = value.clone();
    }
    answer
}

#[test]
fn every_command_reaches_its_typed_interface_and_bad_bodies_get_a_4xx() {
    let server = Server::start(&[("10-all.wasm", component("all_commands"))], "");
    for command in commands() {
        let body = request_fixture(&command);
        let response = server.post(&path(&command), &body);
        assert_eq!(response.status, 200, "{command}: {response:?}");
        // The plugin changes nothing: "go on", with the echo where OpenIM copies fields back.
        if !command.starts_with("callbackBeforeSetGroupInfo") {
            assert_eq!(response.body, GO_ON, "{command}");
        }
        // The typed request the plugin received, field for field: check a value of each kind.
        let line = server.wait_for_log(&["delivered", &format!("command=\"{command}\"")]);
        let fixture: Value = serde_json::from_str(&body).unwrap();
        for (key, value) in fixture.as_object().unwrap() {
            match value {
                Value::String(s)
                    if key != "callbackCommand"
                        && !s.is_empty()
                        && s.is_ascii()
                        && !s.contains('"')
                        && !s.chars().any(char::is_control) =>
                {
                    assert!(
                        line.contains(&format!("{s:?}").replace('"', "\\\""))
                            || line.contains(s.as_str()),
                        "{command}: {key}={s:?} not delivered: {line}"
                    );
                }
                Value::Number(n) if n.as_i64().is_some_and(|n| n > 1000) => {
                    assert!(
                        line.contains(&n.to_string()),
                        "{command}: {key}={n} not delivered: {line}"
                    );
                }
                _ => {}
            }
        }

        // A body missing its fields, and one with a field of the wrong type: 400, named.
        let bare = format!("{{\"callbackCommand\":\"{command}\"}}");
        let response = server.post(&path(&command), &bare);
        assert_eq!(response.status, 400, "{command}");
        assert_eq!(response.json()["errDlt"], "schema_mismatch", "{command}");
        assert!(
            response.json()["errMsg"]
                .as_str()
                .unwrap()
                .contains("missing field `"),
            "{command}"
        );
        let (key, value) = fixture
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, v)| *k != "callbackCommand" && *k != "operationID" && !v.is_null())
            .unwrap();
        let (wrong, expected) = match value {
            Value::String(_) => (json!(7), "invalid type: number 7, expected a string"),
            _ => (json!("wrong"), "invalid type: string \"wrong\", expected"),
        };
        let response = server.post(
            &path(&command),
            &fixture_with(&command, json!({ key: wrong })),
        );
        assert_eq!(response.status, 400, "{command}: {key}");
        let message = response.json()["errMsg"].as_str().unwrap().to_owned();
        assert!(
            message.contains(expected) && message.contains(&format!("at {key}")),
            "{command}: {message}"
        );
    }
    // The answers went to the plugin, not to the no-plugin path.
    assert!(!server.log().contains("no plugin handles this command"));
}

#[test]
fn every_command_and_a_future_one_reach_the_json_interface() {
    let server = Server::start(&[("10-scripted.wasm", component("scripted"))], "");
    let ready = Server::get(&server.addr, "/readyz").json();
    assert_eq!(
        ready["handles"]["10-scripted"].as_array().unwrap().len(),
        53
    );
    for command in commands() {
        let body = request_fixture(&command);
        let answer = scripted(&server, &command, &body, json!({}));
        assert_eq!(answer["nextCode"], 0, "{command}");
        server.wait_for_log(&["delivered as JSON", &format!("command=\"{command}\"")]);
    }
    // A command OpenIM may add later: routed to the plugin that declared it, as JSON.
    let body = "{\"callbackCommand\":\"callbackAfterFutureThingCommand\",\"thing\":1}";
    let response = server.post("/callbackExample/callbackAfterFutureThingCommand", body);
    assert_eq!((response.status, response.body.as_str()), (200, GO_ON));
    server.wait_for_log(&[
        "delivered as JSON",
        "callbackAfterFutureThingCommand",
        "thing",
    ]);
    // One nobody declared is still unknown.
    let response = server.post("/callbackExample/callbackAfterOtherThingCommand", "{}");
    assert_eq!(response.status, 404);
}

#[test]
fn changes_merge_in_chain_order_and_each_plugin_sees_the_earlier_ones() {
    let server = Server::start(
        &[
            ("10-a.wasm", component("scripted")),
            ("20-b.wasm", component("scripted")),
        ],
        "",
    );
    let modify = "callbackBeforeMsgModifyCommand";
    let body = request_fixture(modify);
    // Both change something; the later one wins where both change the same field.
    let answer = scripted(
        &server,
        modify,
        &body,
        json!({"0": {"ex": "first", "content": "{\"content\":\"one\"}"}, "1": {"ex": "second", "status": 2}}),
    );
    assert_eq!(
        answer,
        go_on_with(json!({"content": "{\"content\":\"one\"}", "ex": "second", "status": 2}))
    );
    // The second plugin sees the first one's changes in its request.
    let answer = scripted(
        &server,
        modify,
        &body,
        json!({"0": {"ex": "first", "senderFaceURL": "f.png"}, "1": "body"}),
    );
    let seen: Value = serde_json::from_str(answer["errDlt"].as_str().unwrap()).unwrap();
    assert_eq!(
        (seen["ex"].as_str(), seen["faceURL"].as_str()),
        (Some("first"), Some("f.png"))
    );
    // A refusal by a later plugin wins, and carries none of the earlier changes.
    let answer = scripted(
        &server,
        modify,
        &body,
        json!({"0": {"ex": "x"}, "1": {"nextCode": 1, "errCode": 42, "errMsg": "no", "errDlt": "later"}}),
    );
    assert_eq!(
        answer,
        json!({"actionCode": 0, "errCode": 42, "errMsg": "no", "errDlt": "later", "nextCode": 1})
    );
    // Members joining: entries merge by userID, field by field.
    let join = "callbackBeforeMembersJoinGroupCommand";
    let answer = scripted(
        &server,
        join,
        &request_fixture(join),
        json!({"0": {"memberCallbackList": [{"userID": "user-bob", "nickname": "B"}]},
               "1": {"memberCallbackList": [{"userID": "user-bob", "roleLevel": 60}, {"userID": "user-carol", "ex": "c"}]}}),
    );
    // And the next plugin sees them in the request's memberList (its `ex`, the field both have).
    let seen = scripted(
        &server,
        join,
        &request_fixture(join),
        json!({"0": {"memberCallbackList": [{"userID": "user-carol", "ex": "vip"}]}, "1": "body"}),
    );
    let seen: Value = serde_json::from_str(seen["errDlt"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen["memberList"],
        json!([{"userID": "user-bob", "ex": ""}, {"userID": "user-carol", "ex": "vip"}])
    );
    let member = |user: &str, nickname: Value, role: Value, ex: Value| json!({"userID": user, "nickname": nickname, "faceURL": null, "roleLevel": role, "muteEndTime": null, "ex": ex});
    assert_eq!(
        answer,
        go_on_with(json!({"memberCallbackList": [
            member("user-bob", json!("B"), json!(60), Value::Null),
            member("user-carol", Value::Null, Value::Null, json!("c")),
        ]}))
    );
}

#[test]
fn set_group_info_answers_echo_what_no_plugin_changed() {
    // No plugin at all: OpenIM copies groupID, groupName, faceURL and introduction back, so the
    // answer carries the request's values instead of blanking them.
    let server = Server::start(&[], "");
    let command = "callbackBeforeSetGroupInfoCommand";
    let response = server.post(&path(command), &request_fixture(command));
    assert_eq!(
        response.json(),
        go_on_with(json!({"groupID": "group-1", "groupName": "Rust fans",
            "faceURL": "https://example.com/g.png", "introduction": "all about Rust"}))
    );
    // The Ex variant copies every field back, `null` included.
    let command = "callbackBeforeSetGroupInfoExCommand";
    let response = server.post(&path(command), &request_fixture(command));
    assert_eq!(
        response.json(),
        go_on_with(
            json!({"groupID": "group-1", "groupName": "Rustaceans", "faceURL": null,
            "introduction": null, "ex": null, "needVerification": null, "lookMemberInfo": 1,
            "applyMemberFriend": null})
        )
    );

    // A plugin that changes one field: that one changes, the others are echoed.
    let server = Server::start(&[("10-scripted.wasm", component("scripted"))], "");
    let command = "callbackBeforeSetGroupInfoCommand";
    let answer = scripted(
        &server,
        command,
        &request_fixture(command),
        json!({"0": {"groupName": "Renamed", "needVerification": 1}}),
    );
    assert_eq!(
        answer,
        go_on_with(
            json!({"groupID": "group-1", "groupName": "Renamed", "faceURL": "https://example.com/g.png",
            "introduction": "all about Rust", "needVerification": 1})
        )
    );
}

#[test]
fn answers_that_would_hurt_openim_are_plugin_failures() {
    let server = Server::start(
        &[("10-scripted.wasm", component("scripted"))],
        "[commands.callbackBeforeMsgModifyCommand]\nfailure_policy = \"refuse\"\nrefuse_err_code = 777\nrefuse_err_msg = \"moderation broke\"\n",
    );
    let modify = "callbackBeforeMsgModifyCommand";
    let body = request_fixture(modify);
    // Message content must be a JSON document.
    let answer = scripted(
        &server,
        modify,
        &body,
        json!({"0": {"content": "not json"}}),
    );
    assert_eq!(
        answer,
        json!({"actionCode": 0, "errCode": 777, "errMsg": "moderation broke",
            "errDlt": "plugin 10-scripted failed: invalid_answer", "nextCode": 1})
    );
    server.wait_for_log(&[
        "plugin failed",
        "invalid_answer",
        "changes.content must be a JSON document",
    ]);
    // A misspelt field is not silently ignored; an answer that is not JSON is caught.
    let answer = scripted(&server, modify, &body, json!({"0": {"contnet": "{}"}}));
    assert_eq!(answer["errCode"], 777);
    server.wait_for_log(&["unknown answer field `contnet`"]);
    let answer = scripted(&server, modify, &body, json!({"0": "raw:{\"actionCode\":"}));
    assert_eq!(answer["errCode"], 777);
    server.wait_for_log(&["the answer is not JSON"]);

    // Under the default `continue` policy, the failed plugin is skipped and its changes dropped.
    // An Ex change to a field the request does not carry would crash OpenIM.
    let ex = "callbackBeforeUpdateUserInfoExCommand";
    let answer = scripted(
        &server,
        ex,
        &request_fixture(ex),
        json!({"0": {"faceURL": "x.png"}}),
    );
    assert_eq!(answer, serde_json::from_str::<Value>(GO_ON).unwrap());
    server.wait_for_log(&["changes.faceURL sets a field the request does not carry"]);
    let answer = scripted(
        &server,
        ex,
        &request_fixture(ex),
        json!({"0": {"nickName": "Al"}}),
    );
    assert_eq!(answer, go_on_with(json!({"nickName": "Al"})));
    // Fields OpenIM reads but the host withholds are refused, with the reason.
    let answer = scripted(
        &server,
        ex,
        &request_fixture(ex),
        json!({"0": {"ex": "{\"vip\":true}"}}),
    );
    assert_eq!(answer, serde_json::from_str::<Value>(GO_ON).unwrap());
    server.wait_for_log(&[
        "`ex` is not a change the host offers",
        "OpenIM never sends the user's ex",
    ]);
    // The other user-info command offers `ex`: OpenIM saves it when it is not empty.
    let plain = "callbackBeforeUpdateUserInfoCommand";
    let answer = scripted(
        &server,
        plain,
        &request_fixture(plain),
        json!({"0": {"ex": "{\"vip\":true}"}}),
    );
    assert_eq!(answer, go_on_with(json!({"ex": "{\"vip\":true}"})));
    let answer = scripted(
        &server,
        modify,
        &body,
        json!({"0": {"options": {"history": false}}}),
    );
    assert_eq!(answer["errCode"], 777);
    server.wait_for_log(&[
        "`options` is not a change the host offers",
        "setting one option would wipe the others",
    ]);
    // A joining member's change without userID would crash OpenIM too.
    let join = "callbackBeforeMembersJoinGroupCommand";
    let answer = scripted(
        &server,
        join,
        &request_fixture(join),
        json!({"0": {"memberCallbackList": [{"nickname": "B"}]}}),
    );
    assert_eq!(answer, serde_json::from_str::<Value>(GO_ON).unwrap());
    server.wait_for_log(&["missing field `userID` at memberCallbackList[0]"]);
}

#[test]
fn a_component_built_against_the_first_contract_still_loads_and_answers() {
    // Built from a frozen copy of openim:callback@0.1.0 as it was before this contract grew.
    let server = Server::start(&[("10-guard.wasm", component("legacy_kick"))], "");
    assert_eq!(
        server.kick_decision(&["user1", "admin"], "r"),
        r#"{"actionCode":0,"errCode":10001,"errMsg":"kicking protected users is not allowed","errDlt":"protected users: admin","nextCode":1}"#
    );
    assert_eq!(server.kick_decision(&["user1"], "r"), GO_ON);
}

/// A sample JSON value of a shape (the first entry of lists; `userID` set in member changes).
fn sample(shape: &callback_host::protocol::schema::Shape, name: &str) -> Value {
    use callback_host::protocol::schema::Shape;
    match shape {
        Shape::Bool => json!(true),
        Shape::S32 | Shape::S64 | Shape::U32 => json!(3),
        Shape::String if name == "content" => json!("{\"content\":\"changed\"}"),
        Shape::String if name == "userID" => json!("user-bob"),
        Shape::String => json!(format!("new-{name}")),
        Shape::Option(inner) => sample(inner, name),
        Shape::List(item) => json!([sample(item, name)]),
        Shape::Map(item) => json!({ "k": sample(item, name) }),
        Shape::Record(record) => Value::Object(
            record
                .fields
                .iter()
                .map(|f| (f.json.clone(), sample(&f.shape, &f.json)))
                .collect(),
        ),
        Shape::Enum(cases) => json!(cases[0]),
    }
}

#[test]
fn every_modifying_before_callback_answers_exactly_the_changes_made() {
    use callback_host::protocol::schema::Catalog;
    let server = Server::start(&[("10-scripted.wasm", component("scripted"))], "");
    let mut checked = 0;
    for command in Catalog::get().commands() {
        let Some(changes) = command.changes() else {
            continue;
        };
        let name = command.spec.name;
        // Every change OpenIM applies, each set to a sample value.
        let answer: serde_json::Map<String, Value> = changes
            .fields
            .iter()
            .map(|f| (f.json.clone(), sample(&f.shape, &f.json)))
            .collect();
        // The Ex variant may only change what the request carries: give it every field.
        let body = if command.spec.rules.only_if_present {
            fixture_with(name, json!({"nickName": "a", "faceURL": "b", "ex": "c"}))
        } else {
            request_fixture(name)
        };
        let got = scripted(&server, name, &body, json!({ "0": answer }));
        let mut expected = go_on_with(Value::Object(answer.clone()));
        // Where OpenIM copies fields back, the host adds the request's values of the others.
        for wit in command.spec.rules.echo {
            let (_, field) = command.request.field(wit).unwrap();
            if !answer.contains_key(&field.json) {
                let request: Value = serde_json::from_str(&body).unwrap();
                expected[&field.json] = request[&field.json].clone();
            }
        }
        assert_eq!(got, expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 15);
}
