//! callback-bench: one run drives native baselines and the host with each language's guard plugin
//! and the moderation plugin with the same HTTP load on loopback, alternating targets over several
//! rounds so that a noisy 2-core machine still gives stable ratios, and reports them side by side.
//!
//! Two workloads, each with its own native baseline: the kick (an after-callback: every answer is
//! "go on", the plugin still decides) and message moderation (before-send refusals and msg-modify
//! rewrites of realistic text messages, every answer checked).
//!
//! Every server runs in its own process (this binary re-invoked as `native-server` or
//! `host-server`) so that its memory can be read from `/proc`; the load generator is a hyper
//! client in this process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use callback_host::config::{Config, QueueDurability};

mod native;
mod queue;
mod replicas;
mod soak;

#[derive(Parser)]
#[command(about = "Side-by-side HTTP benchmark of callback-host against a native baseline")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the real host at saturation for a given time with good, hostile and hot-reloaded
    /// plugins; report failures, memory, file descriptors and p99 per minute.
    Soak(soak::SoakArgs),
    /// After-callbacks inline and queued, at OpenIM's 2 connections and at 16: answer latency
    /// and the events/s handled until the last one.
    Queue(queue::QueueArgs),
    /// The host alone, then 1, 2 and 3 replicas behind HAProxy: the balancer hop's cost, and
    /// requests per second per core of host CPU.
    Replicas(replicas::ReplicasArgs),
    /// (internal) Serve the native baseline.
    NativeServer {
        #[arg(long, value_enum, default_value_t = Workload::Kick)]
        workload: Workload,
    },
    /// (internal) Serve the host with the plugins of a directory.
    HostServer {
        #[arg(long)]
        plugins: PathBuf,
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        reuse: u32,
        #[arg(long)]
        no_fuel: bool,
        #[arg(long)]
        no_epoch: bool,
        /// A TOML config file to start from (grants, key-value store).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Deliver the kick through the durable queue, answered once stored with this
        /// durability ("process" or "machine").
        #[arg(long)]
        queued: Option<String>,
        /// The plugin's own cap on calls at once (`max_concurrent_calls` per plugin).
        #[arg(long)]
        plugin_calls: Option<u32>,
    },
}

/// What the load is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// `callbackAfterKickGroupCommand`, one kick in four of a protected user.
    Kick,
    /// `callbackBeforeSendSingleMsgCommand` and `callbackBeforeMsgModifyCommand` in turn on text
    /// messages; one in four has a blocked phrase (refused) or banned words (masked).
    Moderation,
    /// `callbackBeforeSendSingleMsgCommand` through the rate limit: one key-value increment per
    /// request, on the embedded store.
    RateLimitEmbedded,
    /// The same on Redis.
    RateLimitRedis,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Rounds; each round runs every target once, in turn.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds per target per round.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before each measurement.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Directory of the built example plugins.
    #[arg(long, default_value = "plugins")]
    plugins: PathBuf,
    /// Targets to run, comma-separated: native, host-alone, rust, c, js, python, go, js-capped, python-capped, rust-nofuel,
    /// rust-noepoch, rust-reuse, js-reuse, python-reuse, go-reuse, native-moderation, rust-moderation,
    /// rust-moderation-reuse, rust-queued, native-ratelimit, rust-ratelimit,
    /// native-ratelimit-redis, rust-ratelimit-redis.
    #[arg(long, value_delimiter = ',', default_values_t = ["native", "host-alone", "rust", "c", "js", "python", "go", "js-capped", "python-capped", "rust-nofuel", "rust-noepoch", "rust-reuse", "js-reuse", "python-reuse", "go-reuse", "rust-queued", "native-moderation", "rust-moderation", "rust-moderation-reuse", "native-ratelimit", "rust-ratelimit", "native-ratelimit-redis", "rust-ratelimit-redis"].map(String::from))]
    targets: Vec<String>,
    /// Targets of the one-connection latency rows, comma-separated (none: skipped): each guard
    /// with and without instances built ahead, beside native and the host alone.
    #[arg(long, value_delimiter = ',', default_values_t = ["native", "host-alone", "rust", "rust-nostock", "c", "c-nostock", "js", "js-nostock", "python", "python-nostock", "go", "go-nostock"].map(String::from))]
    latency_targets: Vec<String>,
    /// One-connection rows: from the start of one request to the start of the next, in µs
    /// (0: back to back, the connection saturated).
    #[arg(long, default_value_t = 2000)]
    latency_pace_us: u64,
    /// Replace the results section of this file (between the bench markers): docs/performance.md.
    #[arg(long)]
    write_readme: Option<PathBuf>,
}

