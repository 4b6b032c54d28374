//! The embedded backend: one redb file, written in groups ([`crate::storage`]): a write costs no
//! disk flush, and a crash of the host or the machine loses at most the writes of the last
//! [`crate::storage::FLUSH_EVERY`].

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::storage::GroupedFile;

use super::{KvError, Limits, PAGE};
use crate::util::unix_ms;

/// `namespace \0 key` to (expiry in ms since the epoch or 0 for never, value).
const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
/// Namespace to the number of keys it holds (expired ones included until swept).
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");

pub struct Embedded {
    file: Arc<GroupedFile>,
}

fn backend(error: impl std::fmt::Display) -> KvError {
    KvError::Backend(error.to_string())
}

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}\0{key}")
}

fn live(expiry: u64, now: u64) -> bool {
    expiry == 0 || expiry > now
}

impl Embedded {
    /// Opens (or creates) the file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            file: Arc::new(GroupedFile::open(path, "keyvalue")?),
        })
    }

    /// Makes every write durable now.
    pub fn flush(&self) {
        self.file.flush();
    }

    /// Runs `work` on a blocking thread (redb is synchronous).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&GroupedFile) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || work(&file))
            .await
            .map_err(backend)?
    }

    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = full_key(ns, key);
        self.run(move |file| {
            let read = file.db.begin_read().map_err(backend)?;
            let table = match read.open_table(ENTRIES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend(e)),
            };
            let now = unix_ms();
            Ok(table.get(key.as_str()).map_err(backend)?.and_then(|entry| {
                let (expiry, value) = entry.value();
                live(expiry, now).then(|| value.to_vec())
            }))
        })
        .await
    }

    pub async fn set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        limits: Limits,
    ) -> Result<(), KvError> {
        let (ns, key, value) = (ns.to_owned(), full_key(ns, key), value.to_vec());
        self.run(move |file| write(file, &ns, &key, limits, |_| Ok(value)).map(|_| ()))
            .await
    }

    pub async fn increment(
        &self,
        ns: &str,
        key: &str,
        delta: u64,
        limits: Limits,
    ) -> Result<u64, KvError> {
        let (ns, full) = (ns.to_owned(), full_key(ns, key));
        let key = key.to_owned();
        self.run(move |file| {
            let value = write(file, &ns, &full, limits, |old| {
                let current = match old {
                    None => 0,
                    Some(bytes) => std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|text| text.parse::<u64>().ok())
                        .ok_or_else(|| KvError::NotANumber(key.clone()))?,
                };
                Ok(current.saturating_add(delta).to_string().into_bytes())
            })?;
            Ok(std::str::from_utf8(&value)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0))
        })
        .await
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<(), KvError> {
        let (ns, key) = (ns.to_owned(), full_key(ns, key));
        self.run(move |file| {
            let txn = file.begin().map_err(backend)?;
            {
                let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
                let removed = entries.remove(key.as_str()).map_err(backend)?.is_some();
                if removed {
                    let mut counts = txn.open_table(COUNTS).map_err(backend)?;
                    let count = counts
                        .get(ns.as_str())
                        .map_err(backend)?
                        .map_or(0, |c| c.value());
                    counts
                        .insert(ns.as_str(), count.saturating_sub(1))
                        .map_err(backend)?;
                }
            }
            file.commit(txn).map_err(backend)
        })
        .await
    }

    pub async fn list(&self, ns: &str, cursor: u64) -> Result<(Vec<String>, Option<u64>), KvError> {
        let (start, end) = (format!("{ns}\0"), format!("{ns}\u{1}"));
        let prefix = start.len();
        self.run(move |file| {
            let read = file.db.begin_read().map_err(backend)?;
            let table = match read.open_table(ENTRIES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
                Err(e) => return Err(backend(e)),
            };
            let now = unix_ms();
            let mut keys = Vec::new();
            let mut more = false;
            for (seen, row) in table
                .range(start.as_str()..end.as_str())
                .map_err(backend)?
                .filter(|row| row.as_ref().map_or(true, |(_, v)| live(v.value().0, now)))
                .skip(cursor as usize)
                .enumerate()
            {
                if seen == PAGE {
                    more = true;
                    break;
                }
                let (key, _) = row.map_err(backend)?;
                keys.push(key.value()[prefix..].to_owned());
            }
            Ok((keys, more.then_some(cursor + PAGE as u64)))
        })
        .await
    }
}

/// Writes `key` of namespace `ns` to what `update` makes of its current live value, creating it
/// (within the entry quota, with the expiry) when it has none. Returns the value written.
fn write(
    file: &GroupedFile,
    ns: &str,
    key: &str,
    limits: Limits,
    update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, KvError>,
) -> Result<Vec<u8>, KvError> {
    let txn = file.begin().map_err(backend)?;
    let value;
    {
        let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
        let mut counts = txn.open_table(COUNTS).map_err(backend)?;
        let now = unix_ms();
        let existing = entries
            .get(key)
            .map_err(backend)?
            .map(|e| (e.value().0, e.value().1.to_vec()));
        let (expiry, old) = match existing {
            Some((expiry, old)) if live(expiry, now) => (expiry, Some(old)),
            // Expired: written anew (it still counts as the one entry it was).
            Some(_) => (new_expiry(limits, now), None),
            None => {
                let mut count = counts.get(ns).map_err(backend)?.map_or(0, |c| c.value());
                if count >= limits.max_entries {
                    count -= sweep(&mut entries, ns, now)?;
                    if count >= limits.max_entries {
                        counts.insert(ns, count).map_err(backend)?;
                        return Err(KvError::Quota(format!(
                            "the bucket holds {count} keys, the limit"
                        )));
                    }
                }
                counts.insert(ns, count + 1).map_err(backend)?;
                (new_expiry(limits, now), None)
            }
        };
        value = update(old.as_deref())?;
        entries
            .insert(key, (expiry, value.as_slice()))
            .map_err(backend)?;
    }
    file.commit(txn).map_err(backend)?;
    Ok(value)
}

fn new_expiry(limits: Limits, now: u64) -> u64 {
    limits.ttl.map_or(0, |ttl| now + ttl.as_millis() as u64)
}

/// Deletes the expired keys of `ns`; returns how many.
fn sweep(
    entries: &mut redb::Table<&str, (u64, &[u8])>,
    ns: &str,
    now: u64,
) -> Result<u64, KvError> {
    let (start, end) = (format!("{ns}\0"), format!("{ns}\u{1}"));
    let expired: Vec<String> = entries
        .range(start.as_str()..end.as_str())
        .map_err(backend)?
        .filter_map(|row| row.ok())
        .filter(|(_, v)| !live(v.value().0, now))
        .map(|(k, _)| k.value().to_owned())
        .collect();
    for key in &expired {
        entries.remove(key.as_str()).map_err(backend)?;
    }
    Ok(expired.len() as u64)
}
