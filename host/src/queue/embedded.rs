//! The embedded store of the queue: a redb file of this host's own, and its [`journal`]. An
//! append is written to the journal by the request (and, in `machine` durability, waits for its
//! flush to disk) and answered; a thread of its own then puts every appended event waiting at
//! that moment in the file in one commit, made durable with the next group ([`crate::storage`]),
//! and hands them to the workers.
//! Completions and retries are committed at once and made durable in groups too: after a crash,
//! an event may be delivered again. Retries wait in this process (their state is in the file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use tokio::sync::{Semaphore, mpsc};

use super::journal::{self, Journal};
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
    /// The events and dead letters, every commit made durable with the next group.
    file: GroupedFile,
    /// Where an appended event is safe before it is answered.
    journal: Arc<Journal>,
    /// The inserter's inbox: appended events (with their JSON), in id order, on their way into
    /// the file.
    inserts: std::sync::mpsc::Sender<Appended>,
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
        let file = GroupedFile::open(&settings.path, "queue")?;
        let db = &file.db;
        let next = recover(db, &settings.path)?;
        let journal = Arc::new(Journal::create(
            &journal::path_beside(&settings.path),
            settings.durability,
            next,
        )?);
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
        let (inserts, appended) = std::sync::mpsc::channel();
        let inserter = Inserter {
            file: file.clone(),
            journal: Arc::clone(&journal),
            jobs: jobs.clone(),
        };
        std::thread::Builder::new()
            .name("queue-insert".into())
            .spawn(move || inserter.run(&appended))?;
        Ok(Self {
            file,
            journal,
            inserts,
            room,
            jobs,
        })
    }

    /// Stores `event` (as safe as the durability says), waiting until `deadline` for room.
    /// `Ok(false)`: no room came in time (the caller delivers it inline).
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
        // Serialized once: the journal's line and the file's value.
        let json = serde_json::to_string(&event)?;
        self.journal
            .append(json, deadline, |id, json| {
                // In id order (the journal is held): the inserter keeps the file's `next` right.
                let _ = self.inserts.send(Appended { id, event, json });
            })
            .await?;
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

    /// The dead letters, oldest first (for the console).
    pub fn dead_letters(&self) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
        dead_letters(&self.file.db)
    }

    /// Puts dead letters back in the queue of the running host (every one, or those named in
    /// `only`; their failures forgotten), as far as there is room, and hands them to the
    /// workers. Returns how many.
    pub fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        let mut letters = dead_letters_named(&self.file.db, only)?;
        // Room for each, taken before the move (appends may take room meanwhile).
        let taken = (0..letters.len())
            .take_while(|_| self.room.try_acquire().map(|p| p.forget()).is_ok())
            .count();
        letters.truncate(taken);
        let moved = self
            .file
            .begin()
            .map_err(anyhow::Error::from)
            .and_then(|txn| {
                let moved = requeue_in(&txn, letters)?;
                self.file.commit(txn)?;
                Ok(moved)
            });
        let moved = moved.inspect_err(|_| self.room.add_permits(taken))?;
        let count = moved.len();
        for (id, event) in moved {
            let _ = self.jobs.send(Job {
                id: EventId::File(id),
                event,
                redelivered: false,
                slot: None,
            });
        }
        Ok(count)
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
                crate::util::unix_ms().saturating_sub(event.accepted_ms),
            ))
        }
        None => None,
    };
    Ok((depth, oldest))
}

/// The queue file of a stopped host, for `callback-host queue` (a running host holds the file
/// locked: its `/metrics` and `/readyz` show the queue instead).
pub struct FileAdmin {
    db: Database,
}

impl FileAdmin {
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
        // What a killed host answered but had not put in the file yet.
        recover(&db, path)?;
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
        dead_letters(&self.db)
    }

    /// Puts the dead letters back in the queue (every one, or those named in `only`; their
    /// failures forgotten, the plugins that handled them still skipped): the next start
    /// delivers them. Returns how many.
    pub fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        let txn = self.db.begin_write()?;
        let requeued = requeue_in(&txn, dead_letters_named(&self.db, only)?)?;
        txn.commit()?;
        Ok(requeued.len())
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

/// The dead letters of the file, oldest first.
fn dead_letters(db: &Database) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
    let read = db.begin_read()?;
    let dead = read.open_table(DEAD)?;
    let mut letters = Vec::new();
    for row in dead.iter()? {
        let (id, json) = row?;
        letters.push((id.value(), serde_json::from_str(json.value())?));
    }
    Ok(letters)
}

/// The dead letters of the file named in `only` (every one when `None`), oldest first.
fn dead_letters_named(
    db: &Database,
    only: Option<&[String]>,
) -> anyhow::Result<Vec<(u64, DeadLetter)>> {
    let mut letters = dead_letters(db)?;
    if let Some(only) = only {
        letters.retain(|(id, _)| only.contains(&id.to_string()));
    }
    Ok(letters)
}

