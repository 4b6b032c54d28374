//! What a plugin may reach beyond WASI's nothing, granted per plugin in the config: its own
//! config values (`wasi:config`, always), key-value buckets (`wasi:keyvalue`), outbound HTTP
//! (`wasi:http`) and OpenIM's API (`openim:callback/openim-api`). One module per capability,
//! each linking itself, holding its per-instance state and saying how a grant decides its
//! imports ([`Capability`], listed in [`CAPABILITIES`]); this module decides, at load time,
//! whether a component's imports are granted.
//!
//! - [`config`]: `wasi:config/store`, the plugin's `[plugin_config.<name>]` values.
//! - [`keyvalue`]: `wasi:keyvalue` on the embedded store or Redis.
//! - [`http`]: the origins a plugin may call.
//! - [`openim`]: OpenIM's own API (`openim:callback/openim-api`), per operation granted, with
//!   the admin token the host keeps.

pub mod config;
pub mod http;
pub mod keyvalue;
pub mod openim;

use std::sync::Arc;

use wasmtime_wasi_config::WasiConfigVariables;

use crate::config::{Config, Grants};
use crate::metrics::Metrics;

/// The host side of the capabilities, shared by every plugin.
pub struct Capabilities {
    /// Every plugin's config values; swapped on reload.
    pub values: config::ConfigValues,
    /// The key-value store, opened when some plugin is granted key-value access.
    pub keyvalue: Option<Arc<keyvalue::Backend>>,
    /// TLS of outbound requests (the trusted roots), shared by every plugin.
    tls: tokio_rustls::TlsConnector,
    /// OpenIM's API with the admin token, when `[openim_api]` is configured.
    openim: Option<Arc<openim::Client>>,
    /// Grants and quotas.
    config: Arc<Config>,
    /// Counts capability calls.
    metrics: Arc<Metrics>,
}

impl Capabilities {
    /// Opens what the grants of `config` need (the key-value store, if any plugin may use it).
    pub async fn open(config: Arc<Config>, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let keyvalue = if config.grants.values().any(|g| g.keyvalue.is_some()) {
            let backend = keyvalue::Backend::open(&config.keyvalue).await?;
            tracing::info!(backend = ?config.keyvalue.backend, "key-value store open");
            Some(Arc::new(backend))
        } else {
            None
        };
        let tls = http::tls_connector(config.outbound_http.ca_file.as_deref())?;
        let openim = config.openim_api.clone().map(|settings| {
            Arc::new(openim::Client::new(
                settings,
                tls.clone(),
                Arc::clone(&metrics),
            ))
        });
        if openim.is_none()
            && let Some((plugin, _)) = config.grants.iter().find(|(_, g)| g.openim_api.is_some())
        {
            tracing::warn!(%plugin, "granted OpenIM API operations, but there is no [openim_api] \
                section (url, admin_user, and the secret in CALLBACK_HOST_OPENIM_SECRET): its \
                calls answer not-configured");
        }
        Ok(Self {
            values: config::ConfigValues::new(&config),
            keyvalue,
            tls,
            openim,
            config,
            metrics,
        })
    }

    /// The config the grants were read from (at start).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Only config values: for the tools, which run one call.
    pub fn values_only(config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        Self {
            values: config::ConfigValues::new(&config),
            keyvalue: None,
            tls: http::tls_connector(None).expect("the webpki roots make a TLS config"),
            openim: None,
            config,
            metrics,
        }
    }

    /// What plugin `name` may use, resolved once at load.
    pub fn for_plugin(&self, name: &Arc<str>) -> PluginCapabilities {
        let grants = self.config.grants(name);
        let keyvalue =
            self.keyvalue
                .as_ref()
                .zip(grants.keyvalue.as_ref())
                .map(|(backend, grant)| {
                    Arc::new(keyvalue::PluginKv::new(
                        Arc::clone(backend),
                        Arc::clone(name),
                        grant,
                        self.config.keyvalue.clone(),
                        Arc::clone(&self.metrics),
                    ))
                });
        let http = grants.http.as_ref().map(|grant| {
            Arc::new(http::PluginHttp::new(
                Arc::clone(name),
                grant,
                self.config.outbound_http.clone(),
                self.tls.clone(),
                Arc::clone(&self.metrics),
            ))
        });
        let openim = grants.openim_api.as_ref().map(|grant| {
            Arc::new(openim::PluginOpenim::new(
                self.openim.clone(),
                Arc::clone(name),
                grant,
                Arc::clone(&self.metrics),
            ))
        });
        PluginCapabilities {
            name: Arc::clone(name),
            grants,
            keyvalue,
            http,
            openim,
        }
    }

