//! Instances ready before the callback: per plugin, a few instances built ahead, off the request
//! path. A call takes one when one is ready (a hit) or builds its own as before (a miss); either
//! way, once its answer has been written, the same thread builds a replacement (see
//! [`crate::runtime::call::Spent`] and [`crate::runtime::refill::Refill`]). A stocked instance has never run a request,
//! and it serves one call and is never used again, exactly like an instance built for the call:
//! isolation is unchanged.
//!
//! Built on the thread that answered, right after the answer, and not on a thread of its own:
//! on these small machines an instance built on one core and run on another costs more than it
//! saves (every page mapped or reset by one thread interrupts the other core to flush its TLB;
//! measured: the Python guard's CPU per request went up by a third with a builder thread).
//!
//! How many a plugin keeps follows its calls: one replacement per call, up to the calls that
//! overlapped (a call that found none builds its own, and its replacement stays), at most the
//! plugin's `stock_instances`; all stocks together hold at most [`STOCK_SLOTS`] instances (their
//! own slots of the instance pool), and none is built while less than half the memory budget is
//! free. Under memory pressure the stocks are dropped with the instances kept for reuse.
//!
//! With `warm_up_call`, a replacement runs the plugin's first handler once with a canned
//! request ([`WarmUp`]) before it is stocked, every capability refusing and its output dropped:
//! what a language runtime does on its first call is then done off the answer path. The canned
//! request is made of empty values (nothing of any real callback), so isolation between
//! requests holds; what the call leaves in the instance's memory stays for the real call.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, Val};

use crate::metrics::{Metrics, PluginLabels, StockLabels};
use crate::outcomes::StockTake;
use crate::runtime::sandbox::PluginState;

/// Pool slots for instances built ahead, all plugins together.
pub const STOCK_SLOTS: u32 = 16;

/// An instance built ahead that has never run a request, with its store.
pub struct Stocked {
    /// The store holding it, armed for its call by the caller.
    pub store: Store<PluginState>,
    /// The instance, for its exports.
    pub instance: Instance,
    /// Its slot of the pool while stocked; the call's own permit covers it once taken.
    _slot: OwnedSemaphorePermit,
}

/// The canned call that warms an instance built ahead (`warm_up_call`).
#[derive(Debug)]
pub struct WarmUp {
    /// The handler it calls: the plugin's first.
    pub export: ComponentExportIndex,
    /// The command that handler is for.
    pub command: &'static str,
    /// The request: the command's record of empty values, or for the generic interface its
    /// JSON with only `callbackCommand`.
    pub request: Val,
}

/// One plugin's instances built ahead.
pub struct Stock {
    /// Instances ready now.
    ready: Mutex<Vec<Stocked>>,
    /// Replacements being built now.
    building: AtomicUsize,
    /// Most instances kept ready (`stock_instances`); 0 when stocking is off for the plugin.
    most: usize,
    /// Calls that found an instance ready.
    hits: Counter,
    /// Calls that built their own.
    misses: Counter,
    /// Instances ready, as `/metrics` shows them.
    ready_gauge: Gauge,
    /// The call each instance runs before it is stocked, when `warm_up_call` is on.
    warm_up: Option<WarmUp>,
    /// Set when a warm-up call failed: the plugin's later instances are stocked cold (one
    /// warning, not one failure per request).
    warm_up_failed: AtomicBool,
}

/// A stock's numbers, for the console.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StockStatus {
    /// Instances ready now.
    pub ready: usize,
    /// Most it keeps (`stock_instances`; 0: off).
    pub most: usize,
    /// Calls that found an instance ready.
    pub hits: u64,
    /// Calls that built their own.
    pub misses: u64,
}

impl Stock {
    /// An empty stock of `plugin`'s that keeps at most `most` instances (0: stocking off),
    /// counted in `metrics`, each warmed by `warm_up` when given.
    pub fn new(most: u32, warm_up: Option<WarmUp>, plugin: &Arc<str>, metrics: &Metrics) -> Self {
        // One statement each: a family's guard must be gone before the next label is created.
        let take = |take| {
            let labels = StockLabels {
                plugin: Arc::clone(plugin),
                take,
            };
            metrics.stock_takes.get_or_create(&labels).clone()
        };
        let (hits, misses) = if most > 0 {
            (take(StockTake::Hit), take(StockTake::Miss))
        } else {
            (Counter::default(), Counter::default())
        };
        let ready_gauge = if most > 0 {
            let labels = PluginLabels {
                plugin: Arc::clone(plugin),
            };
            metrics.stock_ready.get_or_create(&labels).clone()
        } else {
            Gauge::default()
        };
        Self {
            ready: Mutex::new(Vec::new()),
            building: AtomicUsize::new(0),
            most: most as usize,
            hits,
            misses,
            ready_gauge,
            warm_up,
            warm_up_failed: AtomicBool::new(false),
        }
    }

    /// The call that warms this stock's instances, unless off or given up.
    pub fn warm_up(&self) -> Option<&WarmUp> {
        self.warm_up
            .as_ref()
            .filter(|_| !self.warm_up_failed.load(Ordering::Relaxed))
    }

    /// Gives up warming after a warm-up call failed; true the first time (the caller warns).
    pub fn warm_up_failed(&self) -> bool {
        !self.warm_up_failed.swap(true, Ordering::Relaxed)
    }

    /// Whether this plugin's calls are served from a stock.
    pub fn enabled(&self) -> bool {
        self.most > 0
    }

    /// A ready instance for one call, if there is one; counts the hit or the miss.
    pub fn take(&self) -> Option<Stocked> {
        let taken = lock(&self.ready).pop();
        match taken {
            Some(_) => {
                self.hits.inc();
                self.ready_gauge.dec();
            }
            None => {
                self.misses.inc();
            }
        }
        taken
    }

    /// Whether one more instance should be built: counts it as being built when so (the caller
    /// then builds it, or gives it up with [`Stock::abandon`]).
    pub fn wants_one(&self) -> bool {
        if self.most == 0 {
            return false;
        }
        let ready = lock(&self.ready).len();
        let building = self.building.fetch_add(1, Ordering::AcqRel);
        if ready + building < self.most {
            true
        } else {
            self.building.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }

    /// Takes in an instance built ahead.
    pub fn put(&self, store: Store<PluginState>, instance: Instance, slot: OwnedSemaphorePermit) {
        lock(&self.ready).push(Stocked {
            store,
            instance,
            _slot: slot,
        });
        self.building.fetch_sub(1, Ordering::AcqRel);
        self.ready_gauge.inc();
    }

    /// A build counted by [`Stock::wants_one`] that did not happen.
    pub fn abandon(&self) {
        self.building.fetch_sub(1, Ordering::AcqRel);
    }

    /// Drops every ready instance (their memory goes back to the budget); returns how many.
    pub fn drop_all(&self) -> usize {
        let dropped = std::mem::take(&mut *lock(&self.ready));
        self.ready_gauge.dec_by(dropped.len() as i64);
        dropped.len()
    }

    /// The numbers the console shows.
    pub fn status(&self) -> StockStatus {
        StockStatus {
            ready: lock(&self.ready).len(),
            most: self.most,
            hits: self.hits.get(),
            misses: self.misses.get(),
        }
    }
}

impl Drop for Stock {
    fn drop(&mut self) {
        self.drop_all();
    }
}

/// The mutex's value even if a holder panicked (the values stay consistent: pushes and pops).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
