//! What a plugin instance sees of the world: the store data of one call. WASI grants nothing (no
//! files, environment, arguments, sockets or name lookups); stdout, stderr and the `log` import go to
//! the host's log tagged with the plugin, the command and the operationID.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::ResourceLimiterAsync;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::runtime::bindings::Level;
use crate::runtime::budget::{MemoryBudget, Reservation};
use crate::runtime::limits::{LimitExceeded, PluginLimiter};

/// Most bytes of stdout (and of stderr) kept from one call; the rest is dropped, so a chatty or
/// hostile plugin cannot flood the host's log.
const OUTPUT_CAP: usize = 64 * 1024;
/// Most lines a call may write through the `log` import; the rest are counted and dropped.
const LOG_LINES_CAP: u32 = 100;
/// Most bytes (messages and fields) a call may write through the `log` import.
const LOG_BYTES_CAP: usize = 64 * 1024;

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

/// The store data of one plugin call. A fresh one is made for every call: nothing is shared
/// between requests.
pub struct PluginState {
    /// WASI context, configured to grant nothing; made on the guest's first WASI call, so a
    /// plugin that never calls WASI never pays for it.
    wasi: Option<Wasi>,
    /// Resources (streams, pollables) the guest holds through WASI.
    table: ResourceTable,
    /// Memory, table and instance caps; also records why a growth was refused.
    pub limiter: PluginLimiter,
    /// The call's identity for log lines.
    pub tag: Arc<CallTag>,
    /// The instant the call must have finished by; read by the epoch callback.
    pub deadline: Instant,
    /// What the call has written through the `log` import, against its caps.
    log: LogBudget,
    /// The host-wide memory budget this instance's memories count against.
    budget: Arc<MemoryBudget>,
    /// The plugin's `wasi:config` values.
    pub config_values: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    /// Its key-value access, when granted.
    pub keyvalue: crate::capabilities::keyvalue::KvInstance,
    /// Its outbound HTTP, checked against its grant.
    http: crate::capabilities::http::HttpInstance,
    /// What this instance holds of the budget; given back when the store is dropped.
    reservation: Reservation,
}

/// Lines and bytes a call has written through the `log` import, and what was dropped past the
/// caps (reported once, when the call ends).
#[derive(Debug, Default)]
struct LogBudget {
    lines: u32,
    bytes: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl LogBudget {
    /// Whether a line of `bytes` may be written; counts it either way.
    fn take(&mut self, bytes: usize) -> bool {
        if self.lines < LOG_LINES_CAP && self.bytes + bytes <= LOG_BYTES_CAP {
            self.lines += 1;
            self.bytes += bytes;
            true
        } else {
            self.dropped_lines += 1;
            self.dropped_bytes += bytes as u64;
            false
        }
    }

    /// Reports what `tag`'s call dropped, and starts counting anew.
    fn finish(&mut self, tag: &CallTag) {
        if self.dropped_lines > 0 {
            tracing::warn!(target: "plugin", plugin = %tag.plugin, command = tag.command,
                operation_id = %tag.operation_id, dropped_lines = self.dropped_lines,
                dropped_bytes = self.dropped_bytes,
                "log lines over the cap of {LOG_LINES_CAP} lines or {LOG_BYTES_CAP} bytes per call dropped");
        }
        *self = Self::default();
    }
}

impl Drop for PluginState {
    fn drop(&mut self) {
        self.log.finish(&self.tag);
    }
}

/// The WASI context and the plugin's stdout and stderr behind it.
struct Wasi {
    ctx: WasiCtx,
    /// Retagged when a reused instance takes a new call.
    outputs: [GuestOutput; 2],
}

impl Wasi {
    fn new(tag: &Arc<CallTag>) -> Self {
        let stdout = GuestOutput::new(Arc::clone(tag), "stdout");
        let stderr = GuestOutput::new(Arc::clone(tag), "stderr");
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            ctx,
            outputs: [stdout, stderr],
        }
    }
}

impl PluginState {
    /// Store data for one call of `tag.plugin` that must finish by `deadline`.
    pub fn new(
        tag: Arc<CallTag>,
        limiter: PluginLimiter,
        budget: Arc<MemoryBudget>,
        deadline: Instant,
        granted: crate::capabilities::Granted,
    ) -> Self {
        Self {
            config_values: granted.config_values,
            keyvalue: granted.keyvalue,
            http: crate::capabilities::http::HttpInstance::new(granted.http, deadline),
            wasi: None,
            table: ResourceTable::new(),
            limiter,
            log: LogBudget::default(),
            tag,
            deadline,
            budget,
            reservation: Reservation::default(),
        }
    }

