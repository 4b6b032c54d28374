//! The durable queue of after-callbacks in `queued` delivery: OpenIM is answered "go on" as soon
//! as the event is stored (it ignores the answer of an after-callback anyway), and workers run the
//! plugins from there, with retries and a dead-letter store. An answered event survives a crash or
//! restart of the host.
//!
//! - Stores ([`Store`]): [`embedded`], a redb file of this host's own behind its [`journal`] (an
//!   appended event is answered once written to the journal: to the operating system, or to disk,
//!   as `[queue] durability` says); or [`redis`], a Redis stream with a consumer group shared by
//!   replicas (each event goes to one replica; the pending events of a replica that died are
//!   claimed by another once they have been idle for `claim_idle_ms`).
//! - Workers deliver on [`Deliveries`]' threads, below the priority of those that answer.
//! - Guarantee: **at least once per plugin**. A plugin that handled an event is recorded with it,
//!   and a retry skips it; but an event in flight when its host died is delivered again (after
//!   the restart, or by another replica), so a plugin may see it twice. Such deliveries are
//!   logged with `redelivered=true` and counted in `callback_host_queue_redeliveries_total`.
//!   Order is not promised (several workers, several replicas).
//! - Backpressure: at most `max_events` are stored; beyond it a request waits (within OpenIM's
//!   timeout) for room, and when none comes it is delivered inline instead. Nothing is dropped.

pub mod embedded;
pub mod journal;
pub mod redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, OwnedSemaphorePermit, mpsc};

use crate::config::{QueueBackend, QueueSettings};
use crate::metrics::Metrics;
use crate::runtime::limits::Failure;

pub use embedded::FileAdmin;

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

/// Hands a stored event to the plugins of its command that have not handled it yet: the chain
/// ([`crate::dispatch::Dispatcher`]) does it for the workers, and the queue needs nothing else of it.
pub trait Deliver: Send + Sync + 'static {
    /// Runs the plugins of `event`'s command that are not in `event.done`; says how each did.
    fn deliver(
        &self,
        event: &Event,
        redelivered: bool,
    ) -> impl std::future::Future<Output = Vec<Delivered>> + Send;
}

/// How one plugin did with one delivery of an event.
#[derive(Debug)]
pub struct Delivered {
    /// The plugin's name: recorded in the event's `done` once it handled it.
    pub plugin: Arc<str>,
    /// Handled, or why not.
    pub result: Result<(), Failure>,
}

/// A dead letter: an event that kept failing, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: Event,
    pub cause: String,
}

/// An event's place in its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId {
    /// A key of the embedded file.
    File(u64),
    /// An entry of the Redis stream.
    Stream(String),
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(id) => write!(f, "{id}"),
            Self::Stream(id) => f.write_str(id),
        }
    }
}

/// An event on its way to a worker.
pub struct Job {
    pub id: EventId,
    pub event: Event,
    /// It may have been delivered before: loaded after a restart, or claimed from a replica
    /// taken for dead.
    pub redelivered: bool,
    /// The worker slot the Redis reader took for it (it reads no more than the workers take).
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Where the events are.
pub enum Store {
    File(embedded::FileStore),
    Redis(Box<redis::StreamStore>),
}

/// The queue: its store, the workers' inbox, the retry policy.
pub struct Queue {
    store: Store,
    /// The workers' inbox: the store hands them what to deliver.
    jobs: mpsc::UnboundedSender<Job>,
    /// Taken by [`Queue::start_workers`].
    inbox: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// Retries and workers.
    settings: QueueSettings,
    /// Depth, retries, dead letters.
    metrics: Arc<Metrics>,
    /// With Redis, the connection the console's dead-letter views and requeues use, opened at
    /// the first of them and kept.
    admin: tokio::sync::OnceCell<redis::StreamAdmin>,
}

impl Queue {
    /// Opens the configured store; the events it still holds are delivered again.
    pub async fn open(settings: QueueSettings, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        let (jobs, inbox) = mpsc::unbounded_channel();
        let store = match settings.backend {
            QueueBackend::Embedded => {
                Store::File(embedded::FileStore::open(&settings, jobs.clone())?)
            }
            QueueBackend::Redis => {
                Store::Redis(Box::new(redis::StreamStore::open(&settings).await?))
            }
        };
        Ok(Arc::new(Self {
            store,
            jobs,
            inbox: std::sync::Mutex::new(Some(inbox)),
            settings,
            metrics,
            admin: tokio::sync::OnceCell::new(),
        }))
    }

