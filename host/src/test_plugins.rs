//! Plugins for unit tests, written in the component text format (no toolchain needed), and the
//! runner they are loaded with.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::Linker;

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::call::Runner;
use crate::runtime::sandbox::PluginState;

/// What a test plugin does with every callback.
pub enum Does<'a> {
    /// Answers this JSON.
    Answer(&'a str),
    /// Traps.
    Trap,
}

/// A plugin of the generic JSON interface, written in the component text format: it handles
/// `command` and does `does` with every callback. No toolchain needed.
pub fn json_plugin(command: &str, does: Does<'_>) -> Vec<u8> {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let (answer, handle) = match does {
        Does::Answer(json) => (json.to_owned(), "i32.const 32".to_owned()),
        Does::Trap => (String::new(), "unreachable".to_owned()),
    };
    let text = format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 4096))
    ;; A bump allocator: enough for the host's strings of one call.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                              (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    ;; commands(): the list (at 16: one string at 64) behind the return area at 0.
    (data (i32.const 0) "\10\00\00\00\01\00\00\00")
    (data (i32.const 16) "\40\00\00\00\{command_len:02x}\00\00\00")
    (data (i32.const 64) "{command}")
    (func (export "commands") (result i32) (i32.const 0))
    ;; handle(delivery, body): the answer at 256 behind the return area at 32.
    (data (i32.const 32) "\00\01\00\00{answer_len}")
    (data (i32.const 256) "{answer}")
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32) {handle}))
  (core instance $i (instantiate $m))
  (type $delivery (record (field "operation-id" string) (field "command" string)
                          (field "time-left-ms" u32) (field "chain-position" u32)))
  (func $commands (result (list string)) (canon lift (core func $i "commands") (memory (core memory $i "memory"))))
  (func $handle (param "delivery" $delivery) (param "body" string) (result string)
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (component $interface
    (type $d (record (field "operation-id" string) (field "command" string)
                     (field "time-left-ms" u32) (field "chain-position" u32)))
    (import "import-type-delivery" (type $di (eq $d)))
    (import "import-func-commands" (func $c (result (list string))))
    (import "import-func-handle" (func $h (param "delivery" $di) (param "body" string) (result string)))
    (export $de "delivery" (type $di))
    (export "commands" (func $c))
    (export "handle" (func $h) (func (param "delivery" $de) (param "body" string) (result string))))
  (instance $json (instantiate $interface
    (with "import-type-delivery" (type $delivery))
    (with "import-func-commands" (func $commands))
    (with "import-func-handle" (func $handle))))
  (export "openim:callback/json-handler@0.1.0" (instance $json)))"#,
        command_len = command.len(),
        command = escape(command),
        answer_len = (answer.len() as u32)
            .to_le_bytes()
            .iter()
            .map(|b| format!("\\{b:02x}"))
            .collect::<String>(),
        answer = escape(&answer),
    );
    wat::parse_str(&text).expect("the test component's text parses")
}

/// A runner and the host's linker, for `config` (TOML).
pub fn runner(config: &str) -> (Arc<Runner>, Linker<PluginState>) {
    let config = Arc::new(Config::parse(Path::new("test.toml"), config).expect("config"));
    let engine = crate::runtime::engine::build_engine(&config).expect("engine");
    let linker = crate::runtime::engine::build_linker(&engine).expect("linker");
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let runner = Arc::new(Runner::new(
        engine,
        Arc::clone(&config),
        Arc::new(MemoryBudget::new(config.memory_budget)),
        Arc::new(Capabilities::values_only(
            Arc::clone(&config),
            Arc::clone(&metrics),
        )),
        metrics,
    ));
    (runner, linker)
}

/// Waits up to 10 s for `done`, looking every few milliseconds; panics naming `what` after.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
