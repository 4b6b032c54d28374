//! Settings: the TOML file, merged under command-line flags and environment variables, validated
//! once at start and resolved into per-command and per-plugin settings that the request path only
//! reads. Plain data at the bottom of the host: the other modules read it, it reads none of them
//! but the command table and the HTTP access rules it resolves into.
//!
//! - this module: [`Config`], read, validated and looked up;
//! - [`command`]: what is resolved per command ([`CommandSettings`]), the failure policy;
//! - [`plugin`]: what is resolved per plugin ([`PluginLimits`]);
//! - [`file`]: the TOML file as written (top level, `[defaults]`, `[commands.X]`, plugin limits);
//! - [`http`]: `[http]`, `[auth]`, `[tls]`;
//! - [`capabilities`]: `[plugin_grants.X]`, `[plugin_config.X]`, `[keyvalue]`, `[outbound_http]`;
//! - [`queue`]: `[queue]` and `[record]`;
//! - [`openim_api`]: `[openim_api]` (OpenIM's REST API and the host's sign-in) and the
//!   operations a grant may list.

pub mod access;
pub mod capabilities;
pub mod command;
pub mod file;
pub mod http;
pub mod openim_api;
pub mod plugin;
pub mod queue;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::known_command;
use access::Access;

pub use capabilities::{
    CallsPerCallback, GrantFile, Grants, HttpGrant, KeyValueBackend, KeyValueFile, KeyValueGrant,
    KeyValueQuotas, KeyValueSettings, OpenimApiGrant, OutboundHttpFile, OutboundHttpSettings,
};
pub use command::{CommandSettings, Delivery, FailurePolicy, effective_timeout};
pub use file::{CommandFile, FileConfig, PluginFile};
pub use http::{AuthFile, HttpFile, HttpLimits, TlsFile};
pub use plugin::PluginLimits;
pub use queue::{
    QueueBackend, QueueDurability, QueueFile, QueueSettings, RecordFile, RecordSettings,
};

use capabilities::{resolve_grants, resolve_keyvalue, resolve_values};
use command::resolve_command;
use http::{resolve_access, resolve_http};
use plugin::resolve_plugin;

/// OpenIM's HTTP client gives up after 15 s whatever the configured timeout says.
pub const OPENIM_MAX_TIMEOUT_SECS: u64 = 15;

/// OpenIM's default `timeout` in webhooks.yml.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;

/// The fuel of a call when none is configured: none to speak of (about 600 years of instructions);
/// the deadline stops a plugin first.
pub const UNLIMITED_FUEL: u64 = u64::MAX;

/// Default time kept back for each plugin still to come in a chain.
pub const DEFAULT_RESERVE_MS: u64 = 200;

/// Default listen address: OpenIM's default webhook url is `http://127.0.0.1:10006/callbackExample`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:10006";

