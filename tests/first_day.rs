//! What a newcomer meets first: the checkout's config read without `--config`, and a test that
//! cannot run here saying so (and failing under `CI=true`).

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::example;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_config_file_in_the_current_directory_is_read_when_none_is_named() {
    // A checkout's layout: plugins/ and callback-host.toml granting what a plugin imports.
    let dir = common::dir_with_plugins(&[("40-rate-limit.wasm", example("40-rate-limit.wasm"))]);
    let plugin = "plugins/40-rate-limit.wasm";
    std::fs::write(
        dir.path().join("callback-host.toml"),
        "[plugin_grants.40-rate-limit]\nkeyvalue = true\n[keyvalue]\npath = \"data/kv.redb\"\n",
    )
    .unwrap();

    let out = common::tool_output(dir.path(), &["check", plugin]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("config: callback-host.toml (found in the current directory"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("imports wasi:keyvalue/atomics@0.2.0-draft  [granted"),
        "{}",
        text(&out.stdout)
    );

    // `serve` says which file is in force, and loads the plugin with its grant.
    let mut child = common::callback_host()
        .args(["serve", "--listen", "127.0.0.1:0", "--no-watch"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start callback-host");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on "), "{first:?}");
    common::sigterm(child.id());
    let output = child.wait_with_output().unwrap();
    let log = text(&output.stderr);
    assert!(
        log.contains("config: callback-host.toml (found in the current directory"),
        "{log}"
    );
    assert!(!log.contains("plugin not loaded"), "{log}");
    assert!(log.contains("40-rate-limit"), "{log}");

    // Without the file: the defaults, said so, and the grant error names --config.
    std::fs::remove_file(dir.path().join("callback-host.toml")).unwrap();
    let out = common::tool_output(dir.path(), &["check", plugin]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for part in [
        "config: none (no --config FILE and no ./callback-host.toml)",
        "no config file was read",
        "--config FILE",
        "needs `keyvalue = true` in [plugin_grants.40-rate-limit]",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }

    // A file named on the command line wins over the one here.
    std::fs::write(dir.path().join("callback-host.toml"), "").unwrap();
    let named = dir.path().join("granting.toml");
    std::fs::write(&named, "[plugin_grants.40-rate-limit]\nkeyvalue = true\n").unwrap();
    let out = common::tool_output(dir.path(), &["check", plugin, "--config", "granting.toml"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("config: granting.toml\n"), "{stderr}");
}

/// Not a test of its own: run by the one below in a process of its own, with and without `CI`.
#[test]
#[ignore = "run by a_test_that_cannot_run_says_so_and_fails_under_ci, in a process of its own"]
fn cannot_run_probe() {
    common::cannot_run("the probe", "it is told it cannot");
}

#[test]
fn a_test_that_cannot_run_says_so_and_fails_under_ci() {
    let run = |ci: bool, skips: &Path| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "first_day::cannot_run_probe"])
            .env("CALLBACK_HOST_TEST_SKIPS", skips)
            .env_remove("CI");
        if ci {
            command.env("CI", "true");
        }
        command.output().expect("run the suite's probe")
    };
    let scratch = tempfile::tempdir().unwrap();
    let skips = scratch.path().join("skips.log");

    // Here: the test passes, and the skip shows in the output although the harness captures it.
    let out = run(false, &skips);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        stderr.contains("SKIPPED: the probe: it is told it cannot"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&skips).unwrap(),
        "SKIPPED: the probe: it is told it cannot\n"
    );

    // Under CI=true: a failure that says what is missing, and no skip recorded.
    std::fs::remove_file(&skips).unwrap();
    let out = run(true, &skips);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("the probe cannot run under CI=true: it is told it cannot"),
        "{stdout}"
    );
    assert!(!skips.exists());
}
