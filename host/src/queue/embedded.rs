//! The embedded store of the queue: a redb file of this host's own. Appends are
//! group-committed: one thread writes every event waiting at that moment in one durable
//! transaction, so durability costs one disk flush per group, not per request. Completions and
//! retries are committed at once and made durable in groups ([`crate::storage`]): after a crash,
//! an event may be delivered again. Retries wait in this process (their state is in the file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{DeadLetter, Event, EventId, Job, Settlement};
use crate::config::QueueSettings;
use crate::metrics::Metrics;
use crate::storage::GroupedFile;

/// Event id to the event (JSON).
const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
/// Event id to the dead letter (JSON: the event and the cause).
const DEAD: TableDefinition<u64, &str> = TableDefinition::new("dead");
/// `next` to the next event id.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The file, the room left, and where loaded and appended events go.
pub struct FileStore {
    /// The events and dead letters; appends commit durably, the rest in groups.
    file: GroupedFile,
    /// The group committer's inbox.
    appends: std::sync::mpsc::Sender<(Event, oneshot::Sender<anyhow::Result<u64>>)>,
    /// One permit per event that may still be stored.
    room: Arc<Semaphore>,
    /// The workers' inbox (retries go back there after their delay).
    jobs: mpsc::UnboundedSender<Job>,
}

impl FileStore {
    /// Opens (or creates) the queue file and loads the events still pending, which the workers
    /// will deliver again.
    pub fn open(
        settings: &QueueSettings,
        jobs: mpsc::UnboundedSender<Job>,
    ) -> anyhow::Result<Self> {
        // Appends commit durably themselves (group_commit); completions and retries in groups.
        let file = GroupedFile::open(&settings.path, "queue")?;
        let db = &file.db;
        {
            let txn = db.begin_write()?;
            txn.open_table(EVENTS)?;
            txn.open_table(DEAD)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let room = Arc::new(Semaphore::new(settings.max_events));
        let mut pending = 0;
        {
            let read = db.begin_read()?;
            let events = read.open_table(EVENTS)?;
            for row in events.iter()? {
                let (id, json) = row?;
                let event: Event = serde_json::from_str(json.value())?;
                let _ = jobs.send(Job {
                    id: EventId::File(id.value()),
                    event,
                    redelivered: true,
                    slot: None,
                });
                pending += 1;
            }
        }
        room.forget_permits(pending);
        if pending > 0 {
            tracing::warn!(
                pending,
                "events stored before the restart are delivered again (a plugin may see one twice)"
            );
        }
        let (appends, requests) = std::sync::mpsc::channel();
        let committer = Arc::clone(db);
        let sent = jobs.clone();
        std::thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || group_commit(&committer, &requests, &sent))?;
        Ok(Self {
            file,
            appends,
            room,
            jobs,
        })
    }

    /// Stores `event` durably, waiting until `deadline` for room. `Ok(false)`: no room came in
    /// time (the caller delivers it inline).
    pub async fn append(
        &self,
        event: Event,
        deadline: Instant,
        metrics: &Metrics,
    ) -> anyhow::Result<bool> {
        let permit = match Arc::clone(&self.room).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics.queue_full.inc();
                match tokio::time::timeout_at(
                    deadline.into(),
                    Arc::clone(&self.room).acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Ok(false),
                }
            }
        };
        let (done, stored) = oneshot::channel();
        self.appends
            .send((event, done))
            .map_err(|_| anyhow::anyhow!("the queue's commit thread stopped"))?;
        stored
            .await
            .context("the queue's commit thread stopped")??;
        permit.forget();
        Ok(true)
    }

    /// Makes every completion durable now (when the host stops): fewer redeliveries after it.
    pub fn flush(&self) {
        self.file.flush();
    }

    /// Completes, retries (after its delay, from this process) or buries a delivered event.
    pub async fn settle(&self, job: Job, settlement: Settlement) -> anyhow::Result<()> {
        let EventId::File(id) = job.id else {
            anyhow::bail!("not an event of the queue file: {}", job.id);
        };
        match settlement {
            Settlement::Handled => self.remove(id, None),
            Settlement::Dead(cause) => self.remove(
                id,
                Some(DeadLetter {
                    event: job.event,
                    cause,
                }),
            ),
            Settlement::Retry(backoff) => {
                self.store(id, &job.event)?;
                let jobs = self.jobs.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(backoff).await;
                    let _ = jobs.send(Job {
                        redelivered: false,
                        ..job
                    });
                });
                Ok(())
            }
        }
    }

    /// Rewrites a stored event (after a failure: its `done` and `failures`).
    fn store(&self, id: u64, event: &Event) -> anyhow::Result<()> {
        let txn = self.file.begin()?;
        txn.open_table(EVENTS)?
            .insert(id, serde_json::to_string(event)?.as_str())?;
        self.file.commit(txn)?;
        Ok(())
    }

    /// Takes an event out of the queue, into the dead letters when `dead` is given.
    fn remove(&self, id: u64, dead: Option<DeadLetter>) -> anyhow::Result<()> {
        let txn = self.file.begin()?;
        txn.open_table(EVENTS)?.remove(id)?;
        if let Some(dead) = &dead {
            txn.open_table(DEAD)?
                .insert(id, serde_json::to_string(dead)?.as_str())?;
        }
        self.file.commit(txn)?;
        self.room.add_permits(1);
        Ok(())
    }

    /// Events stored now, and the age of the oldest (for `/metrics`).
    pub fn stats(&self) -> anyhow::Result<(u64, Option<Duration>)> {
        stats(&self.file.db)
    }
}

