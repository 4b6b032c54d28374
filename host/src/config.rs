//! Settings: the TOML file, merged under command-line flags and environment variables, validated
//! once at start and resolved into per-command and per-plugin settings that the request path only
//! reads.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use ipnet::IpNet;

use crate::http::access::{Access, Credentials, loopback};
use crate::protocol::known_command;

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

/// What a failing plugin (trap, timeout, fuel, memory, bad answer) means for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Skip the failed plugin; the other plugins still decide. The default: OpenIM keeps working
    /// when a plugin is broken.
    Continue,
    /// Refuse the operation with the command's `refuse_err_code` / `refuse_err_msg`.
    Refuse,
}

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

/// The `[http]` section: what a client may hold of the server.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<u32>,
    pub max_headers: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

/// The `[auth]` section: who may call.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub basic_user: Option<String>,
    /// Better given in the environment: `CALLBACK_HOST_BASIC_PASSWORD`.
    pub basic_password: Option<String>,
    pub secret_path: Option<String>,
    pub allow: Option<Vec<String>>,
    pub admin_allow: Option<Vec<String>>,
    pub open: Option<bool>,
}

/// The `[tls]` section: serve callbacks over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[plugin_grants.<name>]`: capabilities granted to one plugin.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantFile {
    pub keyvalue: Option<bool>,
    pub keyvalue_buckets: Option<Vec<String>>,
    pub keyvalue_ttl_secs: Option<u64>,
    pub keyvalue_max_key_bytes: Option<usize>,
    pub keyvalue_max_value_bytes: Option<usize>,
    pub keyvalue_max_entries: Option<u64>,
    pub http: Option<Vec<String>>,
    pub http_private: Option<bool>,
}

/// The `[outbound_http]` section: bounds of plugins' outbound requests.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundHttpFile {
    pub max_response_bytes: Option<usize>,
    pub max_concurrent: Option<usize>,
    pub ca_file: Option<PathBuf>,
}

/// The `[keyvalue]` section: where plugins' key-value data lives.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValueFile {
    pub backend: Option<KeyValueBackend>,
    pub path: Option<PathBuf>,
    pub redis_url: Option<String>,
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_entries: Option<u64>,
}

/// Where key-value data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValueBackend {
    /// A file on this machine (redb): no server needed; data survives a restart.
    Embedded,
    /// A Redis server, shared by several host replicas.
    Redis,
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
}

/// How an after-callback reaches its plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Plugins run before OpenIM is answered.
    Inline,
    /// OpenIM is answered once the event is stored; workers run the plugins (see `queue`).
    Queued,
}

/// The `[queue]` section: the durable queue of `queued` after-callbacks.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    pub backend: Option<QueueBackend>,
    pub redis_url: Option<String>,
    pub stream: Option<String>,
    pub claim_idle_ms: Option<u64>,
    pub path: Option<PathBuf>,
    pub max_events: Option<usize>,
    pub workers: Option<usize>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
}

/// Where the queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// A redb file of this host's own.
    Embedded,
    /// A Redis stream with a consumer group, shared by replicas.
    Redis,
}

/// Resolved `[queue]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// A file of this host's, or a Redis stream shared by replicas.
    pub backend: QueueBackend,
    /// The Redis server (`[queue] redis_url`, else `[keyvalue] redis_url`).
    pub redis_url: Option<String>,
    /// The stream's key; its consumer group, retry set and dead letters are named after it.
    pub stream: String,
    /// How long a replica's event may stay unacknowledged before another replica claims it
    /// (the replica is taken for dead): longer than any delivery takes.
    pub claim_idle: Duration,
    /// The queue's file (embedded).
    pub path: PathBuf,
    /// Most events stored at once; beyond it requests wait for room.
    pub max_events: usize,
    /// Events delivered at once.
    pub workers: usize,
    /// Failed deliveries before an event is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles it.
    pub retry_base: Duration,
}

/// The `[record]` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    pub path: Option<PathBuf>,
    pub before_sample: Option<f64>,
    pub max_mib: Option<u64>,
}

/// Resolved `[record]` settings: recording answered callbacks for `callback-host replay`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSettings {
    /// The JSON Lines file records are appended to.
    pub path: PathBuf,
    /// The share of before-callbacks recorded with their answer (0: none, 1: all).
    pub before_sample: f64,
    /// Recording stops (with a warning) when the file reaches this size.
    pub max_bytes: u64,
}

