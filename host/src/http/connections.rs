//! The open connections, so that the connection cap cannot be held by clients that do nothing:
//! when the server is at `max_connections`, or a source at `max_connections_per_source`, the
//! connection that has waited longest without a request in progress (idle between requests, or
//! silent since accept) is closed to make room, oldest first. A connection in the middle of a
//! request is never chosen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::HttpLimits;
use crate::outcomes::Closed;

/// What a connection is doing, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, and nothing read yet.
    Connected,
    /// Reading a request: since its first byte.
    Reading,
    /// The app has a request; its own deadline bounds it.
    Busy,
    /// Answered; waiting for the next request on a keep-alive connection.
    Idle,
}

/// The phase of one connection and since when, shared by its stream and its service.
#[derive(Debug)]
pub struct Activity {
    /// The phase and when it began.
    state: Mutex<(Phase, Instant)>,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// A connection just accepted.
    pub fn new() -> Self {
        Self {
            state: Mutex::new((Phase::Connected, Instant::now())),
        }
    }

    /// Since when the connection has waited without a request (silent since accept, or idle
    /// after an answer); `None` while a request is being read or answered.
    pub fn waiting_since(&self) -> Option<Instant> {
        let (phase, since) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        matches!(phase, Phase::Connected | Phase::Idle).then_some(since)
    }

    fn set(&self, phase: Phase) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (phase, Instant::now());
    }

    /// A request reached the app.
    pub fn begin(&self) {
        self.set(Phase::Busy);
    }

    /// The app answered.
    pub fn end(&self) {
        self.set(Phase::Idle);
    }

    /// Request bytes arrived.
    pub fn bytes_read(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(state.0, Phase::Connected | Phase::Idle) {
            *state = (Phase::Reading, Instant::now());
        }
    }

    /// When the current phase's timeout passes, and what it would mean.
    pub fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, Closed)> {
        let (phase, since) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        match phase {
            Phase::Connected | Phase::Reading => {
                Some((since + limits.read_timeout, Closed::ReadTimeout))
            }
            Phase::Idle => Some((since + limits.idle_timeout, Closed::IdleTimeout)),
            Phase::Busy => None,
        }
    }
}

/// Every open connection of one listener.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The id of the next connection.
    next: u64,
    /// Each open connection, by id.
    open: HashMap<u64, Open>,
    /// Open connections per source address.
    per_source: HashMap<IpAddr, usize>,
}

/// One open connection, as the registry sees it.
struct Open {
    /// Its source address, to count and to evict per source.
    peer: IpAddr,
    /// What it is doing, and since when: only a connection without a request is evicted.
    activity: Arc<Activity>,
    /// Tells the connection to close.
    evict: Arc<Notify>,
    /// Already told: not chosen twice.
    evicted: bool,
}

/// A connection's place in the registry; leaves it when dropped.
pub struct Registered {
    /// The registry, to leave it.
    connections: Arc<Connections>,
    /// The connection's id.
    id: u64,
    /// What the connection is doing (its timeouts and the registry read it).
    pub activity: Arc<Activity>,
    /// Resolves when the connection is to close to make room.
    pub evict: Arc<Notify>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut inner = self.connections.lock();
        if let Some(open) = inner.open.remove(&self.id)
            && let Some(count) = inner.per_source.get_mut(&open.peer)
        {
            *count -= 1;
            if *count == 0 {
                inner.per_source.remove(&open.peer);
            }
        }
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection from `peer`.
    pub fn register(self: &Arc<Self>, peer: IpAddr) -> Registered {
        let activity = Arc::new(Activity::new());
        let evict = Arc::new(Notify::new());
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.open.insert(
            id,
            Open {
                peer,
                activity: Arc::clone(&activity),
                evict: Arc::clone(&evict),
                evicted: false,
            },
        );
        *inner.per_source.entry(peer).or_default() += 1;
        Registered {
            connections: Arc::clone(self),
            id,
            activity,
            evict,
        }
    }

    /// Open connections from `peer` (those told to close included, until they have).
    pub fn from_source(&self, peer: IpAddr) -> usize {
        self.lock().per_source.get(&peer).copied().unwrap_or(0)
    }

    /// Tells the connection without a request that has waited longest (from `source` only, when
    /// given) to close; false when every one is in the middle of a request.
    pub fn evict_oldest_waiting(&self, source: Option<IpAddr>) -> bool {
        let mut inner = self.lock();
        let oldest = inner
            .open
            .iter_mut()
            .filter(|(_, open)| !open.evicted && source.is_none_or(|s| s == open.peer))
            .filter_map(|(_, open)| open.activity.waiting_since().map(|since| (since, open)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, open)) => {
                open.evicted = true;
                open.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_connection_without_a_request_is_evicted_never_a_busy_one() {
        let connections = Arc::new(Connections::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let busy = connections.register(a);
        busy.activity.begin();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let silent = connections.register(a);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let idle = connections.register(b);
        idle.activity.begin();
        idle.activity.end();
        assert_eq!(connections.from_source(a), 2);

        // The silent one is oldest of those waiting; the busy one is never chosen.
        assert!(connections.evict_oldest_waiting(None));
        assert!(is_told(&silent.evict));
        assert!(!is_told(&busy.evict));
        // Then the idle one (not the silent one twice).
        assert!(connections.evict_oldest_waiting(None));
        assert!(is_told(&idle.evict));
        assert!(!connections.evict_oldest_waiting(None));

        // Per source: only that source's connections.
        let other = connections.register(b);
        assert!(!connections.evict_oldest_waiting(Some(a)));
        assert!(connections.evict_oldest_waiting(Some(b)));
        assert!(is_told(&other.evict));

        drop(silent);
        assert_eq!(connections.from_source(a), 1);
        drop(busy);
        assert_eq!(connections.from_source(a), 0);
    }

    /// Whether `notify` holds a permit (was told), without waiting.
    fn is_told(notify: &Notify) -> bool {
        use std::future::Future as _;
        let notified = std::pin::pin!(notify.notified());
        let waker = std::task::Waker::noop();
        notified
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }
}