    /// Prepares a reused instance's store for its next call: new identity, new deadline, output
    /// lines of the previous call flushed.
    pub fn begin_call(&mut self, tag: Arc<CallTag>, deadline: Instant) {
        if let Some(wasi) = &self.wasi {
            for output in &wasi.outputs {
                output.retag(Arc::clone(&tag));
            }
        }
        self.log.finish(&self.tag);
        self.tag = tag;
        self.deadline = deadline;
        self.http.set_deadline(deadline);
    }
}

/// The plugin's caps, then the host's memory budget (waiting for room until the deadline).
#[async_trait::async_trait]
impl ResourceLimiterAsync for PluginState {
    async fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limiter.memory_growing(current, desired)?;
        let wanted = desired.saturating_sub(current);
        if !self
            .budget
            .reserve(&mut self.reservation, wanted, self.deadline)
            .await
        {
            return Err(wasmtime::Error::new(LimitExceeded::Budget {
                wanted,
                budget: self.budget.bytes(),
            }));
        }
        Ok(true)
    }

    async fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limiter.table_growing(desired)?;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limiter.instances()
    }

    fn tables(&self) -> usize {
        self.limiter.tables()
    }

    fn memories(&self) -> usize {
        self.limiter.memories()
    }
}

impl PluginState {
    /// The resources the guest holds (WASI's and the capabilities').
    pub fn table_ref(&self) -> &ResourceTable {
        &self.table
    }

    /// The HTTP state and the resources, borrowed together.
    pub fn http_and_table(
        &mut self,
    ) -> (
        &mut crate::capabilities::http::HttpInstance,
        &mut ResourceTable,
    ) {
        (&mut self.http, &mut self.table)
    }

    /// The resources the guest holds, to add or remove one.
    pub fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let tag = &self.tag;
        let wasi = self.wasi.get_or_insert_with(|| Wasi::new(tag));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl crate::runtime::bindings::openim::callback::log::Host for PluginState {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let size = message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.log.take(size) {
            return;
        }
        let tag = &self.tag;
        let fields = FieldList(&fields);
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
}

/// Displays key/value pairs as `key=value key2=value2`.
struct FieldList<'a>(&'a [(String, String)]);

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={value:?}")?;
        }
        Ok(())
    }
}

/// A plugin's stdout or stderr: complete lines go to the host's log as they are written, the last
/// partial line when the call's store is dropped.
#[derive(Clone)]
struct GuestOutput {
    /// Shared by every stream handle WASI makes of this output.
    inner: Arc<Mutex<OutputLines>>,
}

struct OutputLines {
    /// Who wrote it.
    tag: Arc<CallTag>,
    /// `stdout` or `stderr`.
    stream: &'static str,
    /// Bytes after the last newline.
    pending: Vec<u8>,
    /// Bytes accepted so far, against [`OUTPUT_CAP`].
    accepted: usize,
    /// Bytes dropped past the cap, reported once at the end.
    dropped: usize,
}

impl GuestOutput {
    fn new(tag: Arc<CallTag>, stream: &'static str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutputLines {
                tag,
                stream,
                pending: Vec::new(),
                accepted: 0,
                dropped: 0,
            })),
        }
    }

    /// Flushes the previous call's partial line and starts counting the next call's output.
    fn retag(&self, tag: Arc<CallTag>) {
        let mut lines = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lines.finish();
        lines.tag = tag;
        lines.accepted = 0;
    }

    fn push(&self, bytes: &[u8]) {
        // A poisoned lock only means an earlier log line panicked; keep the output going.
        let mut lines = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lines.push(bytes);
    }
}

impl OutputLines {
    fn push(&mut self, bytes: &[u8]) {
        let room = OUTPUT_CAP.saturating_sub(self.accepted);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        self.accepted += kept.len();
        self.dropped += dropped.len();
        self.pending.extend_from_slice(kept);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..end]);
        }
    }

    fn emit(&self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let tag = &self.tag;
        tracing::info!(target: "plugin", plugin = %tag.plugin, command = tag.command,
            operation_id = %tag.operation_id, stream = self.stream, "{}", String::from_utf8_lossy(line));
    }
}

impl OutputLines {
    /// Emits the partial last line and reports dropped bytes, at the end of a call.
    fn finish(&mut self) {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.emit(&last);
        }
        if self.dropped > 0 {
            let tag = &self.tag;
            tracing::warn!(target: "plugin", plugin = %tag.plugin, operation_id = %tag.operation_id,
                stream = self.stream, dropped = self.dropped, "output over {OUTPUT_CAP} bytes dropped");
            self.dropped = 0;
        }
    }
}

impl Drop for OutputLines {
    fn drop(&mut self) {
        self.finish();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: output past the cap is counted and dropped rather than failing the guest.
        Ok(OUTPUT_CAP)
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
