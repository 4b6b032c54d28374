//! `callback-host new LANG NAME --openim-api` in every language: the project's code makes a real
//! call to OpenIM's API, the config in force gets the grant it needs, and its cases (run against
//! the test runner's stand-in of OpenIM's API) check the call, from the checkout's folder with
//! no `--config`.

use crate::cli::{host, path, text};
use crate::common;
use crate::new_projects::build_project;

#[test]
fn new_with_openims_api_makes_a_call_that_its_cases_check_in_every_language() {
    common::wasm_dir(); // the toolchains are installed by the example build
    // A checkout's layout: its config, and plugins/ beside it.
    let checkout = tempfile::tempdir().unwrap();
    let config = checkout.path().join("callback-host.toml");
    std::fs::write(&config, "# the checkout's config\n").unwrap();
    let plugins = checkout.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let join = "callbackAfterJoinGroupCommand";
    for language in ["rust", "python", "js", "c", "go"] {
        let name = format!("20-bot-{language}");
        let out = common::tool_output(
            checkout.path(),
            &["new", language, &name, "--callback", join, "--openim-api"],
        );
        let said = text(&out.stdout);
        assert!(out.status.success(), "{language}: {}", text(&out.stderr));
        assert!(
            said.contains(&format!(
                "added to callback-host.toml:\n  [plugin_grants.{name}]\n  openim_api = [\"send-message\"]"
            )),
            "{said}"
        );
        let world = std::fs::read_to_string(plugins.join(&name).join("wit/plugin.wit")).unwrap();
        assert!(
            world.contains("include after-join-group-plugin;")
                && world.contains("import openim-api;"),
            "{world}"
        );
        let wasm = build_project(
            &plugins,
            language,
            &name,
            join,
            &["--config", path(&config)],
        );
        // Its cases: the operator told (the stand-in saw send-message), and the callback going on
        // when OpenIM's API is down; the grant read from ./callback-host.toml.
        let cases = format!("plugins/{name}/tests");
        let wasm_arg = format!("plugins/{name}.wasm");
        let out = common::tool_output(checkout.path(), &["test", &cases, "--plugins", &wasm_arg]);
        assert!(
            out.status.success() && text(&out.stdout).ends_with("3 passed, 0 failed\n"),
            "{language}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("an operator is told through OpenIM's API"),
            "{}",
            text(&out.stdout)
        );
        // Elsewhere, with no config: refused, saying what to grant.
        let ungranted = host(&["check", path(&wasm)]);
        let said = text(&ungranted.stderr);
        assert!(
            !ungranted.status.success()
                && said.contains(&format!(
                    "needs the operations it may call in `openim_api = [...]` of \
                     [plugin_grants.{name}]"
                )),
            "{language}: {said}"
        );
    }
    // Each grant was added once; `--config` names the file that gets the next one.
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        config_text.matches("[plugin_grants.20-bot-rust]").count(),
        1
    );
    let out = common::tool_output(
        checkout.path(),
        &[
            "new",
            "rust",
            "20-bot-rust-2",
            "--callback",
            join,
            "--openim-api",
            "--config",
            "callback-host.toml",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("[plugin_grants.20-bot-rust-2]")
    );
}
