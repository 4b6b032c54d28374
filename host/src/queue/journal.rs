//! The embedded queue's journal: the file an appended event is written to before OpenIM is
//! answered, by the request itself, in one `write`. Once written, the event is in the operating
//! system's hands, where a crash of the host process (SIGKILL, an OOM kill, a panic) cannot take
//! it back; how soon it reaches the disk is the [`QueueDurability`]: before the answer
//! (`machine`: the request waits for the next flush, which serves every request waiting at that
//! moment), or within [`SYNC_EVERY`] (`process`). A thread of its own flushes.
//!
//! The queue file (redb) stays the store the workers, retries, dead letters and the `queue`
//! commands use: an appended event goes there next, off the answer's path, in a commit made
//! durable with the file's next group. So the journal only has to hold what the file may not have
//! durably: on open, every record whose id the file has not durably reached (its `next` counter)
//! goes back in the file ([`super::embedded`]). Past [`ROTATE_AFTER_BYTES`] the journal is
//! rotated: the full one is set aside (`.old`) and deleted once the file holds all it held durably.
//!
//! Records are JSON lines, `{"event":{...},"id":7}` (the event as the queue file stores it):
//! readable with any tool; a line a crash cut short (its `write` never returned, so it was never
//! answered) is left out with a warning.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use tokio::sync::watch;

use super::Event;
use crate::config::QueueDurability;

/// How often, in `process` durability, what the journal was given is flushed to disk.
pub const SYNC_EVERY: Duration = Duration::from_millis(10);

/// Past this size the journal is rotated.
pub const ROTATE_AFTER_BYTES: u64 = 4 << 20;

/// The journal of a queue file.
pub struct Journal {
    /// The files and the next id; appends take it in turn.
    writer: Arc<Mutex<Writer>>,
    /// Whether an append waits for the disk.
    durability: QueueDurability,
    /// The highest id flushed to disk (`machine` appends wait for theirs).
    synced: watch::Receiver<u64>,
    /// Wakes the flushing thread (`machine`).
    wake: mpsc::Sender<()>,
}

/// What appends change, behind one lock: ids are handed out in the order records are written.
struct Writer {
    /// The journal appended to.
    current: Arc<File>,
    /// A rotated journal not yet deleted: flushed with the current one until then.
    old: Option<Arc<File>>,
    /// Where the current one is; the rotated one is beside it ([`old_path`]).
    path: PathBuf,
    /// Bytes in the current one.
    len: u64,
    /// The next event's id.
    next: u64,
}

/// A record read back.
#[derive(Deserialize)]
struct Recovered {
    id: u64,
    event: Event,
}

/// The journal beside the queue file at `queue`: `queue.redb` -> `queue.redb.journal`.
pub fn path_beside(queue: &Path) -> PathBuf {
    crate::util::with_suffix(queue, ".journal")
}

/// Where a rotated journal waits to be deleted.
fn old_path(journal: &Path) -> PathBuf {
    crate::util::with_suffix(journal, ".old")
}

/// Reads back the events of the journal at `path` (a rotated one first), in the order they were
/// appended. Missing files hold none.
pub fn read(path: &Path) -> anyhow::Result<Vec<(u64, Event)>> {
    let mut events = Vec::new();
    for path in [old_path(path), path.to_owned()] {
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut file) => file
                .read_to_string(&mut text)
                .with_context(|| format!("reading the queue journal {}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("opening the queue journal {}", path.display()));
            }
        };
        for (number, line) in text.split_inclusive('\n').enumerate() {
            match line
                .strip_suffix('\n')
                .and_then(|line| serde_json::from_str::<Recovered>(line).ok())
            {
                Some(record) => events.push((record.id, record.event)),
                // A write the crash cut short was never answered; after a crash of the machine,
                // what had not reached the disk may read as zeros.
                None => tracing::warn!(journal = %path.display(), line = number + 1,
                    bytes = line.len(),
                    "a record of the queue journal was cut by a crash while it was written; it was never answered and is left out"),
            }
        }
    }
    Ok(events)
}

/// Deletes the journal at `path` (and a rotated one): call once every event they held is durable
/// in the queue file.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    for path in [old_path(path), path.to_owned()] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("deleting the queue journal {}", path.display()));
            }
        }
    }
    Ok(())
}

impl Journal {
    /// Starts an empty journal at `path` (after [`read`] and [`remove`]), whose first event
    /// will have id `next`, and its flushing thread.
    pub fn create(path: &Path, durability: QueueDurability, next: u64) -> anyhow::Result<Self> {
        let current = Arc::new(open_new(path)?);
        let writer = Arc::new(Mutex::new(Writer {
            current,
            old: None,
            path: path.to_owned(),
            len: 0,
            next,
        }));
        let (published, synced) = watch::channel(next.saturating_sub(1));
        let (wake, woken) = mpsc::channel();
        let flushed = Arc::downgrade(&writer);
        std::thread::Builder::new()
            .name("queue-journal-sync".into())
            .spawn(move || keep_flushed(&flushed, durability, &woken, &published))?;
        Ok(Self {
            writer,
            durability,
            synced,
            wake,
        })
    }

