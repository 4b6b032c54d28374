//! What a plugin instance sees of the world: the store data of one call. WASI grants nothing (no
//! files, environment, arguments, sockets or name lookups); stdout, stderr and the `log` import go to
//! the host's log tagged with the plugin, the command and the operationID.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiterAsync;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfig;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::capabilities::keyvalue::KvView;

use crate::runtime::bindings::Level;
use crate::runtime::budget::{MemoryBudget, Reservation};
use crate::runtime::limits::{LimitExceeded, PluginLimiter};
use crate::runtime::output::CallTag;
use crate::runtime::output::{GuestStream, PluginOutput, Stream};

/// The store data of one plugin call. A fresh one is made for every call: nothing is shared
/// between requests.
pub struct PluginState {
    /// WASI context, configured to grant nothing; made on the guest's first WASI call, so a
    /// plugin that never calls WASI never pays for it.
    wasi: Option<WasiCtx>,
    /// Resources (streams, pollables) the guest holds through WASI.
    table: ResourceTable,
    /// Memory, table and instance caps; also records why a growth was refused.
    pub limiter: PluginLimiter,
    /// The call's identity for log lines.
    pub tag: Arc<CallTag>,
    /// The instant the call must have finished by; read by the epoch callback.
    pub deadline: Instant,
    /// Its stdout, stderr and `log` import lines, under one budget per call.
    /// Made on the first line a call writes (WASI's streams or the `log` import), so a call that
    /// writes nothing allocates nothing for it.
    output: Option<PluginOutput>,
    /// The host-wide memory budget this instance's memories count against.
    budget: Arc<MemoryBudget>,
    /// The plugin's `wasi:config` values.
    pub config_values: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    /// Its key-value access, when granted.
    pub keyvalue: crate::capabilities::keyvalue::KvState,
    /// Its outbound HTTP, checked against its grant.
    http: crate::capabilities::http::HttpState,
    /// Its OpenIM API access, and whether it asked to be retried.
    pub openim: crate::capabilities::openim::OpenimState,
    /// What this instance holds of the budget; given back when the store is dropped.
    reservation: Reservation,
}

/// The call's output, made on first use.
fn output<'a>(output: &'a mut Option<PluginOutput>, tag: &Arc<CallTag>) -> &'a PluginOutput {
    output.get_or_insert_with(|| PluginOutput::new(Arc::clone(tag)))
}

/// The WASI context, which grants nothing; its stdout and stderr go to the plugin's output.
fn wasi_ctx(output: &PluginOutput) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(GuestStream::new(output.clone(), Stream::Stdout))
        .stderr(GuestStream::new(output.clone(), Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
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
            http: crate::capabilities::http::HttpState::new(granted.http, deadline),
            openim: granted.openim,
            wasi: None,
            table: ResourceTable::new(),
            limiter,
            output: None,
            tag,
            deadline,
            budget,
            reservation: Reservation::default(),
        }
    }

    /// Prepares a store made before its call (built ahead, or reused) for the call: its
    /// identity, its deadline, the plugin's config values of now; output lines written before
    /// (by the previous call, or the start functions) flushed.
    pub fn begin_call(
        &mut self,
        tag: Arc<CallTag>,
        deadline: Instant,
        config_values: Arc<wasmtime_wasi_config::WasiConfigVariables>,
    ) {
        if let Some(output) = &self.output {
            output.begin_call(Arc::clone(&tag));
        }
        self.tag = tag;
        self.deadline = deadline;
        self.http.set_deadline(deadline);
        self.config_values = config_values;
    }

    /// Installs what the plugin may use, in place of what the store was made with (a warm-up
    /// call runs with every capability refusing; the instance's call gets the plugin's grants).
    pub fn grant(&mut self, granted: crate::capabilities::Granted) {
        self.config_values = granted.config_values;
        self.keyvalue = granted.keyvalue;
        self.http = crate::capabilities::http::HttpState::new(granted.http, self.deadline);
        self.openim = granted.openim;
    }

    /// Drops the output lines of the instance's current call (a warm-up call) instead of
    /// logging them.
    pub fn mute_output(&mut self) {
        output(&mut self.output, &self.tag).mute();
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

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let output = output(&mut self.output, &self.tag);
        let wasi = self.wasi.get_or_insert_with(|| wasi_ctx(output));
        WasiCtxView {
            ctx: wasi,
            table: &mut self.table,
        }
    }
}

impl crate::runtime::bindings::openim::callback::log::Host for PluginState {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        output(&mut self.output, &self.tag).log(level, &message, &fields);
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

impl PluginState {
    /// The plugin's `wasi:config` values, as the interface reads them.
    pub fn config_view(&mut self) -> WasiConfig<'_> {
        WasiConfig::from(&*self.config_values)
    }

    /// What the OpenIM API interface works on for one call.
    pub fn openim_view(&mut self) -> crate::capabilities::openim::OpenimView<'_> {
        crate::capabilities::openim::OpenimView {
            instance: &mut self.openim,
            operation_id: &self.tag.operation_id,
            deadline: self.deadline,
        }
    }

    /// What the key-value interfaces work on for one call.
    pub fn keyvalue_view(&mut self) -> KvView<'_> {
        KvView {
            instance: &self.keyvalue,
            table: &mut self.table,
            deadline: self.deadline,
        }
    }
}
