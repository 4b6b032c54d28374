//! The wasmtime engine (pooling allocator, fuel, epoch interruption) with the epoch ticker thread
//! it owns, which turns wall-clock time into epochs, and the linker every plugin is instantiated
//! against.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config as WasmConfig, Enabled, Engine, EngineWeak, InstanceAllocationStrategy,
    PoolingAllocationConfig,
};

use crate::config::Config;
use crate::runtime::bindings;
use crate::runtime::sandbox::PluginState;

/// How often the epoch advances. A running plugin checks its deadline (and yields to other
/// requests) once per tick, so this is the precision of the wall-clock limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The most bytes of each linear memory kept mapped between instances (see [`pooling`]).
const KEEP_RESIDENT_MAX_BYTES: usize = 32 << 20;
/// Linear memories in the pool per instance slot (language runtimes have a few each).
const MEMORIES_PER_SLOT: u32 = 4;
/// Bytes of each table kept mapped between instances.
const KEEP_RESIDENT_TABLE_BYTES: usize = 1 << 20;

/// Pool slots beyond the calls in flight: idle instances of plugins in reuse mode (room for 8
/// such plugins) and the instances built ahead.
const SPARE_SLOTS: u32 =
    8 * crate::runtime::plugin::MAX_IDLE_INSTANCES as u32 + crate::runtime::stock::STOCK_SLOTS;

/// Builds the engine shared by every plugin, with its epoch ticker: whatever runs plugin code on
/// it (a request, `commands()` at load, the `check` and `call` tools) runs under deadlines.
pub fn build_engine(config: &Config) -> wasmtime::Result<Engine> {
    let mut wasm = WasmConfig::new();
    wasm.consume_fuel(config.fuel_metering)
        .epoch_interruption(config.epoch_interruption)
        .wasm_component_model(true)
        // Instances are created per request: copy-on-write memory images make that cheap.
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
    let engine = Engine::new(&wasm)?;
    if config.epoch_interruption {
        start_ticker(engine.weak()).map_err(wasmtime::Error::new)?;
    }
    Ok(engine)
}

/// Sizes the pooling allocator: `max_concurrent_calls` plugin instances alive at once, each with
/// room for a Python- or JS-sized component.
fn pooling(config: &Config) -> PoolingAllocationConfig {
    // Room for the calls in flight plus instances kept idle or built ahead.
    let calls = config.max_concurrent_calls.saturating_add(SPARE_SLOTS);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(calls)
        .total_stacks(calls)
        // Language runtimes (componentize-py, StarlingMonkey) use a dozen or so core instances.
        .max_core_instances_per_component(50)
        .total_core_instances(calls.saturating_mul(20))
        .max_memories_per_component(10)
        .max_memories_per_module(1)
        .total_memories(calls.saturating_mul(MEMORIES_PER_SLOT))
        .max_tables_per_component(50)
        .max_tables_per_module(4)
        .total_tables(calls.saturating_mul(20))
        .table_elements(100_000)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .max_memory_size(config.largest_memory_bytes())
        // Reset only the pages an instance dirtied (Linux 6.7+ PAGEMAP_SCAN), and keep them
        // mapped: the next instance in the slot takes no page faults for them. With a fresh
        // instance per request this is most of the cost of a large (Python, JS) component.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(keep_resident(config))
        // Idle slots are reused before untouched ones: the slots ever used (each keeping its
        // resident pages) are as many as ever ran at once, not the whole pool.
        .max_unused_warm_slots(0)
        .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
        // Return memory to the kernel as soon as an instance is dropped: batching would keep the
        // memory of several dropped instances resident, outside the memory budget.
        .decommit_batch_size(1)
        .async_stack_keep_resident(64 << 10);
    pool
}

/// Bytes of each linear memory kept mapped between instances: as much as lets every memory slot
/// of the pool together keep no more than the memory budget (so what stays resident after a
/// burst is bounded by the budget), at most [`KEEP_RESIDENT_MAX_BYTES`].
pub fn keep_resident(config: &Config) -> usize {
    let slots = config
        .max_concurrent_calls
        .saturating_add(SPARE_SLOTS)
        .saturating_mul(MEMORIES_PER_SLOT) as usize;
    // Whole pages: wasmtime rounds down to the host page size anyway.
    let per_slot = (config.memory_budget / slots.max(1)) & !0xffff;
    per_slot.min(KEEP_RESIDENT_MAX_BYTES)
}

/// The linker every plugin is pre-instantiated with: WASI (which grants nothing, see
/// [`PluginState::new`]), the host's own interfaces, and the capabilities (which a plugin may use
/// only when granted: checked when it is loaded).
pub fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::openim::callback::log::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    crate::capabilities::config::add_to_linker(&mut linker, PluginState::config_view)?;
    crate::capabilities::keyvalue::add_to_linker(&mut linker, PluginState::keyvalue_view)?;
    crate::capabilities::http::add_to_linker(&mut linker)?;
    crate::capabilities::openim::add_to_linker(&mut linker, PluginState::openim_view)?;
    Ok(linker)
}

/// Advances the epoch of the engine behind `weak` every [`EPOCH_TICK`], for as long as the
/// engine lives: the thread ends by itself within a tick of the engine's last clone being dropped.
fn start_ticker(weak: EngineWeak) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}
