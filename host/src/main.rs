//! The `callback-host` command line: the commands and their flags (this file), what each does
//! (`cli/`): `serve`, the plugin tools (`check`, `call`, `new`, `replay`), `queue`, `probe`.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use callback_host::authoring::scaffold::Language;

use crate::cli::ConfigFile;

#[derive(Parser)]
#[command(
    version,
    about = "A WebAssembly plugin host serving OpenIM's webhook callbacks"
)]
pub struct Cli {
    /// What to do. (An "action", so that "command" is only ever OpenIM's callback command.)
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// Load every plugins/*.wasm and serve OpenIM's callbacks over HTTP.
    Serve(ServeArgs),
    /// Check that a file is a plugin this host can load; list the callbacks it handles and what it imports.
    Check {
        /// The plugin file.
        file: PathBuf,
        /// TOML config file (for the plugin's limits)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the compile cache, shared with `serve` [default: as `serve`]
        #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
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
        /// Directory of the compile cache, shared with `serve` [default: as `serve`]
        #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Run test cases (TOML files, or directories of them) through plugins, as the server runs
    /// them; print pass or fail with a diff for each, and exit non-zero on any failure.
    Test {
        /// Case files, or directories whose *.toml files are cases.
        #[arg(required = true)]
        cases: Vec<PathBuf>,
        /// The plugin directory, or one plugin file.
        #[arg(long, default_value = "plugins")]
        plugins: PathBuf,
        /// TOML config file (limits, grants, config values, policies)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
        /// Directory of the compile cache, shared with `serve` [default: as `serve`]
        #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
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
        /// The endpoint [default: /healthz where `serve` would answer it, from the same
        /// settings: --admin-listen, else --listen, else the config file's listen, else
        /// 127.0.0.1:10006]
        url: Option<String>,
        /// Where `serve` serves the admin endpoints, when not on the callback address
        #[arg(long, env = "CALLBACK_HOST_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
        /// Where `serve` listens
        #[arg(long, env = "CALLBACK_HOST_LISTEN")]
        listen: Option<SocketAddr>,
        /// TOML config file (for `listen`)
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
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
        /// Its world also imports OpenIM's API (`openim:callback/openim-api`), its code tells an
        /// operator of each callback through it, and the config in force grants it that.
        #[arg(long)]
        openim_api: bool,
        /// The config file that gets the grant of `--openim-api` [default: ./callback-host.toml]
        #[arg(long, env = "CALLBACK_HOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum QueueAction {
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
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:10006, OpenIM's default webhook address]
    #[arg(long, env = "CALLBACK_HOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of plugins (*.wasm) [default: plugins]
    #[arg(long, env = "CALLBACK_HOST_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// TOML config file (timeouts, fuel, memory, failure policy); flags override it
    #[arg(long, env = "CALLBACK_HOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// OpenIM's config/webhooks.yml: each callback's timeout (and enable) is taken from it
    #[arg(long, env = "CALLBACK_HOST_OPENIM_WEBHOOKS")]
    pub openim_webhooks: Option<PathBuf>,
    /// Serve the admin endpoints (/console, the operator's page; /healthz, /readyz, /metrics) on
    /// this address instead of the callback address
    #[arg(long, env = "CALLBACK_HOST_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Do not watch the plugin directory (no hot reload)
    #[arg(long, env = "CALLBACK_HOST_NO_WATCH")]
    pub no_watch: bool,
    /// Directory of the compile cache [default: $XDG_CACHE_HOME/callback-host or ~/.cache/callback-host]
    #[arg(long, env = "CALLBACK_HOST_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text
    #[arg(long, env = "CALLBACK_HOST_LOG_JSON")]
    pub log_json: bool,
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
    match cli.action {
        Action::Serve(args) => cli::serve::serve(args),
        Action::Check {
            file,
            config,
            cache_dir,
        } => cli::tools::check(&file, &ConfigFile::resolve(config.as_deref()), cache_dir),
        Action::Call {
            file,
            request,
            config,
            cache_dir,
        } => cli::tools::call(
            &file,
            request.as_deref(),
            &ConfigFile::resolve(config.as_deref()),
            cache_dir,
        ),
        Action::Test {
            cases,
            plugins,
            config,
            cache_dir,
        } => cli::tools::test(
            &cases,
            &plugins,
            &ConfigFile::resolve(config.as_deref()),
            cache_dir,
        ),
        Action::Queue { action, config } => {
            cli::queue::queue(action, &ConfigFile::resolve(config.as_deref()))
        }
        Action::Replay {
            plugins,
            recorded,
            dead_letters,
            requeue,
            config,
            cache_dir,
        } => {
            let source = match (dead_letters, recorded) {
                (true, _) => cli::tools::Replayed::DeadLetters,
                (false, recorded) => cli::tools::Replayed::Recorded(recorded),
            };
            let config = ConfigFile::resolve(config.as_deref());
            cli::tools::replay(plugins, source, requeue, &config, cache_dir)
        }
        Action::Probe {
            url,
            admin_listen,
            listen,
            config,
        } => {
            let url = match url {
                Some(url) => url,
                None => cli::probe::healthz(
                    admin_listen,
                    listen,
                    &ConfigFile::resolve(config.as_deref()),
                )?,
            };
            cli::probe::probe(&url)
        }
        Action::New {
            language,
            name,
            dir,
            callback,
            openim_api,
            config,
        } => cli::tools::new(
            language,
            &name,
            &dir,
            &callback,
            openim_api.then(|| ConfigFile::resolve(config.as_deref())),
        ),
    }
}
