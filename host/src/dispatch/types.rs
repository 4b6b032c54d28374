//! What goes through the chain and what comes out of it: the request as received, a plugin's
//! attempt and reply, the chain's answer and its outcome.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Val;

use crate::history::Step;
use crate::metrics::RequestOutcome;
use crate::protocol::CallbackResponse;
use crate::registry::Link;
use crate::runtime::call::{CallStats, Spent};

/// One delivery of a callback, as received.
#[derive(Debug)]
pub struct Request {
    /// The command from the URL.
    pub command: &'static str,
    /// OpenIM's `operationID` header ("" if absent).
    pub operation_id: Arc<str>,
    /// When the request arrived: OpenIM's timeout runs from about here.
    pub received: Instant,
    /// The instances its plugins used, dropped once the answer is on its way, and their
    /// replacements (the server settles them when it hands the answer to hyper, the queue's
    /// workers after a delivery; elsewhere they drop with the request).
    pub spent: Spent,
}

impl Request {
    /// A delivery of `command` received now.
    pub fn new(command: &'static str, operation_id: Arc<str>, received: Instant) -> Self {
        Self {
            command,
            operation_id,
            received,
            spent: Spent::default(),
        }
    }
}

/// What the chain answered a callback, and how each plugin took part.
#[derive(Debug)]
pub struct Chained {
    /// The JSON answer for OpenIM.
    pub answer: Vec<u8>,
    /// What the request came to.
    pub outcome: RequestOutcome,
    /// Each plugin's turn, in chain order (for the console).
    pub steps: Vec<Step>,
}

/// What a plugin is given.
#[derive(Debug)]
pub enum Input<'a> {
    /// The request record, for a typed interface.
    Typed(&'a Val),
    /// The same, owned (no further copy is made).
    Owned(Val),
    /// The request as JSON, for the generic interface.
    Json(&'a str),
}

/// One plugin's turn at a request: who, where in the chain, until when, with how much fuel.
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    /// The plugin and how its handler is called.
    pub link: &'a Link,
    /// Its place in the chain (the `delivery` record's `chain-position`).
    pub position: usize,
    /// The request it handles.
    pub request: &'a Request,
    /// When its call must have finished.
    pub deadline: Instant,
    /// The instructions it may execute.
    pub fuel: u64,
}

/// A plugin's answer, read and (unless a refusal) its changes merged.
#[derive(Debug)]
pub struct Answered {
    /// The five common fields.
    pub response: CallbackResponse,
    /// What the call cost.
    pub stats: CallStats,
}

/// What a plugin returned, before it is checked.
#[derive(Debug)]
pub enum Reply {
    Typed(Val),
    Json(String),
}
