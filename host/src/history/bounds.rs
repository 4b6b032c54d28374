//! What the history keeps of a callback and of a disagreement: cut to a fixed size, whatever
//! plugins or clients sent.

use bytes::Bytes;
use serde_json::Value;

use super::{Decision, Trace};
use crate::untrusted::{ANSWER_CAP, LINE_CAP, MESSAGE_CAP};

/// `text` cut to at most `cap` bytes, on a character boundary.
fn cut(text: &str, cap: usize) -> &str {
    &text[..text.floor_char_boundary(cap)]
}

/// `text` as kept: itself when within `cap`, else its first `cap` bytes in a string of their own.
fn kept(text: &mut String, cap: usize) {
    let end = cut(text, cap).len();
    if end < text.len() {
        text.truncate(end);
        text.shrink_to_fit();
    }
}

impl Trace {
    /// The trace as the ring keeps it, whatever its plugins or client sent: the answer cut at
    /// [`ANSWER_CAP`] (in a buffer of its own: a slice would keep the whole answer alive), each
    /// plugin's texts at [`LINE_CAP`], an unknown path at [`MESSAGE_CAP`]. With the body capture's
    /// own cap and the bounded OpenIM call notes, a trace costs a few KiB per plugin at most.
    pub fn bounded(mut self) -> Self {
        if self.answer.len() > ANSWER_CAP {
            self.answer = Bytes::copy_from_slice(&self.answer[..ANSWER_CAP]);
        }
        if let Some(path) = &mut self.path {
            kept(path, MESSAGE_CAP);
        }
        for step in &mut self.steps {
            match &mut step.decision {
                Decision::GoOn => {}
                Decision::Refused {
                    err_msg, err_dlt, ..
                } => {
                    kept(err_msg, LINE_CAP);
                    kept(err_dlt, LINE_CAP);
                }
                Decision::Failed { detail, .. } => kept(detail, LINE_CAP),
            }
        }
        self
    }
}

/// An answer as a disagreement keeps it: itself, or its JSON cut at [`ANSWER_CAP`] as a string
/// when it is longer.
pub(super) fn answer_kept(answer: Value) -> Value {
    let text = answer.to_string();
    if text.len() <= ANSWER_CAP {
        answer
    } else {
        Value::String(cut(&text, ANSWER_CAP).to_owned())
    }
}