/// What is measured.
#[derive(Clone)]
struct Target {
    /// Name given to `--targets`.
    key: &'static str,
    /// Name in the table.
    name: &'static str,
    /// What serves the requests.
    served: Served,
    /// The plugin's `reuse_instances` (1: a fresh instance per request).
    reuse: u32,
    /// How its host is set up beyond the plugin and its reuse.
    settings: Settings,
    /// The load it gets; its ratio is to the native baseline of the same workload.
    workload: Workload,
}

/// How a target's host is set up: written into the config file `callback-host serve` reads.
#[derive(Clone, Copy)]
struct Settings {
    /// `fuel_metering`.
    fuel: bool,
    /// `epoch_interruption`.
    epoch: bool,
    /// The plugin's own `max_concurrent_calls`.
    plugin_calls: Option<u32>,
    /// The kick delivered through the durable queue (durability `process`), answered once stored.
    queued: bool,
    /// Instances built ahead (`stock_instances` at its default); `false`: `stock_instances = 0`.
    stock: bool,
}

impl Settings {
    const DEFAULT: Self = Self {
        fuel: true,
        epoch: true,
        plugin_calls: None,
        queued: false,
        stock: true,
    };
}

/// What serves a target's requests.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served {
    /// The native baseline of the workload (no host, no Wasm).
    Native,
    /// The host with no plugin: its own cost (HTTP, parsing, routing, the answer, metrics).
    HostAlone,
    /// The host with this example plugin.
    Plugin(&'static str),
}

impl Served {
    fn plugin(self) -> Option<&'static str> {
        match self {
            Self::Plugin(file) => Some(file),
            Self::Native | Self::HostAlone => None,
        }
    }
}