    /// Stores `event` (as durably as the store promises), waiting until `deadline` for room.
    /// `Ok(false)`: no room came in time (the caller delivers it inline).
    pub async fn append(&self, event: Event, deadline: Instant) -> anyhow::Result<bool> {
        match &self.store {
            Store::File(file) => file.append(event, deadline, &self.metrics).await,
            Store::Redis(stream) => stream.append(&event, deadline, &self.metrics).await,
        }
    }

    /// Makes every completion durable now (when the host stops): fewer redeliveries after it.
    pub fn flush(&self) {
        if let Store::File(file) = &self.store {
            file.flush();
        }
    }

    /// Starts `settings.workers` workers delivering events through `dispatcher` on
    /// `deliveries`' threads (and, for Redis, the tasks that read, claim and retry events).
    pub fn start_workers(self: &Arc<Self>, dispatcher: Arc<impl Deliver>, deliveries: &Deliveries) {
        let Some(inbox) = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        if let Store::Redis(stream) = &self.store {
            stream.start(self.settings.workers, self.jobs.clone());
        }
        let inbox = Arc::new(Mutex::new(inbox));
        for _ in 0..self.settings.workers {
            let (queue, inbox, dispatcher) = (
                Arc::clone(self),
                Arc::clone(&inbox),
                Arc::clone(&dispatcher),
            );
            deliveries.handle().spawn(async move {
                loop {
                    let job = inbox.lock().await.recv().await;
                    let Some(job) = job else { return };
                    queue.deliver(&*dispatcher, job).await;
                }
            });
        }
    }

    /// Runs the plugins of one event that have not handled it yet; then completes, retries or
    /// buries it.
    #[tracing::instrument(name = "queued", skip_all,
        fields(command = %job.event.command, event = %job.id, operation_id = %job.event.operation_id))]
    async fn deliver(self: &Arc<Self>, dispatcher: &impl Deliver, mut job: Job) {
        if job.redelivered {
            self.metrics.queue_redeliveries.inc();
        }
        let results = dispatcher.deliver(&job.event, job.redelivered).await;
        let mut failed = Vec::new();
        for Delivered { plugin, result } in results {
            match result {
                Ok(()) => job.event.done.push(plugin.to_string()),
                Err(cause) => failed.push(format!("{plugin}: {cause}")),
            }
        }
        let age = crate::util::unix_ms().saturating_sub(job.event.accepted_ms);
        let settlement = if failed.is_empty() {
            tracing::info!(
                redelivered = job.redelivered,
                age_ms = age,
                "queued event handled"
            );
            self.metrics.queue_handled.inc();
            Settlement::Handled
        } else {
            job.event.failures += 1;
            let cause = failed.join("; ");
            if job.event.failures >= self.settings.max_attempts {
                tracing::error!(failures = job.event.failures, %cause, "queued event dead-lettered");
                self.metrics.queue_dead_letters.inc();
                Settlement::Dead(cause)
            } else {
                let backoff =
                    self.settings.retry_base * 2u32.saturating_pow(job.event.failures - 1);
                tracing::warn!(failures = job.event.failures, retry_in_ms = backoff.as_millis() as u64,
                    %cause, "queued event failed; retrying");
                self.metrics.queue_retries.inc();
                Settlement::Retry(backoff)
            }
        };
        let result = match &self.store {
            Store::File(file) => file.settle(job, settlement).await,
            Store::Redis(stream) => stream.settle(job, settlement).await,
        };
        if let Err(error) = result {
            tracing::error!("could not settle a queued event: {error:#}");
        }
    }

    /// Events stored now (waiting, in delivery or waiting for a retry), and the age of the
    /// oldest waiting (for `/metrics` and `/readyz`). With Redis, the numbers of every replica.
    pub async fn stats(&self) -> anyhow::Result<(u64, Option<Duration>)> {
        let stats = match &self.store {
            Store::File(file) => file.stats(),
            Store::Redis(stream) => stream.stats().await,
        };
        if let Ok((depth, _)) = &stats {
            self.metrics.queue_depth.set(*depth as i64);
        }
        stats
    }

    /// The Redis stream's admin connection (opened once).
    async fn stream_admin(&self) -> anyhow::Result<&redis::StreamAdmin> {
        self.admin
            .get_or_try_init(|| redis::StreamAdmin::open(&self.settings))
            .await
    }

    /// Where the events are kept: `embedded` or `redis` (never the Redis url, which may hold a
    /// password).
    pub fn backend(&self) -> &'static str {
        match &self.store {
            Store::File(_) => "embedded",
            Store::Redis(_) => "redis",
        }
    }

    /// The dead letters with their ids, oldest first (with Redis, every replica's).
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<(String, DeadLetter)>> {
        match &self.store {
            Store::File(file) => Ok(file
                .dead_letters()?
                .into_iter()
                .map(|(id, letter)| (id.to_string(), letter))
                .collect()),
            Store::Redis(_) => self.stream_admin().await?.dead_letters().await,
        }
    }

    /// Puts dead letters (every one, or those named in `only`) back in the running queue, their
    /// failures forgotten; the workers deliver them again. Returns how many.
    pub async fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        match &self.store {
            Store::File(file) => file.requeue(only),
            Store::Redis(_) => self.stream_admin().await?.requeue(only).await,
        }
    }
}

