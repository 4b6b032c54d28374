//! `callback-host new` in every language: the projects build with their `build.sh` right after
//! the run command (the README's first plugin too), pass `check`, and pass their own cases.

use std::path::Path;
use std::process::Command;

use crate::cli::{host, path, text};
use crate::common::{self, repo_root};

/// Runs `new LANG NAME --dir DIR --callback CMD` (without `--callback` for the kick, the
/// default), builds the project with its build.sh, checks that the result handles `callback`, and
/// returns the built file.
fn new_and_build(plugins: &Path, language: &str, name: &str, callback: &str) -> std::path::PathBuf {
    new_project(plugins, language, name, callback, &[]);
    build_project(plugins, language, name, callback, &[])
}

/// Runs `new LANG NAME --dir DIR --callback CMD EXTRA...`.
fn new_project(plugins: &Path, language: &str, name: &str, callback: &str, extra: &[&str]) {
    let mut args = vec!["new", language, name, "--dir", path(plugins)];
    if callback != "callbackAfterKickGroupCommand" {
        args.extend(["--callback", callback]);
    }
    args.extend(extra);
    let out = host(&args);
    assert!(out.status.success(), "{language}: {}", text(&out.stderr));
}

/// Builds a project made by `new` with its build.sh, checks that the result handles `callback`,
/// and returns the built file.
pub(crate) fn build_project(
    plugins: &Path,
    language: &str,
    name: &str,
    callback: &str,
    check_args: &[&str],
) -> std::path::PathBuf {
    let build = Command::new("bash")
        .arg(plugins.join(name).join("build.sh"))
        .env(
            "COMPONENTIZE_PY",
            repo_root().join(".tools/py/bin/componentize-py"),
        )
        .env("GO", repo_root().join(".tools/go/bin/go"))
        .env(
            "WIZER",
            repo_root().join(".tools/wizer/node_modules/.bin/wizer"),
        )
        // The Rust projects share one target directory, kept between runs: their dependencies
        // (wit-bindgen) are built once, not once per project and run.
        .env("CARGO_TARGET_DIR", repo_root().join("target/new-projects"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{language} build: {}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let wasm = plugins.join(format!("{name}.wasm"));
    let mut args = vec!["check", path(&wasm)];
    args.extend(check_args);
    let out = host(&args);
    assert!(
        text(&out.stdout).contains(&format!("handles {callback}  [typed]")),
        "{language} check: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    wasm
}

/// Runs `callback-host test CASES --plugins WASM` and checks that its `count` cases pass.
pub(crate) fn passes_its_cases(cases: &Path, wasm: &Path, count: usize) {
    let out = host(&["test", path(cases), "--plugins", path(wasm)]);
    assert!(
        out.status.success() && text(&out.stdout).ends_with(&format!("{count} passed, 0 failed\n")),
        "{}: {}{}",
        cases.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The README's "A first plugin" lines, for `language` (the README shows Rust).
fn readme_first_plugin(language: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let block = readme
        .split_once("## A first plugin\n\n```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the README's \"A first plugin\" block")
        .0;
    assert!(block.contains("new rust 30-my-guard"), "{block}");
    block
        .replace(
            "new rust 30-my-guard",
            &format!("new {language} 30-my-guard"),
        )
        .replace("30-my-guard", &format!("30-my-{language}"))
}

#[test]
fn the_readmes_first_plugin_builds_right_after_the_run_command_in_every_language() {
    common::wasm_dir(); // the run command's install step (and more) has run
    // A clone as the run command leaves it: the host in target/release, the toolchains in .tools,
    // the fixtures, and plugins/ (empty here).
    let clone = tempfile::tempdir().unwrap();
    let root = clone.path();
    std::fs::create_dir_all(root.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_callback-host"),
        root.join("target/release/callback-host"),
    )
    .unwrap();
    std::os::unix::fs::symlink(repo_root().join(".tools"), root.join(".tools")).unwrap();
    std::os::unix::fs::symlink(repo_root().join("tests"), root.join("tests")).unwrap();
    std::fs::create_dir(root.join("plugins")).unwrap();
    let kick_root = root.join("root.json");
    std::fs::write(&kick_root, common::kick_body("G", &["root"], "")).unwrap();
    let home = std::env::var_os("HOME").unwrap();
    for language in ["rust", "python", "js", "c", "go"] {
        let lines = readme_first_plugin(language);
        // A new login shell: its own PATH, nothing of this process's environment but HOME
        // (and the Rust projects' shared target directory, so wit-bindgen builds once).
        let out = Command::new("bash")
            .args(["-lc", &format!("set -euo pipefail\n{lines}")])
            .current_dir(root)
            .env_clear()
            .env("HOME", &home)
            .env("CARGO_TARGET_DIR", repo_root().join("target/new-projects"))
            .output()
            .unwrap();
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{language}:\n{lines}\n{said}");
        assert!(
            said.contains("handles callbackAfterKickGroupCommand  [typed]")
                && said.contains("2 passed, 0 failed"),
            "{language}: {said}"
        );
        // It does what its template says: refuse kicking root.
        let wasm = root.join(format!("plugins/30-my-{language}.wasm"));
        let out = host(&["call", path(&wasm), path(&kick_root)]);
        assert_eq!(
            text(&out.stdout).trim(),
            r#"{"actionCode":0,"errCode":4001,"errMsg":"root cannot be kicked","errDlt":"callback-host-call","nextCode":1}"#,
            "{language}"
        );
    }
}

#[test]
fn new_projects_build_and_pass_check_in_every_language() {
    common::wasm_dir(); // the toolchains are installed by the example build
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path();
    // A plugin for any other command logs the request and lets it go on, with every change it
    // may make written out as `none` for the author to fill in. (The kick's project is built
    // by the README's lines, above.)
    let modify = "callbackBeforeMsgModifyCommand";
    let message = plugins.join("modify.json");
    std::fs::write(&message, common::request_fixture(modify)).unwrap();
    for language in ["rust", "python", "js", "c", "go"] {
        let wasm = new_and_build(plugins, language, &format!("40-modify-{language}"), modify);
        let out = host(&["call", path(&wasm), path(&message)]);
        assert_eq!(
            text(&out.stdout).trim(),
            common::GO_ON,
            "{language}: {}",
            text(&out.stderr)
        );
        passes_its_cases(
            &plugins.join(format!("40-modify-{language}/tests")),
            &wasm,
            1,
        );
    }
    let unknown = host(&[
        "new",
        "rust",
        "x",
        "--dir",
        path(plugins),
        "--callback",
        "callbackNope",
    ]);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("unknown callback"));

    let again = host(&["new", "rust", "40-modify-rust", "--dir", path(plugins)]);
    assert!(!again.status.success() && text(&again.stderr).contains("already exists"));
    let bad = host(&["new", "rust", "My Plugin", "--dir", path(plugins)]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("invalid plugin name"));
}
