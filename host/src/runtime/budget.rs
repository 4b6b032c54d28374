//! The memory budget: the most linear memory all plugin instances may hold at once. An instance
//! reserves from it as its memories grow (instantiation included) and gives it back when it is
//! dropped; a growth the budget cannot cover yet waits, within the call's deadline, for other
//! calls to finish. So a burst of memory-hungry calls queues instead of taking the machine's
//! memory, and the host never fails for it.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in WebAssembly pages.
const PAGE: usize = 64 << 10;

/// The host-wide budget of plugin memory.
#[derive(Debug)]
pub struct MemoryBudget {
    /// One permit per page of the budget.
    pages: Arc<Semaphore>,
    /// The budget's size in pages.
    total_pages: usize,
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
        }
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
        let semaphore = Arc::clone(&self.pages);
        // Usually there is room; only wait (with a timer) when there is not.
        let permit = match Arc::clone(&semaphore).try_acquire_many_owned(pages) {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout_at(deadline.into(), semaphore.acquire_many_owned(pages))
                    .await
                {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return false,
                }
            }
        };
        match &mut reservation.held {
            Some(held) => held.merge(permit),
            None => reservation.held = Some(permit),
        }
        true
    }
}
