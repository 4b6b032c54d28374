//! `callback-host serve`: the config (file, then flags, then OpenIM's webhooks.yml), the host,
//! its listeners, hot reload of plugins and config, and a graceful stop on SIGTERM or Ctrl-C.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use callback_host::http::routing::Routes;
use callback_host::webhooks::Webhooks;

use super::{ConfigFile, init_logging, runtime};
use crate::ServeArgs;

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _logging = init_logging(args.log_json);
    let config_file = ConfigFile::resolve(args.config.as_deref());
    tracing::info!("{}", config_file.describe());
    let mut config = config_file.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(plugins) = args.plugins {
        config.plugins_dir = plugins;
    }
    if let Some(path) = &args.openim_webhooks {
        let webhooks = Webhooks::load(path)?;
        webhooks.apply_to(&mut config)?;
        if !webhooks.unknown_keys.is_empty() {
            tracing::warn!(file = %path.display(), keys = ?webhooks.unknown_keys,
                "webhooks.yml keys that name no callback this host knows; ignored");
        }
        if let Some(url) = &webhooks.url {
            let port = format!(":{}/", config.listen.port());
            if !url.contains(&port) {
                tracing::warn!(url, listen = %config.listen,
                    "OpenIM's webhook url does not point at the port this host listens on");
            }
        }
    }
    if let Some(dir) = args.cache_dir {
        config.cache_dir = (!dir.as_os_str().is_empty()).then_some(dir);
    }
    // The flags may have changed what the file's settings were checked against.
    config.validate()?;
    let tls = match &config.tls {
        Some(files) => Some(callback_host::http::server::tls_acceptor(
            &files.cert,
            &files.key,
        )?),
        None => None,
    };
    if config.access.open && !config.access.guarded() {
        tracing::warn!(listen = %config.listen,
            "[auth] open = true: ANYONE who can reach this port can call the callbacks; only do this behind a network policy");
    }
    let config = Arc::new(config);
    runtime()?.block_on(async {
        // Before anything starts: a SIGTERM that comes while the host is starting (or right after
        // it says it listens) stops it gracefully instead of killing it.
        let stop_signal = StopSignal::install()?;
        let mut host = callback_host::build(Arc::clone(&config)).await?;
        if !args.no_watch {
            host.watch()?;
        }
        let host = Arc::new(host);
        // The plugins' config values follow the file: on change, and on SIGHUP.
        let config_watch = match config_file.path() {
            Some(path) => Some(
                callback_host::loading::ConfigWatch::start(path.to_owned(), {
                    let host = Arc::clone(&host);
                    move |config| host.reload_config(&config)
                })
                .context("watching the config file")?,
            ),
            None => None,
        };
        #[cfg(unix)]
        if let Some(watch) = config_watch {
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the config");
                    watch.trigger();
                }
            });
        }
        let listener = bind(config.listen).await?;
        let admin = match args.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let mut stdout = std::io::stdout();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(stdout, "listening on {scheme}://{}", listener.local_addr()?)?;
        if let Some(admin) = &admin {
            writeln!(stdout, "admin listening on http://{}", admin.local_addr()?)?;
        }
        stdout.flush()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.changed().await;
        };
        let callbacks = tokio::spawn(callback_host::http::server::serve(
            listener,
            Arc::clone(&host.app),
            if admin.is_some() {
                Routes::Callbacks
            } else {
                Routes::All
            },
            tls,
            wait(stopped.clone()),
        ));
        let admin = admin.map(|admin| {
            tokio::spawn(callback_host::http::server::serve(
                admin,
                Arc::clone(&host.app),
                Routes::Admin,
                None,
                wait(stopped.clone()),
            ))
        });
        stop_signal.received().await;
        let _ = stop.send(true);
        let _ = callbacks.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        host.flush();
        Ok(())
    })
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment it is installed: a signal that
/// arrives before [`StopSignal::received`] is awaited is kept, not lost to the default action.
#[cfg(unix)]
struct StopSignal {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignal {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn received(mut self) {
        let name = tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "stopping: finishing the requests in flight");
    }
}

/// Elsewhere, Ctrl-C only.
#[cfg(not(unix))]
struct StopSignal;

#[cfg(not(unix))]
impl StopSignal {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn received(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