fn stats(db: &Database) -> anyhow::Result<(u64, Option<Duration>)> {
    let read = db.begin_read()?;
    let events = read.open_table(EVENTS)?;
    let depth = events.len()?;
    let oldest = match events.first()? {
        Some((_, json)) => {
            let event: Event = serde_json::from_str(json.value())?;
            Some(Duration::from_millis(
                crate::unix_ms().saturating_sub(event.accepted_ms),
            ))
        }
        None => None,
    };
    Ok((depth, oldest))
}

/// The queue file of a stopped host, for `callback-host queue` (a running host holds the file
/// locked: its `/metrics` and `/readyz` show the queue instead).
pub struct QueueFile {
    db: Database,
}

impl QueueFile {
    /// Opens the file at `path`.
    pub fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        anyhow::ensure!(path.exists(), "no queue at {}", path.display());
        let db = Database::open(path).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "the queue {} is in use by a running host: stop it first, or read its /metrics",
                path.display()
            ),
            other => anyhow::anyhow!("opening the queue {}: {other}", path.display()),
        })?;
        Ok(Self { db })
    }

    /// Events stored, the age of the oldest, dead letters.
    pub fn stats(&self) -> anyhow::Result<(u64, Option<Duration>, u64)> {
        let (depth, oldest) = stats(&self.db)?;
        let dead = self.db.begin_read()?.open_table(DEAD)?.len()?;
        Ok((depth, oldest, dead))
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
        let read = self.db.begin_read()?;
        let dead = read.open_table(DEAD)?;
        let mut letters = Vec::new();
        for row in dead.iter()? {
            let (id, json) = row?;
            letters.push((id.value(), serde_json::from_str(json.value())?));
        }
        Ok(letters)
    }

    /// Puts the dead letters back in the queue (every one, or those named in `only`; their
    /// failures forgotten, the plugins that handled them still skipped): the next start
    /// delivers them. Returns how many.
    pub fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        let mut letters = self.dead_letters()?;
        if let Some(only) = only {
            letters.retain(|(id, _)| only.contains(&id.to_string()));
        }
        let txn = self.db.begin_write()?;
        {
            let mut events = txn.open_table(EVENTS)?;
            let mut dead = txn.open_table(DEAD)?;
            for (id, letter) in &letters {
                let event = Event {
                    failures: 0,
                    ..letter.event.clone()
                };
                events.insert(*id, serde_json::to_string(&event)?.as_str())?;
                dead.remove(*id)?;
            }
        }
        txn.commit()?;
        Ok(letters.len())
    }

    /// Deletes the dead letters. Returns how many.
    pub fn purge_dead_letters(&self) -> anyhow::Result<u64> {
        let txn = self.db.begin_write()?;
        let count = {
            let mut dead = txn.open_table(DEAD)?;
            let count = dead.len()?;
            dead.retain(|_, _| false)?;
            count
        };
        txn.commit()?;
        Ok(count)
    }
}

/// The group committer: writes every append waiting at that moment in one durable transaction,
/// answers each, and hands the events to the workers.
fn group_commit(
    db: &Database,
    requests: &std::sync::mpsc::Receiver<(Event, oneshot::Sender<anyhow::Result<u64>>)>,
    jobs: &mpsc::UnboundedSender<Job>,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let written = (|| -> anyhow::Result<Vec<u64>> {
            let txn = db.begin_write()?;
            let mut ids = Vec::with_capacity(batch.len());
            {
                let mut meta = txn.open_table(META)?;
                let mut events = txn.open_table(EVENTS)?;
                let mut next = meta.get("next")?.map_or(1, |v| v.value());
                for (event, _) in &batch {
                    events.insert(next, serde_json::to_string(event)?.as_str())?;
                    ids.push(next);
                    next += 1;
                }
                meta.insert("next", next)?;
            }
            txn.commit()?;
            Ok(ids)
        })();
        match written {
            Ok(ids) => {
                for ((event, done), id) in batch.into_iter().zip(ids) {
                    let _ = done.send(Ok(id));
                    let _ = jobs.send(Job {
                        id: EventId::File(id),
                        event,
                        redelivered: false,
                        slot: None,
                    });
                }
            }
            Err(error) => {
                // One error for every waiter of the group, and errors are not Clone: its text.
                let message = format!("{error:#}");
                for (_, done) in batch {
                    let _ = done.send(Err(anyhow::anyhow!("storing the event: {message}")));
                }
            }
        }
    }
}