/// The threads queued events are delivered on: as many as cores, at a lower scheduling priority
/// than the threads that answer OpenIM (nice 10). When the cores are busy, answers come first
/// and the queue absorbs the burst; idle cores go to the deliveries. Stopped when dropped.
pub struct Deliveries {
    /// Taken on drop (a runtime cannot be dropped inside another: it is shut down instead).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Deliveries {
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("queue-delivery")
            .on_thread_start(|| {
                crate::runtime::background::lower_priority("a queue delivery thread");
            })
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("running until dropped")
            .handle()
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What becomes of an event after a delivery.
pub enum Settlement {
    /// Every plugin handled it: the event leaves the queue.
    Handled,
    /// Some failed: deliver it again after this long.
    Retry(Duration),
    /// It kept failing: into the dead letters, with the cause.
    Dead(String),
}

/// A host's queue, for `callback-host queue` and `replay`: the file of a stopped host, or the
/// Redis stream (which running replicas may share).
pub enum Admin {
    File(FileAdmin),
    Redis(redis::StreamAdmin),
}

impl Admin {
    pub async fn open(settings: &QueueSettings) -> anyhow::Result<Self> {
        Ok(match settings.backend {
            QueueBackend::Embedded => Self::File(FileAdmin::open(&settings.path)?),
            QueueBackend::Redis => Self::Redis(redis::StreamAdmin::open(settings).await?),
        })
    }

    /// Events stored, the age of the oldest, dead letters.
    pub async fn stats(&self) -> anyhow::Result<(u64, Option<Duration>, u64)> {
        match self {
            Self::File(file) => file.stats(),
            Self::Redis(stream) => stream.stats().await,
        }
    }

    /// The dead letters with their ids, oldest first.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<(String, DeadLetter)>> {
        match self {
            Self::File(file) => Ok(file
                .dead_letters()?
                .into_iter()
                .map(|(id, letter)| (id.to_string(), letter))
                .collect()),
            Self::Redis(stream) => stream.dead_letters().await,
        }
    }

    /// Puts the dead letters (every one, or those named in `only`) back in the queue, their
    /// failures forgotten. Returns how many.
    pub async fn requeue(&self, only: Option<&[String]>) -> anyhow::Result<usize> {
        match self {
            Self::File(file) => file.requeue(only),
            Self::Redis(stream) => stream.requeue(only).await,
        }
    }

    /// Deletes the dead letters. Returns how many.
    pub async fn purge_dead_letters(&self) -> anyhow::Result<u64> {
        match self {
            Self::File(file) => file.purge_dead_letters(),
            Self::Redis(stream) => stream.purge_dead_letters().await,
        }
    }
}

#[cfg(test)]
mod tests;
