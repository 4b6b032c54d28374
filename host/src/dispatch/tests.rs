use super::*;

use std::path::Path;

use crate::loading::load::{Loading, load_plugin};
use crate::runtime::plugin::file_digest;
use crate::test_plugins::{Does, json_plugin, runner, until};

#[test]
fn a_command_is_first_seen_once() {
    let firsts = FirstTimes::default();
    assert!(firsts.first("callbackAfterKickGroupCommand"));
    assert!(!firsts.first("callbackAfterKickGroupCommand"));
    assert!(firsts.first("callbackBeforeSendSingleMsgCommand"));
    assert!(!firsts.first("callbackBeforeSendSingleMsgCommand"));
}

/// A dispatcher over `plugins` (file name, component), with `config`.
fn dispatcher(config: &str, plugins: &[(&str, Vec<u8>)]) -> Arc<Dispatcher> {
    let (runner, linker) = runner(config);
    let loading = Loading {
        runner: &runner,
        linker: &linker,
        cache: None,
    };
    let loaded = plugins
        .iter()
        .map(|(file, bytes)| {
            let name = file.trim_end_matches(".wasm");
            let limits = runner.config().plugin(name);
            let plugin = load_plugin(&loading, Path::new(file), bytes, file_digest(bytes), limits);
            Arc::new(plugin.unwrap_or_else(|e| panic!("{file}: {e}")))
        })
        .collect();
    let current = Arc::new(CurrentPlugins::default());
    current.set(Registry::new(loaded, &runner.config().shadow_plugins));
    let metrics = Arc::new(crate::metrics::Metrics::default());
    Arc::new(Dispatcher::new(
        runner,
        current,
        metrics,
        None,
        Arc::new(History::default()),
    ))
}

/// OpenIM's request of `command`, as a callback received now.
fn callback(command: &'static str, body: &str) -> Callback {
    Callback::read(
        command,
        "op-unit".into(),
        body.to_owned().into(),
        Instant::now(),
    )
    .expect("OpenIM's request reads")
}

const SET_GROUP_INFO: &str = "callbackBeforeSetGroupInfoCommand";
const SET_GROUP_INFO_BODY: &str = r#"{"callbackCommand":"callbackBeforeSetGroupInfoCommand","operationID":"op","groupID":"g1","groupName":"old","notification":"","introduction":"","faceURL":"","ex":"","needVerification":0,"lookMemberInfo":0,"applyMemberFriend":0}"#;
const REFUSE: &str = r#"{"actionCode":0,"errCode":20001,"errMsg":"no","errDlt":"","nextCode":1}"#;

/// The plugins' names and decisions, in chain order.
fn decisions(chained: &Chained) -> Vec<(String, Decision)> {
    chained
        .steps
        .iter()
        .map(|s| (s.plugin.to_string(), s.decision.clone()))
        .collect()
}

#[tokio::test]
async fn the_first_refusal_of_a_before_callback_ends_the_chain() {
    let dispatcher = dispatcher(
        "",
        &[
            (
                "10-refuses.wasm",
                json_plugin(SET_GROUP_INFO, Does::Answer(REFUSE)),
            ),
            (
                "20-never-runs.wasm",
                json_plugin(SET_GROUP_INFO, Does::Trap),
            ),
        ],
    );
    let chained = dispatcher
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(chained.outcome, RequestOutcome::Refused);
    let answer: serde_json::Value = serde_json::from_slice(&chained.answer).unwrap();
    assert_eq!(
        (answer["errCode"].clone(), answer["nextCode"].clone()),
        (20001.into(), 1.into())
    );
    assert_eq!(decisions(&chained).len(), 1, "{:?}", decisions(&chained));
}

