//! The limits of one plugin call and the names of the ways a call can fail.
//!
//! - Wall clock: the epoch ticker advances every [`crate::runtime::engine::EPOCH_TICK`]; at each tick a
//!   running plugin yields to the executor and is stopped once past its deadline
//!   ([`DeadlineExceeded`]). A plugin waiting in a host call is stopped by a timer around the call.
//! - Instructions: fuel, set per call from the command's `fuel` ([`crate::config::CommandSettings`]).
//! - Memory, tables, instances: [`PluginLimiter`], which traps (rather than failing the growth) so
//!   the cause is named instead of surfacing as whatever the guest does on allocation failure.
//!   Memory also counts against the host-wide [`crate::runtime::budget::MemoryBudget`].

use std::time::Duration;

use wasmtime::Trap;

use crate::config::PluginLimits;
use crate::outcomes::FailureKind;
use crate::protocol::answer::MAX_ANSWER_BYTES;
use crate::untrusted::Untrusted;

/// The error the epoch callback raises when a running plugin passes its deadline.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock deadline exceeded while running")]
pub struct DeadlineExceeded;

/// Raised by [`PluginLimiter`] when a plugin grows past a cap.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "memory limit exceeded: tried to grow a linear memory to {desired} bytes, the cap is {cap}"
    )]
    Memory { desired: usize, cap: usize },
    #[error("table limit exceeded: tried to grow a table to {desired} elements, the cap is {cap}")]
    TableElements { desired: usize, cap: usize },
    #[error(
        "memory budget exhausted: {wanted} more bytes did not fit in the host's plugin memory budget of {budget} bytes before the deadline"
    )]
    Budget { wanted: usize, budget: usize },
}

/// Caps what one plugin instance may allocate, and remembers the most it had.
#[derive(Debug)]
pub struct PluginLimiter {
    /// The plugin's configured caps.
    limits: PluginLimits,
    /// Bytes of linear memory the instance has now, over all its memories.
    memory_bytes: usize,
    /// The most `memory_bytes` has been.
    peak_memory_bytes: usize,
}

impl PluginLimiter {
    pub fn new(limits: PluginLimits) -> Self {
        Self {
            limits,
            memory_bytes: 0,
            peak_memory_bytes: 0,
        }
    }

    /// The most linear memory the instance had at once, over all its memories.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }
}

impl PluginLimiter {
    /// Checks a memory growth against the cap and counts it.
    pub fn memory_growing(&mut self, current: usize, desired: usize) -> wasmtime::Result<()> {
        if desired > self.limits.memory_bytes {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                desired,
                cap: self.limits.memory_bytes,
            }));
        }
        self.memory_bytes = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        self.peak_memory_bytes = self.peak_memory_bytes.max(self.memory_bytes);
        Ok(())
    }

    /// Checks a table growth against the cap.
    pub fn table_growing(&mut self, desired: usize) -> wasmtime::Result<()> {
        if desired > self.limits.max_table_elements {
            return Err(wasmtime::Error::new(LimitExceeded::TableElements {
                desired,
                cap: self.limits.max_table_elements,
            }));
        }
        Ok(())
    }

    /// Core instances a store may create.
    pub fn instances(&self) -> usize {
        self.limits.max_instances
    }

    /// Tables a store may create.
    pub fn tables(&self) -> usize {
        self.limits.max_tables
    }

    /// Linear memories per store; components of language runtimes have a few.
    pub fn memories(&self) -> usize {
        self.limits.max_instances
    }
}

/// How wasmtime's error begins when a plugin hands the host more than the store's hostcall fuel
/// allows ([`crate::runtime::store`]). The error's type is private to wasmtime, so it is known by
/// its text; a test holds this to the wasmtime in use.
const TOO_MUCH_DATA: &str = "too much data is being copied between the host and the guest";

/// Why a plugin call produced no usable answer. Every variant is logged with the plugin's name.
/// The texts a failure carries can hold what the plugin wrote (a field name, a panic message):
/// they are shown through [`Untrusted::line`], escaped and capped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("timeout: still running at the deadline ({allowed_ms} ms)")]
    Timeout { allowed_ms: u128 },
    #[error("timeout: blocked in a host call at the deadline ({allowed_ms} ms)")]
    TimeoutInHostCall { allowed_ms: u128 },
    #[error("timeout: no time left before the deadline to start the plugin")]
    NoTimeLeft,
    #[error("fuel exhausted: used all the {fuel} instructions it was given")]
    Fuel { fuel: u64 },
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    #[error("stack overflow")]
    StackOverflow,
    #[error("trap: {}", Untrusted::line(.0))]
    Trap(String),
    /// Keeps wasmtime's error, with its chain; shown whole (`{:#}`), escaped.
    #[error("instantiation failed: {}", Untrusted::line(&format!("{:#}", .0)))]
    Instantiate(wasmtime::Error),
    #[error("invalid answer: {}", Untrusted::line(.0))]
    InvalidAnswer(String),
    /// The host could not call the plugin (a fault of the host's, not the plugin's): the
    /// request's form does not fit the plugin's entry, or the loader's thread failed.
    #[error("the host could not call the plugin: {0}")]
    Host(&'static str),
    /// Not the plugin's doing: a stored or recorded request that no longer fits its command's
    /// shape (the contract changed since it was accepted), so no plugin could be given it.
    #[error("the request no longer parses: {}", Untrusted::line(.0))]
    Unparsable(String),
    /// The plugin answered, but asked (`openim-api.retry-later`) for the callback to count as
    /// failed: a queued after-callback is delivered again.
    #[error("the plugin asked to be retried later: {}", Untrusted::line(.0))]
    RetryRequested(String),
}

