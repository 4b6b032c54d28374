//! A plugin that writes to the log: whatever it writes, on any path (its log calls, stdout and
//! stderr, its answer, its commands()), it can neither forge a line of the host's nor flood it.

use crate::common;
use crate::hostile_plugins::{GUARD_REFUSAL, config};

use common::{KICK_PATH, Server, component};

/// What the forging plugins write before their forged line: a line of the host's own text format.
const FORGED: &str = "2026-01-01T00:00:00.000000Z  INFO callback_host: FORGED by a plugin";

/// Posts `body` to `path` under operationID `op` (the forger's instruction) and waits until the
/// host has answered it (its `request answered` line); returns the answer and the bytes the
/// log grew by meanwhile.
fn forge(server: &Server, path: &str, op: &str, body: &str) -> (common::HttpResponse, String) {
    let before = server.log().len();
    let response = server.raw(&common::openim_request(path, op, body.as_bytes()));
    server.wait_until(&format!("{op} answered"), || {
        server.log()[before..]
            .lines()
            .any(|l| l.contains("request answered") && l.contains(op))
    });
    (response, server.log()[before..].to_owned())
}

#[test]
fn a_plugin_can_neither_forge_nor_flood_the_log_on_any_path() {
    let send = common::request_fixture("callbackBeforeSendSingleMsgCommand");
    let modify = common::request_fixture("callbackBeforeMsgModifyCommand");
    let kick = common::kick_body("G001", &["admin"], "r");
    let (send_path, modify_path) = (
        "/callbackExample/callbackBeforeSendSingleMsgCommand",
        "/callbackExample/callbackBeforeMsgModifyCommand",
    );
    // (command path, body, the forger's instruction, whether the forged text reaches the log).
    let cases = [
        (KICK_PATH, &kick, "unknown-field", true),
        // `options` is withheld: the answer is refused before its map is read.
        (modify_path, &modify, "map-key", false),
        (KICK_PATH, &kick, "err-text", true),
        (KICK_PATH, &kick, "not-json", false),
        (KICK_PATH, &kick, "huge", false),
        (KICK_PATH, &kick, "stdout", true),
        (KICK_PATH, &kick, "log", true),
        (KICK_PATH, &kick, "panic", true),
    ];
    for json in [false, true] {
        let server = Server::start_with_args(
            &[
                ("10-forger.wasm", component("forger")),
                ("20-guard.wasm", component("guard")),
                // Refused at load: its `commands()` declares a forged name of 100 KB.
                ("30-forged-commands.wasm", component("forged_commands")),
            ],
            &config(""),
            if json { &["--log-json"] } else { &[] },
        );
        let load = server.wait_for_log(&["30-forged-commands", "is not a callback command"]);
        assert!(load.contains("FORGED") && load.len() < 4096, "{load}");
        for (path, body, op, echoed) in cases {
            let (response, grown) = forge(&server, path, op, body);
            assert_eq!(response.status, 200, "{op}: {}", response.body);
            assert!(
                grown.len() < 16 << 10,
                "{op}: one request grew the log by {} bytes:\n{grown}",
                grown.len()
            );
            if echoed {
                assert!(grown.contains("FORGED by a plugin"), "{op}: {grown}");
            }
        }
        // Plugin text reaches an answer as JSON (escaped by JSON, whole): OpenIM shows it.
        let (refused, _) = forge(&server, send_path, "err-text", &send);
        let answer = refused.json();
        assert_eq!(answer["errCode"], 5001, "{}", refused.body);
        assert!(
            answer["errMsg"]
                .as_str()
                .unwrap()
                .starts_with(&format!("\n{FORGED}")),
            "{}",
            refused.body
        );
        if !json {
            // The guard after the forger still decides a kick.
            assert_eq!(server.kick_decision(&["admin"], "r"), GUARD_REFUSAL);
        }

        let log = server.log();
        assert!(
            !log.contains('\r') && !log.contains('\u{1b}'),
            "a plugin's control characters reached the log raw"
        );
        for line in log.lines() {
            assert!(
                !line.starts_with(FORGED),
                "a forged line in the log: {line}"
            );
            if json {
                assert!(
                    serde_json::from_str::<serde_json::Value>(line).is_ok(),
                    "not a JSON line: {line}"
                );
            } else {
                // Each line is one of the host's: a timestamp, then a level.
                let level = line.get(27..).unwrap_or("").trim_start();
                assert!(
                    line.as_bytes().get(26) == Some(&b'Z')
                        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                            .iter()
                            .any(|l| level.starts_with(l)),
                    "not a line of the host's: {line}"
                );
            }
        }
        // Each path was taken, and showed the plugin's text escaped.
        for part in [
            "unknown answer field",
            "after-callback refused by a plugin",
            "the answer is not JSON",
            "the cap of a whole answer",
            "stream",
            "plugin output over the cap",
            "unreachable executed",
        ] {
            assert!(log.contains(part), "no {part:?} in the log:\n{log}");
        }
        // A newline of the plugin's shows as `\n` (itself escaped once more in a JSON line).
        let escaped = if json {
            "\\\\n2026-01-01"
        } else {
            "\\n2026-01-01"
        };
        assert!(log.contains(escaped), "{log}");
        assert!(
            log.contains("`options` is not a change the host offers"),
            "{log}"
        );
    }

    // A shadow plugin's answer, quoted in a disagreement, is escaped and capped the same way.
    let shadowed = Server::start(
        &[
            ("10-guard.wasm", component("guard")),
            ("20-forger.wasm", component("forger")),
        ],
        &format!("shadow_plugins = [\"20-forger\"]\n{}", config("")),
    );
    let (_, _) = forge(&shadowed, KICK_PATH, "err-text", &kick);
    let line = shadowed.wait_for_log(&["shadow plugin disagrees", "20-forger"]);
    assert!(
        line.contains("FORGED by a plugin") && !line.contains('\r'),
        "{line}"
    );
}