impl RecordSettings {
    /// Whether anything is recorded (shadow disagreements are whenever this is on).
    pub fn on(&self) -> bool {
        self.before_sample > 0.0
    }
}

/// Resolved settings of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// For an after-callback: inline, or stored and delivered by the queue's workers.
    pub delivery: Delivery,
    /// What OpenIM will wait for: `timeout` from webhooks.yml, capped at 15 s, 0 meaning 15 s.
    pub timeout: Duration,
    /// Instruction budget of each plugin call (wasmtime fuel units). `u64::MAX` (the default) means
    /// none: the deadline is the only default limit, so a slow but correct plugin succeeds or
    /// fails by the time it takes, not by the machine's speed. Fuel is metered and reported anyway.
    pub fuel: u64,
    /// What a failing plugin means for the answer.
    pub failure_policy: FailurePolicy,
    /// `errCode` of a refusal made by the `refuse` policy.
    pub refuse_err_code: i32,
    /// `errMsg` of a refusal made by the `refuse` policy.
    pub refuse_err_msg: String,
}

/// Resolved resource caps of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Largest size of each linear memory, in bytes.
    pub memory_bytes: usize,
    /// Core instances a component may create (Python and JS runtimes create a dozen or so).
    pub max_instances: usize,
    /// Tables a component may create.
    pub max_tables: usize,
    /// Elements of each table.
    pub max_table_elements: usize,
    /// Requests one instance serves before it is discarded. 1 (the default) is a fresh instance
    /// per request; more trades isolation between requests (globals persist) for speed.
    pub reuse_instances: u32,
    /// Time kept back for this plugin from the plugins before it in a chain, so that one stuck
    /// plugin cannot leave the ones after it no time (a guard after it still runs).
    pub reserve: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            // Enough for the Python and JS runtimes' heaps; a Rust plugin needs a few MiB.
            memory_bytes: 128 << 20,
            max_instances: 64,
            max_tables: 64,
            max_table_elements: 100_000,
            reuse_instances: 1,
            reserve: Duration::from_millis(DEFAULT_RESERVE_MS),
        }
    }
}

/// Resolved limits of the HTTP server: what one client can hold of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers (from the connection's first byte or from
    /// a request's first byte), and then its body. A client that trickles is cut off.
    pub read_timeout: Duration,
    /// Time a keep-alive connection may stay idle between requests before it is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; beyond it new connections wait in the listen backlog while
    /// the open ones keep being served.
    pub max_connections: u32,
    /// Headers a request may have (431 beyond).
    pub max_headers: usize,
    /// Bytes of a request's headers, names and values (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            // Go's HTTP client (OpenIM's) keeps idle connections for 90 s; closing them earlier
            // only costs a reconnect.
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            // OpenIM sends 7 headers.
            max_headers: 64,
            max_header_bytes: 16 << 10,
        }
    }
}

/// Capabilities granted to one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `wasi:keyvalue`: its own bucket (opened as `""` or `"default"`).
    pub keyvalue: bool,
    /// Shared buckets it may open by name, besides its own.
    pub keyvalue_buckets: Vec<String>,
    /// Keys of its buckets expire this long after they were created (rate-limit windows).
    pub keyvalue_ttl: Option<Duration>,
    /// Its own quotas, over the `[keyvalue]` ones: key bytes, value bytes, keys per bucket.
    pub keyvalue_quotas: (Option<usize>, Option<usize>, Option<u64>),
    /// `wasi:http/outgoing-handler`: the origins it may call.
    pub http: Vec<crate::origin::Origin>,
    /// Names of those origins may resolve to private or loopback addresses (an internal
    /// service); otherwise only origins given as such an address may reach one.
    pub http_private: bool,
}

/// Resolved `[outbound_http]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundHttpSettings {
    /// Largest response body a plugin may read.
    pub max_response_bytes: usize,
    /// Requests one plugin may have in flight at once (over all its instances).
    pub max_concurrent: usize,
    /// PEM certificates of a CA to trust besides the webpki roots (an internal service's).
    pub ca_file: Option<PathBuf>,
}

