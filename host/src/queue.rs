//! The durable queue of after-callbacks in `queued` delivery: OpenIM is answered "go on" as soon
//! as the event is stored (it ignores the answer of an after-callback anyway), and workers run the
//! plugins from there, with retries and a dead-letter store. An answered event survives a crash or
//! restart of the host.
//!
//! - Storage: a redb file. Appends are group-committed: one thread writes every event waiting at
//!   that moment in one durable transaction, so durability costs one disk flush per group, not per
//!   request. Completions and retries are committed at once and made durable in groups
//!   ([`crate::storage`]): after a crash, an event may be delivered again.
//! - Guarantee: **at least once per plugin**. A plugin that handled an event is recorded with it,
//!   and a retry skips it; but an event in flight when the host died is delivered again after the
//!   restart, so a plugin may see it twice. Such deliveries are logged with `redelivered=true` and
//!   counted in `callback_host_queue_redeliveries_total`. Order is not promised (several workers).
//! - Backpressure: at most `max_events` are stored; beyond it a request waits (within OpenIM's
//!   timeout) for room, and when none comes it is delivered inline instead. Nothing is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use crate::config::QueueSettings;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::storage::GroupedFile;

/// Event id to the event (JSON).
const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
/// Event id to the dead letter (JSON: the event and the cause).
const DEAD: TableDefinition<u64, &str> = TableDefinition::new("dead");
/// `next` to the next event id.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// One after-callback, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// OpenIM's command.
    pub command: String,
    /// OpenIM's operationID.
    pub operation_id: String,
    /// The request body, as OpenIM sent it (already validated).
    pub body: String,
    /// When it was accepted (ms since the Unix epoch).
    pub accepted_ms: u64,
    /// Deliveries that failed so far.
    pub failures: u32,
    /// Plugins that handled it: a retry skips them.
    pub done: Vec<String>,
}

/// A dead letter: an event that kept failing, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: Event,
    pub cause: String,
}

/// An event on its way to a worker.
struct Job {
    id: u64,
    event: Event,
    /// Loaded at start: it may have been delivered before the restart.
    redelivered: bool,
}

/// The queue: storage, the room left, the workers' inbox.
pub struct Queue {
    /// The events and dead letters; appends commit durably, the rest in groups.
    file: GroupedFile,
    /// The group committer's inbox.
    appends: std::sync::mpsc::Sender<(Event, oneshot::Sender<anyhow::Result<u64>>)>,
    /// One permit per event that may still be stored.
    room: Arc<Semaphore>,
    /// The workers' inbox.
    jobs: mpsc::UnboundedSender<Job>,
    /// Taken by [`Queue::start_workers`].
    inbox: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// Retries and workers.
    settings: QueueSettings,
    /// Depth, retries, dead letters.
    metrics: Arc<Metrics>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Queue {
    /// Opens (or creates) the queue file and loads the events still pending, which the workers
    /// will deliver again.
    pub fn open(settings: QueueSettings, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
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
        let (jobs, inbox) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(settings.max_events));
        let mut pending = 0;
        {
            let read = db.begin_read()?;
            let events = read.open_table(EVENTS)?;
            for row in events.iter()? {
                let (id, json) = row?;
                let event: Event = serde_json::from_str(json.value())?;
                let _ = jobs.send(Job {
                    id: id.value(),
                    event,
                    redelivered: true,
                });
                pending += 1;
            }
        }
        room.forget_permits(pending);
        metrics.queue_depth.set(pending as i64);
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
        Ok(Arc::new(Self {
            file,
            appends,
            room,
            jobs,
            inbox: std::sync::Mutex::new(Some(inbox)),
            settings,
            metrics,
        }))
    }

    /// Stores `event` durably, waiting until `deadline` for room. `Ok(false)`: no room came in
    /// time (the caller delivers it inline).
    pub async fn append(&self, event: Event, deadline: Instant) -> anyhow::Result<bool> {
        let permit = match Arc::clone(&self.room).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.metrics.queue_full.inc();
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
        self.metrics.queue_depth.inc();
        Ok(true)
    }

    /// Makes every completion durable now (when the host stops): fewer redeliveries after it.
    pub fn flush(&self) {
        self.file.flush();
    }

