//! The limits of one plugin call and the names of the ways a call can fail.
//!
//! - Wall clock: the epoch ticker advances every [`crate::runtime::engine::EPOCH_TICK`]; at each tick a
//!   running plugin yields to the executor and is stopped once past its deadline
//!   ([`DeadlineExceeded`]). A plugin waiting in a host call is stopped by a timer around the call.
//! - Instructions: fuel, set per call from the command's budget ([`crate::config::CommandSettings`]).
//! - Memory, tables, instances: [`PluginLimiter`], which traps (rather than failing the growth) so
//!   the cause is named instead of surfacing as whatever the guest does on allocation failure.
//!   Memory also counts against the host-wide [`crate::runtime::budget::MemoryBudget`].

use std::time::Duration;

use wasmtime::Trap;

use crate::config::PluginLimits;

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

/// Why a plugin call produced no usable answer. Every variant is logged with the plugin's name.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("timeout: still running at the deadline ({budget_ms} ms)")]
    Timeout { budget_ms: u128 },
    #[error("timeout: blocked in a host call at the deadline ({budget_ms} ms)")]
    TimeoutInHostCall { budget_ms: u128 },
    #[error("timeout: no time left before the deadline to start the plugin")]
    NoTimeLeft,
    #[error("fuel exhausted: used the whole budget of {budget} instructions")]
    Fuel { budget: u64 },
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    #[error("stack overflow")]
    StackOverflow,
    #[error("trap: {0}")]
    Trap(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
}

impl Failure {
    /// A short, stable name of the cause, for logs, metrics and `errDlt`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } | Self::TimeoutInHostCall { .. } | Self::NoTimeLeft => "timeout",
            Self::Fuel { .. } => "fuel",
            Self::Limit(LimitExceeded::Memory { .. }) => "memory",
            Self::Limit(LimitExceeded::TableElements { .. }) => "table",
            Self::Limit(LimitExceeded::Budget { .. }) => "memory_budget",
            Self::StackOverflow => "stack_overflow",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
            Self::InvalidAnswer(_) => "invalid_answer",
        }
    }

    /// Names the cause of an error returned by a call into a plugin.
    pub fn classify(error: wasmtime::Error, budget: Duration, fuel: u64) -> Self {
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return Self::Timeout {
                budget_ms: budget.as_millis(),
            };
        }
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return Self::Limit(limit.clone());
        }
        tracing::debug!("plugin call failed: {error:?}");
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Self::Fuel { budget: fuel },
            Some(Trap::StackOverflow) => Self::StackOverflow,
            Some(Trap::UnreachableCodeReached) => {
                Self::Trap("unreachable executed (a panic or abort in the plugin)".to_owned())
            }
            Some(trap) => Self::Trap(trap.to_string()),
            // Not a wasm trap: e.g. an answer that could not be read from the plugin's memory.
            None => Self::Trap(one_line(&error.root_cause().to_string())),
        }
    }
}

/// Keeps a log line one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
