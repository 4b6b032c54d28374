//! OpenIM's API errors as OpenIM means them, against the fake of its API layer
//! ([`FakeOpenim`](crate::fake_openim::FakeOpenim)): a body its validators refuse comes back as
//! OpenIM's error (HTTP 400, errCode 1001), not as an API that is unavailable; a sign-in it
//! refuses (a wrong or rotated secret) is an error of its own, loud in the log and the metrics.

use std::time::Duration;

use serde_json::Value;

use crate::common::{self, GO_ON, Server, example, openim_request};
use crate::fake_openim::FakeOpenim;
use crate::openim_api::{api_calls, api_probe, join};

#[test]
fn a_body_openims_validators_refuse_is_openims_error_not_an_unavailable_api() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let server = api_probe(&fake);
    // A join without a group: the probe mutes, unmutes and kicks in group "", which OpenIM's
    // binding refuses with HTTP 400 and its envelope.
    let mut body: Value =
        serde_json::from_str(&common::request_fixture("callbackAfterJoinGroupCommand")).unwrap();
    body["groupID"] = "".into();
    let answer = server.raw(&openim_request(
        "/callbackExample/callbackAfterJoinGroupCommand",
        "op-no-group",
        body.to_string().as_bytes(),
    ));
    assert_eq!(answer.body, GO_ON);
    for operation in [
        "mute-group-member",
        "unmute-group-member",
        "kick-group-members",
    ] {
        assert_eq!(
            api_calls(&server, "10-api-probe", operation, "openim_error"),
            1.0,
            "{operation}"
        );
        assert_eq!(
            api_calls(&server, "10-api-probe", operation, "unavailable"),
            0.0,
            "{operation}"
        );
    }
    // The plugin got OpenIM's code, message and detail.
    server.wait_for_log(&[
        "call failed",
        "code: 1001",
        "ArgsError",
        "MuteGroupMemberReq.GroupID",
        "failed on the",
        "required",
    ]);
    // Only the read got through.
    let taken = fake.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].route, "/user/get_users_info");
}

#[test]
fn a_refused_sign_in_is_its_own_error_loud_in_the_log_and_retried_by_the_queue() {
    let fake = FakeOpenim::start(Duration::from_secs(3600));
    let config = format!(
        "{}[plugin_grants.61-welcome]\nopenim_api = [\"send-message\"]\n\
         [queue]\nretry_base_ms = 100\nmax_attempts = 3\n",
        fake.section()
    );
    // OpenIM's secret was rotated: the host still has the old one.
    let rotated_away = "the-secret-before-rotation";
    let server = Server::start_in_env(
        common::dir_with_plugins(&[("61-welcome.wasm", example("61-welcome.wasm"))]),
        &config,
        &[],
        &[("CALLBACK_HOST_OPENIM_SECRET", rotated_away)],
    );
    // Queued: OpenIM is answered at once; the welcome asks to be retried, then is a dead letter.
    assert_eq!(join(&server, "op-rotated").body, GO_ON);
    server.wait_until("the event dead-lettered after its attempts", || {
        server.metric("callback_host_queue_dead_letters_total") == 1.0
    });
    assert!(api_calls(&server, "61-welcome", "send-message", "sign_in_refused") >= 3.0);
    assert_eq!(
        api_calls(&server, "61-welcome", "send-message", "unavailable"),
        0.0
    );
    assert_eq!(
        api_calls(&server, "61-welcome", "send-message", "openim_error"),
        0.0
    );
    // What the sign-in alert counts (CallbackHostOpenimSignInFailing: any outcome but ok).
    assert!(
        server.metric("callback_host_openim_api_token_fetches_total{outcome=\"sign_in_refused\"}")
            >= 3.0
    );
    // An error line that says what to fix, without the secret.
    server.wait_for_log(&[
        "ERROR",
        "OpenIM refused the host's sign-in as its admin user (errCode 1002: NoPermissionError)",
        "check [openim_api] admin_user and the secret",
    ]);
    // The plugin told it apart from a refused operation.
    server.wait_for_log(&["could not send the welcome", "SignInRefused", "code: 1002"]);
    assert!(!server.log().contains(rotated_away));
    // Nothing reached OpenIM past its sign-in.
    assert!(fake.taken().is_empty());
    assert_eq!(fake.fetches(), 0);
}
