//! Fuzzing of everything an untrusted party controls, on stable Rust: the request body of every
//! command (from OpenIM or whoever reaches the port), the answer a plugin returns (typed values
//! and JSON), and the operator's config and `webhooks.yml`.
//!
//! Each target starts from valid inputs (the request fixtures, inputs generated from the
//! commands' shapes, the README's config) and mutates them: structurally (a field dropped,
//! retyped, nulled, nested, duplicated) and byte by byte (flips, cuts, splices, tricky tokens).
//! Properties checked beside "never panics":
//! - the fast body decoder accepts exactly what the precise one accepts, with the same value,
//!   and an accepted body survives encode-then-decode unchanged;
//! - a plugin's answer that is accepted stays within the answer caps, merges without panicking,
//!   and yields an answer for OpenIM that is JSON of bounded size.
//!
//! `scripts/fuzz.sh SECONDS` runs every target for that long (in release mode); the normal test
//! run gives each a second. A failing input is written to `target/fuzz-failures/` and the seed
//! printed; `FUZZ_SEED=<seed>` replays it.

use crate::common;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use callback_host::config::Config;
use callback_host::protocol::answer::{self, MAX_ERR_TEXT, Merge};
use callback_host::protocol::convert;
use callback_host::protocol::schema::{AnswerShape, Catalog, Command, Shape};
use callback_host::protocol::{self};
use callback_host::webhooks::Webhooks;
use serde_json::{Map, Value};
use wasmtime::component::Val;

mod generate;

use generate::*;

