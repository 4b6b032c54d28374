//! The `callback-host` command line.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use callback_host::config::Config;
use callback_host::http::routing::Routes;
use callback_host::scaffold::Language;
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
    /// Check that a file is a plugin this host can load; list the callbacks it handles and what it imports.
    Check {
        /// The plugin file.
        file: PathBuf,
        /// TOML config file (for the plugin's limits)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run one request (any command, named by its callbackCommand) through a plugin under the
    /// configured limits and print the answer the server would give.
    Call {
        /// The plugin file.
        file: PathBuf,
        /// The request body (OpenIM's JSON); `-` reads stdin. Default: a sample kick.
        request: Option<PathBuf>,
        /// TOML config file (timeout, fuel, memory, failure policy)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run recorded callbacks, or the queue's dead letters, through a plugin directory and say
    /// where the answers differ from the recorded ones (or which dead letters are handled now).
    Replay {
        /// The plugin directory to replay through (e.g. a new version of a plugin).
        #[arg(long)]
        plugins: PathBuf,
        /// A record file (`[record] path`) to replay [default: the configured one]
        #[arg(long, conflicts_with = "dead_letters")]
        recorded: Option<PathBuf>,
        /// Replay the queue's dead letters instead of recorded callbacks.
        #[arg(long)]
        dead_letters: bool,
        /// With --dead-letters: put those handled now back in the queue.
        #[arg(long, requires = "dead_letters")]
        requeue: bool,
        /// TOML config file (limits, grants, `[record]`, `[queue]`)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the compile cache [default: as `serve`]
        #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Inspect or repair the after-callback queue (the file of a stopped host, or the Redis
    /// stream of running ones).
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        /// TOML config file (for `[queue] path`)
        #[arg(long, env = "CALLBACK_HOST_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// GET an admin endpoint of a running host, print the body, and exit 0 when it answered 200:
    /// the container image's health check (it has no curl), and a look at a replica's /readyz.
    Probe {
        /// The endpoint.
        #[arg(default_value = "http://127.0.0.1:10006/healthz")]
        url: String,
    },
    /// Create a plugin project for one callback in DIR/NAME/ whose build.sh builds DIR/NAME.wasm.
    New {
        /// The plugin's language.
        #[arg(value_enum)]
        language: Language,
        /// The plugin's name (lowercase letters, digits, '-'); prefix a number to set its order.
        name: String,
        /// The plugin directory to create it in.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
        /// The callback it handles, by OpenIM's name.
        #[arg(long, default_value = "callbackAfterKickGroupCommand")]
        callback: String,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Events stored, the age of the oldest, dead letters.
    Stats,
    /// Every dead letter with its cause.
    DeadLetters,
    /// Put the dead letters back in the queue: the next start delivers them (to a fixed plugin).
    Requeue,
    /// Delete the dead letters.
    Purge,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { file, config } => check(&file, config.as_deref()),
        Command::Call {
            file,
            request,
            config,
        } => call(&file, request.as_deref(), config.as_deref()),
        Command::Queue { action, config } => queue(action, config.as_deref()),
        Command::Replay {
            plugins,
            recorded,
            dead_letters,
            requeue,
            config,
            cache_dir,
        } => {
            let mut config = load_config(config.as_deref())?;
            if let Some(dir) = cache_dir {
                config.cache_dir = Some(dir);
            }
            let source = if dead_letters {
                callback_host::replay::Source::DeadLetters
            } else {
                callback_host::replay::Source::Recorded(
                    recorded.unwrap_or_else(|| config.record.path.clone()),
                )
            };
            let _log = init_logging(false);
            runtime()?.block_on(callback_host::replay::replay(
                &config,
                plugins,
                source,
                requeue,
                &mut std::io::stdout(),
            ))?;
            Ok(())
        }
        Command::Probe { url } => {
            let (status, body) = probe(&url)?;
            println!("{body}");
            anyhow::ensure!(status == 200, "{url} answered {status}");
            Ok(())
        }
        Command::New {
            language,
            name,
            dir,
            callback,
        } => {
            let root = callback_host::scaffold::new_plugin(language, &name, &dir, &callback)?;
            println!(
                "created {}: run {}/build.sh to build {}",
                root.display(),
                root.display(),
                dir.join(format!("{name}.wasm")).display()
            );
            Ok(())
        }
    }
}

/// The status and body of `GET url` (plain HTTP, 2 s to connect and to answer).
fn probe(url: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// urls"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let path = if path.is_empty() { "/" } else { path };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    // The admin endpoints answer small bodies with a length, then close (Connection: close).
    let mut answer = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer of {url}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{url} did not answer HTTP"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn queue(action: QueueAction, config: Option<&Path>) -> anyhow::Result<()> {
    let config = load_config(config)?;
    runtime()?.block_on(async {
        let queue = callback_host::queue::Admin::open(&config.queue).await?;
        let mut out = std::io::stdout();
        match action {
            QueueAction::Stats => {
                let (depth, oldest, dead) = queue.stats().await?;
                writeln!(out, "events: {depth}")?;
                if let Some(age) = oldest {
                    writeln!(out, "oldest: {:.1} s", age.as_secs_f64())?;
                }
                writeln!(out, "dead letters: {dead}")?;
            }
            QueueAction::DeadLetters => {
                for (id, letter) in queue.dead_letters().await? {
                    writeln!(
                        out,
                        "{id} {} operationID={} failures={} cause: {}",
                        letter.event.command,
                        letter.event.operation_id,
                        letter.event.failures,
                        letter.cause
                    )?;
                }
            }
            QueueAction::Requeue => {
                writeln!(out, "requeued {} dead letters", queue.requeue(None).await?)?
            }
            QueueAction::Purge => writeln!(
                out,
                "deleted {} dead letters",
                queue.purge_dead_letters().await?
            )?,
        }
        Ok(())
    })
}

fn check(file: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let report = callback_host::tools::check(file, &load_config(config)?)?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "ok: {} handles {} callback{}",
        file.display(),
        report.handles.len(),
        if report.handles.len() == 1 { "" } else { "s" }
    )?;
    for (command, how) in &report.handles {
        writeln!(out, "  handles {command}  [{how}]")?;
    }
    for export in &report.exports {
        writeln!(out, "  exports {export}")?;
    }
    for (import, status) in &report.imports {
        writeln!(out, "  imports {import}  [{status}]")?;
    }
    Ok(())
}

fn call(file: &Path, request: Option<&Path>, config: Option<&Path>) -> anyhow::Result<()> {
    let body = match request {
        Some(path) if path == Path::new("-") => std::io::read_to_string(std::io::stdin())?,
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => callback_host::tools::SAMPLE_KICK.to_owned(),
    };
    let config = Arc::new(load_config(config)?);
    let _logging = init_logging(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(callback_host::tools::call(file, config, &body))?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", String::from_utf8_lossy(&report.answer))?;
    if let Some(stats) = report.stats {
        eprintln!(
            "fuel used: {}, time: {:.3} ms, peak memory: {} KiB",
            stats.fuel_used,
            stats.elapsed.as_secs_f64() * 1000.0,
            stats.peak_memory_bytes / 1024
        );
    }
    if let Some(failure) = report.failure {
        anyhow::bail!(
            "plugin failed ({}): {failure}; the answer above is the failure policy's",
            failure.kind()
        );
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _logging = init_logging(args.log_json);
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let mut host = callback_host::build(Arc::clone(&config)).await?;
        if !args.no_watch {
            host.watch()?;
        }
        let host = Arc::new(host);
        // The plugins' config values follow the file: on change, and on SIGHUP.
        let config_watch = match &args.config {
            Some(path) => Some(
                callback_host::reload::ConfigWatch::start(path.clone(), {
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
        shutdown_signal().await;
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

/// Logs to stderr from a thread of its own, so that no request ever waits on log I/O; when the
/// writer falls behind, lines are dropped rather than requests slowed. Keep the guard until exit:
/// dropping it flushes what is queued.
fn init_logging(json: bool) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}
