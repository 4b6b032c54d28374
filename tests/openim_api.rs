//! Plugins acting on OpenIM through its API (`openim:callback/openim-api`), against the fake of
//! OpenIM's API layer ([`FakeOpenim`](crate::fake_openim::FakeOpenim), written from its source).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, GO_ON, Server, example, openim_request};
use crate::fake_openim::{FakeOpenim, Mode, SECRET};

/// The two example plugins with their grants, pointed at `fake`.
fn examples(fake: &FakeOpenim, extra: &str) -> Server {
    let config = format!(
        "{}\n[plugin_grants.60-after-send-moderation]\nopenim_api = [\"revoke-message\", \
         \"send-message\"]\n[plugin_grants.61-welcome]\nopenim_api = [\"send-message\"]\n\
         [plugin_config.61-welcome]\nsender = \"welcome-bot\"\n{extra}",
        fake.section()
    );
    Server::start_in_env(
        common::dir_with_plugins(&[
            (
                "60-after-send-moderation.wasm",
                example("60-after-send-moderation.wasm"),
            ),
            ("61-welcome.wasm", example("61-welcome.wasm")),
        ]),
        &config,
        &[],
        &[("CALLBACK_HOST_OPENIM_SECRET", SECRET)],
    )
}

/// The api-probe fixture (it reads, mutes, unmutes and kicks on each join, inline), granted
/// its operations, pointed at `fake`.
pub(crate) fn api_probe(fake: &FakeOpenim) -> Server {
    let config = format!(
        "{}[plugin_grants.10-api-probe]\nopenim_api = [\"mute-group-member\", \
         \"unmute-group-member\", \"kick-group-members\", \"get-users-info\"]\n\
         [commands.callbackAfterJoinGroupCommand]\ndelivery = \"inline\"\n",
        fake.section()
    );
    Server::start_in_env(
        common::dir_with_plugins(&[("10-api-probe.wasm", common::component("api_probe"))]),
        &config,
        &[],
        &[("CALLBACK_HOST_OPENIM_SECRET", SECRET)],
    )
}

/// The welcome example alone, with `config` and OpenIM's secret in the environment.
pub(crate) fn welcome_alone(config: &str) -> Server {
    Server::start_in_env(
        common::dir_with_plugins(&[("61-welcome.wasm", example("61-welcome.wasm"))]),
        config,
        &[],
        &[("CALLBACK_HOST_OPENIM_SECRET", SECRET)],
    )
}

/// OpenIM's join callback with operationID `op`.
pub(crate) fn join(server: &Server, op: &str) -> common::HttpResponse {
    let body = common::request_fixture("callbackAfterJoinGroupCommand");
    server.raw(&openim_request(
        "/callbackExample/callbackAfterJoinGroupCommand",
        op,
        body.as_bytes(),
    ))
}

/// OpenIM's after-send callback of a one-to-one message saying `text`, with operationID `op`.
fn sent(server: &Server, op: &str, text: &str) -> common::HttpResponse {
    let mut body: Value = serde_json::from_str(&common::request_fixture(
        "callbackAfterSendSingleMsgCommand",
    ))
    .unwrap();
    body["content"] = json!(json!({ "content": text }).to_string());
    body["seq"] = json!(42);
    server.raw(&openim_request(
        "/callbackExample/callbackAfterSendSingleMsgCommand",
        op,
        body.to_string().as_bytes(),
    ))
}

/// The `callback_host_openim_api_calls_total` line of a plugin, operation and outcome.
pub(crate) fn api_calls(server: &Server, plugin: &str, operation: &str, outcome: &str) -> f64 {
    server.metric(&format!(
        "callback_host_openim_api_calls_total{{plugin=\"{plugin}\",operation=\"{operation}\",\
         outcome=\"{outcome}\"}}"
    ))
}

