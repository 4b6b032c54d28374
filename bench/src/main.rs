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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

use callback_host::config::{Config, QueueDurability};

mod drive;
mod native;
mod process;
mod queue;
mod replicas;
mod report;
mod soak;
mod targets;
mod workload;

use drive::{Load, drive};
use process::{
    ServerProcess, callback_host_binary, context_switches, cpu_time, host_config, minor_faults,
};
use report::{median, micros, render, render_latency, replace_between, replace_section, today};
use targets::{Served, TARGETS, Target};
use workload::{Call, request_mix};

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
    /// rust-noepoch, rust-reuse, js-reuse, python-reuse, go-reuse, js-warm, python-warm,
    /// native-moderation, rust-moderation,
    /// rust-moderation-reuse, rust-queued, native-ratelimit, rust-ratelimit,
    /// native-ratelimit-redis, rust-ratelimit-redis.
    #[arg(long, value_delimiter = ',', default_values_t = ["native", "host-alone", "rust", "c", "js", "python", "go", "js-capped", "python-capped", "rust-nofuel", "rust-noepoch", "rust-reuse", "js-reuse", "python-reuse", "go-reuse", "js-warm", "python-warm", "rust-queued", "native-moderation", "rust-moderation", "rust-moderation-reuse", "native-ratelimit", "rust-ratelimit", "native-ratelimit-redis", "rust-ratelimit-redis"].map(String::from))]
    targets: Vec<String>,
    /// Targets of the one-connection latency rows, comma-separated (none: skipped): each guard
    /// with and without instances built ahead, beside native and the host alone.
    #[arg(long, value_delimiter = ',', default_values_t = ["native", "host-alone", "rust", "rust-nostock", "c", "c-nostock", "js", "js-nostock", "js-warm", "python", "python-nostock", "python-warm", "go", "go-nostock"].map(String::from))]
    latency_targets: Vec<String>,
    /// One-connection rows: from the start of one request to the start of the next, in µs
    /// (0: back to back, the connection saturated).
    #[arg(long, default_value_t = 2000)]
    latency_pace_us: u64,
    /// Replace the results section of this file (between the bench markers): docs/performance.md.
    #[arg(long)]
    write_readme: Option<PathBuf>,
}

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
    /// The server's minor page faults per answered request over the measured window: pages
    /// touched for the first time (copy-on-write copies, fresh zeroed pages), the cost of a
    /// never-used instance that shows least in a profile.
    faults_per_request: Option<f64>,
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

    /// The median round's server minor page faults per request.
    fn faults(&self) -> f64 {
        self.median_of(|t| t.faults_per_request)
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
    // The same one-connection targets back to back, beside the paced rows (none when the paced
    // rows are back to back already).
    let mut back_to_back = if args.latency_pace_us == 0 {
        Vec::new()
    } else {
        targets(&args.latency_targets, &args.plugins, cache.path())?
    };
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
    let one_back_to_back = Load {
        pace: Duration::ZERO,
        ..one
    };
    for round in 1..=args.rounds {
        for (load, set) in [
            (saturated, &mut results),
            (one, &mut latency),
            (one_back_to_back, &mut back_to_back),
        ] {
            for result in set.iter_mut() {
                eprintln!(
                    "round {round}/{}: {} ({} connections{})",
                    args.rounds,
                    result.target.name,
                    load.connections,
                    if load.pace.is_zero() { "" } else { ", paced" }
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
                    "  {:.0} req/s, p50 {} us, p99 {} us, server CPU {:.1} us/request, switches/request {:?} (own, preempted), minor faults/request {:.1}",
                    trial.requests_per_sec,
                    trial.latency_us.value_at_quantile(0.50),
                    trial.latency_us.value_at_quantile(0.99),
                    trial.cpu_us_per_request.unwrap_or(f64::NAN),
                    trial.switches_per_request,
                    trial.faults_per_request.unwrap_or(f64::NAN),
                );
                result.trials.push(trial);
            }
        }
    }
    let mut table = render(&results, &args);
    if !latency.is_empty() {
        table.push_str(&render_latency(&latency, &back_to_back, &args));
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
        let before = (cpu_time(pid), context_switches(pid), minor_faults(pid));
        tokio::time::sleep(Duration::from_secs_f64(load.seconds)).await;
        let after = (cpu_time(pid), context_switches(pid), minor_faults(pid));
        (
            after.0.zip(before.0).map(|(a, b)| a.saturating_sub(b)),
            after.1.zip(before.1).map(|(a, b)| a.saturating_sub(b)),
            after.2.zip(before.2).map(|(a, b)| a.saturating_sub(b)),
        )
    });
    let driven = drive(server.addr, load, bodies).await;
    let peak_rss_kib = server.status_kib("VmHWM:");
    let (cpu, switches, faults) = cpu.await?;
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
        faults_per_request: faults.map(|n| n as f64 / requests.max(1.0)),
    })
}
