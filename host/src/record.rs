//! Recording answered callbacks, for `callback-host replay`: a sampled share of the
//! before-callbacks with the answer OpenIM was given, and every disagreement of a shadow plugin.
//!
//! Records are JSON Lines appended to one file (readable while the host runs, easy to copy, cut
//! or `grep`), written by a thread of their own off the request path. Recording is best effort:
//! when the writer falls behind, records are dropped and counted, never waited for; when the
//! file reaches its size cap, recording stops with a warning.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};

use crate::config::RecordSettings;

/// Records waiting for the writer; beyond it they are dropped.
const BACKLOG: usize = 4096;

/// Why a callback was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A sampled before-callback.
    Before,
    /// A shadow plugin answered differently from the answer given.
    Shadow,
}

/// One recorded callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub kind: Kind,
    /// OpenIM's command.
    pub command: String,
    /// OpenIM's operationID.
    pub operation_id: String,
    /// When it was answered (ms since the Unix epoch).
    pub at_ms: u64,
    /// The request body as OpenIM sent it.
    pub body: String,
    /// The answer OpenIM was given.
    pub answer: serde_json::Value,
    /// For a shadow disagreement: the shadow plugin and its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowAnswer>,
}

/// What a shadow plugin would have answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShadowAnswer {
    pub plugin: String,
    pub answer: serde_json::Value,
}

/// Appends records to the record file.
pub struct Recorder {
    /// The writer thread's inbox.
    sender: mpsc::SyncSender<Record>,
    /// The share of before-callbacks recorded.
    sample: f64,
    /// Before-callbacks seen, for exact sampling without randomness.
    seen: AtomicU64,
    /// Records dropped because the writer fell behind (`callback_host_records_dropped_total`).
    dropped: Counter<u64, AtomicU64>,
}

impl Recorder {
    /// Opens the record file for appending and starts its writer, when recording is on.
    pub fn open(
        settings: &RecordSettings,
        dropped: Counter<u64, AtomicU64>,
    ) -> anyhow::Result<Option<Self>> {
        if !settings.on() {
            return Ok(None);
        }
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the record directory {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&settings.path)
            .with_context(|| format!("opening the record file {}", settings.path.display()))?;
        let written = file.metadata()?.len();
        let (sender, inbox) = mpsc::sync_channel(BACKLOG);
        let (path, max_bytes) = (settings.path.clone(), settings.max_bytes);
        std::thread::Builder::new()
            .name("record".into())
            .spawn(move || write_records(file, written, max_bytes, &path, &inbox))?;
        Ok(Some(Self {
            sender,
            sample: settings.before_sample,
            seen: AtomicU64::new(0),
            dropped,
        }))
    }

    /// Whether this before-callback is in the sample: exactly `before_sample` of them, evenly
    /// spread.
    pub fn sampled(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample).floor() > (n * self.sample).floor()
    }

    /// Hands `record` to the writer, or drops it when the writer is behind.
    pub fn record(&self, record: Record) {
        if self.sender.try_send(record).is_err() {
            self.dropped.inc();
        }
    }
}

/// The writer: one line per record, flushed when the inbox is idle for a moment.
fn write_records(
    file: std::fs::File,
    mut written: u64,
    max_bytes: u64,
    path: &std::path::Path,
    inbox: &mpsc::Receiver<Record>,
) {
    let mut out = std::io::BufWriter::new(file);
    loop {
        let record = match inbox.recv_timeout(Duration::from_millis(100)) {
            Ok(record) => record,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let Ok(mut line) = serde_json::to_vec(&record) else {
            continue;
        };
        line.push(b'\n');
        if written + line.len() as u64 > max_bytes {
            tracing::warn!(path = %path.display(), max_bytes,
                "the record file reached its size cap ([record] max_mib): recording stopped");
            break;
        }
        if let Err(error) = out.write_all(&line) {
            tracing::error!(%error, path = %path.display(), "writing a record failed: recording stopped");
            break;
        }
        written += line.len() as u64;
    }
    let _ = out.flush();
}

/// Reads the records of a record file, in order.
pub fn read(path: &std::path::Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the record file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a record", path.display(), n + 1))
        })
        .collect()
}
