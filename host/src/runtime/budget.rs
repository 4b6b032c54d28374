//! The memory budget: the most linear memory all plugin instances may hold at once. An instance
//! reserves from it as its memories grow (instantiation included) and gives it back when it is
//! dropped; a growth the budget cannot cover yet waits, within the call's deadline, for other
//! calls to finish, after the instances kept idle for reuse were dropped to make room. So a burst
//! of memory-hungry calls queues instead of taking the machine's memory, and the host never fails
//! for it.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in WebAssembly pages.
const PAGE: usize = 64 << 10;
/// How often a waiting growth drops instances that went idle meanwhile.
const PRESSURE_RECHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// The host-wide budget of plugin memory.
pub struct MemoryBudget {
    /// One permit per page of the budget.
    pages: Arc<Semaphore>,
    /// The budget's size in pages.
    total_pages: usize,
    /// Gives memory back when a growth does not fit: drops the instances kept for reuse.
    on_pressure: OnceLock<Box<dyn Fn() -> usize + Send + Sync>>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total_pages", &self.total_pages)
            .field("available_pages", &self.pages.available_permits())
            .finish()
    }
}

/// Budget held by one instance; given back on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    /// The pages held, merged into one permit.
    held: Option<OwnedSemaphorePermit>,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole pages).
    pub fn new(bytes: usize) -> Self {
        let total_pages = (bytes / PAGE).min(Semaphore::MAX_PERMITS);
        Self {
            pages: Arc::new(Semaphore::new(total_pages)),
            total_pages,
            on_pressure: OnceLock::new(),
        }
    }

    /// Sets what gives memory back when a growth does not fit (once; later calls are ignored).
    /// It returns how many instances it dropped.
    pub fn on_pressure(&self, release: impl Fn() -> usize + Send + Sync + 'static) {
        let _ = self.on_pressure.set(Box::new(release));
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> usize {
        self.total_pages * PAGE
    }

    /// Bytes reserved by live instances now.
    pub fn in_use_bytes(&self) -> usize {
        (self.total_pages - self.pages.available_permits()) * PAGE
    }

    /// Adds `bytes` to `reservation`, waiting for room until `deadline`. `false` when there was
    /// none in time (or the request is larger than the whole budget).
    pub async fn reserve(
        &self,
        reservation: &mut Reservation,
        bytes: usize,
        deadline: Instant,
    ) -> bool {
        let pages = bytes.div_ceil(PAGE);
        if pages == 0 {
            return true;
        }
        let Ok(pages) = u32::try_from(pages) else {
            return false;
        };
        if pages as usize > self.total_pages {
            return false;
        }
        // Usually there is room; otherwise drop the idle instances and wait, dropping the ones
        // that became idle meanwhile every few milliseconds, until the deadline.
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.pages).try_acquire_many_owned(pages) {
                break permit;
            }
            if self.on_pressure.get().is_some_and(|release| release() > 0) {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (now + PRESSURE_RECHECK).min(deadline);
            if let Ok(Ok(permit)) = tokio::time::timeout_at(
                slice.into(),
                Arc::clone(&self.pages).acquire_many_owned(pages),
            )
            .await
            {
                break permit;
            }
        };
        match &mut reservation.held {
            Some(held) => held.merge(permit),
            None => reservation.held = Some(permit),
        }
        true
    }
}