/// Moves `letters` back to the events in `txn`, their failures forgotten. Returns the events
/// moved.
fn requeue_in(
    txn: &redb::WriteTransaction,
    letters: Vec<(u64, DeadLetter)>,
) -> anyhow::Result<Vec<(u64, Event)>> {
    let mut events = txn.open_table(EVENTS)?;
    let mut dead = txn.open_table(DEAD)?;
    let mut moved = Vec::with_capacity(letters.len());
    for (id, letter) in letters {
        let event = Event {
            failures: 0,
            ..letter.event
        };
        events.insert(id, serde_json::to_string(&event)?.as_str())?;
        dead.remove(id)?;
        moved.push((id, event));
    }
    Ok(moved)
}

/// Puts back in the queue file at `path` every event its journal holds that the file had not
/// durably reached (a crash came between the answer and the file's next durable commit),
/// durably; then deletes the journal. Returns the next event id.
fn recover(db: &Database, path: &std::path::Path) -> anyhow::Result<u64> {
    let journal = journal::path_beside(path);
    let events = journal::read(&journal)?;
    let txn = db.begin_write()?;
    let (next, recovered) = {
        txn.open_table(DEAD)?;
        let mut meta = txn.open_table(META)?;
        let mut stored = txn.open_table(EVENTS)?;
        // Every durable append so far is below it: a record under it is in the file already
        // (or was delivered since, durably).
        let durable = meta.get("next")?.map_or(1, |v| v.value());
        let (mut next, mut recovered) = (durable, 0);
        for (id, event) in events.iter().filter(|(id, _)| *id >= durable) {
            stored.insert(*id, serde_json::to_string(event)?.as_str())?;
            next = next.max(id + 1);
            recovered += 1;
        }
        meta.insert("next", next)?;
        (next, recovered)
    };
    txn.commit()?;
    journal::remove(&journal)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            journal = %journal.display(),
            "events answered just before the host stopped were put back in the queue from its journal"
        );
    }
    Ok(next)
}

/// An event written to the journal, on its way into the file.
struct Appended {
    id: u64,
    event: Event,
    /// `event` as the file stores it (serialized once, for the journal).
    json: String,
}

/// Puts appended events in the file and hands them to the workers; rotates the journal.
struct Inserter {
    /// The queue file.
    file: GroupedFile,
    /// Rotated when long, its old part deleted once the file holds it durably.
    journal: Arc<Journal>,
    /// The workers' inbox.
    jobs: mpsc::UnboundedSender<Job>,
}

impl Inserter {
    /// Takes every appended event waiting at that moment, in id order, into the file in one
    /// commit (made durable with the file's next group), then to the workers; until the store is
    /// dropped.
    fn run(self, appended: &std::sync::mpsc::Receiver<Appended>) {
        // The id every event of the set-aside journal is below, while there is one.
        let mut rotated_below = None;
        while let Ok(first) = appended.recv() {
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match appended.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let inserted_below = batch.last().map_or(0, |last| last.id + 1);
            if let Err(error) = self.insert(&batch, inserted_below) {
                // They are in the journal: a restart puts them in the file and delivers them.
                tracing::error!(error = %format!("{error:#}"), first_id = batch[0].id,
                    "queued events could not be put in the queue file; they are delivered now and again after a restart");
            }
            for Appended { id, event, .. } in batch {
                let _ = self.jobs.send(Job {
                    id: EventId::File(id),
                    event,
                    redelivered: false,
                    slot: None,
                });
            }
            if let Err(error) = self.rotate(&mut rotated_below, inserted_below) {
                tracing::error!(error = %format!("{error:#}"), "rotating the queue journal failed; it keeps growing");
            }
        }
    }

    /// Puts `batch` in the file, in one commit made durable with the next group.
    fn insert(&self, batch: &[Appended], next: u64) -> anyhow::Result<()> {
        let txn = self.file.begin()?;
        {
            let mut stored = txn.open_table(EVENTS)?;
            for Appended { id, json, .. } in batch {
                stored.insert(*id, json.as_str())?;
            }
            txn.open_table(META)?.insert("next", next)?;
        }
        self.file.commit(txn)?;
        Ok(())
    }

    /// Sets a long journal aside; deletes the one set aside once every event it held is in the
    /// file (`inserted_below`) and the file is made durable.
    fn rotate(&self, rotated_below: &mut Option<u64>, inserted_below: u64) -> anyhow::Result<()> {
        if rotated_below.is_none() {
            *rotated_below = self.journal.rotate_if_long()?;
        }
        if let Some(below) = *rotated_below
            && inserted_below >= below
        {
            self.file.sync()?;
            self.journal.drop_old()?;
            *rotated_below = None;
        }
        Ok(())
    }
}
