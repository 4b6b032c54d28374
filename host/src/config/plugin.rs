//! What is resolved per plugin: `[plugin_defaults]` and `[plugins_limits.X]` (memory, core
//! instances and tables, instance reuse, the time kept back for it in a chain, its calls at once).

use std::time::Duration;

use super::file::PluginFile;
use super::{ConfigError, DEFAULT_RESERVE_MS};

/// Resolved resource caps of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Largest size of each linear memory, in bytes.
    pub memory_bytes: usize,
    /// Core instances a component may create (Python and JS runtimes create a dozen or so).
    pub max_instances: usize,
    /// Tables a component may create.
    pub max_tables: usize,
    /// Elements of each table.
    pub max_table_elements: usize,
    /// Requests one instance serves before it is discarded. 1 (the default) is a fresh instance
    /// per request; more trades isolation between requests (globals persist) for speed.
    pub reuse_instances: u32,
    /// Time kept back for this plugin from the plugins before it in a chain, so that one stuck
    /// plugin cannot leave the ones after it no time (a guard after it still runs).
    pub reserve: Duration,
    /// Calls of this plugin at once (its instances alive at once), beyond which a call waits
    /// within its deadline; `None`: only the host's `max_concurrent_calls`. For a CPU-bound
    /// plugin with a large heap (Python, JavaScript), a few per core bound the memory a burst
    /// dirties at no cost in throughput.
    pub max_concurrent_calls: Option<u32>,
    /// Most instances kept built ahead, ready for the next calls (0: none, every call builds
    /// its own). How many are kept follows the plugin's rate of calls, up to this. Not used in
    /// reuse mode.
    pub stock_instances: u32,
    /// Each instance built ahead runs the plugin's handler once with a canned request, every
    /// capability refusing, before it is stocked: the first-call work of a language runtime
    /// (SpiderMonkey compiling the handler's bytecode, CPython's first lookups) is done off the
    /// answer path. Its memory effects stay in the instance (see `docs/configuration.md`), so
    /// it is off unless asked for.
    pub warm_up_call: bool,
}

/// Most instances a plugin keeps built ahead by default.
pub const DEFAULT_STOCK_INSTANCES: u32 = 4;
/// The most `stock_instances` may be (the stock's pool slots are shared by every plugin).
const MAX_STOCK_INSTANCES: u32 = 16;

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            // Enough for the Python and JS runtimes' heaps; a Rust plugin needs a few MiB.
            memory_bytes: 128 << 20,
            max_instances: 64,
            max_tables: 64,
            max_table_elements: 100_000,
            reuse_instances: 1,
            reserve: Duration::from_millis(DEFAULT_RESERVE_MS),
            max_concurrent_calls: None,
            stock_instances: DEFAULT_STOCK_INSTANCES,
            warm_up_call: false,
        }
    }
}

pub(super) fn resolve_plugin(
    base: &PluginLimits,
    file: &PluginFile,
    key: &str,
) -> Result<PluginLimits, ConfigError> {
    let memory_bytes = match file.memory_mib {
        None => base.memory_bytes,
        Some(mib @ 1..=4096) => (mib as usize) << 20,
        Some(mib) => {
            return Err(ConfigError::Invalid {
                key: format!("{key}.memory_mib"),
                reason: format!("{mib} is outside 1..=4096"),
            });
        }
    };
    let limits = PluginLimits {
        memory_bytes,
        max_instances: file.max_instances.unwrap_or(base.max_instances),
        max_tables: file.max_tables.unwrap_or(base.max_tables),
        max_table_elements: file.max_table_elements.unwrap_or(base.max_table_elements),
        reuse_instances: at_least_one(
            file.reuse_instances,
            key,
            "reuse_instances",
            " (1 is a fresh instance per request)",
        )?
        .unwrap_or(base.reuse_instances),
        reserve: file.reserve_ms.map_or(base.reserve, Duration::from_millis),
        max_concurrent_calls: at_least_one(
            file.max_concurrent_calls,
            key,
            "max_concurrent_calls",
            "",
        )?
        .or(base.max_concurrent_calls),
        stock_instances: match file.stock_instances {
            None => base.stock_instances,
            Some(n @ 0..=MAX_STOCK_INSTANCES) => n,
            Some(n) => {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.stock_instances"),
                    reason: format!("{n} is outside 0..={MAX_STOCK_INSTANCES} (0 turns it off)"),
                });
            }
        },
        warm_up_call: file.warm_up_call.unwrap_or(base.warm_up_call),
    };
    // Said where it is set: a default that cannot apply to some plugin is not an error there.
    if file.warm_up_call == Some(true) {
        let why = if limits.reuse_instances > 1 {
            Some("reuse mode keeps its own instances, warm after their first call")
        } else if limits.stock_instances == 0 {
            Some("it warms instances built ahead: needs stock_instances of at least 1")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ConfigError::Invalid {
                key: format!("{key}.warm_up_call"),
                reason: why.to_owned(),
            });
        }
    }
    Ok(limits)
}

/// `value` of `[key] name`, refused when 0 (`why` ends the message).
fn at_least_one(
    value: Option<u32>,
    key: &str,
    name: &str,
    why: &str,
) -> Result<Option<u32>, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::Invalid {
            key: format!("{key}.{name}"),
            reason: format!("must be at least 1{why}"),
        }),
        value => Ok(value),
    }
}
