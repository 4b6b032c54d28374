//! The TOML file as the operator writes it: every key optional, unknown keys refused (a typo is
//! caught at start). Each section's own keys live beside their resolution (`http`,
//! `capabilities`, `queue`); this module holds the top level and the per-command and per-plugin
//! sections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::capabilities::{GrantFile, KeyValueFile, OutboundHttpFile};
use super::http::{AuthFile, HttpFile, TlsFile};
use super::queue::{QueueFile, RecordFile};
use super::{Delivery, FailurePolicy};

/// The TOML file as written by the user. Every field is optional; unknown keys are errors so that
/// typos are caught at start.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub plugins: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub safety_margin_ms: Option<u64>,
    pub max_concurrent_calls: Option<u32>,
    pub memory_budget_mib: Option<u64>,
    pub cache_dir: Option<PathBuf>,
    pub fuel_metering: Option<bool>,
    pub epoch_interruption: Option<bool>,
    #[serde(default)]
    pub defaults: CommandFile,
    #[serde(default)]
    pub commands: HashMap<String, CommandFile>,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub auth: AuthFile,
    pub tls: Option<TlsFile>,
    #[serde(default)]
    pub plugin_defaults: PluginFile,
    #[serde(default)]
    pub plugins_limits: HashMap<String, PluginFile>,
    /// `[plugin_config.<name>]`: the values a plugin reads through `wasi:config/store`.
    #[serde(default)]
    pub plugin_config: HashMap<String, HashMap<String, String>>,
    /// `[plugin_grants.<name>]`: what a plugin may import beyond WASI's nothing.
    #[serde(default)]
    pub plugin_grants: HashMap<String, GrantFile>,
    #[serde(default)]
    pub keyvalue: KeyValueFile,
    #[serde(default)]
    pub outbound_http: OutboundHttpFile,
    /// `[openim_api]`: OpenIM's REST API, for the operations granted to plugins.
    pub openim_api: Option<super::openim_api::OpenimApiFile>,
    #[serde(default)]
    pub queue: QueueFile,
    /// `[record]`: which answered callbacks are written for `callback-host replay`.
    #[serde(default)]
    pub record: RecordFile,
    /// Plugins that run off the answer path, their answers only compared with the ones given.
    #[serde(default)]
    pub shadow_plugins: Vec<String>,
}

/// Per-command keys in the file (`[defaults]` and `[commands.<callbackCommand>]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    pub delivery: Option<Delivery>,
    pub timeout_secs: Option<u64>,
    pub fuel: Option<u64>,
    pub failure_policy: Option<FailurePolicy>,
    pub refuse_err_code: Option<i32>,
    pub refuse_err_msg: Option<String>,
}

/// Per-plugin keys in the file (`[plugin_defaults]` and `[plugins_limits.<name>]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    pub memory_mib: Option<u64>,
    pub max_instances: Option<usize>,
    pub max_tables: Option<usize>,
    pub max_table_elements: Option<usize>,
    pub reuse_instances: Option<u32>,
    pub reserve_ms: Option<u64>,
    pub max_concurrent_calls: Option<u32>,
    pub stock_instances: Option<u32>,
    pub warm_up_call: Option<bool>,
}