/// Runs `target` on generated inputs for the configured time; a panic is reported with the seed
/// and the input, which is saved for replay.
fn fuzz(name: &str, mut target: impl FnMut(&mut Rng) -> Vec<u8>) {
    let seconds: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let fixed: Option<u64> = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok());
    let started = Instant::now();
    let mut runs = 0u64;
    let mut seed = fixed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    while started.elapsed() < Duration::from_secs_f64(seconds) || runs == 0 {
        let this = seed;
        let mut rng = Rng(this);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            target(&mut rng);
        }));
        if let Err(panic) = result {
            let dir = common::repo_root().join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{this}.bin"));
            // The target records its input before checking it.
            std::fs::write(&file, LAST_INPUT.with(|i| i.borrow().clone())).unwrap();
            panic!(
                "fuzz target {name} failed with FUZZ_SEED={this} (input in {}): {:?}",
                file.display(),
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or(panic.downcast_ref::<&str>().copied())
            );
        }
        runs += 1;
        if fixed.is_some() {
            break;
        }
        seed = Rng(seed).next() | 1;
    }
    println!(
        "fuzz {name}: {runs} inputs in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

thread_local! {
    /// The input being checked, saved if the check panics.
    static LAST_INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn record_input(bytes: &[u8]) {
    LAST_INPUT.with(|i| *i.borrow_mut() = bytes.to_vec());
}

/// A request body for `command`: a fixture or one generated from its shape, then mutated.
fn request_body(command: &Command, fixtures: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    let fixture = fixtures
        .iter()
        .find(|(name, _)| name == command.spec.name)
        .map(|(_, body)| body.clone())
        .expect("a fixture per command");
    let mut value: Value = if rng.chance(50) {
        serde_json::from_slice(&fixture).expect("fixtures are JSON")
    } else {
        json_for(
            &Shape::Record(std::sync::Arc::clone(&command.request)),
            rng,
            0,
        )
    };
    for _ in 0..rng.below(3) {
        mutate_json(&mut value, rng);
    }
    let mut bytes = serde_json::to_vec(&value).expect("a value serializes");
    if rng.chance(30) {
        mutate_bytes(&mut bytes, rng);
    }
    bytes
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    Catalog::get()
        .commands()
        .iter()
        .map(|c| {
            let path =
                common::repo_root().join(format!("tests/fixtures/requests/{}.json", c.spec.name));
            (
                c.spec.name.to_owned(),
                std::fs::read(path).expect("fixture"),
            )
        })
        .collect()
}

#[test]
fn request_bodies_of_every_command() {
    let catalog = Catalog::get();
    let fixtures = fixtures();
    fuzz("request_bodies", |rng| {
        let command = rng.pick(catalog.commands());
        let body = request_body(command, &fixtures, rng);
        record_input(&body);
        // The host checks the body is UTF-8 first (`protocol::text`); the decoders compare
        // from there (the fast one skips unknown fields without reading their text).
        let Ok(text) = protocol::text(&body) else {
            return body;
        };
        let fast = convert::decode_body(&command.request, &body).ok();
        let precise = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| match v {
                Value::Object(object) => convert::decode_record(&command.request, &object, "").ok(),
                _ => None,
            });
        // What the fast decoder accepts, the precise one accepts with the same value.
        if let Some(fast) = &fast {
            assert_eq!(
                Some(fast),
                precise.as_ref(),
                "the fast decoder accepted a {} body the precise one reads otherwise",
                command.spec.name
            );
            let mut object = Map::new();
            convert::encode_record(&command.request, fast, &mut object);
            let again = serde_json::to_vec(&Value::Object(object)).unwrap();
            let round =
                convert::decode_body(&command.request, &again).expect("an encoded request decodes");
            assert_eq!(&round, fast, "encode then decode changed the request");
        }
        // The request path's verdict is the precise decoder's (and the URL's command check).
        match protocol::parse(command, text) {
            Ok(value) => assert_eq!(Some(&value), precise.as_ref()),
            Err(error) => assert!(
                precise.is_none() || error.kind() == "command_mismatch",
                "refused a body the precise decoder accepts: {error}"
            ),
        }
        body
    });
}

/// The changes a plugin answered, applied to a valid request, must give OpenIM bounded JSON.
fn check_merge(command: &Command, request: Val, changes: Option<&Val>) {
    let mut merge = Merge::new(command, request);
    if let Some(changes) = changes
        && merge.apply(changes).is_err()
    {
        return;
    }
    let answer = merge.go_on_answer();
    let value: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    assert!(value.is_object());
    // The five fields, the changes within their caps, and echoed request fields.
    assert!(
        answer.len() < 64 << 20,
        "an answer of {} bytes",
        answer.len()
    );
    let json: Value =
        serde_json::from_str(&merge.request_json()).expect("the changed request is JSON");
    assert!(json.is_object());
}

fn valid_request(command: &Command, fixtures: &[(String, Vec<u8>)]) -> Val {
    let body = &fixtures
        .iter()
        .find(|(n, _)| n == command.spec.name)
        .expect("fixture")
        .1;
    convert::decode_body(&command.request, body).expect("fixtures are valid")
}

#[test]
fn typed_answers_of_plugins() {
    let catalog = Catalog::get();
    let fixtures = fixtures();
    fuzz("typed_answers", |rng| {
        let command = rng.pick(catalog.commands());
        let value = if rng.chance(15) {
            wrong_val(rng)
        } else {
            match &command.answer {
                AnswerShape::Response => response_val(rng),
                AnswerShape::WithChanges(changes) => Val::Record(vec![
                    ("response".into(), response_val(rng)),
                    ("changes".into(), record_val(changes, rng, 0)),
                ]),
            }
        };
        let input = format!("{}: {value:?}", command.spec.name).into_bytes();
        record_input(&input);
        if let Ok((response, changes)) = answer::from_typed(command, value) {
            assert!(
                response.err_msg.len() <= MAX_ERR_TEXT && response.err_dlt.len() <= MAX_ERR_TEXT
            );
            check_merge(command, valid_request(command, &fixtures), changes.as_ref());
        }
        input
    });
}

#[test]
fn json_answers_of_plugins() {
    let catalog = Catalog::get();
    let fixtures = fixtures();
    fuzz("json_answers", |rng| {
        let command = rng.pick(catalog.commands());
        let mut object = Map::new();
        object.insert("actionCode".into(), Value::from(rng.below(3)));
        object.insert("errCode".into(), number(rng));
        object.insert("errMsg".into(), Value::String(string(rng)));
        if let Some(changes) = command.changes() {
            record_json(changes, rng, 0, &mut object);
        }
        let mut value = Value::Object(object);
        for _ in 0..rng.below(3) {
            mutate_json(&mut value, rng);
        }
        let mut bytes = serde_json::to_vec(&value).unwrap();
        if rng.chance(30) {
            mutate_bytes(&mut bytes, rng);
        }
        record_input(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let known = if rng.chance(10) { None } else { Some(command) };
        if let Ok((response, changes)) = answer::from_json(known, &text) {
            assert!(
                response.err_msg.len() <= MAX_ERR_TEXT && response.err_dlt.len() <= MAX_ERR_TEXT
            );
            if known.is_some() {
                check_merge(command, valid_request(command, &fixtures), changes.as_ref());
            }
        }
        bytes
    });
}

/// Text mutations for the config files: lines dropped, duplicated and swapped, tokens replaced.
fn mutate_text(text: &str, rng: &mut Rng, tokens: &[&str]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..=rng.below(4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(5) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(rng.below(lines.len()), copy);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                // Replace the value after `=` or `:`.
                if let Some(at) = lines[i].find(['=', ':']) {
                    lines[i] = format!("{} {}", &lines[i][..=at], rng.pick(tokens));
                }
            }
            _ => lines[i] = format!("{}{}", " ".repeat(rng.below(4)), lines[i].trim_start()),
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    if rng.chance(30) {
        mutate_bytes(&mut bytes, rng);
    }
    bytes
}

#[test]
fn config_files() {
    let readme =
        std::fs::read_to_string(common::repo_root().join("docs/configuration.md")).unwrap();
    let start = readme
        .find("```toml\n")
        .expect("docs/configuration.md has a toml block")
        + 8;
    let end = start + readme[start..].find("```").expect("the block ends");
    let example = &readme[start..end];
    let tokens = [
        "0",
        "-1",
        "18446744073709551616",
        "\"\"",
        "\"refuse\"",
        "\"nope\"",
        "[]",
        "{}",
        "true",
        "1e999",
        "\"0.0.0.0:10006\"",
        "\"10.0.0.0/33\"",
        "[\"::1\"]",
        "4096",
        "nan",
        "\"\\u0000\"",
    ];
    fuzz("config_files", |rng| {
        let bytes = mutate_text(example, rng, &tokens);
        record_input(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Config::parse(Path::new("fuzz.toml"), text);
        }
        bytes
    });
}

/// Nesting far deeper than any real file.
const DEEP_YAML: &str = concat!(
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
);

#[test]
fn webhooks_files() {
    let example =
        std::fs::read_to_string(common::repo_root().join("tests/fixtures/webhooks.yml")).unwrap();
    let tokens = [
        "0",
        "-1",
        "99999999999999999999",
        "\"\"",
        "true",
        "[]",
        "{}",
        "~",
        "*anchor",
        "&a [*a]",
        "!!binary aGk=",
        "{a: [b, {c: d}]}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "|\n  block",
        "'quoted'",
        ".nan",
        "0x10",
        DEEP_YAML,
    ];
    fuzz("webhooks_files", |rng| {
        let bytes = mutate_text(&example, rng, &tokens);
        record_input(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Webhooks::parse(Path::new("webhooks.yml"), text);
        }
        bytes
    });
}
