//! The capabilities' sections: what each plugin is granted (`[plugin_grants.X]`), its config
//! values (`[plugin_config.X]` and the environment), the key-value store (`[keyvalue]`) and the
//! bounds of outbound HTTP (`[outbound_http]`), read and validated.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::openim_api::ApiOperation;

/// OpenIM API calls a plugin may make a second when its grant does not say.
pub const DEFAULT_OPENIM_API_RATE: u32 = 10;

/// Most OpenIM API calls of one plugin call (its turn for one callback), when its grant does not
/// say: beyond it, calls fail at once (`rate-limited`) without reaching the rate cap or OpenIM. A
/// retry loop written wrongly then spins on a refusal that costs nothing; a plugin that means to
/// act on many users passes them in one call (`kick-group-members`, `get-users-info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallsPerCallback(pub u32);

impl Default for CallsPerCallback {
    fn default() -> Self {
        Self(20)
    }
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
    pub openim_api: Option<Vec<ApiOperation>>,
    pub openim_api_rate: Option<u32>,
    pub openim_api_calls_per_callback: Option<u32>,
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

/// Capabilities granted to one plugin: one grant per capability, `None` when not granted. (Its
/// config values need no grant.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `wasi:keyvalue`.
    pub keyvalue: Option<KeyValueGrant>,
    /// `wasi:http/outgoing-handler`.
    pub http: Option<HttpGrant>,
    /// `openim:callback/openim-api`.
    pub openim_api: Option<OpenimApiGrant>,
}

/// `wasi:keyvalue` for one plugin: its own bucket (opened as `""` or `"default"`), the shared
/// ones listed, and how long keys live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValueGrant {
    /// Shared buckets it may open by name, besides its own.
    pub buckets: Vec<String>,
    /// Keys of its buckets expire this long after they were created (rate-limit windows).
    pub ttl: Option<Duration>,
    /// Its own quotas, over the `[keyvalue]` ones.
    pub quotas: KeyValueQuotas,
}

/// A plugin's own key-value quotas; `None` keeps the `[keyvalue]` section's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyValueQuotas {
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_entries: Option<u64>,
}

/// Outbound HTTP for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// The origins it may call (at least one).
    pub origins: Vec<crate::origin::Origin>,
    /// Names of those origins may resolve to private or loopback addresses (an internal
    /// service); otherwise only origins given as such an address may reach one.
    pub private: bool,
}

/// OpenIM's API for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenimApiGrant {
    /// The operations it may call through the host (at least one).
    pub operations: Vec<ApiOperation>,
    /// Most calls a second, over all its instances (bursts up to as many).
    pub rate: u32,
    /// Most calls in one of its calls.
    pub calls_per_callback: CallsPerCallback,
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

/// The values of `[plugin_config.<name>]`, with `CALLBACK_HOST_PLUGIN__<NAME>__<KEY>` from the
/// environment over them (`<NAME>` is the plugin's name upper-cased with `-` as `_`; `<KEY>` is
/// lower-cased).
pub(super) fn resolve_values(
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

pub(super) fn resolve_grants(
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
        let keyvalue_ttl = match grant.keyvalue_ttl_secs {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: key("keyvalue_ttl_secs"),
                    reason: "must be at least 1 (leave it out for keys that never expire)".into(),
                });
            }
            secs => secs.map(Duration::from_secs),
        };
        let rate = match grant.openim_api_rate {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: key("openim_api_rate"),
                    reason: "must be at least 1 call a second".into(),
                });
            }
            rate => rate.unwrap_or(DEFAULT_OPENIM_API_RATE),
        };
        let calls_per_callback = match grant.openim_api_calls_per_callback {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: key("openim_api_calls_per_callback"),
                    reason: "must be at least 1 (leave the operation out of openim_api for none)"
                        .into(),
                });
            }
            Some(calls) => CallsPerCallback(calls),
            None => CallsPerCallback::default(),
        };
        let operations = grant.openim_api.clone().unwrap_or_default();
        grants.insert(
            plugin.clone(),
            Grants {
                keyvalue: grant
                    .keyvalue
                    .unwrap_or(!buckets.is_empty())
                    .then_some(KeyValueGrant {
                        buckets,
                        ttl: keyvalue_ttl,
                        quotas: KeyValueQuotas {
                            max_key_bytes: grant.keyvalue_max_key_bytes,
                            max_value_bytes: grant.keyvalue_max_value_bytes,
                            max_entries: grant.keyvalue_max_entries,
                        },
                    }),
                http: (!http.is_empty()).then_some(HttpGrant {
                    origins: http,
                    private: grant.http_private.unwrap_or(false),
                }),
                openim_api: (!operations.is_empty()).then_some(OpenimApiGrant {
                    operations,
                    rate,
                    calls_per_callback,
                }),
            },
        );
    }
    Ok(grants)
}

pub(super) fn resolve_keyvalue(file: &KeyValueFile) -> Result<KeyValueSettings, ConfigError> {
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