#[test]
fn the_examples_revoke_warn_and_welcome_with_one_token_for_many_calls() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = examples(&fake, "");
    // A disguised blocked phrase, sent one to one: revoked as its sender, then the sender warned.
    assert_eq!(
        sent(&server, "op-spam", "f r e e  b 1 t c 0 i n!").body,
        GO_ON
    );
    server.wait_until("the revoke and the warning", || fake.taken().len() == 2);
    let taken = fake.taken();
    assert_eq!(taken[0].route, "/msg/revoke_msg");
    assert_eq!(
        taken[0].body,
        json!({"userID": "user-alice", "conversationID": "si_user-alice_user-bob", "seq": 42})
    );
    assert_eq!(taken[0].operation_id, "op-spam");
    assert_eq!(taken[1].route, "/msg/send_msg");
    let warning = &taken[1].body;
    assert_eq!(
        (
            &warning["sendID"],
            &warning["recvID"],
            &warning["sessionType"]
        ),
        (&json!("imAdmin"), &json!("user-alice"), &json!(1))
    );
    assert_eq!(warning["contentType"], 101);
    assert!(
        warning["content"]["content"]
            .as_str()
            .unwrap()
            .contains("removed")
    );
    // A clean message calls nothing.
    assert_eq!(sent(&server, "op-clean", "see you at five").body, GO_ON);
    // Twenty joins: twenty welcomes to the group, from the configured sender.
    for i in 0..20 {
        assert_eq!(join(&server, &format!("op-join-{i}")).body, GO_ON);
    }
    server.wait_until("twenty welcomes", || fake.taken().len() == 22);
    let welcome = &fake.taken()[21].body;
    assert_eq!(
        (
            &welcome["sendID"],
            &welcome["groupID"],
            &welcome["sessionType"]
        ),
        (&json!("welcome-bot"), &json!("group-1"), &json!(3))
    );
    assert_eq!(welcome["recvID"], "");
    // One token for all 22 calls; the clean message was checked and called nothing.
    server.wait_until("the clean message handled", || {
        server.decision("op-clean") == GO_ON
    });
    assert_eq!(fake.taken().len(), 22);
    assert_eq!(fake.fetches(), 1);
    assert_eq!(
        server.metric("callback_host_openim_api_token_fetches_total{outcome=\"ok\"}"),
        1.0
    );
    // Connections are kept between calls: at most one per queue worker (8) and the token's.
    assert!(
        fake.connections() <= 9,
        "{} connections",
        fake.connections()
    );
    // Counted once OpenIM's answer is read, just after the fake has taken the request.
    server.wait_until("twenty welcomes counted", || {
        api_calls(&server, "61-welcome", "send-message", "ok") == 20.0
    });
    assert_eq!(
        api_calls(&server, "60-after-send-moderation", "revoke-message", "ok"),
        1.0
    );
}

#[test]
fn the_token_is_fetched_again_after_it_expires_and_once_when_openim_refuses_it() {
    let fake = FakeOpenim::start(Duration::from_secs(2));
    let server = examples(
        &fake,
        "[commands.callbackAfterJoinGroupCommand]\ndelivery = \"inline\"\n",
    );
    assert_eq!(join(&server, "op-1").body, GO_ON);
    assert_eq!(join(&server, "op-2").body, GO_ON);
    assert_eq!((fake.taken().len(), fake.fetches()), (2, 1));
    // Past nine tenths of its life, the host fetches a new one before using it.
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(join(&server, "op-3").body, GO_ON);
    assert_eq!((fake.taken().len(), fake.fetches()), (3, 2));
    assert!(fake.token_refusals().is_empty());
    // OpenIM forgets it (a kicked token): refused with 1507, fetched again, sent once more.
    fake.forget_tokens();
    assert_eq!(join(&server, "op-4").body, GO_ON);
    assert_eq!((fake.taken().len(), fake.fetches()), (4, 3));
    assert_eq!(fake.token_refusals(), vec![1507]);
    assert_eq!(api_calls(&server, "61-welcome", "send-message", "ok"), 4.0);
    // One after the other, on one kept connection, the token's requests included.
    assert_eq!(fake.connections(), 1);
}

