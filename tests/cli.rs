//! The plugin tools of the command line: `check`, `call` and `test` (`new`: `new_projects`).

use crate::common;
use crate::new_projects::passes_its_cases;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{component, example, repo_root};

/// Runs `callback-host ARGS` with the tests' compile cache (as `check` and `call` share the
/// server's).
pub(crate) fn host(args: &[&str]) -> Output {
    common::tool_output(Path::new("."), args)
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_accepts_plugins_and_says_why_it_refuses_others() {
    let guard = example("13-guard-py.wasm");
    let out = host(&["check", path(&guard)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("handles 1 callback"), "{stdout}");
    assert!(
        stdout.contains("handles callbackAfterKickGroupCommand  [typed]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exports openim:callback/kick-group-member@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("imports openim:callback/log@0.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("imports wasi:cli/environment@"), "{stdout}");

    // `check` and `call` keep what they compile in the compile cache `serve` uses (here one of
    // their own, made private on first use), one entry per component.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("compiled");
    for (tool, compiles) in [("check", true), ("call", false)] {
        let out = host(&[tool, path(&guard), "--cache-dir", path(&cache_dir)]);
        assert!(out.status.success(), "{tool}: {}", text(&out.stderr));
        // The first compile of a Python plugin takes seconds: said before it starts.
        assert_eq!(
            text(&out.stderr).contains("not in the compile cache yet"),
            compiles,
            "{tool}: {}",
            text(&out.stderr)
        );
    }
    let mut entries: Vec<_> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert!(
        entries.len() == 2
            && entries[0].ends_with(".cwasm")
            && entries[1] == format!("{}.sha256", entries[0]),
        "an entry and its checksum: {entries:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    for (file, reason) in [
        (&not_wasm, "does not start with the WebAssembly header"),
        (&empty, "handles no callback"),
    ] {
        let out = host(&["check", path(file)]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(reason), "{}", text(&out.stderr));
    }
}

#[test]
fn go_plugins_start_from_a_snapshot_of_a_started_runtime() {
    // Built through Wizer, a Go plugin's fresh instance does not start Go's runtime again:
    // its call costs the handler's work (about 85,000 fuel), not the runtime's start as well
    // (about 940,000 without the snapshot).
    for plugin in ["14-guard-go.wasm", "32-group-name-go.wasm"] {
        let file = example(plugin);
        let request = repo_root().join(if plugin.starts_with("14") {
            "tests/fixtures/requests/callbackAfterKickGroupCommand.json"
        } else {
            "tests/fixtures/requests/callbackBeforeSetGroupInfoCommand.json"
        });
        let out = host(&["call", path(&file), path(&request)]);
        assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let fuel: u64 = stderr
            .split("fuel used: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{plugin}: no fuel in {stderr}"));
        assert!(fuel < 300_000, "{plugin}: {fuel} fuel for one call");
    }
}

#[test]
fn call_runs_one_request_and_reports_its_cost() {
    let guard = component("guard");
    let out = host(&["call", path(&guard)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        r#"{"actionCode":0,"errCode":10001,"errMsg":"kicking protected users is not allowed","errDlt":"protected users: admin","nextCode":1}"#
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("fuel used: ") && stderr.contains("peak memory: "),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("kick.json");
    std::fs::write(&request, common::kick_body("G", &["u1"], "loop")).unwrap();
    let out = host(&["call", path(&guard), path(&request)]);
    assert_eq!(text(&out.stdout).trim(), common::GO_ON);

    // Under the configured limits: a tiny fuel budget stops the looping plugin.
    let config = dir.path().join("limits.toml");
    std::fs::write(
        &config,
        "[commands.callbackAfterKickGroupCommand]\nfuel = 1000000\n",
    )
    .unwrap();
    let out = host(&[
        "call",
        path(&component("hostile")),
        path(&request),
        "--config",
        path(&config),
    ]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout).trim(), common::GO_ON);
    assert!(
        text(&out.stderr).contains("fuel exhausted"),
        "{}",
        text(&out.stderr)
    );

    // A bad request is refused with the reason.
    std::fs::write(
        &request,
        "{\"callbackCommand\":\"callbackAfterKickGroupCommand\"}",
    )
    .unwrap();
    let out = host(&["call", path(&guard), path(&request)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("missing field `groupID`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_and_call_stop_a_plugin_whose_commands_never_returns_at_its_deadline() {
    let looping = component("looping_commands");
    let dir = tempfile::tempdir().unwrap();
    // A 2 s timeout less the 500 ms safety margin: 1.5 s for `commands()`.
    let config = dir.path().join("short.toml");
    std::fs::write(
        &config,
        "safety_margin_ms = 500\n[defaults]\ntimeout_secs = 2\n",
    )
    .unwrap();
    for tool in ["check", "call"] {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_callback-host"))
            .args([tool, path(&looping), "--config", path(&config)])
            .env("RUST_LOG", "warn")
            .env("CALLBACK_HOST_CACHE_DIR", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Before the fix the tools spun for good: give up on them after a minute.
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("callback-host {tool} still running after a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = started.elapsed();
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{tool}: {stderr}");
        assert!(
            stderr.contains(
                "calling commands() failed: timeout: still running at the deadline (1500 ms)"
            ),
            "{tool}: {stderr}"
        );
        // The deadline plus a second, plus compiling the component (the first run fills the
        // cache) on a busy 2-core machine.
        assert!(
            took < Duration::from_millis(1500 + 1000 + 2500),
            "{tool} took {took:?}"
        );
    }
}

/// Each example plugin's cases (its source folder's `tests/`), and the plugin file they run on.
const EXAMPLE_CASES: &[(&str, &str)] = &[
    ("guard/tests", "10-guard.wasm"),
    ("guard/tests/config", "10-guard.wasm"),
    ("guard/tests", "11-guard-c.wasm"),
    ("guard/tests", "12-guard-js.wasm"),
    ("guard/tests", "13-guard-py.wasm"),
    ("guard/tests", "14-guard-go.wasm"),
    ("audit/tests", "20-audit.wasm"),
    ("moderation/tests", "30-moderation.wasm"),
    ("group-policy-py/tests", "31-group-policy-py.wasm"),
    ("group-name-go/tests", "32-group-name-go.wasm"),
    ("rate-limit/tests", "40-rate-limit.wasm"),
    ("forward-js/tests", "50-forward-js.wasm"),
    (
        "after-send-moderation/tests",
        "60-after-send-moderation.wasm",
    ),
    ("welcome/tests", "61-welcome.wasm"),
];

#[test]
fn every_example_plugin_passes_its_own_cases() {
    let config = repo_root().join("callback-host.toml");
    for (cases, plugin) in EXAMPLE_CASES {
        let cases = repo_root().join("plugins").join(cases);
        let plugin = example(plugin);
        let out = host(&[
            "test",
            path(&cases),
            "--plugins",
            path(&plugin),
            "--config",
            path(&config),
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success() && stdout.ends_with(" 0 failed\n") && !stdout.contains("FAIL"),
            "{}: {stdout}{}",
            cases.display(),
            text(&out.stderr)
        );
    }
    // Every folder of cases is run above.
    for entry in std::fs::read_dir(repo_root().join("plugins")).unwrap() {
        let tests = entry.unwrap().path().join("tests");
        if tests.is_dir() {
            let folder = tests.strip_prefix(repo_root().join("plugins")).unwrap();
            assert!(
                EXAMPLE_CASES
                    .iter()
                    .any(|(cases, _)| Path::new(cases) == folder),
                "{} is not run",
                folder.display()
            );
        }
    }
}

#[test]
fn a_case_that_does_not_hold_fails_with_the_field_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let case = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    let kick =
        "fixture = \"callbackAfterKickGroupCommand\"\n[request]\nkickedUserIDs = [\"admin\"]\n";
    case(
        "1-holds.toml",
        &format!("{kick}[expect]\nresult = \"refused\"\nerr_code = 10001\n"),
    );
    case(
        "2-wrong-code.toml",
        &format!("name = \"wrong code\"\n{kick}[expect]\nresult = \"refused\"\nerr_code = 10002\n"),
    );
    case(
        "3-wrong-result.toml",
        &format!("{kick}[expect]\nresult = \"go_on\"\n"),
    );
    case(
        "4-unknown-field.toml",
        "fixture = \"callbackAfterKickGroupCommand\"\n[request]\nkickedUsers = [\"admin\"]\n\
         [expect]\nresult = \"go_on\"\n",
    );
    case(
        "5-no-such-fixture.toml",
        "fixture = \"callbackNope\"\n[expect]\nresult = \"go_on\"\n",
    );
    case("6-not-toml.toml", "result = ");
    let out = host(&[
        "test",
        path(dir.path()),
        "--plugins",
        path(&example("10-guard.wasm")),
    ]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        text(&out.stderr).contains("5 of 6 cases did not pass"),
        "{}",
        text(&out.stderr)
    );
    for expected in [
        "pass  1-holds",
        "FAIL  wrong code",
        "      err_code: expected 10002, got 10001",
        "FAIL  3-wrong-result",
        "      result: expected go_on, got refused by 10-guard (10001: kicking protected users is not allowed)",
        "ERROR 4-unknown-field",
        "sets kickedUsers, which OpenIM's request does not have",
        "ERROR 5-no-such-fixture",
        "no fixture \"callbackNope\"",
        "ERROR 6-not-toml",
        "1 passed, 5 failed",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    // A plugin that fails is reported with the failure's kind.
    let hostile = dir.path().join("hostile");
    std::fs::create_dir(&hostile).unwrap();
    std::fs::write(
        hostile.join("panic.toml"),
        "fixture = \"callbackAfterKickGroupCommand\"\n[request]\nreason = \"panic\"\n\
         [expect]\nresult = \"fails\"\ncause = \"trap\"\n",
    )
    .unwrap();
    let out = host(&[
        "test",
        path(&hostile),
        "--plugins",
        path(&component("hostile")),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn the_documented_javascript_json_plugin_builds_and_passes_its_cases() {
    common::wasm_dir(); // componentize-js comes with the examples' toolchains
    let doc = std::fs::read_to_string(repo_root().join("docs/writing-plugins.md")).unwrap();
    let block = doc
        .split("<!-- json-example:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- json-example:end -->").next())
        .expect("the JSON example of docs/writing-plugins.md");
    let code = block
        .trim()
        .strip_prefix("```js")
        .and_then(|code| code.strip_suffix("```"))
        .expect("a js code block");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("friend-policy.js"), code).unwrap();
    let wasm = dir.path().join("60-friend-policy.wasm");
    let build =
        Command::new(repo_root().join("plugins/guard-js/node_modules/.bin/componentize-js"))
            .current_dir(dir.path())
            .arg("--wit")
            .arg(repo_root().join("wit"))
            .args([
                "--world-name",
                "json-handler-plugin",
                "--disable",
                "http",
                "fetch-event",
            ])
            .arg("--out")
            .arg(&wasm)
            .arg("friend-policy.js")
            .output()
            .unwrap();
    assert!(
        build.status.success(),
        "{}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let out = host(&["check", path(&wasm)]);
    assert!(
        text(&out.stdout).contains("handles callbackBeforeAddFriendCommand  [json]"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    for (file, case) in [
        (
            "link.toml",
            "fixture = \"callbackBeforeAddFriendCommand\"\n[request]\n\
             reqMsg = \"win big at https://example.com\"\n\
             [expect]\nresult = \"refused\"\nby = \"60-friend-policy\"\nerr_code = 40001\n\
             err_dlt = \"link in reqMsg\"\n",
        ),
        (
            "friendly.toml",
            "fixture = \"callbackBeforeAddFriendCommand\"\n[expect]\nresult = \"go_on\"\n",
        ),
        (
            "remark.toml",
            "fixture = \"callbackBeforeSetFriendRemarkCommand\"\n[request]\nremark = \"\"\n\
             [expect]\nresult = \"go_on\"\n[expect.changes]\nremark = \"friend\"\n",
        ),
    ] {
        std::fs::write(cases.join(file), case).unwrap();
    }
    passes_its_cases(&cases, &wasm, 3);
}