    /// The store data of one call of `plugin`.
    /// The config values of `plugin` now: what a call sees, from when it started.
    pub fn config_values(&self, plugin: &PluginCapabilities) -> Arc<WasiConfigVariables> {
        self.values.of(&plugin.name)
    }

    pub fn granted(&self, plugin: &PluginCapabilities) -> Granted {
        Granted {
            config_values: self.values.of(&plugin.name),
            keyvalue: keyvalue::KvState {
                access: plugin.keyvalue.clone(),
            },
            http: plugin.http.clone(),
            openim: openim::OpenimState::new(plugin.openim.clone()),
        }
    }
}

/// What one plugin may use.
pub struct PluginCapabilities {
    /// The plugin's name (its config section).
    name: Arc<str>,
    /// Its grants, for the import check and `check`.
    pub grants: Grants,
    /// Its key-value access, when granted and a store is open.
    keyvalue: Option<Arc<keyvalue::PluginKv>>,
    /// Its outbound HTTP, when granted.
    http: Option<Arc<http::PluginHttp>>,
    /// Its OpenIM API operations, when granted any.
    openim: Option<Arc<openim::PluginOpenim>>,
}

impl PluginCapabilities {
    /// Whether it may call OpenIM's API (its calls are then noted for the console).
    pub fn calls_openim(&self) -> bool {
        self.openim.is_some()
    }
}

/// The capability state of one instance.
pub struct Granted {
    /// Its `wasi:config` values.
    pub config_values: Arc<WasiConfigVariables>,
    /// Its key-value access.
    pub keyvalue: keyvalue::KvState,
    /// Its outbound HTTP, when granted.
    pub http: Option<Arc<http::PluginHttp>>,
    /// Its OpenIM API access.
    pub openim: openim::OpenimState,
}

impl Granted {
    /// Only the plugin's config values: key-value, outbound HTTP and OpenIM's API refuse every
    /// call (what a warm-up call runs with).
    pub fn refusing(config_values: Arc<WasiConfigVariables>) -> Self {
        Self {
            config_values,
            keyvalue: keyvalue::KvState::default(),
            http: None,
            openim: openim::OpenimState::default(),
        }
    }
}

/// How the host treats one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStatus {
    /// The host's own interfaces (`openim:callback/*`).
    Host,
    /// WASI's base interfaces, which grant nothing (no files, environment, sockets).
    Wasi,
    /// The plugin's own config values.
    Config,
    /// Granted by the plugin's config (`keyvalue`, `http`, `openim_api`).
    Granted(&'static str),
    /// Not granted: the plugin is refused at load with this reason.
    Denied(String),
}

impl std::fmt::Display for ImportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host => f.write_str("host interface"),
            Self::Wasi => f.write_str("WASI (granted nothing: no files, env, args or sockets)"),
            Self::Config => f.write_str("granted: its own [plugin_config] values"),
            Self::Granted(what) => write!(f, "granted: {what}"),
            Self::Denied(reason) => write!(f, "NOT GRANTED: {reason}"),
        }
    }
}

/// One capability as the host lists it: the imports it answers for, and how a plugin's grants
/// decide them. Each capability's module holds its own; adding a capability adds one line to
/// [`CAPABILITIES`].
#[derive(Debug)]
pub struct Capability {
    /// The start of the import names it answers for (`wasi:keyvalue/`).
    pub imports: &'static str,
    /// How `plugin`, with `grants`, may use `import`, one of its imports.
    pub status: fn(plugin: &str, import: &str, grants: &Grants) -> ImportStatus,
}

/// Every capability a plugin may be granted (or, for config values, always has).
pub const CAPABILITIES: [Capability; 4] = [
    config::CAPABILITY,
    keyvalue::CAPABILITY,
    http::CAPABILITY,
    openim::CAPABILITY,
];

/// How `plugin`, with `grants`, may use the import named `import`: as a capability's grant says,
/// else a host interface or WASI's base (which grants nothing).
pub fn import_status(plugin: &str, import: &str, grants: &Grants) -> ImportStatus {
    match CAPABILITIES.iter().find(|c| import.starts_with(c.imports)) {
        Some(capability) => (capability.status)(plugin, import, grants),
        None if import.starts_with("openim:callback/") => ImportStatus::Host,
        None => ImportStatus::Wasi,
    }
}

/// The first import of `imports` that `plugin` is not granted, with the reason.
pub fn first_denied<'a>(
    plugin: &str,
    imports: impl IntoIterator<Item = &'a str>,
    grants: &Grants,
) -> Option<String> {
    imports
        .into_iter()
        .find_map(|import| match import_status(plugin, import, grants) {
            ImportStatus::Denied(reason) => Some(reason),
            _ => None,
        })
}
