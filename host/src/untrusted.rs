//! Text the host did not write (a plugin's field names, error texts, panic messages, output; a
//! request's keys), on its way into the host's log or an error message: the one rule for it.
//!
//! Such text is shown escaped and capped: every control or format character (newline, carriage
//! return, escape, line and paragraph separators, bidirectional overrides) becomes a visible
//! `\n`, `\r` or `\u{1b}`, so it can never start a log line of its own or rewrite the terminal;
//! and at most a cap of bytes of it is kept, so a megabyte of it costs the log a line, not a
//! megabyte. Whatever the log format (text or JSON), the same text comes out.

use std::fmt::{self, Write as _};

/// Bytes of untrusted text kept inside one host message (a field name in an error, an answer in a
/// disagreement): enough to recognize it, too little to flood the log.
pub const MESSAGE_CAP: usize = 512;

/// Bytes kept of one line a plugin writes (stdout, stderr or the `log` import), and of a
/// failure's message.
pub const LINE_CAP: usize = 1024;

/// Bytes kept of an answer quoted in the log (an after-callback's refusal, a shadow plugin's
/// disagreement): room for the two 4 KiB texts an answer may carry would be a flood.
pub const ANSWER_CAP: usize = 2048;

/// Untrusted text, displayed escaped and capped (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    /// The text as received.
    text: &'a str,
    /// The most bytes of escaped text shown; the rest is counted, not shown.
    cap: usize,
}

impl<'a> Untrusted<'a> {
    /// `text`, capped at [`MESSAGE_CAP`] bytes.
    pub fn new(text: &'a str) -> Self {
        Self::capped(text, MESSAGE_CAP)
    }

    /// `text`, capped at `cap` bytes.
    pub fn capped(text: &'a str, cap: usize) -> Self {
        Self { text, cap }
    }

    /// `text`, capped at [`LINE_CAP`]: a line of a plugin's, or a failure's message.
    pub fn line(text: &'a str) -> Self {
        Self::capped(text, LINE_CAP)
    }
}

/// `text`, escaped and capped at [`MESSAGE_CAP`], as an owned string.
pub fn escaped(text: &str) -> String {
    Untrusted::new(text).to_string()
}

/// Whether `c` must be escaped: it could break or disguise a line.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width characters and direction marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2069}' // invisible operators and isolates
            | '\u{feff}') // byte order mark
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = 0;
        for (at, c) in self.text.char_indices() {
            let mut escape = [0u8; 12];
            let piece: &str = if needs_escape(c) {
                let mut buffer = Buffer(&mut escape, 0);
                match c {
                    '\n' => buffer.write_str("\\n")?,
                    '\r' => buffer.write_str("\\r")?,
                    '\t' => buffer.write_str("\\t")?,
                    other => write!(buffer, "\\u{{{:x}}}", other as u32)?,
                }
                let len = buffer.1;
                std::str::from_utf8(&escape[..len]).map_err(|_| fmt::Error)?
            } else {
                &self.text[at..at + c.len_utf8()]
            };
            if shown + piece.len() > self.cap {
                return write!(f, "…(+{} bytes)", self.text.len() - at);
            }
            f.write_str(piece)?;
            shown += piece.len();
        }
        Ok(())
    }
}

/// A small stack buffer for one escape sequence.
struct Buffer<'b>(&'b mut [u8; 12], usize);

impl fmt::Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.1 + s.len();
        self.0
            .get_mut(self.1..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_terminal_controls_are_shown_escaped() {
        let text = "a\nb\r\x1b[31mc\u{2028}d\u{202e}e\tf\\n";
        assert_eq!(
            escaped(text),
            "a\\nb\\r\\u{1b}[31mc\\u{2028}d\\u{202e}e\\tf\\n"
        );
        // Ordinary text, other scripts included, is shown as it is.
        assert_eq!(escaped("Grüße, 世界 🙂"), "Grüße, 世界 🙂");
    }

    #[test]
    fn long_text_is_cut_at_the_cap_and_says_how_much_is_left() {
        let text = format!("{}{}", "é".repeat(300), "x".repeat(1 << 20));
        let shown = escaped(&text);
        assert!(shown.len() <= MESSAGE_CAP + 32, "{} bytes", shown.len());
        assert!(shown.starts_with("éé"), "{shown}");
        assert!(
            shown.ends_with(&format!("…(+{} bytes)", text.len() - 512)),
            "{shown}"
        );
        // An escape is never cut in half.
        let controls = "\u{1}".repeat(100);
        let shown = Untrusted::capped(&controls, 20).to_string();
        assert_eq!(shown, "\\u{1}\\u{1}\\u{1}\\u{1}…(+96 bytes)");
    }
}