#[test]
fn the_secret_and_the_token_never_show_in_the_log_the_answers_or_the_console() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = examples(&fake, "");
    let answers = [
        sent(&server, "op-a", "free bitc0in").body,
        join(&server, "op-b").body,
    ];
    server.wait_until("three calls", || fake.taken().len() == 3);
    let token = fake.first_token();
    // The token went to OpenIM in its header, and the secret only in the token request's body.
    let headers = fake.headers();
    assert!(headers.contains(&token));
    assert!(!headers.iter().any(|h| h.contains(SECRET)));
    // Each delivery is in the console once its plugins have run (just after OpenIM's last call),
    // beside the callback's "queued" answer, which has no turns.
    let recent = || Server::get(&server.addr, "/console/api/recent?limit=50").body;
    let turns_in = |console: &str, op: &str| -> Option<Vec<Value>> {
        let recent: Value = serde_json::from_str(console).unwrap();
        recent["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["operation_id"] == op)
            // A queued callback's row carries its delivery, with the plugins' turns.
            .filter_map(|c| c["delivery"]["steps"].as_array().cloned())
            .find(|steps| !steps.is_empty())
    };
    server.wait_until("both deliveries in the console", || {
        let console = recent();
        turns_in(&console, "op-a").is_some() && turns_in(&console, "op-b").is_some()
    });
    let console = recent();
    let overview = Server::get(&server.addr, "/console/api/overview").body;
    let metrics = Server::get(&server.addr, "/metrics").body;
    // The console shows each plugin's OpenIM calls under its turn.
    let turns = |op: &str| turns_in(&console, op).unwrap();
    let welcome = turns("op-b");
    assert_eq!(welcome[0]["plugin"], "61-welcome");
    assert_eq!(
        welcome[0]["api_calls"],
        json!([{"operation": "send-message", "outcome": "ok"}])
    );
    assert_eq!(
        turns("op-a")[0]["api_calls"],
        json!([
            {"operation": "revoke-message", "outcome": "ok"},
            {"operation": "send-message", "outcome": "ok"},
        ])
    );
    for (what, text) in [
        ("the log", server.log()),
        ("the answers", answers.join("\n")),
        ("the console", format!("{console}{overview}")),
        ("the metrics", metrics),
    ] {
        assert!(!text.contains(SECRET), "the secret is in {what}");
        assert!(!text.contains(&token), "the token is in {what}");
    }
    server.wait_for_log(&["fetched OpenIM's admin token", "admin_user=imAdmin"]);
}

#[test]
fn a_plugin_without_the_grant_is_refused_at_load_or_per_operation() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    // No grant at all: not loaded, and the log says what to add.
    let ungranted = welcome_alone(&fake.section());
    ungranted.wait_for_log(&[
        "plugin not loaded",
        "61-welcome",
        "needs the operations it may call in `openim_api = [...]` of [plugin_grants.61-welcome]",
    ]);
    // Granted another operation: its send is refused by the host, and OpenIM never sees it.
    let config = format!(
        "{}[plugin_grants.61-welcome]\nopenim_api = [\"revoke-message\"]\n\
         [commands.callbackAfterJoinGroupCommand]\ndelivery = \"inline\"\n",
        fake.section()
    );
    let server = welcome_alone(&config);
    assert_eq!(join(&server, "op-denied").body, GO_ON);
    assert_eq!(
        api_calls(&server, "61-welcome", "send-message", "not_granted"),
        1.0
    );
    server.wait_for_log(&["could not send the welcome", "NotGranted"]);
    assert!(fake.taken().is_empty());
    assert_eq!(fake.fetches(), 0);
}

