//! `wasi:keyvalue` (`store`, `atomics`, `batch`) on two backends: an embedded file (redb) that
//! needs no server, and Redis for replicas that share state.
//!
//! A plugin's own bucket (opened as `""` or `"default"`) is private to it; it opens a shared
//! bucket by name only when its grant lists the name. Keys, values and entries per bucket have
//! quotas; a grant may give keys a time to live, counted from their creation (a rate-limit
//! window). Every call counts against the plugin's deadline like any host call.

mod backend;
mod embedded;
mod redis;

pub use backend::Backend;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::config::KeyValueSettings;
use crate::metrics::Metrics;
use crate::outcomes::CapabilityOutcome;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// `wasi:keyvalue`, with `keyvalue = true` in the plugin's grant.
pub const CAPABILITY: super::Capability = super::Capability {
    imports: "wasi:keyvalue/",
    status: |plugin, import, grants| match grants.keyvalue {
        Some(_) => {
            super::ImportStatus::Granted("keyvalue (its own bucket and the shared ones listed)")
        }
        None => super::ImportStatus::Denied(format!(
            "{import} needs `keyvalue = true` in [plugin_grants.{plugin}]"
        )),
    },
};

/// An open bucket, as the plugin holds it.
#[derive(Debug)]
pub struct Bucket {
    /// Where its keys live: `p/<plugin>` for the plugin's own, `s/<name>` for a shared one.
    namespace: Arc<str>,
}

/// Why a key-value call failed, before it becomes the interface's `error`.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    Quota(String),
    #[error("key-value backend: {0}")]
    Backend(String),
    #[error("the value of {0:?} is not a decimal number (increment needs one)")]
    NotANumber(String),
    #[error("the call's deadline passed")]
    Deadline,
}

impl KvError {
    fn outcome(&self) -> CapabilityOutcome {
        match self {
            Self::Quota(_) => CapabilityOutcome::Quota,
            Self::Backend(_) | Self::NotANumber(_) => CapabilityOutcome::Error,
            Self::Deadline => CapabilityOutcome::Timeout,
        }
    }
}

/// Quotas and expiry of a write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most keys a bucket may hold.
    pub max_entries: u64,
    /// A new key expires this long after it was created.
    pub ttl: Option<Duration>,
}

/// The namespace of `plugin`'s own bucket in the store.
fn own_namespace(plugin: &str) -> String {
    format!("p/{plugin}")
}

/// Keys per `list-keys` page.
pub const PAGE: usize = 1000;

/// One plugin's key-value access: granted buckets and the quotas, shared by its calls.
pub struct PluginKv {
    /// The store.
    pub backend: Arc<Backend>,
    /// The plugin's own namespace, `p/<plugin>`.
    own: Arc<str>,
    /// The shared buckets the plugin may open.
    shared: Vec<String>,
    /// Sizes and expiry.
    settings: KeyValueSettings,
    /// Expiry of new keys.
    ttl: Option<Duration>,
    /// Counts calls.
    metrics: Arc<Metrics>,
    /// The plugin's name, for the metrics.
    plugin: Arc<str>,
}

impl PluginKv {
    pub fn new(
        backend: Arc<Backend>,
        plugin: Arc<str>,
        grant: &crate::config::KeyValueGrant,
        settings: KeyValueSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            backend,
            own: own_namespace(&plugin).into(),
            shared: grant.buckets.clone(),
            settings: KeyValueSettings {
                max_key_bytes: grant.quotas.max_key_bytes.unwrap_or(settings.max_key_bytes),
                max_value_bytes: grant
                    .quotas
                    .max_value_bytes
                    .unwrap_or(settings.max_value_bytes),
                max_entries: grant.quotas.max_entries.unwrap_or(settings.max_entries),
                ..settings
            },
            ttl: grant.ttl,
            metrics,
            plugin,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_entries: self.settings.max_entries,
            ttl: self.ttl,
        }
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.settings.max_key_bytes {
            return Err(KvError::Quota(format!(
                "a key of {} bytes is over the limit of {}",
                key.len(),
                self.settings.max_key_bytes
            )));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() > self.settings.max_value_bytes {
            return Err(KvError::Quota(format!(
                "a value of {} bytes is over the limit of {}",
                value.len(),
                self.settings.max_value_bytes
            )));
        }
        Ok(())
    }
}

/// The key-value side of one instance's store data.
#[derive(Default)]
pub struct KvState {
    /// `None` when the plugin was not granted key-value access.
    pub access: Option<Arc<PluginKv>>,
}

/// What the key-value interfaces work on during one call: the plugin's access, the store's
/// resources (its open buckets), the call's deadline.
pub struct KvView<'a> {
    /// The plugin's access, if granted.
    pub instance: &'a KvState,
    /// The store's resources, where open buckets live.
    pub table: &'a mut ResourceTable,
    /// No backend call outlives it.
    pub deadline: std::time::Instant,
}

