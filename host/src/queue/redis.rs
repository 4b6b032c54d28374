//! The Redis store of the queue, shared by replicas: a stream (`[queue] stream`) read through
//! one consumer group, so each event goes to one replica; a sorted set (`<stream>:retry`) of
//! events waiting for their retry, by due time; a hash (`<stream>:dead`) of dead letters.
//!
//! - Each replica is a consumer of its own name. It reads no more events than its workers can
//!   take, acknowledges and deletes an event when it is settled, and claims (XAUTOCLAIM) events
//!   another consumer left unacknowledged for `claim_idle`: that replica is taken for dead, and
//!   the event is delivered again (`redelivered`).
//! - Settling (done, retry, dead letter) is one script each, atomic on the server, and does
//!   nothing when the event was already acknowledged (by a replica that claimed it meanwhile).
//! - Retries wait in the sorted set, not in a process: any replica moves the due ones back into
//!   the stream, using the server's clock.
//! - Durability is Redis's own: with `appendonly yes` and `appendfsync everysec` (Redis's
//!   advice), a crash of the Redis server loses at most a second of events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands as _, Script};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{DeadLetter, Event, EventId, Job, Settlement};
use crate::config::QueueSettings;
use crate::metrics::Metrics;

mod admin;

pub use admin::StreamAdmin;

/// The consumer group every replica reads through.
const GROUP: &str = "callback-host";

/// Appends ARGV[1] to the stream KEYS[1] unless the stream and the retry set KEYS[2] hold
/// ARGV[2] events already. When ARGV[3] (a window in ms) is not empty, the marker KEYS[3] of the
/// event's identity is set for that long, and an event whose marker is there is not appended.
/// Returns the entry's id, `duplicate`, or nil when full.
const APPEND: &str = r#"
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  return 'duplicate'
end
if redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[3], id, 'PX', ARGV[3])
end
return id
"#;

/// How long an after-callback is remembered, so that the same one sent again (a load balancer
/// retrying a request whose replica died after storing it) is not stored twice.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Acknowledges and deletes entry ARGV[2] of KEYS[1] (group ARGV[1]). Then, by ARGV[3]:
/// `done` nothing more; `retry` adds `id|event` ARGV[5] to the retry set KEYS[2] due in ARGV[4]
/// ms; `dead` stores the dead letter ARGV[5] in the hash KEYS[3]. Nothing when it was acked.
const SETTLE: &str = r#"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'retry' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2] .. '|' .. ARGV[5])
elseif ARGV[3] == 'dead' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
end
return 1
"#;

/// Moves up to ARGV[1] due events of the retry set KEYS[2] back into the stream KEYS[1].
const PROMOTE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local bar = string.find(member, '|', 1, true)
  redis.call('XADD', KEYS[1], '*', 'event', string.sub(member, bar + 1))
  redis.call('ZREM', KEYS[2], member)
end
return #due
"#;

/// The keys of one queue.
#[derive(Clone)]
pub struct Keys {
    /// The stream of events to deliver.
    pub stream: String,
    /// Events waiting for a retry, scored by due time (ms).
    pub retry: String,
    /// Dead letters by their last entry id.
    pub dead: String,
}

impl Keys {
    pub fn new(stream: &str) -> Self {
        Self {
            stream: stream.to_owned(),
            retry: format!("{stream}:retry"),
            dead: format!("{stream}:dead"),
        }
    }
}

/// A replica's handle on the shared queue.
pub struct StreamStore {
    /// Appends, settles, stats (multiplexed; reconnects by itself).
    connection: ConnectionManager,
    /// For the reader's own connection: its blocking reads must not hold up the others.
    client: redis::Client,
    keys: Keys,
    /// This replica's consumer name in the group.
    consumer: String,
    /// Unacknowledged this long, an event is claimed from its consumer.
    claim_idle: Duration,
    /// Most events stored (stream and retry set).
    max_events: usize,
    append: Script,
    settle: Script,
}

/// What makes two after-callbacks the same event: command, operationID and body (SHA-256, hex).
fn identity(event: &Event) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for part in [&event.command, &event.operation_id, &event.body] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    crate::util::hex(&hasher.finalize())
}

/// The client of `[queue] redis_url`.
fn client(settings: &QueueSettings) -> anyhow::Result<redis::Client> {
    let url = settings
        .redis_url
        .as_deref()
        .context("[queue] redis_url is not set")?;
    redis::Client::open(url).with_context(|| format!("redis url {url:?}"))
}

