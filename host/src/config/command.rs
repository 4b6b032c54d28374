//! What is resolved per command: `[defaults]` and `[commands.X]` (delivery, timeout within
//! OpenIM's, fuel, what a failing plugin means for the answer).

use std::time::Duration;

use serde::Deserialize;

use super::file::CommandFile;
use super::{ConfigError, OPENIM_MAX_TIMEOUT_SECS};

/// What a failing plugin (trap, timeout, fuel, memory, bad answer) means for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Skip the failed plugin; the other plugins still decide. The default: OpenIM keeps working
    /// when a plugin is broken.
    Continue,
    /// Refuse the operation with the command's `refuse_err_code` / `refuse_err_msg`.
    Refuse,
}

/// How an after-callback reaches its plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Plugins run before OpenIM is answered.
    Inline,
    /// OpenIM is answered once the event is stored; workers run the plugins (see `queue`).
    Queued,
}

/// Resolved settings of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// For an after-callback: inline, or stored and delivered by the queue's workers.
    pub delivery: Delivery,
    /// What OpenIM will wait for: `timeout` from webhooks.yml, capped at 15 s, 0 meaning 15 s.
    pub timeout: Duration,
    /// Instructions each plugin call may execute (wasmtime fuel units). `u64::MAX` (the default) means
    /// none: the deadline is the only default limit, so a slow but correct plugin succeeds or
    /// fails by the time it takes, not by the machine's speed. Fuel is metered and reported anyway.
    pub fuel: u64,
    /// What a failing plugin means for the answer.
    pub failure_policy: FailurePolicy,
    /// `errCode` of a refusal made by the `refuse` policy.
    pub refuse_err_code: i32,
    /// `errMsg` of a refusal made by the `refuse` policy.
    pub refuse_err_msg: String,
}

/// OpenIM's own reading of `timeout`: 0 means only the 15 s cap, more than 15 is 15.
pub fn effective_timeout(timeout_secs: u64) -> Duration {
    match timeout_secs {
        0 => Duration::from_secs(OPENIM_MAX_TIMEOUT_SECS),
        secs => Duration::from_secs(secs.min(OPENIM_MAX_TIMEOUT_SECS)),
    }
}

pub(super) fn resolve_command(
    base: &CommandSettings,
    file: &CommandFile,
    key: &str,
) -> Result<CommandSettings, ConfigError> {
    if file.fuel == Some(0) {
        return Err(ConfigError::Invalid {
            key: format!("{key}.fuel"),
            reason: "must be at least 1 (it is the instructions a call may execute)".into(),
        });
    }
    Ok(CommandSettings {
        delivery: file.delivery.unwrap_or(base.delivery),
        timeout: file.timeout_secs.map_or(base.timeout, effective_timeout),
        fuel: file.fuel.unwrap_or(base.fuel),
        failure_policy: file.failure_policy.unwrap_or(base.failure_policy),
        refuse_err_code: file.refuse_err_code.unwrap_or(base.refuse_err_code),
        refuse_err_msg: file
            .refuse_err_msg
            .clone()
            .unwrap_or_else(|| base.refuse_err_msg.clone()),
    })
}
