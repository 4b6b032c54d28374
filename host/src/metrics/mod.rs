//! Prometheus metrics, owned by the app (no global recorder) and rendered in the text format at
//! `GET /metrics`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod api_calls;
mod labels;

pub use api_calls::*;
pub use labels::*;

use crate::outcomes::{
    ApiOutcome, CallOutcome, CapabilityOutcome, Closed, Rejection, RequestOutcome,
};

/// Every metric the host keeps.
pub struct Metrics {
    /// What the metrics are rendered from.
    registry: Registry,
    /// Requests answered, by command and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request to answer, by command.
    pub request_seconds: Family<CommandLabels, Histogram, LatencyBuckets>,
    /// Plugin calls, by plugin and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Time of instantiate + call, by plugin.
    pub call_seconds: Family<PluginLabels, Histogram, LatencyBuckets>,
    /// Fuel (instructions) used per call, by plugin.
    pub call_fuel: Family<PluginLabels, Histogram, FuelBuckets>,
    /// Plugin instances alive now.
    pub instances: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Instances built ahead and ready now, by plugin.
    pub stock_ready: Family<PluginLabels, Gauge>,
    /// Calls of plugins whose stock is on, by plugin and whether an instance was ready.
    pub stock_takes: Family<StockLabels, Counter>,
    /// Plugins serving now.
    pub plugins_loaded: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Plugin files loaded, removed or refused after start (hot reload).
    pub reloads: Family<ReloadLabels, Counter>,
    /// Plugin files that failed to load, at start or on reload.
    pub load_failures: Counter<u64, AtomicU64>,
    /// 1 for each command each serving plugin handles.
    pub handles: Family<HandlesLabels, Gauge>,
    /// Client connections open now.
    pub connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Connections the server closed, by reason.
    pub connections_closed: Family<ClosedLabels, Counter>,
    /// The memory budget of all plugin instances.
    pub memory_budget: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Plugin memory reserved from the budget by live instances now.
    pub memory_reserved: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// The process's resident memory (RSS), read when the metrics are rendered.
    pub resident_memory: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// The process's open file descriptors, read when the metrics are rendered.
    pub open_fds: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Key-value calls, by plugin and outcome.
    pub keyvalue_calls: Family<CapabilityLabels, Counter>,
    /// Outbound HTTP requests, by plugin and outcome.
    pub http_requests: Family<CapabilityLabels, Counter>,
    /// OpenIM API calls of plugins, by plugin, operation and outcome.
    pub openim_api_calls: Family<ApiCallLabels, Counter>,
    /// Admin tokens fetched from OpenIM, by outcome: one per expiry or token error when all is
    /// well.
    pub openim_api_token_fetches: Family<TokenFetchLabels, Counter>,
    /// After-callbacks stored and not yet handled.
    pub queue_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Age of the oldest stored event, read when the metrics are rendered.
    pub queue_oldest_seconds: Gauge<f64, AtomicU64>,
    /// Queued events handled by every plugin.
    pub queue_handled: Counter<u64, AtomicU64>,
    /// Failed deliveries that will be retried.
    pub queue_retries: Counter<u64, AtomicU64>,
    /// Events that kept failing, moved to the dead letters.
    pub queue_dead_letters: Counter<u64, AtomicU64>,
    /// Deliveries after a restart (a plugin may see the event twice).
    pub queue_redeliveries: Counter<u64, AtomicU64>,
    /// Requests that found the queue full and waited for room.
    pub queue_full: Counter<u64, AtomicU64>,
    /// After-callbacks sent again (same command, operationID and body: a balancer's retry)
    /// that were already stored, so not stored twice.
    pub queue_duplicates: Counter<u64, AtomicU64>,
    /// Records dropped because the record writer fell behind.
    pub records_dropped: Counter<u64, AtomicU64>,
    /// Shadow plugins' answers compared with the answers given, by command, plugin and verdict.
    pub shadow: Family<ShadowLabels, Counter>,
    /// 1 when the stores this replica needs answer (as `/readyz`), 0 when not; set when
    /// `/metrics` or `/readyz` is read.
    pub ready: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Answers with `nextCode 1` and a non-zero `actionCode` (OpenIM goes on), by plugin and
    /// command: a refusal that does not refuse.
    pub misread_refusals: Family<HandlesLabels, Counter>,
    /// Callbacks rejected before any plugin (OpenIM goes on), by reason.
    pub rejected: Family<RejectedLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callback_host");
        let requests = Family::default();
        let request_seconds = Family::new_with_constructor(LatencyBuckets);
        let calls = Family::default();
        let call_seconds = Family::new_with_constructor(LatencyBuckets);
        let call_fuel = Family::new_with_constructor(FuelBuckets);
        let instances = Gauge::default();
        let stock_ready = Family::default();
        let stock_takes = Family::default();
        registry.register(
            "stock_ready_instances",
            "Plugin instances built ahead of the callbacks and ready now",
            stock_ready.clone(),
        );
        registry.register(
            "stock_takes",
            "Calls of plugins whose stock is on: hit (an instance was ready) or miss (built its own)",
            stock_takes.clone(),
        );
        let plugins_loaded = Gauge::default();
        let reloads = Family::default();
        let load_failures = Counter::default();
        let handles = Family::default();
        let connections = Gauge::default();
        let connections_closed = Family::default();
        let memory_budget = Gauge::default();
        let memory_reserved = Gauge::default();
        let resident_memory = Gauge::default();
        let open_fds = Gauge::default();
        let keyvalue_calls = Family::default();
        let http_requests = Family::default();
        let openim_api_calls = Family::default();
        let openim_api_token_fetches = Family::default();
        let queue_depth = Gauge::default();
        let queue_oldest_seconds = Gauge::default();
        let queue_handled = Counter::default();
        let queue_retries = Counter::default();
        let queue_dead_letters = Counter::default();
        let queue_redeliveries = Counter::default();
        let queue_full = Counter::default();
        let queue_duplicates = Counter::default();
        let shadow = Family::default();
        let records_dropped = Counter::default();
        let misread_refusals = Family::default();
        let rejected = Family::default();
        registry.register(
            "rejected_requests",
            "Callbacks rejected before any plugin, by reason: OpenIM reads the answer as go on",
            rejected.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the stores this replica needs answer (as /readyz), else 0",
            ready.clone(),
        );
        registry.register(
            "misread_refusals",
            "Answers with nextCode 1 and a non-zero actionCode, which OpenIM reads as go on",
            misread_refusals.clone(),
        );
        registry.register(
            "records_dropped",
            "Records dropped because the record writer fell behind",
            records_dropped.clone(),
        );
        registry.register(
            "shadow",
            "Shadow plugins' answers compared with the answers given (agree, disagree, failed, skipped)",
            shadow.clone(),
        );
        registry.register(
            "queue_depth",
            "After-callbacks stored, not yet handled",
            queue_depth.clone(),
        );
        registry.register(
            "queue_oldest_event_seconds",
            "Age of the oldest stored after-callback",
            queue_oldest_seconds.clone(),
        );
        registry.register(
            "queue_handled",
            "Queued events handled by every plugin",
            queue_handled.clone(),
        );
        registry.register(
            "queue_retries",
            "Failed deliveries to be retried",
            queue_retries.clone(),
        );
        registry.register(
            "queue_dead_letters",
            "Events moved to the dead letters",
            queue_dead_letters.clone(),
        );
        registry.register(
            "queue_redeliveries",
            "Deliveries after a restart (a plugin may see the event twice)",
            queue_redeliveries.clone(),
        );
        registry.register(
            "queue_full",
            "Requests that waited for room in the queue",
            queue_full.clone(),
        );
        registry.register(
            "queue_duplicates",
            "After-callbacks received again (same command, operationID and body) and stored once",
            queue_duplicates.clone(),
        );
        registry.register(
            "outbound_http_requests",
            "Outbound HTTP requests of plugins (ok, denied, busy, timeout, error)",
            http_requests.clone(),
        );
        registry.register(
            "openim_api_calls",
            "OpenIM API calls of plugins, by operation (ok, openim_error, not_granted, \
             rate_limited, timeout, unavailable, not_configured, sign_in_refused, call_cap)",
            openim_api_calls.clone(),
        );
        registry.register(
            "openim_api_token_fetches",
            "Admin tokens the host fetched from OpenIM's /auth/get_admin_token (ok, \
             sign_in_refused, unavailable, timeout)",
            openim_api_token_fetches.clone(),
        );
        registry.register(
            "keyvalue_calls",
            "Key-value calls of plugins (ok, denied, quota, timeout, error)",
            keyvalue_calls.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "Memory budget of all plugin instances",
            memory_budget.clone(),
        );
        registry.register(
            "memory_reserved_bytes",
            "Plugin memory held by live instances",
            memory_reserved.clone(),
        );
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the host process",
            resident_memory.clone(),
        );
        registry.register("open_fds", "Open file descriptors", open_fds.clone());
        registry.register("requests", "Callback requests answered", requests.clone());
        registry.register(
            "request_seconds",
            "Time from request to answer",
            request_seconds.clone(),
        );
        registry.register("plugin_calls", "Plugin calls", calls.clone());
        registry.register(
            "plugin_call_seconds",
            "Time of instantiate and call",
            call_seconds.clone(),
        );
        registry.register(
            "plugin_call_fuel",
            "Fuel used per plugin call",
            call_fuel.clone(),
        );
        registry.register(
            "plugin_instances",
            "Plugin instances alive",
            instances.clone(),
        );
        registry.register("plugins_loaded", "Plugins serving", plugins_loaded.clone());
        registry.register("plugin_reloads", "Plugin files reloaded", reloads.clone());
        registry.register(
            "plugin_load_failures",
            "Plugin files that failed to load",
            load_failures.clone(),
        );
        registry.register(
            "plugin_handles",
            "Commands each serving plugin handles (1 per pair)",
            handles.clone(),
        );
        registry.register(
            "connections",
            "Client connections open",
            connections.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the server closed: timeouts, evicted at the cap, over the per-source cap, not allowed",
            connections_closed.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            calls,
            call_seconds,
            call_fuel,
            instances,
            stock_ready,
            stock_takes,
            plugins_loaded,
            reloads,
            load_failures,
            handles,
            connections,
            connections_closed,
            memory_budget,
            memory_reserved,
            resident_memory,
            open_fds,
            keyvalue_calls,
            http_requests,
            openim_api_calls,
            openim_api_token_fetches,
            queue_depth,
            queue_oldest_seconds,
            queue_handled,
            queue_retries,
            queue_dead_letters,
            queue_redeliveries,
            queue_full,
            queue_duplicates,
            records_dropped,
            shadow,
            ready,
            misread_refusals,
            rejected,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Reads what the process holds now (resident memory, file descriptors) into the gauges.
    pub fn sample_process(&self) {
        // statm: sizes in pages; the second field is the resident set.
        if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<i64>().ok())
        {
            self.resident_memory.set(pages * 4096);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
    }

    /// Counts an outbound HTTP request.
    pub fn http_request(&self, plugin: &Arc<str>, outcome: CapabilityOutcome) {
        self.http_requests
            .get_or_create(&CapabilityLabels {
                plugin: Arc::clone(plugin),
                outcome,
            })
            .inc();
    }

    /// Counts an OpenIM API call of a plugin.
    pub fn openim_api_call(&self, plugin: &Arc<str>, operation: &'static str, outcome: ApiOutcome) {
        self.openim_api_calls
            .get_or_create(&ApiCallLabels {
                plugin: Arc::clone(plugin),
                operation,
                outcome,
            })
            .inc();
    }

    /// Counts a fetch of the admin token.
    pub fn openim_api_token_fetch(&self, outcome: ApiOutcome) {
        self.openim_api_token_fetches
            .get_or_create(&TokenFetchLabels { outcome })
            .inc();
    }

    /// Counts a key-value call.
    pub fn keyvalue_call(&self, plugin: &Arc<str>, outcome: CapabilityOutcome) {
        self.keyvalue_calls
            .get_or_create(&CapabilityLabels {
                plugin: Arc::clone(plugin),
                outcome,
            })
            .inc();
    }

    /// Counts an answered request.
    pub fn request(&self, command: &'static str, outcome: RequestOutcome, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { command, outcome })
            .inc();
        if command != "unknown" {
            self.request_seconds
                .get_or_create(&CommandLabels { command })
                .observe(seconds);
        }
    }

    /// Counts an answer of `plugin` for `command` that OpenIM reads as go on although it says
    /// `nextCode 1`.
    pub fn misread_refusal(&self, plugin: &Arc<str>, command: &'static str) {
        self.misread_refusals
            .get_or_create(&HandlesLabels {
                plugin: Arc::clone(plugin),
                command,
            })
            .inc();
    }

    /// Counts a callback rejected before any plugin.
    pub fn rejected(&self, reason: Rejection) {
        self.rejected
            .get_or_create(&RejectedLabels { reason })
            .inc();
    }

    /// Counts an open connection until the returned guard drops.
    pub fn connection_opened(&self) -> impl Drop + use<> {
        /// Decrements the gauge when the connection ends.
        struct Open(Gauge<i64, std::sync::atomic::AtomicI64>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.dec();
            }
        }
        self.connections.inc();
        Open(self.connections.clone())
    }

    /// Counts a connection closed by a timeout.
    pub fn connection_closed(&self, why: Closed) {
        self.connections_closed
            .get_or_create(&ClosedLabels { reason: why })
            .inc();
    }

    /// Shows what the serving plugins handle: each (plugin, command) pair.
    pub fn set_handles<'a>(&self, handles: impl IntoIterator<Item = (&'a Arc<str>, &'static str)>) {
        self.handles.clear();
        for (plugin, command) in handles {
            self.handles
                .get_or_create(&HandlesLabels {
                    plugin: Arc::clone(plugin),
                    command,
                })
                .set(1);
        }
    }

    /// Counts a plugin call.
    pub fn call(&self, plugin: &Arc<str>, outcome: CallOutcome, seconds: f64, fuel: Option<u64>) {
        self.calls
            .get_or_create(&CallLabels {
                plugin: Arc::clone(plugin),
                outcome,
            })
            .inc();
        let labels = PluginLabels {
            plugin: Arc::clone(plugin),
        };
        self.call_seconds.get_or_create(&labels).observe(seconds);
        if let Some(fuel) = fuel {
            self.call_fuel.get_or_create(&labels).observe(fuel as f64);
        }
    }
}
