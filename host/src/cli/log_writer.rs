//! The log's writer: a request never waits on log I/O and never wakes a thread per line. Lines
//! are appended to a buffer in memory; a thread of its own writes the buffer to stderr a moment
//! after the first line since its last write ([`GATHER`]), so at any log rate it wakes at most
//! about a hundred times a second. (tracing-appender's writer woke its thread for every line: at
//! OpenIM's message rate, a context switch or two per request.) Past [`MAX_PENDING`] bytes not yet
//! written, lines are dropped and the count of dropped lines is logged with the next write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long the writer gathers lines after the first one before writing them out.
const GATHER: Duration = Duration::from_millis(10);
/// The most bytes waiting to be written; lines beyond are dropped.
const MAX_PENDING: usize = 4 << 20;

/// What the callers and the writing thread share.
#[derive(Default)]
struct Shared {
    /// Lines not written yet, and whether the writer is to stop.
    pending: Mutex<Pending>,
    /// Wakes the writing thread when the first line arrives, or when it is to stop.
    arrived: Condvar,
    /// Lines dropped because the writer fell behind, since the last write.
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    stop: bool,
}

/// The writer tracing's formatter writes each line to (`MakeWriter`).
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the writing thread when dropped, after it wrote what was logged: keep it until exit.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BatchWriter {
    /// A writer to stderr, and the guard that flushes it at exit.
    pub fn stderr() -> (Self, Flush) {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_forever(&shared, &mut std::io::stderr())
            })
            .ok();
        (
            Self {
                shared: Arc::clone(&shared),
            },
            Flush { shared, thread },
        )
    }
}

impl std::io::Write for BatchWriter {
    /// Takes one formatted line (tracing's formatter writes each event at once).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pending.bytes.len() + line.len() > MAX_PENDING {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let first = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if first {
            self.shared.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writing thread: waits for a first line, gathers for [`GATHER`], writes everything out;
/// until stopped, then writes what is left.
fn write_forever(shared: &Shared, out: &mut impl std::io::Write) {
    loop {
        let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        while pending.bytes.is_empty() && !pending.stop {
            pending = shared
                .arrived
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        let stop = pending.stop;
        if !stop {
            drop(pending);
            std::thread::sleep(GATHER);
            pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        }
        let lines = std::mem::take(&mut pending.bytes);
        drop(pending);
        let _ = out.write_all(&lines);
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "callback-host: {dropped} log lines dropped: the log writer fell behind"
            );
        }
        let _ = out.flush();
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn lines_are_written_in_order_and_all_of_them_at_stop() {
        let shared = Arc::new(Shared::default());
        let out = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (shared, out) = (Arc::clone(&shared), Arc::clone(&out));
            move || {
                let mut written = Vec::new();
                write_forever(&shared, &mut written);
                *out.lock().unwrap() = written;
            }
        });
        let mut writer = BatchWriter {
            shared: Arc::clone(&shared),
        };
        for n in 0..1000 {
            writer.write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        drop(Flush {
            shared,
            thread: Some(thread),
        });
        let written = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[999], "line 999");
    }

    #[test]
    fn lines_beyond_the_cap_are_dropped_and_counted() {
        let shared = Arc::new(Shared::default());
        let mut writer = BatchWriter {
            shared: Arc::clone(&shared),
        };
        let line = vec![b'x'; 1 << 20];
        for _ in 0..6 {
            writer.write_all(&line).unwrap();
        }
        assert_eq!(shared.pending.lock().unwrap().bytes.len(), 4 << 20);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);
        let mut out = Vec::new();
        shared.pending.lock().unwrap().stop = true;
        write_forever(&shared, &mut out);
        assert!(
            String::from_utf8_lossy(&out)
                .ends_with("2 log lines dropped: the log writer fell behind\n")
        );
    }
}