    /// Starts `settings.workers` workers delivering events through `dispatcher`.
    pub fn start_workers(self: &Arc<Self>, dispatcher: Arc<Dispatcher>) {
        let Some(inbox) = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let inbox = Arc::new(Mutex::new(inbox));
        for _ in 0..self.settings.workers {
            let (queue, inbox, dispatcher) = (
                Arc::clone(self),
                Arc::clone(&inbox),
                Arc::clone(&dispatcher),
            );
            tokio::spawn(async move {
                loop {
                    let job = inbox.lock().await.recv().await;
                    let Some(job) = job else { return };
                    queue.deliver(&dispatcher, job).await;
                }
            });
        }
    }

    /// Runs the plugins of one event that have not handled it yet; then completes, retries or
    /// buries it.
    #[tracing::instrument(name = "queued", skip_all,
        fields(command = %job.event.command, operation_id = %job.event.operation_id, event = job.id))]
    async fn deliver(self: &Arc<Self>, dispatcher: &Dispatcher, mut job: Job) {
        if job.redelivered {
            self.metrics.queue_redeliveries.inc();
        }
        let results = dispatcher.deliver(&job.event, job.redelivered).await;
        let mut failed = Vec::new();
        for (plugin, result) in results {
            match result {
                Ok(()) => job.event.done.push(plugin.to_string()),
                Err(cause) => failed.push(format!("{plugin}: {cause}")),
            }
        }
        let age = now_ms().saturating_sub(job.event.accepted_ms);
        if failed.is_empty() {
            tracing::info!(
                redelivered = job.redelivered,
                age_ms = age,
                "queued event handled"
            );
            self.remove(job.id, None);
            self.metrics.queue_handled.inc();
            return;
        }
        job.event.failures += 1;
        let cause = failed.join("; ");
        if job.event.failures >= self.settings.max_attempts {
            tracing::error!(failures = job.event.failures, %cause, "queued event dead-lettered");
            self.remove(
                job.id,
                Some(DeadLetter {
                    event: job.event,
                    cause,
                }),
            );
            return;
        }
        let backoff = self.settings.retry_base * 2u32.saturating_pow(job.event.failures - 1);
        tracing::warn!(failures = job.event.failures, retry_in_ms = backoff.as_millis() as u64,
            %cause, "queued event failed; retrying");
        self.metrics.queue_retries.inc();
        self.store(job.id, &job.event);
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            job.redelivered = false;
            let _ = queue.jobs.send(job);
        });
    }

    /// Rewrites a stored event (after a failure: its `done` and `failures`).
    fn store(&self, id: u64, event: &Event) {
        let result = (|| -> anyhow::Result<()> {
            let txn = self.file.begin()?;
            txn.open_table(EVENTS)?
                .insert(id, serde_json::to_string(event)?.as_str())?;
            self.file.commit(txn)?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::error!(%error, event = id, "could not update a queued event");
        }
    }

    /// Takes an event out of the queue, into the dead letters when `dead` is given.
    fn remove(&self, id: u64, dead: Option<DeadLetter>) {
        let result = (|| -> anyhow::Result<()> {
            let txn = self.file.begin()?;
            txn.open_table(EVENTS)?.remove(id)?;
            if let Some(dead) = &dead {
                txn.open_table(DEAD)?
                    .insert(id, serde_json::to_string(dead)?.as_str())?;
            }
            self.file.commit(txn)?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.room.add_permits(1);
                self.metrics.queue_depth.dec();
                if dead.is_some() {
                    self.metrics.queue_dead_letters.inc();
                }
            }
            Err(error) => tracing::error!(%error, event = id, "could not complete a queued event"),
        }
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
                now_ms().saturating_sub(event.accepted_ms),
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

    /// Puts every dead letter back in the queue (its failures forgotten, the plugins that
    /// handled it still skipped): the next start delivers them. Returns how many.
    pub fn requeue(&self) -> anyhow::Result<usize> {
        let letters = self.dead_letters()?;
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
                        id,
                        event,
                        redelivered: false,
                    });
                }
            }
            Err(error) => {
                let message = format!("{error:#}");
                for (_, done) in batch {
                    let _ = done.send(Err(anyhow::anyhow!("storing the event: {message}")));
                }
            }
        }
    }
}
