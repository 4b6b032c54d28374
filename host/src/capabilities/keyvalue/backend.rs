//! The store all plugins' buckets live in: the embedded file or Redis, one interface.

use super::{KvError, Limits, embedded, own_namespace, redis};
use crate::config::{KeyValueBackend, KeyValueSettings};

/// The store all plugins' buckets live in.
pub enum Backend {
    Embedded(embedded::Embedded),
    Redis(redis::RedisStore),
}

impl Backend {
    /// Opens the configured backend: the embedded file (created if missing) or a connection to
    /// Redis.
    pub async fn open(settings: &KeyValueSettings) -> anyhow::Result<Self> {
        Ok(match settings.backend {
            KeyValueBackend::Embedded => Self::Embedded(embedded::Embedded::open(&settings.path)?),
            KeyValueBackend::Redis => Self::Redis(
                redis::RedisStore::connect(settings.redis_url.as_deref().unwrap_or_default())
                    .await?,
            ),
        })
    }

    pub(super) async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Self::Embedded(db) => db.get(ns, key).await,
            Self::Redis(db) => db.get(ns, key).await,
        }
    }

    pub(super) async fn set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        limits: Limits,
    ) -> Result<(), KvError> {
        match self {
            Self::Embedded(db) => db.set(ns, key, value, limits).await,
            Self::Redis(db) => db.set(ns, key, value, limits).await,
        }
    }

    pub(super) async fn delete(&self, ns: &str, key: &str) -> Result<(), KvError> {
        match self {
            Self::Embedded(db) => db.delete(ns, key).await,
            Self::Redis(db) => db.delete(ns, key).await,
        }
    }

    pub(super) async fn list(
        &self,
        ns: &str,
        cursor: u64,
    ) -> Result<(Vec<String>, Option<u64>), KvError> {
        match self {
            Self::Embedded(db) => db.list(ns, cursor).await,
            Self::Redis(db) => db.list(ns, cursor).await,
        }
    }

    /// Adds `delta` to the number at `key` of namespace `ns` (created at 0, with the expiry of
    /// `limits`); returns the new value.
    pub async fn increment(
        &self,
        ns: &str,
        key: &str,
        delta: u64,
        limits: Limits,
    ) -> Result<u64, KvError> {
        match self {
            Self::Embedded(db) => db.increment(ns, key, delta, limits).await,
            Self::Redis(db) => db.increment(ns, key, delta, limits).await,
        }
    }

    /// Sets the whole content of `plugin`'s own bucket, outside any call: its keys deleted,
    /// then `entries` written (no expiry). The starting state of a `callback-host test` case.
    pub async fn reset_own(
        &self,
        plugin: &str,
        entries: &[(String, String)],
    ) -> anyhow::Result<()> {
        let ns = own_namespace(plugin);
        loop {
            let (keys, _) = self.list(&ns, 0).await?;
            if keys.is_empty() {
                break;
            }
            for key in keys {
                self.delete(&ns, &key).await?;
            }
        }
        let limits = Limits {
            max_entries: u64::MAX,
            ttl: None,
        };
        for (key, value) in entries {
            self.set(&ns, key, value.as_bytes(), limits).await?;
        }
        Ok(())
    }

    /// Makes what was written durable (the embedded store commits in groups).
    pub fn flush(&self) {
        if let Self::Embedded(db) = self {
            db.flush();
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn healthy(&self) -> bool {
        match self {
            Self::Embedded(_) => true,
            Self::Redis(db) => db.ping().await,
        }
    }
}