    /// Writes the event `json` (as the queue file stores it) in one `write`, gives it the next
    /// id, and calls `then` with the id and `json` still holding the journal (so that what
    /// follows sees the ids in order); then, in `machine` durability, waits (until `deadline`)
    /// for the flush to disk. Returns the id.
    pub async fn append(
        &self,
        json: String,
        deadline: Instant,
        then: impl FnOnce(u64, String),
    ) -> anyhow::Result<u64> {
        // The line is built before the journal is held; only its id is added under the lock.
        let mut line = Vec::with_capacity(json.len() + 32);
        line.extend_from_slice(b"{\"event\":");
        line.extend_from_slice(json.as_bytes());
        line.extend_from_slice(b",\"id\":");
        let id = {
            let mut writer = lock(&self.writer);
            let id = writer.next;
            line.extend_from_slice(id.to_string().as_bytes());
            line.extend_from_slice(b"}\n");
            if let Err(error) = (&*writer.current).write_all(&line) {
                // No half record may stay in front of the next one: back to where it started.
                let start = writer.len;
                let _ = writer.current.set_len(start);
                let _ = (&*writer.current).seek(std::io::SeekFrom::Start(start));
                return Err(error).with_context(|| {
                    format!("writing the queue journal {}", writer.path.display())
                });
            }
            writer.len += line.len() as u64;
            writer.next += 1;
            then(id, json);
            id
        };
        if self.durability == QueueDurability::Machine {
            let _ = self.wake.send(());
            let mut synced = self.synced.clone();
            tokio::time::timeout_at(deadline.into(), synced.wait_for(|&done| done >= id))
                .await
                .ok()
                .and_then(Result::ok)
                .with_context(|| {
                    "the queue journal could not be flushed to disk in time (see the error logged)"
                })?;
        }
        Ok(id)
    }

    /// When the journal is past [`ROTATE_AFTER_BYTES`] and none is set aside: sets it aside and
    /// starts a new one. Returns the id every event of the set-aside one is below; once the
    /// queue file holds all of them durably, call [`Journal::drop_old`].
    pub fn rotate_if_long(&self) -> anyhow::Result<Option<u64>> {
        let mut writer = lock(&self.writer);
        if writer.len < ROTATE_AFTER_BYTES || writer.old.is_some() {
            return Ok(None);
        }
        std::fs::rename(&writer.path, old_path(&writer.path))
            .with_context(|| format!("rotating the queue journal {}", writer.path.display()))?;
        let current = Arc::new(open_new(&writer.path)?);
        writer.old = Some(std::mem::replace(&mut writer.current, current));
        writer.len = 0;
        Ok(Some(writer.next))
    }

    /// Deletes the set-aside journal: every event it held is durable in the queue file.
    pub fn drop_old(&self) -> anyhow::Result<()> {
        let mut writer = lock(&self.writer);
        let old = old_path(&writer.path);
        std::fs::remove_file(&old)
            .with_context(|| format!("deleting the queue journal {}", old.display()))?;
        writer.old = None;
        Ok(())
    }
}

/// The flushing thread: flushes what was written (every [`SYNC_EVERY`], or when woken) and
/// publishes the highest id flushed; until the journal is dropped.
fn keep_flushed(
    writer: &std::sync::Weak<Mutex<Writer>>,
    durability: QueueDurability,
    woken: &mpsc::Receiver<()>,
    published: &watch::Sender<u64>,
) {
    let mut done = *published.borrow();
    loop {
        match durability {
            // Every request waiting now is served by one flush.
            QueueDurability::Machine => {
                if woken.recv().is_err() {
                    return;
                }
                while woken.try_recv().is_ok() {}
            }
            QueueDurability::Process => std::thread::sleep(SYNC_EVERY),
        }
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let (files, written) = {
            let writer = lock(&writer);
            let mut files = vec![Arc::clone(&writer.current)];
            files.extend(writer.old.clone());
            (files, writer.next - 1)
        };
        drop(writer);
        if written == done {
            continue;
        }
        match files.iter().try_for_each(|file| file.sync_data()) {
            Ok(()) => {
                done = written;
                let _ = published.send(written);
            }
            Err(error) => tracing::error!(%error, "flushing the queue journal to disk failed"),
        }
    }
}

fn open_new(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating the queue journal {}", path.display()))
}

fn lock(writer: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    writer.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
