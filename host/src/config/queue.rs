//! The sections of what outlives a request: the durable queue of `queued` after-callbacks
//! (`[queue]`) and the record of answered callbacks for replay (`[record]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The `[queue]` section: the durable queue of `queued` after-callbacks.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    pub backend: Option<QueueBackend>,
    pub redis_url: Option<String>,
    pub stream: Option<String>,
    pub claim_idle_ms: Option<u64>,
    pub path: Option<PathBuf>,
    pub max_events: Option<usize>,
    pub workers: Option<usize>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub durability: Option<QueueDurability>,
}

/// Where the queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// A redb file of this host's own.
    Embedded,
    /// A Redis stream with a consumer group, shared by replicas.
    Redis,
}

/// When an appended event counts as stored (the embedded queue; Redis's is its `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueDurability {
    /// Written to the operating system before the answer, flushed to disk within a few ms: an
    /// answered event survives any crash of the host process; a crash of the machine may lose
    /// the last few ms of them.
    Process,
    /// Flushed to disk before the answer: an answered event survives a crash of the machine too.
    Machine,
}

/// Resolved `[queue]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// A file of this host's, or a Redis stream shared by replicas.
    pub backend: QueueBackend,
    /// The Redis server (`[queue] redis_url`, else `[keyvalue] redis_url`).
    pub redis_url: Option<String>,
    /// The stream's key; its consumer group, retry set and dead letters are named after it.
    pub stream: String,
    /// How long a replica's event may stay unacknowledged before another replica claims it
    /// (the replica is taken for dead): longer than any delivery takes.
    pub claim_idle: Duration,
    /// The queue's file (embedded).
    pub path: PathBuf,
    /// Most events stored at once; beyond it requests wait for room.
    pub max_events: usize,
    /// Events delivered at once.
    pub workers: usize,
    /// Failed deliveries before an event is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles it.
    pub retry_base: Duration,
    /// What an answered event survives (embedded).
    pub durability: QueueDurability,
}

/// The `[record]` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFile {
    pub path: Option<PathBuf>,
    pub before_sample: Option<f64>,
    pub max_mib: Option<u64>,
}

/// Resolved `[record]` settings: recording answered callbacks for `callback-host replay`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSettings {
    /// The JSON Lines file records are appended to.
    pub path: PathBuf,
    /// The share of before-callbacks recorded with their answer (0: none, 1: all).
    pub before_sample: f64,
    /// Recording stops (with a warning) when the file reaches this size.
    pub max_bytes: u64,
}

impl RecordSettings {
    /// Whether anything is recorded (shadow disagreements are whenever this is on).
    pub fn on(&self) -> bool {
        self.before_sample > 0.0
    }
}
