//! The `callback-host` command line.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use callback_host::config::Config;
use callback_host::routing::Routes;
use callback_host::webhooks::Webhooks;

#[derive(Parser)]
#[command(
    version,
    about = "A WebAssembly plugin host serving OpenIM's webhook callbacks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load every plugins/*.wasm and serve OpenIM's callbacks over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:10006, OpenIM's default webhook address]
    #[arg(long, env = "CALLBACK_HOST_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory of plugins (*.wasm) [default: plugins]
    #[arg(long, env = "CALLBACK_HOST_PLUGINS")]
    plugins: Option<PathBuf>,
    /// TOML config file (timeouts, fuel, memory, failure policy); flags override it
    #[arg(long, env = "CALLBACK_HOST_CONFIG")]
    config: Option<PathBuf>,
    /// OpenIM's config/webhooks.yml: each callback's timeout (and enable) is taken from it
    #[arg(long, env = "CALLBACK_HOST_OPENIM_WEBHOOKS")]
    openim_webhooks: Option<PathBuf>,
    /// Serve /healthz, /readyz and /metrics on this address instead of the callback address
    #[arg(long, env = "CALLBACK_HOST_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Do not watch the plugin directory (no hot reload)
    #[arg(long, env = "CALLBACK_HOST_NO_WATCH")]
    no_watch: bool,
    /// Directory of the compile cache [default: $XDG_CACHE_HOME/callback-host or ~/.cache/callback-host]
    #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text
    #[arg(long, env = "CALLBACK_HOST_LOG_JSON")]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(plugins) = args.plugins {
        config.plugins_dir = plugins;
    }
    if let Some(path) = &args.openim_webhooks {
        let webhooks = Webhooks::load(path)?;
        config.apply_webhooks(&webhooks)?;
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
    let config = Arc::new(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let mut host = callback_host::build(Arc::clone(&config))?;
        if !args.no_watch {
            host.watch()?;
        }
        let listener = bind(config.listen).await?;
        let admin = match args.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
        if let Some(admin) = &admin {
            writeln!(stdout, "admin listening on http://{}", admin.local_addr()?)?;
        }
        stdout.flush()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.changed().await;
        };
        let callbacks = tokio::spawn(callback_host::server::serve(
            listener,
            Arc::clone(&host.app),
            if admin.is_some() {
                Routes::Callbacks
            } else {
                Routes::All
            },
            wait(stopped.clone()),
        ));
        let admin = admin.map(|admin| {
            tokio::spawn(callback_host::server::serve(
                admin,
                Arc::clone(&host.app),
                Routes::Admin,
                wait(stopped.clone()),
            ))
        });
        shutdown_signal().await;
        let _ = stop.send(true);
        let _ = callbacks.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