const TARGETS: &[Target] = &[
    Target {
        key: "native",
        name: "native (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "host-alone",
        name: "host with no plugin (HTTP, parse, answer)",
        served: Served::HostAlone,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust",
        name: "Rust guard",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "c",
        name: "C guard",
        served: Served::Plugin("11-guard-c.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "js",
        name: "JavaScript guard",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "python",
        name: "Python guard",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "go",
        name: "Go guard",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust-nostock",
        name: "Rust guard, stock_instances = 0",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "c-nostock",
        name: "C guard, stock_instances = 0",
        served: Served::Plugin("11-guard-c.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "js-nostock",
        name: "JavaScript guard, stock_instances = 0",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "python-nostock",
        name: "Python guard, stock_instances = 0",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "go-nostock",
        name: "Go guard, stock_instances = 0",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1,
        settings: Settings {
            stock: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "js-capped",
        name: "JavaScript guard, max_concurrent_calls = 2",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1,
        settings: Settings {
            plugin_calls: Some(2),
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "python-capped",
        name: "Python guard, max_concurrent_calls = 2",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1,
        settings: Settings {
            plugin_calls: Some(2),
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-nofuel",
        name: "Rust guard, fuel_metering = false",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            fuel: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-noepoch",
        name: "Rust guard, epoch_interruption = false",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            epoch: false,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "rust-reuse",
        name: "Rust guard, reuse_instances = 1000",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "js-reuse",
        name: "JavaScript guard, reuse_instances = 1000",
        served: Served::Plugin("12-guard-js.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "python-reuse",
        name: "Python guard, reuse_instances = 1000",
        served: Served::Plugin("13-guard-py.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "go-reuse",
        name: "Go guard, reuse_instances = 1000",
        served: Served::Plugin("14-guard-go.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Kick,
    },
    Target {
        key: "rust-queued",
        name: "Rust guard, delivery = \"queued\" (answered once stored)",
        served: Served::Plugin("10-guard.wasm"),
        reuse: 1,
        settings: Settings {
            queued: true,
            ..Settings::DEFAULT
        },
        workload: Workload::Kick,
    },
    Target {
        key: "native-ratelimit",
        name: "native rate limit, embedded store (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitEmbedded,
    },
    Target {
        key: "rust-ratelimit",
        name: "Rust rate limit, embedded store (1 increment)",
        served: Served::Plugin("40-rate-limit.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitEmbedded,
    },
    Target {
        key: "native-ratelimit-redis",
        name: "native rate limit, Redis (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitRedis,
    },
    Target {
        key: "rust-ratelimit-redis",
        name: "Rust rate limit, Redis (1 increment)",
        served: Served::Plugin("40-rate-limit.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::RateLimitRedis,
    },
    Target {
        key: "native-moderation",
        name: "native moderation (no Wasm)",
        served: Served::Native,
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
    Target {
        key: "rust-moderation",
        name: "Rust moderation (send + modify)",
        served: Served::Plugin("30-moderation.wasm"),
        reuse: 1,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
    Target {
        key: "rust-moderation-reuse",
        name: "Rust moderation, reuse_instances = 1000",
        served: Served::Plugin("30-moderation.wasm"),
        reuse: 1000,
        settings: Settings::DEFAULT,
        workload: Workload::Moderation,
    },
];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Cmd::NativeServer { workload }) => runtime.block_on(native::serve(workload)),
        Some(Cmd::Soak(args)) => runtime.block_on(soak::run(args)),
        Some(Cmd::Queue(args)) => runtime.block_on(queue::run(args)),
        Some(Cmd::Replicas(args)) => runtime.block_on(replicas::run(args)),
        Some(Cmd::HostServer {
            plugins,
            cache_dir,
            reuse,
            no_fuel,
            no_epoch,
            config,
            queued,
            plugin_calls,
        }) => {
            let base = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            let mut config = Config {
                plugins_dir: plugins,
                cache_dir: Some(cache_dir),
                fuel_metering: !no_fuel,
                epoch_interruption: !no_epoch,
                ..base
            };
            config.plugin_defaults.reuse_instances = reuse;
            config.plugin_defaults.max_concurrent_calls = plugin_calls;
            // Inline unless asked: the rows measure the plugins, one row the queue.
            let kick = "callbackAfterKickGroupCommand";
            let mut settings = config.command(kick).clone();
            settings.delivery = match queued.as_deref() {
                None => callback_host::config::Delivery::Inline,
                Some(durability) => {
                    config.queue.durability = match durability {
                        "process" => QueueDurability::Process,
                        "machine" => QueueDurability::Machine,
                        other => anyhow::bail!("--queued {other}: process or machine"),
                    };
                    callback_host::config::Delivery::Queued
                }
            };
            config.commands.insert(kick, settings);
            config.queue.path = config.plugins_dir.join("queue.redb");
            runtime.block_on(host_server(config))
        }
        None => runtime.block_on(run(cli.run)),
    }
}

/// The host exactly as `callback-host serve` runs it, without logging (its `/metrics` on the
/// same address).
async fn host_server(config: Config) -> anyhow::Result<()> {
    let host = callback_host::build(Arc::new(config)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    callback_host::http::server::serve(
        listener,
        host.app,
        callback_host::http::routing::Routes::All,
        None,
        std::future::pending(),
    )
    .await;
    Ok(())
}

/// One measured trial.
struct Trial {
    requests_per_sec: f64,
    latency_us: Histogram<u64>,
    /// The server's resident memory once started (the plugin loaded), before any request.
    idle_rss_kib: u64,
    /// The most the server had resident by the end of the load.
    peak_rss_kib: u64,
    /// The server's CPU time per answered request over the measured window (µs): what a
    /// request costs the server, less sensitive than req/s to what else runs on the machine.
    cpu_us_per_request: Option<f64>,
    /// The server's context switches (all its threads) per answered request over the measured
    /// window: its own (voluntary), and preemptions.
    switches_per_request: Option<(f64, f64)>,
}

impl Results {
    /// The median round of a per-request measure, NaN where no round could read it.
    fn median_of(&self, measure: impl Fn(&Trial) -> Option<f64>) -> f64 {
        let rounds: Vec<f64> = self.trials.iter().filter_map(measure).collect();
        if rounds.is_empty() {
            return f64::NAN;
        }
        median(rounds)
    }

    /// The median round's server context switches per request: its own, and preemptions.
    fn switches(&self) -> (f64, f64) {
        (
            self.median_of(|t| t.switches_per_request.map(|s| s.0)),
            self.median_of(|t| t.switches_per_request.map(|s| s.1)),
        )
    }

    /// The median round's server CPU time per request (µs).
    fn cpu(&self) -> f64 {
        self.median_of(|t| t.cpu_us_per_request)
    }

    /// All rounds' latencies together.
    fn latencies(&self) -> Histogram<u64> {
        let mut all = Histogram::<u64>::new(3).expect("histogram");
        for t in &self.trials {
            let _ = all.add(&t.latency_us);
        }
        all
    }
}

/// Per-target results over all rounds.
struct Results {
    target: Target,
    trials: Vec<Trial>,
    size_bytes: Option<u64>,
    compile_ms: Option<Duration>,
    cached_load_ms: Option<Duration>,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let mut results = targets(&args.targets, &args.plugins, cache.path())?;
    let mut latency = targets(&args.latency_targets, &args.plugins, cache.path())?;
    // The Redis of the Redis rows: a real server on a free port, for the host and the baseline.
    let redis = if results
        .iter()
        .any(|r| r.target.workload == Workload::RateLimitRedis)
    {
        Some(testkit::Redis::start()?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(|r| r.url.as_str());
    let saturated = Load {
        connections: args.connections,
        warmup: args.warmup,
        seconds: args.seconds,
        pace: Duration::ZERO,
    };
    let one = Load {
        connections: 1,
        pace: Duration::from_micros(args.latency_pace_us),
        ..saturated
    };
    for round in 1..=args.rounds {
        for (load, set) in [(saturated, &mut results), (one, &mut latency)] {
            for result in set.iter_mut() {
                eprintln!(
                    "round {round}/{}: {} ({} connections)",
                    args.rounds, result.target.name, load.connections
                );
                let bodies = Arc::new(request_mix(result.target.workload));
                let trial = trial(
                    &result.target,
                    load,
                    &args.plugins,
                    cache.path(),
                    bodies,
                    redis_url,
                )
                .await?;
                eprintln!(
                    "  {:.0} req/s, p50 {} us, p99 {} us, server CPU {:.1} us/request, switches/request {:?} (own, preempted)",
                    trial.requests_per_sec,
                    trial.latency_us.value_at_quantile(0.50),
                    trial.latency_us.value_at_quantile(0.99),
                    trial.cpu_us_per_request.unwrap_or(f64::NAN),
                    trial.switches_per_request,
                );
                result.trials.push(trial);
            }
        }
    }
    let mut table = render(&results, &args);
    if !latency.is_empty() {
        table.push_str(&render_latency(&latency, &args));
    }
    println!("{table}");
    if let Some(readme) = &args.write_readme {
        replace_section(readme, &table)?;
        eprintln!("updated {}", readme.display());
    }
    Ok(())
}

/// The targets named in `keys` whose plugin is built, each with its size and load times.
fn targets(keys: &[String], plugins: &Path, cache: &Path) -> anyhow::Result<Vec<Results>> {
    let mut results: Vec<Results> = Vec::new();
    for target in TARGETS.iter().filter(|t| keys.iter().any(|k| k == t.key)) {
        let (size_bytes, compile_ms, cached_load_ms) = match target.served.plugin() {
            Some(file) => {
                let path = plugins.join(file);
                if !path.exists() {
                    eprintln!(
                        "skipping {}: {} not built (run scripts/build-plugins.sh)",
                        target.name,
                        path.display()
                    );
                    continue;
                }
                let (compile, cached) = load_times(&path, cache)?;
                (
                    Some(std::fs::metadata(&path)?.len()),
                    Some(compile),
                    Some(cached),
                )
            }
            None => (None, None, None),
        };
        results.push(Results {
            target: target.clone(),
            trials: Vec::new(),
            size_bytes,
            compile_ms,
            cached_load_ms,
        });
    }
    Ok(results)
}

/// Compile time without a cache, and load time from the compile cache, of one plugin.
fn load_times(path: &Path, cache_dir: &Path) -> anyhow::Result<(Duration, Duration)> {
    let config = Config::default();
    let engine = callback_host::runtime::engine::build_engine(&config)?;
    let bytes = std::fs::read(path)?;
    let started = Instant::now();
    wasmtime::component::Component::new(&engine, &bytes)?;
    let compile = started.elapsed();
    let cache = callback_host::runtime::cache::CompileCache::new(cache_dir.to_owned());
    cache.load_or_compile(&engine, &bytes)?;
    let started = Instant::now();
    cache.load_or_compile(&engine, &bytes)?;
    Ok((compile, started.elapsed()))
}

/// What an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    GoOn,
    Refused,
    /// "Go on" with the message content rewritten.
    Masked,
}

/// One request of a mix.
struct Call {
    path: &'static str,
    body: Bytes,
    expect: Expect,
}

impl Expect {
    fn holds(self, answer: &[u8]) -> bool {
        let has = |needle: &[u8]| answer.windows(needle.len()).any(|w| w == needle);
        match self {
            Self::GoOn => {
                answer == br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#
            }
            Self::Refused => has(b"\"nextCode\":1"),
            Self::Masked => has(b"\"nextCode\":0") && has(b"\"content\":") && has(b"****"),
        }
    }
}

/// The fixed request mix of a workload.
fn request_mix(workload: Workload) -> Vec<Call> {
    match workload {
        // One kick in four includes a protected user: the guard refuses it, the host still
        // answers "go on" (the kick already happened).
        Workload::Kick => (0..64)
            .map(|i| {
                let mut users: Vec<String> = (0..(1 + i % 5)).map(|u| format!("user-{i}-{u}")).collect();
                if i % 4 == 0 {
                    users.push("admin".into());
                }
                let body = serde_json::json!({
                    "callbackCommand": "callbackAfterKickGroupCommand",
                    "groupID": format!("G{i}"),
                    "kickedUserIDs": users,
                    "reason": if i % 3 == 0 { "" } else { "Violation of group rules" },
                });
                Call {
                    path: "/callbackExample/callbackAfterKickGroupCommand",
                    body: Bytes::from(format!("{body}\n")),
                    expect: Expect::GoOn,
                }
            })
            .collect(),
        // Before-send and msg-modify in turn, as OpenIM sends them for each message; one message
        // in four has a blocked phrase (refused before sending) or banned words (masked).
        Workload::Moderation => (0..64)
            .map(|i| {
                let flagged = (i / 2) % 4 == 0;
                let modify = i % 2 == 1;
                let text = match (flagged, modify) {
                    (true, false) => format!("Hey all, FREE BITCOIN for the first {i} people who click my link!"),
                    (true, true) => format!("darn, the build broke again ({i}), what the heck happened?"),
                    _ => format!("Are we still on for the meetup at 7? I will bring the slides for part {i}."),
                };
                let (command, path) = if modify {
                    ("callbackBeforeMsgModifyCommand", "/callbackExample/callbackBeforeMsgModifyCommand")
                } else {
                    ("callbackBeforeSendSingleMsgCommand", "/callbackExample/callbackBeforeSendSingleMsgCommand")
                };
                let mut body = serde_json::json!({
                    "sendID": format!("user-{i}"), "callbackCommand": command, "serverMsgID": "",
                    "clientMsgID": format!("c3f4a9e2b1d0{i:04}"), "operationID": format!("{i}-1732550000123"),
                    "senderPlatformID": 2, "senderNickname": "Alice", "sessionType": 1, "msgFrom": 100,
                    "contentType": 101, "status": 1, "sendTime": 1732550000123i64, "createTime": 1732550000100i64,
                    "content": serde_json::json!({ "content": text }).to_string(), "seq": 0,
                    "atUserList": null, "faceURL": "https://example.com/avatar/alice.png", "ex": "",
                });
                if !modify {
                    body["recvID"] = serde_json::json!("user-bob");
                }
                let expect = match (flagged, modify) {
                    (true, false) => Expect::Refused,
                    (true, true) => Expect::Masked,
                    _ => Expect::GoOn,
                };
                Call {
                    path,
                    body: Bytes::from(format!("{body}\n")),
                    expect,
                }
            })
            .collect(),
        // One-to-one messages from 64 senders, each counted (and let through).
        Workload::RateLimitEmbedded | Workload::RateLimitRedis => (0..64)
            .map(|i| {
                let body = serde_json::json!({
                    "sendID": format!("user-{i}"), "callbackCommand": "callbackBeforeSendSingleMsgCommand",
                    "serverMsgID": "", "clientMsgID": format!("c3f4a9e2b1d0{i:04}"),
                    "operationID": format!("{i}-1732550000123"), "senderPlatformID": 2,
                    "senderNickname": "Alice", "sessionType": 1, "msgFrom": 100, "contentType": 101,
                    "status": 1, "sendTime": 1732550000123i64, "createTime": 1732550000100i64,
                    "content": "{\"content\":\"see you at 7\"}", "seq": 0, "atUserList": null,
                    "faceURL": "", "ex": "", "recvID": "user-bob",
                });
                Call {
                    path: "/callbackExample/callbackBeforeSendSingleMsgCommand",
                    body: Bytes::from(format!("{body}\n")),
                    expect: Expect::GoOn,
                }
            })
            .collect(),
    }
}

/// The rate-limit plugin's grant and a limit no run reaches (every answer is "go on").
const RATE_LIMIT_GRANTS: &str = "[plugin_config.40-rate-limit]\nmax_per_minute = \"1000000000\"\n\
     [plugin_grants.40-rate-limit]\nkeyvalue = true\nkeyvalue_ttl_secs = 120\n";

/// The `[keyvalue]` section of a rate-limit target's host (a fresh file in `dir`, or the
/// benchmark's Redis), `None` for other workloads.
fn rate_limit_store(workload: Workload, dir: &Path, redis: Option<&str>) -> Option<String> {
    match workload {
        Workload::RateLimitEmbedded => Some(format!(
            "[keyvalue]\nbackend = \"embedded\"\npath = {:?}\n",
            dir.join("host.redb").to_string_lossy()
        )),
        Workload::RateLimitRedis => Some(format!(
            "[keyvalue]\nbackend = \"redis\"\nredis_url = {:?}\n",
            redis.unwrap_or_default()
        )),
        _ => None,
    }
}

/// Starts the target's server, loads it, stops it.
async fn trial(
    target: &Target,
    load: Load,
    plugins_from: &Path,
    cache_dir: &Path,
    bodies: Arc<Vec<Call>>,
    redis: Option<&str>,
) -> anyhow::Result<Trial> {
    let plugin_dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    match target.served {
        Served::Native => {
            let workload = match target.workload {
                Workload::Kick => "kick",
                Workload::Moderation => "moderation",
                Workload::RateLimitEmbedded => "rate-limit-embedded",
                Workload::RateLimitRedis => "rate-limit-redis",
            };
            command.args(["native-server", "--workload", workload]);
            command.env("BENCH_KV_PATH", plugin_dir.path().join("native.redb"));
            if let Some(url) = redis {
                command.env("BENCH_REDIS_URL", url);
            }
        }
        Served::HostAlone | Served::Plugin(_) => {
            // The binary users run, as they run it: `callback-host serve` with a config file and
            // its default logging (to a file here).
            let plugins = plugin_dir.path().join("plugins");
            std::fs::create_dir(&plugins)?;
            if let Some(file) = target.served.plugin() {
                std::fs::copy(plugins_from.join(file), plugins.join(file))?;
            }
            let config = plugin_dir.path().join("callback-host.toml");
            std::fs::write(
                &config,
                host_config(target, &plugins, cache_dir, plugin_dir.path(), redis),
            )?;
            command = Command::new(callback_host_binary()?);
            command.arg("serve").arg("--config").arg(config);
            command.env_remove("RUST_LOG");
            command.stderr(std::fs::File::create(plugin_dir.path().join("host.log"))?);
        }
    }
    let mut server = ServerProcess::start(command)?;
    let idle_rss_kib = server.status_kib("VmRSS:");
    // The peak from here on: what the load adds, not the start (compiling, `commands()` at load).
    server.reset_peak_rss();
    // The server's CPU time over the measured window, read beside the load.
    let pid = server.pid();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(load.warmup)).await;
        let before = (cpu_time(pid), context_switches(pid));
        tokio::time::sleep(Duration::from_secs_f64(load.seconds)).await;
        let after = (cpu_time(pid), context_switches(pid));
        (
            after.0.zip(before.0).map(|(a, b)| a.saturating_sub(b)),
            after.1.zip(before.1).map(|(a, b)| a.saturating_sub(b)),
        )
    });
    let driven = drive(server.addr, load, bodies).await;
    let peak_rss_kib = server.status_kib("VmHWM:");
    let (cpu, switches) = cpu.await?;
    server.stop();
    let (requests_per_sec, latency_us) = driven?;
    let requests = requests_per_sec * load.seconds;
    Ok(Trial {
        requests_per_sec,
        latency_us,
        idle_rss_kib,
        peak_rss_kib,
        cpu_us_per_request: cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / requests.max(1.0)),
        switches_per_request: switches.map(|n| {
            (
                n.own as f64 / requests.max(1.0),
                n.preempted as f64 / requests.max(1.0),
            )
        }),
    })
}

/// `callback-host` beside this binary (both are built by `cargo build --release`).
fn callback_host_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let host = exe.with_file_name("callback-host");
    anyhow::ensure!(
        host.exists(),
        "{} not built: cargo build --release -p callback-host",
        host.display()
    );
    Ok(host)
}

/// The config file a host target is served with.
fn host_config(
    target: &Target,
    plugins: &Path,
    cache_dir: &Path,
    dir: &Path,
    redis: Option<&str>,
) -> String {
    let Settings {
        fuel,
        epoch,
        plugin_calls,
        queued,
        stock,
    } = target.settings;
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\nplugins = {:?}\ncache_dir = {:?}\nfuel_metering = {fuel}\n\
         epoch_interruption = {epoch}\n\n[plugin_defaults]\nreuse_instances = {}\n",
        plugins.to_string_lossy(),
        cache_dir.to_string_lossy(),
        target.reuse,
    );
    if let Some(calls) = plugin_calls {
        toml.push_str(&format!("max_concurrent_calls = {calls}\n"));
    }
    if !stock {
        toml.push_str("stock_instances = 0\n");
    }
    // Inline unless asked: the rows measure the plugins, one row the queue.
    let delivery = if queued { "queued" } else { "inline" };
    toml.push_str(&format!(
        "\n[commands.callbackAfterKickGroupCommand]\ndelivery = \"{delivery}\"\n\n\
         [queue]\npath = {:?}\ndurability = \"process\"\n",
        dir.join("queue.redb").to_string_lossy()
    ));
    if let Some(backend) = rate_limit_store(target.workload, dir, redis) {
        toml.push_str(&format!("\n{RATE_LIMIT_GRANTS}{backend}"));
    }
    toml
}

/// Context switches of all of a process's threads so far, from `/proc/PID/task/*/status` (a
/// thread that ended meanwhile is not counted).
fn context_switches(pid: u32) -> Option<Switches> {
    let mut total = Switches::default();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue;
        };
        let count = |field: &str| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.own += count("voluntary_ctxt_switches:");
        total.preempted += count("nonvoluntary_ctxt_switches:");
    }
    Some(total)
}

/// A process's context switches, by cause.
#[derive(Debug, Default, Clone, Copy)]
struct Switches {
    /// Its threads gave up the core (waiting: a lock, a park, a sleep, I/O).
    own: u64,
    /// The kernel took the core from them for another runnable thread (here mostly the load
    /// generator's, which shares the two cores).
    preempted: u64,
}

impl Switches {
    fn saturating_sub(self, before: Self) -> Self {
        Self {
            own: self.own.saturating_sub(before.own),
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (in clock ticks of
/// 10 ms: over a measured window of seconds, within a percent).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'; utime and stime are
    // the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A server child process, killed on drop.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(mut command: Command) -> anyhow::Result<Self> {
        // Its stderr as the caller set it (the host's log goes to a file).
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("server did not start: {line:?}"))?
            .parse()?;
        Ok(Self { child, addr })
    }

    /// Resets VmHWM to the memory resident now (Linux: `5` to `/proc/PID/clear_refs`).
    fn reset_peak_rss(&self) {
        if let Err(error) = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5") {
            eprintln!("cannot reset the server's peak RSS ({error}): the peak includes its start");
        }
    }

    /// A memory line of `/proc/PID/status` in KiB: `VmRSS:` (resident now), `VmHWM:` (the
    /// most it has had resident).
    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One keep-alive HTTP/1.1 connection to `addr` (no Nagle delay), driven in a task of its own.
async fn client(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A keep-alive HTTP/1.1 connection to a server under test.
type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Sends `request` on `sender` and returns the body of the answer.
async fn exchange(
    sender: &mut Sender,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<Bytes> {
    let response = sender.send_request(request).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}

/// Runs `connections` keep-alive connections for warm-up plus the measured time; every answer is
/// checked against the expected decision.
async fn drive(
    addr: SocketAddr,
    load: Load,
    bodies: Arc<Vec<Call>>,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(load.warmup);
    let until = measure_from + Duration::from_secs_f64(load.seconds);
    let mut tasks = Vec::new();
    for c in 0..load.connections {
        let bodies = Arc::clone(&bodies);
        tasks.push(tokio::spawn(async move {
            let mut sender = client(addr).await?;
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut count = 0u64;
            let mut i = c;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let call = &bodies[i % bodies.len()];
                let body = &call.body;
                i += 1;
                let request = http::Request::post(call.path)
                    .header("host", "127.0.0.1:10006")
                    .header("user-agent", "Go-http-client/1.1")
                    .header("content-type", "application/json; charset=utf-8")
                    .header("operationid", "bench")
                    .header("content-length", body.len())
                    .body(Full::new(body.clone()))?;
                let answer = exchange(&mut sender, request).await?;
                if !call.expect.holds(&answer) {
                    bail!(
                        "wrong answer (expected {:?}): {}",
                        call.expect,
                        String::from_utf8_lossy(&answer)
                    );
                }
                if now >= measure_from {
                    histogram.record(now.elapsed().as_micros() as u64)?;
                    count += 1;
                }
                if !load.pace.is_zero() {
                    tokio::time::sleep_until((now + load.pace).into()).await;
                }
            }
            Ok::<_, anyhow::Error>((count, histogram))
        }));
    }
    let mut total = 0u64;
    let mut merged = Histogram::<u64>::new(3)?;
    for task in tasks {
        let (count, histogram) = task.await??;
        total += count;
        merged.add(&histogram)?;
    }
    Ok((total as f64 / load.seconds, merged))
}

/// How [`drive`] loads a server.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Concurrent keep-alive connections.
    connections: usize,
    /// Unmeasured seconds first.
    warmup: f64,
    /// Measured seconds.
    seconds: f64,
    /// From the start of one request to the start of the next on a connection (zero: back to
    /// back).
    pace: Duration,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn render(results: &[Results], args: &RunArgs) -> String {
    let native = |workload: Workload| {
        results
            .iter()
            .find(|r| r.target.served == Served::Native && r.target.workload == workload)
    };
    let native_rps = |workload: Workload| {
        native(workload)
            .map(|r| median(r.trials.iter().map(|t| t.requests_per_sec).collect()))
            .unwrap_or(f64::NAN)
    };
    let native_cpu = |workload: Workload| native(workload).map_or(f64::NAN, Results::cpu);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let date = today();
    let mut out = format!(
        "Measured {date} on {cores} cores ({cpu}) by `cargo run --release -p callback-bench -- --write-readme docs/performance.md`: \
         {} connections, {} rounds of {} s per target (alternated); a fresh instance per request and \
         fuel and epoch deadlines on unless the row says otherwise. Each row is compared with the native baseline \
         of its workload (the kick rows with the kick baseline, the rate-limit rows with a native server doing the same increment on the same store through the same code, the moderation rows with the moderation baseline). req/s is the median round; latencies are over all rounds; \
         idle RSS is the server's resident memory once started with its plugin (median round), peak RSS the most it had under the load (its start excluded; \"+load\": peak minus idle). CPU/request is the server process's CPU time \
         (user + system, the kernel's TCP included) per answer over the measured window, median round; \
         \"native/CPU\" is the native baseline's CPU per request over the row's: the share of native \
         efficiency, which depends less than req/s on what else the machine runs. \
         \"switches/request\" are the server's context switches per answer, all its threads: its own \
         (a thread waiting: a park, a lock, a sleep) + preemptions (the kernel giving the core to \
         another runnable thread, mostly the load generator's, which shares the two cores).\n\n",
        args.connections, args.rounds, args.seconds
    );
    out.push_str("| target | component size | compile | load from cache | req/s | vs native | CPU/request | native/CPU | switches/request: own + preempted | p50 | p99 | p99.9 | idle RSS | peak RSS | +load |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in results {
        let rps = median(r.trials.iter().map(|t| t.requests_per_sec).collect());
        let all = r.latencies();
        let rss = r.trials.iter().map(|t| t.peak_rss_kib).max().unwrap_or(0);
        let idle = median(r.trials.iter().map(|t| t.idle_rss_kib as f64).collect());
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.1}% | {:.1} µs | {:.1}% | {:.2} + {:.2} | {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |\n",
            r.target.name,
            opt(r.size_bytes.map(size)),
            opt(r.compile_ms.map(|d| micros(d.as_micros() as u64))),
            opt(r.cached_load_ms.map(|d| micros(d.as_micros() as u64))),
            rps,
            100.0 * rps / native_rps(r.target.workload),
            r.cpu(),
            100.0 * native_cpu(r.target.workload) / r.cpu(),
            r.switches().0,
            r.switches().1,
            micros(all.value_at_quantile(0.50)),
            micros(all.value_at_quantile(0.99)),
            micros(all.value_at_quantile(0.999)),
            idle / 1024.0,
            rss as f64 / 1024.0,
            (rss as f64 - idle) / 1024.0,
        ));
    }
    out
}

/// The one-connection table: each guard's answer time with and without instances built ahead,
/// beside native's.
fn render_latency(results: &[Results], args: &RunArgs) -> String {
    let native_p50 = results
        .iter()
        .find(|r| r.target.served == Served::Native)
        .map_or(f64::NAN, |r| r.latencies().value_at_quantile(0.50) as f64);
    let pace = match args.latency_pace_us {
        0 => "back to back".to_owned(),
        us => format!(
            "one request every {} ({:.0}/s)",
            micros(us),
            1e6 / us as f64
        ),
    };
    let mut out = format!(
        "\nOne connection, {pace}, {} rounds of {} s per target: the answer time OpenIM waits for \
         at the load it usually has. \"stock_instances = 0\" rows build each instance while the \
         request waits (as before instances were built ahead); \"vs native\" is the row's p50 over \
         native's.\n\n",
        args.rounds, args.seconds
    );
    out.push_str("| target | p50 | p99 | p99.9 | p50 vs native | CPU/request |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in results {
        let all = r.latencies();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}x | {:.1} µs |\n",
            r.target.name,
            micros(all.value_at_quantile(0.50)),
            micros(all.value_at_quantile(0.99)),
            micros(all.value_at_quantile(0.999)),
            all.value_at_quantile(0.50) as f64 / native_p50,
            r.cpu(),
        ));
    }
    out
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / 1048576.0)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1000.0),
        _ => format!("{:.1} s", us as f64 / 1_000_000.0),
    }
}

/// Today's date (UTC), YYYY-MM-DD.
fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn replace_section(readme: &Path, table: &str) -> anyhow::Result<()> {
    replace_between(readme, "<!-- bench:start -->", "<!-- bench:end -->", table)
}

/// Replaces the text between the `start` and `end` markers of `readme`.
fn replace_between(readme: &Path, start: &str, end: &str, text: &str) -> anyhow::Result<()> {
    let readme_text = std::fs::read_to_string(readme)?;
    let (Some(from), Some(to)) = (readme_text.find(start), readme_text.find(end)) else {
        bail!("{} has no {start} ... {end} section", readme.display());
    };
    let updated = format!(
        "{}{start}\n{text}{}",
        &readme_text[..from],
        &readme_text[to..]
    );
    std::fs::write(readme, updated)?;
    Ok(())
}