/// Connects with replies awaited up to `timeout`.
async fn connect(client: &redis::Client, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .context("connecting to the queue's redis")
}

impl StreamStore {
    /// Connects and creates the consumer group if it is missing.
    pub async fn open(settings: &QueueSettings) -> anyhow::Result<Self> {
        let client = client(settings)?;
        let mut connection = connect(&client, Duration::from_secs(2)).await?;
        let keys = Keys::new(&settings.stream);
        create_group(&mut connection, &keys).await?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        let consumer = format!("{host}-{}-{}", std::process::id(), crate::util::unix_ms());
        tracing::info!(stream = %keys.stream, %consumer, "queue in redis");
        Ok(Self {
            connection,
            client,
            keys,
            consumer,
            claim_idle: settings.claim_idle,
            max_events: settings.max_events,
            append: Script::new(APPEND),
            settle: Script::new(SETTLE),
        })
    }

    /// Stores `event`, waiting until `deadline` for room. `Ok(false)`: no room in time.
    pub async fn append(
        &self,
        event: &Event,
        deadline: Instant,
        metrics: &Metrics,
    ) -> anyhow::Result<bool> {
        let json = serde_json::to_string(event)?;
        // Without an operationID, two identical bodies may be two real events: no marker.
        let (marker, window) = if event.operation_id.is_empty() {
            (format!("{}:seen", self.keys.stream), String::new())
        } else {
            (
                format!("{}:seen:{}", self.keys.stream, identity(event)),
                DUPLICATE_WINDOW.as_millis().to_string(),
            )
        };
        let mut connection = self.connection.clone();
        let mut waited = false;
        loop {
            let id: Option<String> = self
                .append
                .key(&self.keys.stream)
                .key(&self.keys.retry)
                .key(&marker)
                .arg(&json)
                .arg(self.max_events)
                .arg(&window)
                .invoke_async(&mut connection)
                .await
                .context("appending to the queue's stream")?;
            if id.as_deref() == Some("duplicate") {
                tracing::info!(operation_id = %event.operation_id,
                    "an after-callback already stored was sent again; stored once");
                metrics.queue_duplicates.inc();
                return Ok(true);
            }
            if id.is_some() {
                return Ok(true);
            }
            if !waited {
                metrics.queue_full.inc();
                waited = true;
            }
            if Instant::now() + Duration::from_millis(20) >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Acknowledges a delivered event and completes, schedules or buries it.
    pub async fn settle(&self, job: Job, settlement: Settlement) -> anyhow::Result<()> {
        let EventId::Stream(id) = &job.id else {
            anyhow::bail!("not an entry of the queue's stream: {}", job.id);
        };
        let (mode, delay, payload) = match settlement {
            Settlement::Handled => ("done", 0, String::new()),
            Settlement::Retry(backoff) => (
                "retry",
                backoff.as_millis() as u64,
                serde_json::to_string(&job.event)?,
            ),
            Settlement::Dead(cause) => (
                "dead",
                0,
                serde_json::to_string(&DeadLetter {
                    event: job.event,
                    cause,
                })?,
            ),
        };
        let mut connection = self.connection.clone();
        let settled: i64 = self
            .settle
            .key(&self.keys.stream)
            .key(&self.keys.retry)
            .key(&self.keys.dead)
            .arg(GROUP)
            .arg(id)
            .arg(mode)
            .arg(delay)
            .arg(payload)
            .invoke_async(&mut connection)
            .await
            .context("settling an event in the queue's stream")?;
        if settled == 0 {
            tracing::warn!(event = %id, "the event was settled by another replica meanwhile");
        }
        Ok(())
    }

    /// Events stored (stream and retry set) and the age of the oldest in the stream.
    pub async fn stats(&self) -> anyhow::Result<(u64, Option<Duration>)> {
        stats(&mut self.connection.clone(), &self.keys).await
    }

    /// Starts the reader (new events, and events claimed from dead replicas, as the `workers`
    /// can take them) and the mover of due retries.
    pub fn start(&self, workers: usize, jobs: mpsc::UnboundedSender<Job>) {
        let slots = Arc::new(Semaphore::new(workers));
        let reader = Reader {
            client: self.client.clone(),
            keys: self.keys.clone(),
            consumer: self.consumer.clone(),
            claim_idle: self.claim_idle,
            workers,
        };
        tokio::spawn(reader.run(slots, jobs));
        let (mut connection, keys) = (self.connection.clone(), self.keys.clone());
        tokio::spawn(async move {
            let promote = Script::new(PROMOTE);
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let moved: Result<i64, _> = promote
                    .key(&keys.stream)
                    .key(&keys.retry)
                    .arg(100)
                    .invoke_async(&mut connection)
                    .await;
                if let Err(error) = moved {
                    tracing::warn!(%error, "moving due retries into the queue's stream failed");
                }
            }
        });
    }
}

async fn create_group(connection: &mut ConnectionManager, keys: &Keys) -> anyhow::Result<()> {
    let created: redis::RedisResult<()> = connection
        .xgroup_create_mkstream(&keys.stream, GROUP, "0")
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => other.context("creating the queue's consumer group"),
    }
}

