//! What a plugin writes for the host's log: its stdout, its stderr and the `log` import. All three
//! share one allowance per call, and every line goes out escaped and capped
//! ([`crate::untrusted`]), tagged with the plugin, the command and the operationID: a plugin can
//! neither forge a log line of the host's nor make one request cost the log more than a few KiB.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::runtime::bindings::Level;
use crate::untrusted::{LINE_CAP, Untrusted};

/// Bytes of plugin text one call may put in the host's log, stdout, stderr and the `log` import
/// together; each line also costs [`LINE_OVERHEAD`]. Past it, lines are counted and dropped, and
/// the count is logged once when the call ends.
pub const OUTPUT_CAP: usize = 8 << 10;

/// What each line costs the allowance besides its text: the timestamp, level and tags the host adds.
const LINE_OVERHEAD: usize = 256;

/// Who is running: put on every log line a call produces.
#[derive(Debug)]
pub struct CallTag {
    /// The plugin's name (its file name without `.wasm`).
    pub plugin: Arc<str>,
    /// The callback command being handled.
    pub command: &'static str,
    /// OpenIM's `operationID` header, to correlate with OpenIM's logs.
    pub operation_id: Arc<str>,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The log field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// The output of one plugin instance: cloned into its stdout and stderr and kept by its store.
#[derive(Clone)]
pub struct PluginOutput {
    /// Shared by the streams WASI makes and the `log` import.
    inner: Arc<Mutex<Lines>>,
}

/// The state behind [`PluginOutput`].
struct Lines {
    /// Who is writing; changes when a reused instance takes its next call.
    tag: Arc<CallTag>,
    /// Bytes after the last newline of stdout and of stderr, at most [`LINE_CAP`] each.
    pending: [Vec<u8>; 2],
    /// Bytes of [`OUTPUT_CAP`] this call has used.
    spent: usize,
    /// Lines dropped past the cap this call, reported once at its end.
    dropped_lines: u64,
    /// Their bytes.
    dropped_bytes: u64,
    /// Lines of a warm-up call, which are dropped: the log shows requests, not the canned one
    /// that warmed an instance. Cleared when the instance's call begins.
    muted: bool,
}

impl PluginOutput {
    pub fn new(tag: Arc<CallTag>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Lines {
                tag,
                pending: [Vec::new(), Vec::new()],
                spent: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
                muted: false,
            })),
        }
    }

    fn lines(&self) -> MutexGuard<'_, Lines> {
        // A poisoned lock only means an earlier log line panicked; keep the output going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the current call's output (its partial lines, what it dropped) and starts counting
    /// the next call's, under `tag`.
    pub fn begin_call(&self, tag: Arc<CallTag>) {
        let mut lines = self.lines();
        lines.finish();
        lines.tag = tag;
        lines.muted = false;
    }

    /// Drops every line until the next [`PluginOutput::begin_call`] (a warm-up call's).
    pub fn mute(&self) {
        self.lines().muted = true;
    }

    /// One line of the `log` import.
    pub fn log(&self, level: Level, message: &str, fields: &[(String, String)]) {
        let mut lines = self.lines();
        let fields = FieldList(fields);
        let cost = message.len().min(LINE_CAP) + fields.len();
        if !lines.take(cost) {
            return;
        }
        let message = Untrusted::line(message);
        let tag = &lines.tag;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "plugin", $level, plugin = %tag.plugin, command = tag.command,
                    operation_id = %tag.operation_id, fields = %fields, "{message}")
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
    }

    /// Bytes written to `stream`: each complete line goes to the log as it is written.
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut lines = self.lines();
        let mut rest = bytes;
        while !rest.is_empty() {
            let pending = &mut lines.pending[stream as usize];
            match rest.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    let room = LINE_CAP.saturating_sub(pending.len());
                    pending.extend_from_slice(&rest[..end.min(room)]);
                    let line = std::mem::take(pending);
                    lines.emit(stream, &line, end.saturating_sub(room));
                    rest = &rest[end + 1..];
                }
                None => {
                    // A line longer than the cap is cut; the rest of it is counted, not kept.
                    let room = LINE_CAP.saturating_sub(pending.len());
                    pending.extend_from_slice(&rest[..rest.len().min(room)]);
                    if rest.len() > room {
                        let line = std::mem::take(pending);
                        lines.emit(stream, &line, rest.len() - room);
                    }
                    rest = &[];
                }
            }
        }
    }
}

impl Lines {
    /// Whether a line of `bytes` fits in the call's allowance; counts it either way.
    fn take(&mut self, bytes: usize) -> bool {
        if self.muted {
            return false;
        }
        let cost = bytes + LINE_OVERHEAD;
        if self.spent + cost <= OUTPUT_CAP {
            self.spent += cost;
            true
        } else {
            self.dropped_lines += 1;
            self.dropped_bytes += bytes as u64;
            false
        }
    }

    /// Logs one line of `stream`; `cut` bytes of it were past [`LINE_CAP`] and are not shown.
    fn emit(&mut self, stream: Stream, line: &[u8], cut: usize) {
        if line.iter().all(u8::is_ascii_whitespace) && cut == 0 {
            return;
        }
        if !self.take(line.len()) {
            self.dropped_bytes += cut as u64;
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = Untrusted::line(&text);
        let tag = &self.tag;
        if cut > 0 {
            tracing::info!(target: "plugin", plugin = %tag.plugin, command = tag.command,
                operation_id = %tag.operation_id, stream = stream.as_str(), cut_bytes = cut, "{text}");
        } else {
            tracing::info!(target: "plugin", plugin = %tag.plugin, command = tag.command,
                operation_id = %tag.operation_id, stream = stream.as_str(), "{text}");
        }
    }

    /// Emits the partial last lines and reports what was dropped, at the end of a call.
    fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let last = std::mem::take(&mut self.pending[stream as usize]);
            if !last.is_empty() {
                self.emit(stream, &last, 0);
            }
        }
        if self.dropped_lines > 0 {
            let tag = &self.tag;
            tracing::warn!(target: "plugin", plugin = %tag.plugin, command = tag.command,
                operation_id = %tag.operation_id, dropped_lines = self.dropped_lines,
                dropped_bytes = self.dropped_bytes,
                "plugin output over the cap of {OUTPUT_CAP} bytes per call dropped (stdout, stderr and log lines together)");
        }
        self.spent = 0;
        self.dropped_lines = 0;
        self.dropped_bytes = 0;
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A log line's key/value pairs, shown as `key="value" key2="value2"`, escaped and capped.
struct FieldList<'a>(&'a [(String, String)]);

impl FieldList<'_> {
    /// The bytes the pairs may take in the log, for the allowance.
    fn len(&self) -> usize {
        self.0
            .iter()
            .map(|(k, v)| k.len().min(LINE_CAP) + v.len().min(LINE_CAP) + 4)
            .sum()
    }
}

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let (key, value) = (Untrusted::line(key), Untrusted::line(value));
            write!(f, "{key}=\"{value}\"")?;
        }
        Ok(())
    }
}

/// One of a plugin's two output streams, as WASI hands it to the guest.
#[derive(Clone)]
pub struct GuestStream {
    /// Where its lines go.
    output: PluginOutput,
    /// Which one it is.
    stream: Stream,
}

impl GuestStream {
    pub fn new(output: PluginOutput, stream: Stream) -> Self {
        Self { output, stream }
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: output past the cap is counted and dropped rather than failing the guest.
        Ok(64 << 10)
    }
}

impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
