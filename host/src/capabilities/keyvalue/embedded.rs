//! The embedded backend: one redb file. Writes are committed at once but made durable in groups
//! (every [`FLUSH_EVERY`], and when the host stops), so a write costs no disk flush; a crash of
//! the host or the machine loses at most the writes of the last [`FLUSH_EVERY`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{KvError, Limits, PAGE, now_ms};

/// `namespace \0 key` to (expiry in ms since the epoch or 0 for never, value).
const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
/// Namespace to the number of keys it holds (expired ones included until swept).
const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("counts");

/// How often grouped writes are made durable.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

pub struct Embedded {
    db: Arc<Database>,
    /// Set by writes, cleared by the flush: an idle store is not flushed.
    dirty: Arc<AtomicBool>,
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
    /// Opens (or creates) the file, and starts the thread that makes writes durable.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the key-value directory {}", dir.display()))?;
        }
        let db = Arc::new(
            Database::create(path)
                .with_context(|| format!("opening the key-value store {}", path.display()))?,
        );
        let dirty = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(&db);
        let written = Arc::clone(&dirty);
        std::thread::Builder::new()
            .name("keyvalue-flush".into())
            .spawn(move || {
                while let Some(db) = weak.upgrade() {
                    if written.swap(false, Ordering::AcqRel) {
                        flush(&db);
                    }
                    drop(db);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })?;
        Ok(Self { db, dirty })
    }

    /// Makes every committed write durable.
    pub fn flush(&self) {
        self.dirty.store(false, Ordering::Release);
        flush(&self.db);
    }

    /// Runs `work` on a blocking thread (redb is synchronous).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(backend)?
    }

    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = full_key(ns, key);
        self.run(move |db| {
            let read = db.begin_read().map_err(backend)?;
            let table = match read.open_table(ENTRIES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(backend(e)),
            };
            let now = now_ms();
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
        self.dirty.store(true, Ordering::Release);
        let (ns, key, value) = (ns.to_owned(), full_key(ns, key), value.to_vec());
        self.run(move |db| write(db, &ns, &key, limits, |_| Ok(value)).map(|_| ()))
            .await
    }

    pub async fn increment(
        &self,
        ns: &str,
        key: &str,
        delta: u64,
        limits: Limits,
    ) -> Result<u64, KvError> {
        self.dirty.store(true, Ordering::Release);
        let (ns, full) = (ns.to_owned(), full_key(ns, key));
        let key = key.to_owned();
        self.run(move |db| {
            let value = write(db, &ns, &full, limits, |old| {
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
        self.dirty.store(true, Ordering::Release);
        let (ns, key) = (ns.to_owned(), full_key(ns, key));
        self.run(move |db| {
            let txn = begin(db)?;
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
            txn.commit().map_err(backend)
        })
        .await
    }

    pub async fn list(&self, ns: &str, cursor: u64) -> Result<(Vec<String>, Option<u64>), KvError> {
        let (start, end) = (format!("{ns}\0"), format!("{ns}\u{1}"));
        let prefix = start.len();
        self.run(move |db| {
            let read = db.begin_read().map_err(backend)?;
            let table = match read.open_table(ENTRIES) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
                Err(e) => return Err(backend(e)),
            };
            let now = now_ms();
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

fn begin(db: &Database) -> Result<redb::WriteTransaction, KvError> {
    let mut txn = db.begin_write().map_err(backend)?;
    txn.set_durability(Durability::None).map_err(backend)?;
    Ok(txn)
}

fn flush(db: &Database) {
    let Ok(mut txn) = db.begin_write() else {
        return;
    };
    if txn.set_durability(Durability::Immediate).is_ok() {
        let _ = txn.commit();
    }
}

/// Writes `key` of namespace `ns` to what `update` makes of its current live value, creating it
/// (within the entry quota, with the expiry) when it has none. Returns the value written.
fn write(
    db: &Database,
    ns: &str,
    key: &str,
    limits: Limits,
    update: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, KvError>,
) -> Result<Vec<u8>, KvError> {
    let txn = begin(db)?;
    let value;
    {
        let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
        let mut counts = txn.open_table(COUNTS).map_err(backend)?;
        let now = now_ms();
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
    txn.commit().map_err(backend)?;
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
