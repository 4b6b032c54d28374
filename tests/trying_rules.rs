//! Trying a new rule safely: a shadow plugin on live traffic (compared, never deciding, never
//! delaying the answer), recorded callbacks, and `callback-host replay` through a new plugin
//! directory.

use crate::common;

use std::time::{Duration, Instant};

use common::{
    GO_ON, KICK_PATH, Server, component, example, kick_body, openim_request, request_fixture,
};

const SEND: &str = "callbackBeforeSendSingleMsgCommand";

fn message(text: &str) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&request_fixture(SEND)).unwrap();
    body["contentType"] = 101.into();
    body["content"] = serde_json::json!({ "content": text }).to_string().into();
    body.to_string()
}

#[test]
fn a_shadow_plugin_is_compared_off_the_answer_path_and_disagreements_are_recorded_for_replay() {
    // Live, nothing decides messages and the guard decides kicks. In the shadows: the moderation
    // rule to be tried, and a slow plugin on kicks.
    let server = Server::start_with_args(
        &[
            ("10-guard.wasm", component("guard")),
            ("15-hostile.wasm", component("hostile")),
            ("30-moderation.wasm", example("30-moderation.wasm")),
        ],
        "shadow_plugins = [\"15-hostile\", \"30-moderation\"]\n\
         [defaults]\ndelivery = \"inline\"\ntimeout_secs = 5\n\
         [record]\nbefore_sample = 1.0\n",
        &["--admin-listen", "127.0.0.1:0"],
    );
    let path = format!("/callbackExample/{SEND}");
    let clean = server.raw(&openim_request(
        &path,
        "op-clean",
        message("see you at 5").as_bytes(),
    ));
    assert_eq!(clean.body, GO_ON);
    // The shadow would refuse it; it is not asked: the message goes on.
    let spam = server.raw(&openim_request(
        &path,
        "op-spam",
        message("FREE bitcoin here").as_bytes(),
    ));
    assert_eq!(spam.body, GO_ON);
    // The slow shadow (1.5 s) does not delay the answer of the kick.
    let started = Instant::now();
    let kick = server.raw(&openim_request(
        KICK_PATH,
        "op-kick",
        kick_body("G", &["u"], "work 1500").as_bytes(),
    ));
    assert_eq!(kick.body, GO_ON);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    let line = server.wait_for_log(&["shadow plugin disagrees", "op-spam"]);
    assert!(line.contains("blocked phrase: free bitcoin"), "{line}");
    server.wait_for_log(&["shadow plugin disagrees", "op-kick", "15-hostile"]);
    let shadow = |plugin: &str, command: &str, verdict: &str| {
        server.metric(&format!(
                "callback_host_shadow_total{{command=\"{command}\",plugin=\"{plugin}\",verdict=\"{verdict}\"}}"
            ),
        )
    };
    assert_eq!(shadow("30-moderation", SEND, "agree"), 1.0);
    assert_eq!(shadow("30-moderation", SEND, "disagree"), 1.0);
    assert_eq!(
        shadow("15-hostile", "callbackAfterKickGroupCommand", "disagree"),
        1.0
    );

    // Recorded: both messages (the sample is 1), and each disagreement.
    let recorded = server.dir().join("data/recorded.jsonl");
    server.wait_until("4 records", || {
        std::fs::read_to_string(&recorded).is_ok_and(|text| text.lines().count() == 4)
    });
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&recorded)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["operation_id"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("before", "op-clean"),
        ("before", "op-spam"),
        ("shadow", "op-spam"),
        ("shadow", "op-kick"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }

    // Yesterday's traffic through the new rule: the spam is answered differently, field by field.
    let candidate = tempfile::tempdir().unwrap();
    std::fs::copy(
        example("30-moderation.wasm"),
        candidate.path().join("30-moderation.wasm"),
    )
    .unwrap();
    let stdout = common::cli(
        candidate.path(),
        &[
            "replay".as_ref(),
            "--plugins".as_ref(),
            candidate.path().as_os_str(),
            "--recorded".as_ref(),
            recorded.as_os_str(),
        ],
    );
    assert!(
        stdout.contains(&format!("{SEND} op-clean: same")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{SEND} op-spam: differs: errCode 0 -> 20001, errDlt \"\" -> \"blocked phrase: free bitcoin\", errMsg \"\" -> \"message blocked by moderation\", nextCode 0 -> 1"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("callbackAfterKickGroupCommand op-kick: same"),
        "{stdout}"
    );
    assert!(
        stdout.contains("replayed 4: 2 same or handled, 2 differ or still fail"),
        "{stdout}"
    );
}