#[tokio::test]
async fn changes_of_every_plugin_are_merged_each_seeing_the_earlier_ones() {
    let dispatcher = dispatcher(
        "",
        &[
            (
                "10-names.wasm",
                json_plugin(
                    SET_GROUP_INFO,
                    Does::Answer(r#"{"actionCode":0,"nextCode":0,"groupName":"renamed"}"#),
                ),
            ),
            (
                "20-introduces.wasm",
                json_plugin(
                    SET_GROUP_INFO,
                    Does::Answer(r#"{"actionCode":0,"nextCode":0,"introduction":"hello"}"#),
                ),
            ),
        ],
    );
    let chained = dispatcher
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(chained.outcome, RequestOutcome::Ok);
    let answer: serde_json::Value = serde_json::from_slice(&chained.answer).unwrap();
    assert_eq!(answer["groupName"], "renamed", "{answer}");
    assert_eq!(answer["introduction"], "hello", "{answer}");
    assert_eq!(
        decisions(&chained),
        [
            ("10-names".to_owned(), Decision::GoOn),
            ("20-introduces".to_owned(), Decision::GoOn)
        ]
    );
}

#[tokio::test]
async fn a_failed_plugin_is_skipped_or_refuses_by_the_commands_policy() {
    let plugins = [
        ("10-traps.wasm", json_plugin(SET_GROUP_INFO, Does::Trap)),
        (
            "20-names.wasm",
            json_plugin(
                SET_GROUP_INFO,
                Does::Answer(r#"{"actionCode":0,"nextCode":0,"groupName":"renamed"}"#),
            ),
        ),
    ];
    // continue (the default): the next plugin still runs.
    let chained = dispatcher("", &plugins)
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(chained.outcome, RequestOutcome::Ok);
    let steps = decisions(&chained);
    assert!(
        matches!(&steps[0].1, Decision::Failed { cause, .. } if *cause == crate::outcomes::FailureKind::Trap),
        "{steps:?}"
    );
    assert_eq!(steps[1], ("20-names".to_owned(), Decision::GoOn));
    // refuse: the policy's refusal, naming the plugin and the cause; the chain ends.
    let refusing = format!(
        "[commands.{SET_GROUP_INFO}]\nfailure_policy = \"refuse\"\nrefuse_err_code = 5099\n"
    );
    let chained = dispatcher(&refusing, &plugins)
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(
        chained.outcome,
        RequestOutcome::Failed(crate::outcomes::FailureKind::Trap)
    );
    let answer: serde_json::Value = serde_json::from_slice(&chained.answer).unwrap();
    assert_eq!(answer["errCode"], 5099);
    assert_eq!(answer["errDlt"], "plugin 10-traps failed: trap");
    assert_eq!(chained.steps.len(), 1);
}

#[tokio::test]
async fn an_after_callback_refused_still_goes_on_to_every_plugin() {
    const KICKED: &str = "callbackAfterKickGroupCommand";
    let body = r#"{"callbackCommand":"callbackAfterKickGroupCommand","groupID":"g","kickedUserIDs":["u"],"reason":"r"}"#;
    let dispatcher = dispatcher(
        "",
        &[
            ("10-refuses.wasm", json_plugin(KICKED, Does::Answer(REFUSE))),
            (
                "20-sees-it.wasm",
                json_plugin(KICKED, Does::Answer(r#"{"actionCode":0}"#)),
            ),
        ],
    );
    let chained = dispatcher.run(&mut callback(KICKED, body)).await;
    assert_eq!(chained.outcome, RequestOutcome::Ok);
    assert_eq!(chained.answer, CallbackResponse::go_on().to_json());
    let steps = decisions(&chained);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(matches!(
        steps[0].1,
        Decision::Refused {
            err_code: 20001,
            ..
        }
    ));
}

/// A dispatcher whose one plugin, `name`, lets every group change go on, with `stock_instances`
/// of `stock`; and that plugin.
fn going_on(name: &str, stock: u32) -> (Arc<Dispatcher>, Arc<crate::runtime::plugin::Plugin>) {
    let go_on = json_plugin(
        SET_GROUP_INFO,
        Does::Answer(r#"{"actionCode":0,"nextCode":0}"#),
    );
    let dispatcher = dispatcher(
        &format!("[plugins_limits.{name}]\nstock_instances = {stock}\n"),
        &[(&format!("{name}.wasm"), go_on)],
    );
    let plugin = Arc::clone(&dispatcher.plugins().get().chain(SET_GROUP_INFO)[0].plugin);
    (dispatcher, plugin)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_builds_its_own_instance_until_the_stock_is_refilled_then_takes_one_from_it() {
    let (dispatcher, plugin) = going_on("10-stocked", 1);
    assert_eq!(
        plugin.stock.status().ready,
        0,
        "nothing is built before a call"
    );
    // The first call finds none ready: a miss; its answer leaves the refill for after.
    let first = dispatcher
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(first.outcome, RequestOutcome::Ok);
    let status = plugin.stock.status();
    assert_eq!((status.hits, status.misses, status.ready), (0, 1, 0));
    first.spent.settle_later();
    until("the stock refilled", || plugin.stock.status().ready == 1).await;
    // The second takes the instance built ahead: a hit.
    let second = dispatcher
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    assert_eq!(second.outcome, RequestOutcome::Ok);
    let status = plugin.stock.status();
    assert_eq!((status.hits, status.misses, status.ready), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_stock_every_call_builds_its_own_and_none_is_kept() {
    let (dispatcher, plugin) = going_on("10-fresh", 0);
    for _ in 0..3 {
        let chained = dispatcher
            .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
            .await;
        assert_eq!(chained.outcome, RequestOutcome::Ok);
        chained.spent.settle_later();
    }
    assert!(!plugin.stock.enabled());
    let status = plugin.stock.status();
    assert_eq!((status.hits, status.misses, status.ready), (0, 0, 0));
    // Fresh each time: no instance waits for the next call.
    assert!(plugin.take_idle().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_with_no_time_left_fails_by_name_without_running_the_plugin() {
    let dispatcher = dispatcher(
        "",
        &[("10-late.wasm", json_plugin(SET_GROUP_INFO, Does::Trap))],
    );
    let registry = dispatcher.plugins().get();
    let link = &registry.chain(SET_GROUP_INFO)[0];
    let callback = callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY);
    let spent = Spent::default();
    let now = Instant::now();
    let turn = dispatcher
        .answer(
            Attempt {
                link,
                position: 0,
                callback: &callback,
                from: now,
                deadline: now,
                fuel: u64::MAX,
                spent: &spent,
            },
            Input::Json(callback.body()),
            None,
        )
        .await;
    // A trap would say the plugin ran; it did not.
    assert!(
        matches!(turn.result, Err(Failure::NoTimeLeft)),
        "{:?}",
        turn.result
    );
    assert_eq!(
        turn.result.unwrap_err().kind(),
        crate::outcomes::FailureKind::Timeout
    );
    assert_eq!(turn.api_calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_plugin_runs_beside_the_chain_without_deciding_and_its_disagreement_is_kept() {
    let dispatcher = dispatcher(
        "shadow_plugins = [\"20-candidate\"]\n",
        &[
            (
                "10-live.wasm",
                json_plugin(
                    SET_GROUP_INFO,
                    Does::Answer(r#"{"actionCode":0,"nextCode":0}"#),
                ),
            ),
            (
                "20-candidate.wasm",
                json_plugin(SET_GROUP_INFO, Does::Answer(REFUSE)),
            ),
        ],
    );
    let chained = dispatcher
        .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
        .await;
    // The answer is the chain's alone.
    assert_eq!(chained.outcome, RequestOutcome::Ok);
    assert_eq!(
        decisions(&chained),
        [("10-live".to_owned(), Decision::GoOn)]
    );
    // The candidate ran after it, and would have refused.
    until("the disagreement kept", || {
        dispatcher
            .history()
            .disagreements()
            .as_array()
            .is_some_and(|d| !d.is_empty())
    })
    .await;
    let kept = dispatcher.history().disagreements();
    let disagreement = &kept[0];
    assert_eq!(disagreement["plugin"], "20-candidate", "{kept}");
    assert_eq!(disagreement["shadow"]["errCode"], 20001, "{kept}");
    assert_eq!(disagreement["given"]["nextCode"], 0, "{kept}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_runs_the_plugins_not_done_yet_and_says_how_each_did() {
    let dispatcher = dispatcher(
        "",
        &[
            (
                "10-refuses.wasm",
                json_plugin(SET_GROUP_INFO, Does::Answer(REFUSE)),
            ),
            ("20-traps.wasm", json_plugin(SET_GROUP_INFO, Does::Trap)),
            ("30-done.wasm", json_plugin(SET_GROUP_INFO, Does::Trap)),
        ],
    );
    let event = crate::queue::Event {
        command: SET_GROUP_INFO.into(),
        operation_id: "op-delivered".into(),
        body: SET_GROUP_INFO_BODY.into(),
        accepted_ms: crate::util::unix_ms(),
        failures: 1,
        // Handled by an earlier delivery: not run again.
        done: vec!["30-done".into()],
    };
    let delivered = dispatcher.deliver(&event, false).await;
    let results: Vec<(String, Option<crate::outcomes::FailureKind>)> = delivered
        .iter()
        .map(|d| {
            (
                d.plugin.to_string(),
                d.result.as_ref().err().map(Failure::kind),
            )
        })
        .collect();
    // A refusal of an after-callback is handled (OpenIM already did it); the trap is a failure
    // the queue retries; the plugin done before is skipped.
    assert_eq!(
        results,
        [
            ("10-refuses".to_owned(), None),
            (
                "20-traps".to_owned(),
                Some(crate::outcomes::FailureKind::Trap)
            ),
        ]
    );
    // The console has the delivery, with both turns.
    let recent = dispatcher.history().recent(None, None, 10);
    let row = &recent["callbacks"][0];
    assert_eq!(row["operation_id"], "op-delivered", "{recent}");
    assert_eq!(row["outcome"], "trap", "{recent}");
    assert_eq!(row["steps"].as_array().map(Vec::len), Some(2), "{recent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn in_reuse_mode_an_instance_serves_the_next_calls_up_to_its_uses() {
    let dispatcher = dispatcher(
        "[plugins_limits.10-kept]\nreuse_instances = 2\n",
        &[(
            "10-kept.wasm",
            json_plugin(
                SET_GROUP_INFO,
                Does::Answer(r#"{"actionCode":0,"nextCode":0}"#),
            ),
        )],
    );
    let plugin = Arc::clone(&dispatcher.plugins().get().chain(SET_GROUP_INFO)[0].plugin);
    let run = || async {
        let chained = dispatcher
            .run(&mut callback(SET_GROUP_INFO, SET_GROUP_INFO_BODY))
            .await;
        assert_eq!(chained.outcome, RequestOutcome::Ok);
    };
    // The instance that answered `commands()` at load is kept: its first use.
    let kept = plugin.take_idle().expect("the loader's instance kept");
    assert_eq!(kept.uses, 1);
    plugin.put_idle(kept);
    // The first request takes it, its second use: it has served its uses and goes.
    run().await;
    assert!(plugin.take_idle().is_none());
    // The next builds a fresh one, kept after it for one more.
    run().await;
    let kept = plugin.take_idle().expect("kept after its first use");
    assert_eq!(kept.uses, 1);
    // Reuse mode keeps no stock: its instances are kept ones.
    assert!(!plugin.stock.enabled());
}