/// Names [`KvView`] as the data the interfaces' host traits are implemented on.
struct KvData;

impl HasData for KvData {
    type Data<'a> = KvView<'a>;
}

/// Adds the three interfaces to the linker, for store data that gives a [`KvView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    bindings::Imports::add_to_linker::<T, KvData>(linker, view)
}

impl KvView<'_> {
    fn kv(&self) -> Result<Arc<PluginKv>, store::Error> {
        self.instance
            .access
            .clone()
            .ok_or(store::Error::AccessDenied)
    }

    fn namespace(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Arc<str>> {
        Ok(Arc::clone(&self.table.get(bucket)?.namespace))
    }
}

/// Runs a backend call until `deadline`, counts it, and turns its error into the interface's.
async fn kv_call<T>(
    access: &PluginKv,
    deadline: std::time::Instant,
    call: impl Future<Output = Result<T, KvError>>,
) -> Result<T, store::Error> {
    let result = match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(result) => result,
        Err(_) => Err(KvError::Deadline),
    };
    let outcome = match &result {
        Ok(_) => CapabilityOutcome::Ok,
        Err(error) => error.outcome(),
    };
    access.metrics.keyvalue_call(&access.plugin, outcome);
    result.map_err(|error| store::Error::Other(error.to_string()))
}

impl store::Host for KvView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        let access = match self.kv() {
            Ok(access) => access,
            Err(error) => return Ok(Err(error)),
        };
        let namespace: Arc<str> = match identifier.as_str() {
            "" | "default" => Arc::clone(&access.own),
            name if access.shared.iter().any(|s| s == name) => format!("s/{name}").into(),
            _ => {
                access
                    .metrics
                    .keyvalue_call(&access.plugin, CapabilityOutcome::Denied);
                return Ok(Err(store::Error::AccessDenied));
            }
        };
        Ok(Ok(self.table.push(Bucket { namespace })?))
    }
}

impl store::HostBucket for KvView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (ns, access) = (self.namespace(&bucket)?, self.kv());
        let Ok(access) = access else {
            return Ok(Err(store::Error::AccessDenied));
        };
        if let Err(e) = access.check_key(&key) {
            return Ok(Err(store::Error::Other(e.to_string())));
        }
        Ok(kv_call(&access, self.deadline, access.backend.get(&ns, &key)).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (ns, access) = (self.namespace(&bucket)?, self.kv());
        let Ok(access) = access else {
            return Ok(Err(store::Error::AccessDenied));
        };
        if let Err(e) = access
            .check_key(&key)
            .and_then(|()| access.check_value(&value))
        {
            access.metrics.keyvalue_call(&access.plugin, e.outcome());
            return Ok(Err(store::Error::Other(e.to_string())));
        }
        let limits = access.limits();
        Ok(kv_call(
            &access,
            self.deadline,
            access.backend.set(&ns, &key, &value, limits),
        )
        .await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let (ns, access) = (self.namespace(&bucket)?, self.kv());
        let Ok(access) = access else {
            return Ok(Err(store::Error::AccessDenied));
        };
        Ok(kv_call(&access, self.deadline, access.backend.delete(&ns, &key)).await)
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        Ok(self.get(bucket, key).await?.map(|v| v.is_some()))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let (ns, access) = (self.namespace(&bucket)?, self.kv());
        let Ok(access) = access else {
            return Ok(Err(store::Error::AccessDenied));
        };
        Ok(kv_call(
            &access,
            self.deadline,
            access.backend.list(&ns, cursor.unwrap_or(0)),
        )
        .await
        .map(|(keys, cursor)| store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KvView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let (ns, access) = (self.namespace(&bucket)?, self.kv());
        let Ok(access) = access else {
            return Ok(Err(store::Error::AccessDenied));
        };
        if let Err(e) = access.check_key(&key) {
            return Ok(Err(store::Error::Other(e.to_string())));
        }
        let limits = access.limits();
        Ok(kv_call(
            &access,
            self.deadline,
            access.backend.increment(&ns, &key, delta, limits),
        )
        .await)
    }
}

impl batch::Host for KvView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Option<(String, Vec<u8>)>>, store::Error>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let bucket = Resource::new_borrow(bucket.rep());
            match store::HostBucket::get(self, bucket, key.clone()).await? {
                Ok(value) => values.push(value.map(|v| (key, v))),
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(values))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        for (key, value) in key_values {
            let bucket = Resource::new_borrow(bucket.rep());
            if let Err(error) = store::HostBucket::set(self, bucket, key, value).await? {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        for key in keys {
            let bucket = Resource::new_borrow(bucket.rep());
            if let Err(error) = store::HostBucket::delete(self, bucket, key).await? {
                return Ok(Err(error));
            }
        }
        Ok(Ok(()))
    }
}