async fn stats(
    connection: &mut ConnectionManager,
    keys: &Keys,
) -> anyhow::Result<(u64, Option<Duration>)> {
    let (length, waiting, first): (u64, u64, redis::streams::StreamRangeReply) = redis::pipe()
        .xlen(&keys.stream)
        .zcard(&keys.retry)
        .xrange_count(&keys.stream, "-", "+", 1)
        .query_async(connection)
        .await
        .context("reading the queue's stream")?;
    let oldest = first.ids.first().and_then(|entry| {
        let ms: u64 = entry.id.split('-').next()?.parse().ok()?;
        Some(Duration::from_millis(
            crate::util::unix_ms().saturating_sub(ms),
        ))
    });
    Ok((length + waiting, oldest))
}

/// Reads events for this replica's workers.
struct Reader {
    client: redis::Client,
    keys: Keys,
    consumer: String,
    claim_idle: Duration,
    workers: usize,
}

impl Reader {
    async fn run(self, slots: Arc<Semaphore>, jobs: mpsc::UnboundedSender<Job>) {
        let mut connection = loop {
            match connect(&self.client, Duration::from_secs(5)).await {
                Ok(connection) => break connection,
                Err(error) => {
                    tracing::error!("the queue's reader cannot reach redis: {error:#}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut last_claim = Instant::now();
        loop {
            // As many events as workers are free, at least one.
            let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let mut free = vec![first];
            while free.len() < self.workers {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => free.push(slot),
                    Err(_) => break,
                }
            }
            let claiming = last_claim.elapsed() >= self.claim_idle / 4;
            let read = if claiming {
                last_claim = Instant::now();
                self.claim(&mut connection, free.len()).await
            } else {
                self.read(&mut connection, free.len()).await
            };
            match read {
                Ok(entries) => {
                    for entry in entries {
                        let Some(slot) = free.pop() else { break };
                        self.hand(entry, claiming, slot, &jobs);
                    }
                }
                Err(error) => {
                    tracing::warn!("reading the queue's stream failed: {error:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    // The group is gone (the stream was deleted): make it again.
                    let code = error
                        .downcast_ref::<redis::RedisError>()
                        .and_then(redis::RedisError::code);
                    if code == Some("NOGROUP") {
                        let _ = create_group(&mut connection, &self.keys).await;
                    }
                }
            }
        }
    }

    /// New entries for this consumer, waiting up to a second for one.
    async fn read(
        &self,
        connection: &mut ConnectionManager,
        count: usize,
    ) -> anyhow::Result<Vec<StreamId>> {
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(count)
            .block(1000);
        let reply: Option<StreamReadReply> = connection
            .xread_options(&[&self.keys.stream], &[">"], &options)
            .await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Entries other consumers left unacknowledged for `claim_idle`.
    async fn claim(
        &self,
        connection: &mut ConnectionManager,
        count: usize,
    ) -> anyhow::Result<Vec<StreamId>> {
        let reply: StreamAutoClaimReply = connection
            .xautoclaim_options(
                &self.keys.stream,
                GROUP,
                &self.consumer,
                self.claim_idle.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        if !reply.claimed.is_empty() {
            tracing::warn!(
                claimed = reply.claimed.len(),
                "events a replica left unacknowledged are delivered again"
            );
        }
        Ok(reply.claimed)
    }

    fn hand(
        &self,
        entry: StreamId,
        redelivered: bool,
        slot: OwnedSemaphorePermit,
        jobs: &mpsc::UnboundedSender<Job>,
    ) {
        let event = entry
            .get::<String>("event")
            .and_then(|json| serde_json::from_str::<Event>(&json).ok());
        match event {
            Some(event) => {
                let _ = jobs.send(Job {
                    id: EventId::Stream(entry.id),
                    event,
                    redelivered,
                    slot: Some(slot),
                });
            }
            None => {
                tracing::error!(entry = %entry.id, "an entry of the queue's stream is not an event; left pending")
            }
        }
    }
}
