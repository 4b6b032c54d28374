//! What goes through the chain and what comes out of it: the callback as received, a plugin's
//! attempt and reply, the chain's answer and its outcome.

use std::sync::Arc;

use bytes::Bytes;
use std::time::Instant;

use wasmtime::component::Val;

use crate::history::Step;
use crate::metrics::ApiCallNotes;
use crate::outcomes::RequestOutcome;
use crate::protocol::schema::{Catalog, Command};
use crate::protocol::{self, BodyError, CallbackResponse};
use crate::queue::Event;
use crate::registry::Link;
use crate::runtime::call::{CallStats, Spent};
use crate::runtime::limits::Failure;

/// One callback, made once where it enters (HTTP, the queue's redelivery, replay, the `call`
/// tool) and handed down: its command, the command's shape, OpenIM's operation id, the body as
/// sent and its request record, parsed once.
#[derive(Debug)]
pub struct Callback {
    /// The command from the URL (or the stored event).
    pub command: &'static str,
    /// The command's shape; `None` for a command the host has none for (declared by a JSON
    /// plugin), whose body was only checked to be a JSON object naming it.
    pub shape: Option<&'static Command>,
    /// OpenIM's `operationID` header ("" if absent).
    pub operation_id: Arc<str>,
    /// The body as OpenIM sent it, checked to be UTF-8 (see [`Callback::body`]): shared with
    /// the HTTP request's buffer, not copied.
    body: Bytes,
    /// The request record of a command with a shape; taken by the chain when it runs.
    pub parsed: Option<Val>,
    /// When the request arrived: OpenIM's timeout runs from about here.
    pub received: Instant,
}

impl Callback {
    /// Reads the body of a callback of `command` received at `received`: UTF-8, a JSON object
    /// naming the command, and the request record of its shape.
    pub fn read(
        command: &'static str,
        operation_id: Arc<str>,
        body: Bytes,
        received: Instant,
    ) -> Result<Self, BodyError> {
        let text = protocol::text(&body)?;
        let shape = Catalog::get().command(command);
        let parsed = match shape {
            Some(shape) => Some(protocol::parse(shape, text)?),
            None => {
                protocol::parse_object(command, text)?;
                None
            }
        };
        Ok(Self {
            command,
            shape,
            operation_id,
            body,
            parsed,
            received,
        })
    }

    /// The body as text: for JSON plugins, the queue, records and shadows.
    pub fn body(&self) -> &str {
        std::str::from_utf8(&self.body).expect("checked to be UTF-8 when the callback was read")
    }

    /// The same callback for other plugins to see afresh (shadows): the record copied.
    pub fn copy(&self) -> Self {
        Self {
            command: self.command,
            shape: self.shape,
            operation_id: Arc::clone(&self.operation_id),
            body: self.body.clone(),
            parsed: self.parsed.clone(),
            received: self.received,
        }
    }

    /// The callback as the queue stores it, accepted now.
    pub fn event(&self) -> Event {
        Event {
            command: self.command.to_owned(),
            operation_id: self.operation_id.to_string(),
            body: self.body().to_owned(),
            accepted_ms: crate::util::unix_ms(),
            failures: 0,
            done: Vec::new(),
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
    /// The instances its plugins used, to be dropped once the answer is on its way, and their
    /// replacements built: the server settles them when it hands the answer to hyper.
    pub spent: Spent,
    /// When a queued callback's event was stored (its `accepted_ms`): the key by which the
    /// console puts its deliveries on its row.
    pub stored_ms: Option<u64>,
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
    /// The callback it handles.
    pub callback: &'a Callback,
    /// When its time started counting: the callback's arrival, or a shadow's or delivery's own
    /// start (a timeout names the time from here to the deadline).
    pub from: Instant,
    /// When its call must have finished.
    pub deadline: Instant,
    /// The instructions it may execute.
    pub fuel: u64,
    /// Where the used instance goes: the caller settles it once its answer is on its way.
    pub spent: &'a Spent,
}

/// A plugin's turn: what it answered (or why it failed), and the OpenIM API calls it made on the
/// way, whatever came of it.
#[derive(Debug)]
pub struct Turn {
    pub result: Result<Answered, Failure>,
    pub api_calls: ApiCallNotes,
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
