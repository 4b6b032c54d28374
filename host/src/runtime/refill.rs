//! The replacement of an instance taken from a stock, built once the answer is out (see
//! [`crate::runtime::stock`]), with its optional warm-up call; and the arguments every handler
//! call is given, the warm-up's included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Val};

use crate::capabilities::Granted;
use crate::config::PluginLimits;
use crate::runtime::output::CallTag;
use crate::runtime::sandbox::PluginState;
use crate::runtime::stock::{Stock, WarmUp};
use crate::runtime::store::Builder;

/// A handler's arguments: the `delivery` record (the call's place and time) and the request.
pub fn handle_params(
    operation_id: &str,
    command: &str,
    time_left: Duration,
    position: usize,
    request: Val,
) -> Vec<Val> {
    vec![
        Val::Record(vec![
            ("operation-id".into(), Val::String(operation_id.to_owned())),
            ("command".into(), Val::String(command.to_owned())),
            (
                "time-left-ms".into(),
                Val::U32(u32::try_from(time_left.as_millis()).unwrap_or(u32::MAX)),
            ),
            (
                "chain-position".into(),
                Val::U32(u32::try_from(position).unwrap_or(u32::MAX)),
            ),
        ]),
        request,
    ]
}

/// A replacement to build once the answer is out: what its store is made of, what to
/// instantiate in it, and the stock it goes to.
pub struct Refill {
    /// The stock the instance goes to.
    pub stock: Arc<Stock>,
    /// The one store builder.
    pub builder: Arc<Builder>,
    /// The plugin's name, for the store's tag.
    pub plugin: Arc<str>,
    /// The plugin's caps.
    pub limits: PluginLimits,
    /// What the plugin may use.
    pub granted: Granted,
    /// The plugin's linked component.
    pub pre: InstancePre<PluginState>,
    /// The stock's pool slot it will hold.
    pub slot: OwnedSemaphorePermit,
}

/// The time an instance built ahead may take to build (start functions included).
const BUILD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

impl Refill {
    /// Builds the instance and puts it in its stock; a build that fails is given up (the next
    /// call builds its own and names the failure).
    pub async fn build(self) {
        let Refill {
            stock,
            builder,
            plugin,
            limits,
            granted,
            pre,
            slot,
        } = self;
        let tag = Arc::new(CallTag {
            plugin,
            command: "(stock)",
            operation_id: Arc::from(""),
        });
        let deadline = std::time::Instant::now() + BUILD_DEADLINE;
        let warm_up = stock.warm_up();
        // A warm-up call runs with every capability refusing; the grants come after it.
        let (made_with, granted) = match warm_up {
            Some(_) => (
                Granted::refusing(Arc::clone(&granted.config_values)),
                Some(granted),
            ),
            None => (granted, None),
        };
        let mut store = builder.store_with(limits, made_with, tag, deadline);
        let built = match builder.arm(&mut store, builder.config().defaults.fuel) {
            Ok(()) => pre.instantiate_async(&mut store).await,
            Err(error) => Err(error),
        };
        let instance = match built {
            Ok(instance) => instance,
            Err(error) => {
                stock.abandon();
                tracing::debug!(
                    error = format!("{error:#}"),
                    "could not build an instance ahead"
                );
                return;
            }
        };
        if let (Some(warm_up), Some(granted)) = (warm_up, granted) {
            if let Err(error) = warm(&mut store, instance, warm_up, deadline).await {
                // An instance whose call failed is never run again.
                stock.abandon();
                if stock.warm_up_failed() {
                    let plugin = &store.data().tag.plugin;
                    tracing::warn!(%plugin, command = warm_up.command, error = format!("{error:#}"),
                        "the warm-up call failed: this plugin's instances are built ahead \
                         without it from now on (warm_up_call)");
                }
                return;
            }
            store.data_mut().grant(granted);
        }
        stock.put(store, instance, slot);
    }
}

/// Runs `warm_up` on a new instance, its output dropped.
async fn warm(
    store: &mut Store<PluginState>,
    instance: wasmtime::component::Instance,
    warm_up: &WarmUp,
    deadline: Instant,
) -> wasmtime::Result<()> {
    store.data_mut().mute_output();
    let func = instance
        .get_func(&mut *store, warm_up.export)
        .ok_or_else(|| wasmtime::format_err!("the export is missing"))?;
    let time_left = deadline.saturating_duration_since(Instant::now());
    let params = handle_params(
        "(warm-up)",
        warm_up.command,
        time_left,
        0,
        warm_up.request.clone(),
    );
    let mut result = [Val::Bool(false)];
    func.call_async(&mut *store, &params, &mut result).await
}