/// Resolved `[keyvalue]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValueSettings {
    /// Where the data lives.
    pub backend: KeyValueBackend,
    /// The embedded store's file.
    pub path: PathBuf,
    /// The Redis server, for the `redis` backend.
    pub redis_url: Option<String>,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys in one bucket.
    pub max_entries: u64,
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
    pub fn budget(&self, command: &str) -> Duration {
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

/// OpenIM's own reading of `timeout`: 0 means only the 15 s cap, more than 15 is 15.
pub fn effective_timeout(timeout_secs: u64) -> Duration {
    match timeout_secs {
        0 => Duration::from_secs(OPENIM_MAX_TIMEOUT_SECS),
        secs => Duration::from_secs(secs.min(OPENIM_MAX_TIMEOUT_SECS)),
    }
}

fn resolve_command(
    base: &CommandSettings,
    file: &CommandFile,
    key: &str,
) -> Result<CommandSettings, ConfigError> {
    if file.fuel == Some(0) {
        return Err(ConfigError::Invalid {
            key: format!("{key}.fuel"),
            reason: "must be at least 1 (it is the instruction budget of a call)".into(),
        });
    }
    Ok(CommandSettings {
        delivery: file.delivery.unwrap_or(base.delivery),
        timeout: file.timeout_secs.map_or(base.timeout, effective_timeout),
        fuel: file.fuel.unwrap_or(base.fuel),
        failure_policy: file.failure_policy.unwrap_or(base.failure_policy),
        refuse_err_code: file.refuse_err_code.unwrap_or(base.refuse_err_code),
        refuse_err_msg: file
            .refuse_err_msg
            .clone()
            .unwrap_or_else(|| base.refuse_err_msg.clone()),
    })
}

fn resolve_http(file: &HttpFile) -> Result<HttpLimits, ConfigError> {
    let base = HttpLimits::default();
    let at_least = |key: &str, value: Option<u64>, min: u64| match value {
        Some(v) if v < min => Err(ConfigError::Invalid {
            key: format!("http.{key}"),
            reason: format!("{v} is below the minimum of {min}"),
        }),
        other => Ok(other),
    };
    let ms = |key: &str, value: Option<u64>, default: Duration| {
        at_least(key, value, 100).map(|v| v.map_or(default, Duration::from_millis))
    };
    Ok(HttpLimits {
        read_timeout: ms("read_timeout_ms", file.read_timeout_ms, base.read_timeout)?,
        idle_timeout: ms("idle_timeout_ms", file.idle_timeout_ms, base.idle_timeout)?,
        max_connections: at_least("max_connections", file.max_connections.map(u64::from), 1)?
            .map_or(base.max_connections, |v| v as u32),
        max_headers: at_least("max_headers", file.max_headers.map(|v| v as u64), 8)?
            .map_or(base.max_headers, |v| v as usize),
        max_header_bytes: at_least(
            "max_header_bytes",
            file.max_header_bytes.map(|v| v as u64),
            1024,
        )?
        .map_or(base.max_header_bytes, |v| v as usize),
    })
}

/// The values of `[plugin_config.<name>]`, with `CALLBACK_HOST_PLUGIN__<NAME>__<KEY>` from the
/// environment over them (`<NAME>` is the plugin's name upper-cased with `-` as `_`; `<KEY>` is
/// lower-cased).
fn resolve_values(
    file: &HashMap<String, HashMap<String, String>>,
) -> HashMap<String, std::collections::BTreeMap<String, String>> {
    let mut values: HashMap<String, std::collections::BTreeMap<String, String>> = file
        .iter()
        .map(|(plugin, map)| (plugin.clone(), map.clone().into_iter().collect()))
        .collect();
    for (name, value) in std::env::vars() {
        let Some(rest) = name.strip_prefix("CALLBACK_HOST_PLUGIN__") else {
            continue;
        };
        let Some((plugin, key)) = rest.split_once("__") else {
            continue;
        };
        // The plugin's name as written in the file, or as the env spells it.
        let plugin = file
            .keys()
            .find(|p| p.to_uppercase().replace('-', "_") == plugin)
            .cloned()
            .unwrap_or_else(|| plugin.to_lowercase().replace('_', "-"));
        values
            .entry(plugin)
            .or_default()
            .insert(key.to_lowercase(), value);
    }
    values
}

fn resolve_grants(
    file: &HashMap<String, GrantFile>,
) -> Result<HashMap<String, Grants>, ConfigError> {
    let mut grants = HashMap::new();
    for (plugin, grant) in file {
        let key = |k: &str| format!("plugin_grants.{plugin}.{k}");
        let buckets = grant.keyvalue_buckets.clone().unwrap_or_default();
        if let Some(bad) = buckets
            .iter()
            .find(|b| b.is_empty() || b.as_str() == "default" || b.len() > 64)
        {
            return Err(ConfigError::Invalid {
                key: key("keyvalue_buckets"),
                reason: format!(
                    "{bad:?}: a shared bucket needs a name of 1 to 64 bytes other than \"default\""
                ),
            });
        }
        let http = grant
            .http
            .iter()
            .flatten()
            .map(|origin| {
                origin.parse().map_err(|reason| ConfigError::Invalid {
                    key: key("http"),
                    reason: format!("{origin:?}: {reason}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        grants.insert(
            plugin.clone(),
            Grants {
                keyvalue: grant.keyvalue.unwrap_or(!buckets.is_empty()),
                keyvalue_buckets: buckets,
                keyvalue_ttl: match grant.keyvalue_ttl_secs {
                    Some(0) => {
                        return Err(ConfigError::Invalid {
                            key: key("keyvalue_ttl_secs"),
                            reason: "must be at least 1 (leave it out for keys that never expire)"
                                .into(),
                        });
                    }
                    secs => secs.map(Duration::from_secs),
                },
                keyvalue_quotas: (
                    grant.keyvalue_max_key_bytes,
                    grant.keyvalue_max_value_bytes,
                    grant.keyvalue_max_entries,
                ),
                http,
                http_private: grant.http_private.unwrap_or(false),
            },
        );
    }
    Ok(grants)
}

fn resolve_keyvalue(file: &KeyValueFile) -> Result<KeyValueSettings, ConfigError> {
    let backend = file.backend.unwrap_or(KeyValueBackend::Embedded);
    if backend == KeyValueBackend::Redis && file.redis_url.is_none() {
        return Err(ConfigError::Invalid {
            key: "keyvalue.redis_url".into(),
            reason: "the redis backend needs the server's url, e.g. redis://127.0.0.1:6379".into(),
        });
    }
    Ok(KeyValueSettings {
        backend,
        path: file
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("data/keyvalue.redb")),
        redis_url: file.redis_url.clone(),
        max_key_bytes: file.max_key_bytes.unwrap_or(512),
        max_value_bytes: file.max_value_bytes.unwrap_or(64 << 10),
        max_entries: file.max_entries.unwrap_or(100_000),
    })
}

fn resolve_access(file: &AuthFile) -> Result<Access, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: format!("auth.{key}"),
        reason,
    };
    let networks = |key: &str, list: &[String]| {
        list.iter()
            .map(|net| {
                net.parse::<IpNet>()
                    .or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            key,
                            format!("{net:?} is not an address or network (10.0.0.0/8)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let password = std::env::var("CALLBACK_HOST_BASIC_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| file.basic_password.clone());
    let basic = match (&file.basic_user, password) {
        (None, None) => None,
        (Some(user), Some(password)) if !user.is_empty() && !user.contains(':') => {
            Some(Credentials {
                user: user.clone(),
                password,
            })
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "basic_user",
                "must be non-empty, without ':'".into(),
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "basic_password",
                "basic_user is set: give its password in CALLBACK_HOST_BASIC_PASSWORD".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "basic_user",
                "a password is set without a user".into(),
            ));
        }
    };
    if let Some(secret) = &file.secret_path
        && (secret.len() < 16
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(invalid(
            "secret_path",
            "must be at least 16 characters of A-Z a-z 0-9 - _ (one URL path segment)".into(),
        ));
    }
    Ok(Access {
        basic,
        secret_path: file.secret_path.clone(),
        allow: file
            .allow
            .as_deref()
            .map(|list| networks("allow", list))
            .transpose()?,
        admin_allow: match &file.admin_allow {
            Some(list) => networks("admin_allow", list)?,
            None => loopback(),
        },
        open: file.open.unwrap_or(false),
    })
}

fn resolve_plugin(
    base: &PluginLimits,
    file: &PluginFile,
    key: &str,
) -> Result<PluginLimits, ConfigError> {
    let memory_bytes = match file.memory_mib {
        None => base.memory_bytes,
        Some(mib @ 1..=4096) => (mib as usize) << 20,
        Some(mib) => {
            return Err(ConfigError::Invalid {
                key: format!("{key}.memory_mib"),
                reason: format!("{mib} is outside 1..=4096"),
            });
        }
    };
    Ok(PluginLimits {
        memory_bytes,
        max_instances: file.max_instances.unwrap_or(base.max_instances),
        max_tables: file.max_tables.unwrap_or(base.max_tables),
        max_table_elements: file.max_table_elements.unwrap_or(base.max_table_elements),
        reuse_instances: match file.reuse_instances {
            None => base.reuse_instances,
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.reuse_instances"),
                    reason: "must be at least 1 (1 is a fresh instance per request)".into(),
                });
            }
            Some(n) => n,
        },
        reserve: file.reserve_ms.map_or(base.reserve, Duration::from_millis),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_inherit_defaults_and_timeouts_follow_openim() {
        let config = Config::parse(
            Path::new("t.toml"),
            r#"
            [defaults]
            fuel = 1000
            [commands.callbackAfterKickGroupCommand]
            timeout_secs = 30
            failure_policy = "refuse"
            "#,
        )
        .unwrap();
        let kick = config.command("callbackAfterKickGroupCommand");
        assert_eq!(kick.timeout, Duration::from_secs(15));
        assert_eq!(kick.fuel, 1000);
        assert_eq!(kick.failure_policy, FailurePolicy::Refuse);
        assert_eq!(
            config.command("callbackAfterQuitGroupCommand").timeout,
            Duration::from_secs(5)
        );
        assert_eq!(effective_timeout(0), Duration::from_secs(15));
    }

    #[test]
    fn rejects_typos_with_the_key() {
        let err =
            Config::parse(Path::new("t.toml"), "[commands.callbackAfterKickGroup]\n").unwrap_err();
        assert!(
            err.to_string().contains("commands.callbackAfterKickGroup"),
            "{err}"
        );
        let err = Config::parse(Path::new("t.toml"), "[defaults]\ntimeout = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
        let err = Config::parse(Path::new("t.toml"), "safety_margin_ms = 9000\n").unwrap_err();
        assert!(err.to_string().contains("safety_margin_ms"), "{err}");
    }

    #[test]
    fn the_memory_budget_must_fit_a_plugin_and_the_machine() {
        let err = Config::parse(
            Path::new("t.toml"),
            "memory_budget_mib = 200\n[plugins_limits.big]\nmemory_mib = 300\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("memory_budget_mib")
                && err
                    .to_string()
                    .contains("less than one plugin may use (300 MiB"),
            "{err}"
        );
        let machine = machine_memory_bytes().expect("this machine reports its memory") >> 20;
        let err = Config::parse(
            Path::new("t.toml"),
            &format!("memory_budget_mib = {}\n", machine + 1024),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("more than this machine's"),
            "{err}"
        );
        let config = Config::default();
        assert!(config.memory_budget <= 1 << 30);
        assert!(config.memory_budget >= config.largest_memory_bytes());
    }

    #[test]
    fn http_limits_and_access_are_validated() {
        let err = Config::parse(Path::new("t.toml"), "[http]\nread_timeout_ms = 5\n").unwrap_err();
        assert!(err.to_string().contains("http.read_timeout_ms"), "{err}");
        let err =
            Config::parse(Path::new("t.toml"), "[auth]\nallow = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.to_string().contains("auth.allow"), "{err}");
        let config = Config::parse(
            Path::new("t.toml"),
            "listen = \"0.0.0.0:10006\"\n[auth]\nallow = [\"10.0.0.0/8\", \"192.168.1.7\"]\n",
        )
        .unwrap();
        assert_eq!(config.access.allow.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn the_readme_example_config_is_valid() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\n").expect("README has a toml block") + 8;
        let end = start + readme[start..].find("```").expect("the block ends");
        let config = Config::parse(Path::new("README.md"), &readme[start..end]).unwrap();
        assert_eq!(config.plugin("10-guard").memory_bytes, 16 << 20);
        assert_eq!(config.listen.port(), 10006);
    }
}