#[test]
fn a_slow_openim_api_does_not_break_the_deadline() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = examples(
        &fake,
        "[commands.callbackAfterJoinGroupCommand]\ndelivery = \"inline\"\ntimeout_secs = 2\n",
    );
    // Warm: the token is fetched.
    assert_eq!(join(&server, "op-warm").body, GO_ON);
    fake.set(Mode::Slow(Duration::from_secs(10)));
    let started = Instant::now();
    let answer = join(&server, "op-slow");
    let took = started.elapsed();
    // OpenIM gets its answer by the host's deadline (its 2 s timeout less the 0.5 s safety
    // margin; 2.5 s allows for this shared machine's scheduling), not when its API answers (10 s):
    // the call timed out for the plugin, which asked for a retry (a failure, under "continue").
    assert_eq!(answer.body, GO_ON);
    assert!(
        took < Duration::from_millis(2_500),
        "answered after {took:?}"
    );
    assert_eq!(
        api_calls(&server, "61-welcome", "send-message", "timeout"),
        1.0
    );
    assert_eq!(
        server.metric(
            "callback_host_plugin_calls_total{plugin=\"61-welcome\",outcome=\"retry_requested\"}"
        ),
        1.0
    );
}

#[test]
fn with_openims_api_down_a_queued_action_is_retried_until_it_is_done() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = examples(&fake, "[queue]\nretry_base_ms = 200\nmax_attempts = 10\n");
    fake.set(Mode::Down);
    // Queued: OpenIM is answered at once, whatever its API does.
    assert_eq!(join(&server, "op-down").body, GO_ON);
    server.wait_until("a failed delivery to be retried", || {
        server.metric("callback_host_queue_retries_total") >= 1.0
    });
    assert!(fake.taken().is_empty());
    assert!(api_calls(&server, "61-welcome", "send-message", "unavailable") >= 1.0);
    fake.set(Mode::Up);
    server.wait_until("the welcome sent once OpenIM is back", || {
        fake.taken().len() == 1
    });
    server.wait_until("the event handled", || {
        server.metric("callback_host_queue_handled_total") == 1.0
    });
    assert_eq!(server.metric("callback_host_queue_dead_letters_total"), 0.0);
}

#[test]
fn the_rate_cap_refuses_calls_beyond_it_without_reaching_openim() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    // A cap of 1 a second.
    let config = format!(
        "{}[plugin_grants.61-welcome]\nopenim_api = [\"send-message\"]\nopenim_api_rate = 1\n\
         [commands.callbackAfterJoinGroupCommand]\ndelivery = \"inline\"\n",
        fake.section()
    );
    let server = welcome_alone(&config);
    let started = Instant::now();
    for i in 0..6 {
        assert_eq!(join(&server, &format!("op-rate-{i}")).body, GO_ON);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = api_calls(&server, "61-welcome", "send-message", "ok");
    let limited = api_calls(&server, "61-welcome", "send-message", "rate_limited");
    assert_eq!(ok + limited, 6.0);
    // A burst of 1, then 1 a second: at most 1 + elapsed went through (6 in under 5 s are
    // limited at least once).
    assert!(
        ok >= 1.0 && ok <= 1.0 + elapsed.ceil(),
        "{ok} ok in {elapsed:.2} s"
    );
    assert!(limited >= 1.0, "{limited} limited in {elapsed:.2} s");
    assert_eq!(fake.taken().len() as f64, ok);
}

#[test]
fn every_operation_reaches_its_openim_route_with_openims_json() {
    // The operations the examples do not use, through a fixture plugin that calls each.
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = api_probe(&fake);
    assert_eq!(join(&server, "op-probe").body, GO_ON);
    let taken = fake.taken();
    let routes: Vec<&str> = taken.iter().map(|t| t.route.as_str()).collect();
    assert_eq!(
        routes,
        [
            "/user/get_users_info",
            "/group/mute_group_member",
            "/group/cancel_mute_group_member",
            "/group/kick_group",
        ]
    );
    assert_eq!(taken[0].body, json!({"userIDs": ["user-a", "user-b"]}));
    assert_eq!(
        taken[1].body,
        json!({"groupID": "group-1", "userID": "user-a", "mutedSeconds": 600})
    );
    assert_eq!(
        taken[2].body,
        json!({"groupID": "group-1", "userID": "user-a"})
    );
    assert_eq!(
        taken[3].body,
        json!({"groupID": "group-1", "kickedUserIDs": ["user-b"], "reason": "spam"})
    );
    // The probe logs what get-users-info gave it back.
    server.wait_for_log(&["users read", "nick of user-a", "nick of user-b"]);
}