/// A config problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP endpoint listens.
    pub listen: SocketAddr,
    /// The drop directory: every `*.wasm` in it is a plugin.
    pub plugins_dir: PathBuf,
    /// Bodies over this size are refused with 413 before being read in full.
    pub max_body_bytes: usize,
    /// What one client may hold of the HTTP server.
    pub http: HttpLimits,
    /// Who may call the callbacks and the admin endpoints.
    pub access: Access,
    /// Certificate and key of HTTPS, when configured.
    pub tls: Option<TlsFile>,
    /// The answer leaves this long before OpenIM's timeout, to cover the network and scheduling.
    pub safety_margin: Duration,
    /// Plugin instances alive at once; sizes the pooling allocator. Requests beyond it wait.
    pub max_concurrent_calls: u32,
    /// The most linear memory all plugin instances may hold at once, in bytes; growth beyond it
    /// waits (within the call's deadline) for other calls to give memory back.
    pub memory_budget: usize,
    /// Where compiled plugins are cached; `None` compiles every plugin at every start.
    pub cache_dir: Option<PathBuf>,
    /// Count instructions (fuel) and stop a call at its budget. On by default.
    pub fuel_metering: bool,
    /// Stop a running plugin at its wall-clock deadline (epoch interruption). On by default;
    /// off, only a plugin waiting in a host call is stopped at the deadline.
    pub epoch_interruption: bool,
    /// Settings of commands without a `[commands.X]` section.
    pub defaults: CommandSettings,
    /// Settings of commands that have a `[commands.X]` section.
    pub commands: HashMap<&'static str, CommandSettings>,
    /// Limits of plugins without a `[plugins_limits.X]` section.
    pub plugin_defaults: PluginLimits,
    /// Limits of plugins that have one, by plugin name (the file name without `.wasm`).
    pub plugins: HashMap<String, PluginLimits>,
    /// Each plugin's `wasi:config` values (file, then `CALLBACK_HOST_PLUGIN__<NAME>__<KEY>`).
    pub plugin_values: HashMap<String, std::collections::BTreeMap<String, String>>,
    /// What each plugin may import beyond WASI's nothing, by plugin name.
    pub grants: HashMap<String, Grants>,
    /// Where key-value data lives, and its quotas.
    pub keyvalue: KeyValueSettings,
    /// Bounds of plugins' outbound HTTP requests.
    pub outbound_http: OutboundHttpSettings,
    /// OpenIM's REST API and the host's sign-in to it, when configured.
    pub openim_api: Option<openim_api::OpenimApiSettings>,
    /// The durable queue of `queued` after-callbacks.
    pub queue: QueueSettings,
    /// Recording answered callbacks for replay.
    pub record: RecordSettings,
    /// Plugins run off the answer path, compared with the answers given (by plugin name).
    pub shadow_plugins: std::collections::BTreeSet<String>,
    /// The commands OpenIM's webhooks.yml enables, when one was read.
    pub openim_enabled: Option<std::collections::BTreeSet<&'static str>>,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_file(FileConfig::default()).expect("the built-in defaults are valid")
    }
}

