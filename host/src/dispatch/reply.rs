//! Reading a plugin's reply against its command's answer shape, and the answer a failure policy
//! gives: the two rules the chain, shadows, the queue's workers and the `call` tool share.

use wasmtime::component::Val;

use super::Reply;
use crate::config::{CommandSettings, FailurePolicy};
use crate::protocol::CallbackResponse;
use crate::protocol::answer;
use crate::protocol::schema::Command;
use crate::runtime::limits::Failure;

/// What a plugin returned, checked against the command's answer shape: the response, and the
/// changes for commands that have them. An answer that does not fit is the plugin's failure.
pub fn decode_reply(
    command: Option<&Command>,
    reply: Reply,
) -> Result<(CallbackResponse, Option<Val>), Failure> {
    match reply {
        Reply::Typed(value) => command
            .map(|c| answer::from_typed(c, value))
            .unwrap_or_else(|| Err(answer::InvalidAnswer("no shape for a typed answer".into()))),
        Reply::Json(text) => answer::from_json(command, &text),
    }
    .map_err(|e| Failure::InvalidAnswer(e.0))
}

/// The answer the command's failure policy gives when `plugin` failed: a refusal under `refuse`,
/// `None` (go on with the next plugin) under `continue`.
pub fn policy_answer(
    settings: &CommandSettings,
    plugin: &str,
    failure: &Failure,
) -> Option<CallbackResponse> {
    match settings.failure_policy {
        FailurePolicy::Continue => None,
        FailurePolicy::Refuse => Some(CallbackResponse::refuse(
            settings.refuse_err_code,
            settings.refuse_err_msg.clone(),
            format!("plugin {plugin} failed: {}", failure.kind()),
        )),
    }
}
