//! The host wired from a config: the engine, the capabilities, the plugin set, the dispatcher,
//! the queue and its workers, and the app that serves them ([`build`] makes a [`Host`]).

use std::sync::Arc;

use anyhow::Context as _;

use crate::capabilities::Capabilities;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::http::routing::App;
use crate::loading::load::LoadError;
use crate::loading::{Loader, Watch};
use crate::metrics::Metrics;
use crate::registry::CurrentPlugins;
use crate::runtime::budget::MemoryBudget;
use crate::runtime::call::Runner;
use crate::util::create_private_dir;
use crate::{history, protocol, queue, record, runtime};

/// A host ready to serve: the app plus what must live as long as it.
pub struct Host {
    /// The request handler, shared by every connection.
    pub app: Arc<App>,
    /// Files in the plugin directory that were skipped at start, with the reason.
    pub load_errors: Vec<LoadError>,
    /// Loads the plugin directory again when it changes, until [`Host::watch`] takes it.
    loader: Option<Loader>,
    /// Watches the plugin directory once started; dropping it stops hot reload.
    watch: Option<Watch>,
    /// What plugins may use; its config values change on reload.
    capabilities: Arc<Capabilities>,
    /// The threads the queue's workers deliver on (when a command is queued).
    _deliveries: Option<queue::Deliveries>,
}

impl Host {
    /// Makes what plugins wrote (the embedded key-value store) and what the queue's workers
    /// completed durable: both commit in groups. Called when the server stops.
    pub fn flush(&self) {
        if let Some(store) = &self.capabilities.keyvalue {
            store.flush();
        }
        if let Some(queue) = &self.app.queue {
            queue.flush();
        }
    }

    /// Applies what of a reloaded config can change without a restart: the plugins' config
    /// values. Says which other settings changed and wait for a restart.
    pub fn reload_config(&self, config: &Config) {
        self.capabilities.values.set(config);
        tracing::info!(
            plugins = config.plugin_values.len(),
            "config reloaded: plugin config values in force"
        );
        if config.grants != self.capabilities.config().grants
            || config.keyvalue != self.capabilities.config().keyvalue
        {
            tracing::warn!(
                "[plugin_grants] and [keyvalue] changes take effect at the next restart"
            );
        }
    }

    /// Starts hot reload: from now on, changes in the plugin directory take effect without a
    /// restart.
    pub fn watch(&mut self) -> anyhow::Result<()> {
        if let Some(loader) = self.loader.take() {
            self.watch = Some(Watch::start(loader).context("watching the plugin directory")?);
        }
        Ok(())
    }
}

/// Builds the engine, loads and validates every plugin, and returns the app. Everything that can
/// fail is checked here, before the server listens.
pub async fn build(config: Arc<Config>) -> anyhow::Result<Host> {
    let engine = runtime::engine::build_engine(&config)
        .map_err(anyhow::Error::from)
        .context("configuring the wasmtime engine")?;
    let linker = runtime::engine::build_linker(&engine)
        .map_err(anyhow::Error::from)
        .context("linking the host interfaces")?;
    runtime::trust::check_private(&config.plugins_dir, "the plugin directory")?;
    if let Some(dir) = &config.cache_dir {
        create_private_dir(dir)
            .with_context(|| format!("creating the compile cache {}", dir.display()))?;
        runtime::trust::check_private(dir, "the compile cache directory")?;
    }
    let metrics = Arc::new(Metrics::default());
    let current = Arc::new(CurrentPlugins::default());
    let budget = Arc::new(MemoryBudget::new(config.memory_budget));
    let capabilities = Arc::new(
        Capabilities::open(Arc::clone(&config), Arc::clone(&metrics))
            .await
            .context("opening what plugins are granted")?,
    );
    budget.on_pressure({
        let current = Arc::clone(&current);
        move || current.get().drop_idle()
    });
    let runner = Arc::new(Runner::new(
        engine,
        Arc::clone(&config),
        budget,
        Arc::clone(&capabilities),
        Arc::clone(&metrics),
    ));
    let mut loader = Loader::new(
        Arc::clone(&runner),
        linker,
        Arc::clone(&metrics),
        Arc::clone(&current),
    );
    let load_errors = loader
        .scan()
        .with_context(|| format!("reading plugin directory {}", config.plugins_dir.display()))?;
    tracing::info!(plugins = ?current.get().names(), skipped = load_errors.len(), "plugins ready");
    if let Some(enabled) = &config.openim_enabled {
        let registry = current.get();
        for command in protocol::commands::COMMANDS {
            if !registry.chain(command.name).is_empty() && !enabled.contains(command.name) {
                tracing::warn!(
                    command = command.name,
                    key = command.webhook_keys[0],
                    "plugins handle this callback, but OpenIM's webhooks.yml does not enable it: OpenIM will not send it"
                );
            }
        }
        for command in enabled {
            tracing::info!(
                command,
                timeout_ms = config.command(command).timeout.as_millis() as u64,
                plugins = registry.chain(command).len(),
                "enabled in OpenIM's webhooks.yml"
            );
        }
    }
    let dispatcher = Arc::new(Dispatcher::new(
        runner,
        current,
        Arc::clone(&metrics),
        record::Recorder::open(&config.record, metrics.records_dropped.clone())
            .context("opening the record file")?,
        Arc::new(history::History::default()),
    ));
    let any_queued = protocol::commands::COMMANDS
        .iter()
        .any(|c| config.queued(c));
    let (queue, deliveries) = if any_queued {
        let queue = queue::Queue::open(config.queue.clone(), Arc::clone(&metrics))
            .await
            .context("opening the after-callback queue")?;
        let deliveries =
            queue::Deliveries::start().context("starting the queue's delivery threads")?;
        queue.start_workers(Arc::clone(&dispatcher), &deliveries);
        (Some(queue), Some(deliveries))
    } else {
        (None, None)
    };
    let app = Arc::new(App {
        dispatcher,
        queue,
        keyvalue: capabilities.keyvalue.clone(),
        metrics,
        max_body_bytes: config.max_body_bytes,
        limits: config.http,
        access: config.access.clone(),
        rejections: Default::default(),
    });
    Ok(Host {
        app,
        load_errors,
        loader: Some(loader),
        watch: None,
        capabilities,
        _deliveries: deliveries,
    })
}