impl Failure {
    /// The cause, for logs, metrics and `errDlt`.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Timeout { .. } | Self::TimeoutInHostCall { .. } | Self::NoTimeLeft => {
                FailureKind::Timeout
            }
            Self::Fuel { .. } => FailureKind::Fuel,
            Self::Limit(LimitExceeded::Memory { .. }) => FailureKind::Memory,
            Self::Limit(LimitExceeded::TableElements { .. }) => FailureKind::Table,
            Self::Limit(LimitExceeded::Budget { .. }) => FailureKind::MemoryBudget,
            Self::StackOverflow => FailureKind::StackOverflow,
            Self::Trap(_) => FailureKind::Trap,
            Self::Instantiate(_) => FailureKind::Instantiate,
            Self::InvalidAnswer(_) => FailureKind::InvalidAnswer,
            Self::Host(_) => FailureKind::Host,
            Self::Unparsable(_) => FailureKind::UnparsableRequest,
            Self::RetryRequested(_) => FailureKind::RetryRequested,
        }
    }

    /// Names the cause of an error returned by a call into a plugin.
    pub fn classify(error: wasmtime::Error, allowed: Duration, fuel: u64) -> Self {
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return Self::Timeout {
                allowed_ms: allowed.as_millis(),
            };
        }
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return Self::Limit(limit.clone());
        }
        if error.root_cause().to_string().starts_with(TOO_MUCH_DATA) {
            // The bytes of the same place in memory count each time they are copied, so even an
            // answer of ten thousand references to one buffer stops at the cap.
            return if error.downcast_ref::<wasmtime::WasmBacktrace>().is_some() {
                // Raised while the plugin ran: the arguments of one of its host calls.
                Self::Trap(format!(
                    "a host call was handed more than {MAX_ANSWER_BYTES} bytes at once"
                ))
            } else {
                Self::InvalidAnswer(format!(
                    "the answer's strings and lists take more than {MAX_ANSWER_BYTES} bytes, the cap of a whole answer"
                ))
            };
        }
        tracing::debug!(
            "plugin call failed: {}",
            Untrusted::line(&format!("{error:?}"))
        );
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Self::Fuel { fuel },
            Some(Trap::StackOverflow) => Self::StackOverflow,
            Some(Trap::UnreachableCodeReached) => {
                Self::Trap("unreachable executed (a panic or abort in the plugin)".to_owned())
            }
            Some(trap) => Self::Trap(trap.to_string()),
            // Not a wasm trap: e.g. an answer that could not be read from the plugin's memory.
            None => Self::Trap(error.root_cause().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Engine, Store};

    /// Runs the export `f` of `wat` with a hostcall fuel of 1,000 bytes and classifies its error.
    fn classify_run(wat: &str) -> Failure {
        let engine = Engine::default();
        let component = Component::new(&engine, wat).unwrap();
        let mut linker = Linker::<()>::new(&engine);
        linker
            .root()
            .func_wrap("log", |_, (_text,): (String,)| Ok(()))
            .unwrap();
        let mut store = Store::new(&engine, ());
        store.set_hostcall_fuel(1_000);
        let instance = linker.instantiate(&mut store, &component).unwrap();
        let func = instance.get_func(&mut store, "f").unwrap();
        let mut results =
            vec![wasmtime::component::Val::Bool(false); func.ty(&store).results().len()];
        let error = func.call(&mut store, &[], &mut results).unwrap_err();
        Failure::classify(error, Duration::from_secs(1), 0)
    }

    #[test]
    fn too_much_data_in_an_answer_is_an_invalid_answer_and_in_a_host_call_a_trap() {
        // A string of 40,000 bytes returned: the answer is over the cap.
        let answer = classify_run(
            r#"(component
                (core module $m
                    (memory (export "mem") 1)
                    (data (i32.const 65528) "\00\00\00\00\40\9c\00\00")
                    (func (export "f") (result i32) i32.const 65528)
                    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable))
                (core instance $i (instantiate $m))
                (func (export "f") (result string)
                    (canon lift (core func $i "f") (memory (core memory $i "mem"))
                        (realloc (core func $i "realloc")))))"#,
        );
        assert!(
            matches!(&answer, Failure::InvalidAnswer(text) if text.contains("the cap of a whole answer")),
            "{answer:?}"
        );
        // The same 40,000 bytes handed to a host function while the plugin runs.
        let call = classify_run(
            r#"(component
                (import "log" (func $log (param "text" string)))
                (core module $memory (memory (export "mem") 1))
                (core instance $memory (instantiate $memory))
                (core func $log (canon lower (func $log) (memory (core memory $memory "mem"))))
                (core module $m
                    (import "host" "log" (func $log (param i32 i32)))
                    (func (export "f") (call $log (i32.const 0) (i32.const 40000))))
                (core instance $i (instantiate $m
                    (with "host" (instance (export "log" (func $log))))))
                (func (export "f") (canon lift (core func $i "f"))))"#,
        );
        assert!(
            matches!(&call, Failure::Trap(text) if text.contains("a host call was handed more")),
            "{call:?}"
        );
    }
}