impl Config {
    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_file(file)
    }

    /// Resolves the file's optional values against the defaults and validates them.
    pub fn from_file(mut file: FileConfig) -> Result<Self, ConfigError> {
        // A url with a password belongs in a secret, not in the file: the environment wins.
        if let Ok(url) = std::env::var("CALLBACK_HOST_REDIS_URL")
            && !url.is_empty()
        {
            file.keyvalue.redis_url = Some(url);
        }
        let builtin = CommandSettings {
            // After-callbacks are answered once stored: OpenIM's workers never wait for plugins.
            delivery: Delivery::Queued,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            fuel: UNLIMITED_FUEL,
            failure_policy: FailurePolicy::Continue,
            refuse_err_code: 5001,
            refuse_err_msg: "callback plugin failed".to_owned(),
        };
        if file.queue.backend == Some(QueueBackend::Redis) && file.queue.durability.is_some() {
            return Err(ConfigError::Invalid {
                key: "queue.durability".to_owned(),
                reason: "applies to the embedded queue; a Redis queue is as durable as the \
                         server's appendonly and appendfsync"
                    .to_owned(),
            });
        }
        let defaults = resolve_command(&builtin, &file.defaults, "defaults")?;
        let mut commands = HashMap::new();
        for (name, section) in &file.commands {
            let key = format!("commands.{name}");
            let command = known_command(name).ok_or_else(|| ConfigError::Invalid {
                key: key.clone(),
                reason: format!("{name:?} is not a callback command OpenIM sends"),
            })?;
            if section.delivery == Some(Delivery::Queued)
                && crate::protocol::commands::find(command)
                    .is_some_and(|c| c.phase == crate::protocol::commands::Phase::Before)
            {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.delivery"),
                    reason: "a before-callback is always inline: OpenIM waits for its answer"
                        .into(),
                });
            }
            commands.insert(command, resolve_command(&defaults, section, &key)?);
        }
        let plugin_defaults = resolve_plugin(
            &PluginLimits::default(),
            &file.plugin_defaults,
            "plugin_defaults",
        )?;
        let mut plugins = HashMap::new();
        for (name, section) in &file.plugins_limits {
            let key = format!("plugins_limits.{name}");
            plugins.insert(
                name.clone(),
                resolve_plugin(&plugin_defaults, section, &key)?,
            );
        }
        let config = Self {
            listen: file.listen.unwrap_or_else(default_listen),
            plugins_dir: file.plugins.unwrap_or_else(|| PathBuf::from("plugins")),
            max_body_bytes: file.max_body_bytes.unwrap_or(1 << 20),
            http: resolve_http(&file.http)?,
            access: resolve_access(&file.auth)?,
            tls: file.tls,
            safety_margin: Duration::from_millis(file.safety_margin_ms.unwrap_or(500)),
            max_concurrent_calls: file.max_concurrent_calls.unwrap_or(128),
            memory_budget: match file.memory_budget_mib {
                Some(mib) => usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
                None => default_memory_budget(),
            },
            cache_dir: match file.cache_dir {
                Some(dir) if dir.as_os_str().is_empty() => None,
                Some(dir) => Some(dir),
                None => default_cache_dir(),
            },
            fuel_metering: file.fuel_metering.unwrap_or(true),
            epoch_interruption: file.epoch_interruption.unwrap_or(true),
            defaults,
            commands,
            plugin_defaults,
            plugins,
            plugin_values: resolve_values(&file.plugin_config),
            grants: resolve_grants(&file.plugin_grants)?,
            keyvalue: resolve_keyvalue(&file.keyvalue)?,
            outbound_http: OutboundHttpSettings {
                max_response_bytes: file.outbound_http.max_response_bytes.unwrap_or(1 << 20),
                max_concurrent: file.outbound_http.max_concurrent.unwrap_or(8).max(1),
                ca_file: file.outbound_http.ca_file.clone(),
            },
            openim_api: openim_api::resolve_openim_api(file.openim_api.as_ref())?,
            queue: QueueSettings {
                backend: file.queue.backend.unwrap_or(QueueBackend::Embedded),
                redis_url: file
                    .queue
                    .redis_url
                    .clone()
                    .or_else(|| file.keyvalue.redis_url.clone()),
                stream: file
                    .queue
                    .stream
                    .clone()
                    .unwrap_or_else(|| "callback-host:queue".to_owned()),
                claim_idle: Duration::from_millis(file.queue.claim_idle_ms.unwrap_or(60_000)),
                path: file
                    .queue
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("data/queue.redb")),
                max_events: file.queue.max_events.unwrap_or(100_000).max(1),
                workers: file.queue.workers.unwrap_or(8).max(1),
                max_attempts: file.queue.max_attempts.unwrap_or(5).max(1),
                retry_base: Duration::from_millis(file.queue.retry_base_ms.unwrap_or(500)),
                durability: file.queue.durability.unwrap_or(QueueDurability::Process),
            },
            record: RecordSettings {
                path: file
                    .record
                    .path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("data/recorded.jsonl")),
                before_sample: file.record.before_sample.unwrap_or(0.0),
                max_bytes: file.record.max_mib.unwrap_or(1024).saturating_mul(1 << 20),
            },
            shadow_plugins: file.shadow_plugins.iter().cloned().collect(),
            openim_enabled: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what depends on more than one setting (call again after flags change any).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        if !self.listen.ip().is_loopback() && !self.access.guarded() && !self.access.open {
            return Err(invalid(
                "auth",
                format!(
                    "listen {} is reachable from other machines, and OpenIM signs nothing: set \
                     [auth] basic_user (with CALLBACK_HOST_BASIC_PASSWORD, and user:pass@ in \
                     OpenIM's webhook url), secret_path, or allow (source networks); or \
                     open = true when a network policy already guards this port",
                    self.listen
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.record.before_sample) {
            return Err(invalid(
                "record.before_sample",
                format!(
                    "{} is not a share between 0 and 1",
                    self.record.before_sample
                ),
            ));
        }
        if self.queue.backend == QueueBackend::Redis && self.queue.redis_url.is_none() {
            return Err(invalid(
                "queue.redis_url",
                "the redis backend needs a server: set [queue] redis_url (or [keyvalue] redis_url)"
                    .into(),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be at least 1".into()));
        }
        if self.max_concurrent_calls == 0 {
            return Err(invalid("max_concurrent_calls", "must be at least 1".into()));
        }
        let largest = self.largest_memory_bytes();
        if self.memory_budget < largest {
            return Err(invalid(
                "memory_budget_mib",
                format!(
                    "{} MiB is less than one plugin may use ({} MiB, memory_mib): raise memory_budget_mib or lower memory_mib",
                    self.memory_budget >> 20,
                    largest >> 20
                ),
            ));
        }
        if let Some(machine) = machine_memory_bytes()
            && self.memory_budget > machine
        {
            return Err(invalid(
                "memory_budget_mib",
                format!(
                    "{} MiB is more than this machine's {} MiB of memory: lower memory_budget_mib (and memory_mib or max_concurrent_calls with it)",
                    self.memory_budget >> 20,
                    machine >> 20
                ),
            ));
        }
        let shortest = std::iter::once(&self.defaults)
            .chain(self.commands.values())
            .map(|c| c.timeout)
            .min()
            .unwrap_or(self.defaults.timeout);
        if self.safety_margin >= shortest {
            return Err(invalid(
                "safety_margin_ms",
                format!(
                    "{} ms leaves no time for plugins within the shortest timeout of {} ms",
                    self.safety_margin.as_millis(),
                    shortest.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Takes each callback's timeout and whether OpenIM sends it (from OpenIM's webhooks.yml:
    /// `(command, timeout_secs, enabled)`), so that the plugin deadline matches what OpenIM
    /// waits for. Overrides `timeout_secs` of the TOML file for the callbacks given.
    pub fn set_openim_callbacks(
        &mut self,
        callbacks: impl IntoIterator<Item = (&'static str, u64, bool)>,
    ) -> Result<(), ConfigError> {
        let mut enabled = BTreeSet::new();
        for (command, timeout_secs, sent) in callbacks {
            let mut settings = self.command(command).clone();
            settings.timeout = effective_timeout(timeout_secs);
            self.commands.insert(command, settings);
            if sent {
                enabled.insert(command);
            }
        }
        self.openim_enabled = Some(enabled);
        self.validate()
    }

    /// Whether `command` is delivered through the queue: a `queued` after-callback.
    pub fn queued(&self, command: &crate::protocol::commands::CommandSpec) -> bool {
        command.phase == crate::protocol::commands::Phase::After
            && self.command(command.name).delivery == Delivery::Queued
    }

    /// The settings of a command.
    pub fn command(&self, command: &str) -> &CommandSettings {
        self.commands.get(command).unwrap_or(&self.defaults)
    }

    /// What a plugin may import beyond WASI's nothing.
    pub fn grants(&self, name: &str) -> Grants {
        self.grants.get(name).cloned().unwrap_or_default()
    }

    /// The limits of a plugin.
    pub fn plugin(&self, name: &str) -> PluginLimits {
        self.plugins
            .get(name)
            .copied()
            .unwrap_or(self.plugin_defaults)
    }

    /// The largest memory any plugin may have: the size of a pooling allocator memory slot.
    pub fn largest_memory_bytes(&self) -> usize {
        self.plugins
            .values()
            .map(|p| p.memory_bytes)
            .chain([self.plugin_defaults.memory_bytes])
            .max()
            .unwrap_or(self.plugin_defaults.memory_bytes)
    }

    /// The time plugins have for one request: the command's timeout less the safety margin.
    pub fn time_allowed(&self, command: &str) -> Duration {
        self.command(command)
            .timeout
            .saturating_sub(self.safety_margin)
    }
}

/// The default memory budget: 1 GiB, or half the machine's memory when that is less.
fn default_memory_budget() -> usize {
    let half = machine_memory_bytes().map_or(usize::MAX, |m| m / 2);
    (1usize << 30).min(half)
}

/// The machine's memory (`MemTotal`), or its cgroup's limit when that is lower (a container).
pub fn machine_memory_bytes() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kib: usize = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let total = total_kib * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    Some(cgroup.map_or(total, |limit| limit.min(total)))
}

/// `$XDG_CACHE_HOME/callback-host`, else `$HOME/.cache/callback-host`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("callback-host"))
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is a socket address")
}

#[cfg(test)]
mod tests;
