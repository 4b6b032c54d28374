//! `callback-bench soak`: the real `callback-host serve` at saturation for a given time, with a mix
//! of good plugins, a hostile one (an endless loop and a memory bomb, sent at a steady rate) and a
//! hot reload every few seconds (two builds of the guard swapped under one name). Every answer is
//! checked. Reports, per minute: requests, failed requests, p50/p99 of the good traffic, the
//! host's resident memory and open file descriptors; and whether memory stayed flat.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use tokio::sync::Mutex;

use crate::Workload;
use crate::drive::{Sender, client, exchange};
use crate::process::ServerProcess;
use crate::workload::{Expect, request_mix};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Concurrent keep-alive connections of good traffic.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds between hot reloads.
    #[arg(long, default_value_t = 5.0)]
    reload_every: f64,
    /// The `callback-host` binary to run.
    #[arg(long, default_value = "target/release/callback-host")]
    host: PathBuf,
    /// Directory of the built example plugins.
    #[arg(long, default_value = "plugins")]
    plugins: PathBuf,
    /// The built hostile test plugin.
    #[arg(long, default_value = "target/wasm/wasm32-wasip2/release/hostile.wasm")]
    hostile: PathBuf,
    /// Replace the soak section of this file (between the soak markers): docs/production.md.
    #[arg(long)]
    write_readme: Option<PathBuf>,
}

/// What one minute saw.
struct Minute {
    /// Good requests answered correctly.
    ok: u64,
    /// Requests answered wrongly, or not at all (good and hostile).
    failed: u64,
    /// Hostile requests answered correctly (after their deadline).
    hostile: u64,
    /// Latency of the good traffic, µs.
    latency: Histogram<u64>,
    /// Resident memory samples, KiB.
    rss_kib: Vec<u64>,
    /// Open file descriptor samples.
    fds: Vec<u64>,
    /// Hot reloads done.
    reloads: u64,
}

impl Minute {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            failed: 0,
            hostile: 0,
            latency: Histogram::new(3)?,
            rss_kib: Vec::new(),
            fds: Vec::new(),
            reloads: 0,
        })
    }
}

/// The host's config for the soak: a 3 s timeout (OpenIM's is 5), a 512 MiB memory budget, kicks
/// inline (the soak checks that the plugins' deadlines hold on the answer path).
const CONFIG: &str = "memory_budget_mib = 512\n[defaults]\ntimeout_secs = 3\ndelivery = \"inline\"\n\
                      [plugin_defaults]\nmemory_mib = 64\n";

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let guards = [
        args.plugins.join("10-guard.wasm"),
        args.plugins.join("11-guard-c.wasm"),
    ];
    for (file, source) in [
        ("10-guard.wasm", &guards[0]),
        ("12-guard-js.wasm", &args.plugins.join("12-guard-js.wasm")),
        ("15-hostile.wasm", &args.hostile),
        (
            "30-moderation.wasm",
            &args.plugins.join("30-moderation.wasm"),
        ),
    ] {
        std::fs::copy(source, plugins.join(file))
            .with_context(|| format!("copying {} (build it first)", source.display()))?;
    }
    let config = dir.path().join("soak.toml");
    std::fs::write(&config, CONFIG)?;
    let mut command = Command::new(&args.host);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--plugins")
        .arg(&plugins)
        .arg("--config")
        .arg(&config)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    let server = ServerProcess::start(command)?;
    let addr = server.addr;
    let pid = server.pid();
    eprintln!("soak: host pid {pid} on {addr}, {} minutes", args.minutes);

    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.minutes * 60.0);
    let minutes = (args.minutes.ceil() as usize).max(1);
    let stats: Arc<Vec<Mutex<Minute>>> = Arc::new(
        (0..minutes)
            .map(|_| Minute::new().map(Mutex::new))
            .collect::<anyhow::Result<_>>()?,
    );
    let minute_of =
        move |at: Instant| ((at - started).as_secs() / 60).min(minutes as u64 - 1) as usize;

    // Good traffic: kicks (three plugins, one of them hostile but given a harmless reason) and
    // moderation, every answer checked.
    let mut mix = request_mix(Workload::Kick);
    mix.extend(request_mix(Workload::Moderation));
    let mix = Arc::new(mix);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (mix, stats) = (Arc::clone(&mix), Arc::clone(&stats));
        tasks.push(tokio::spawn(async move {
            let mut i = c * 7;
            while Instant::now() < until {
                let Ok(mut sender) = client(addr).await else {
                    stats[minute_of(Instant::now())].lock().await.failed += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while Instant::now() < until {
                    let call = &mix[i % mix.len()];
                    i += 1;
                    let sent = Instant::now();
                    let answer = send(&mut sender, call.path, call.body.clone()).await;
                    let mut minute = stats[minute_of(sent)].lock().await;
                    match answer {
                        Ok(answer) if call.expect.holds(&answer) => {
                            minute.ok += 1;
                            let _ = minute.latency.record(sent.elapsed().as_micros() as u64);
                        }
                        Ok(_) => minute.failed += 1,
                        Err(_) => {
                            minute.failed += 1;
                            break;
                        }
                    }
                }
            }
        }));
    }
    // Hostile traffic: an endless loop every 2 s and a memory bomb every second, each answered
    // "go on" once the host stops the plugin.
    for (reason, every) in [("loop", 2.0), ("memory", 1.0)] {
        let stats = Arc::clone(&stats);
        tasks.push(tokio::spawn(async move {
            let body = kick_body(reason);
            let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
            while Instant::now() < until {
                tick.tick().await;
                let stats = Arc::clone(&stats);
                let body = body.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let answer = match client(addr).await {
                        Ok(mut sender) => send(&mut sender, KICK_PATH, body).await.ok(),
                        Err(_) => None,
                    };
                    let good = answer.is_some_and(|a| Expect::GoOn.holds(&a))
                        && sent.elapsed() < Duration::from_secs(3);
                    let mut minute = stats[minute_of(sent)].lock().await;
                    if good {
                        minute.hostile += 1
                    } else {
                        minute.failed += 1
                    }
                });
            }
        }));
    }
    // Hot reloads: the Rust and C builds of the guard (same policy) swapped under one name.
    {
        let stats = Arc::clone(&stats);
        let plugins = plugins.clone();
        let every = Duration::from_secs_f64(args.reload_every);
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() + every < until {
                tokio::time::sleep(every).await;
                n += 1;
                let temp = plugins.join(".10-guard.wasm.tmp");
                if std::fs::copy(&guards[n % 2], &temp).is_ok()
                    && std::fs::rename(&temp, plugins.join("10-guard.wasm")).is_ok()
                {
                    stats[minute_of(Instant::now())].lock().await.reloads += 1;
                }
            }
        }));
    }
    // Samples of the host process.
    {
        let stats = Arc::clone(&stats);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let mut minute = stats[minute_of(Instant::now())].lock().await;
                minute.rss_kib.push(rss_kib(pid));
                minute.fds.push(open_fds(pid));
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    // Let the last hostile requests finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(server);

    let mut rows = Vec::new();
    for minute in stats.iter() {
        rows.push(std::mem::replace(&mut *minute.lock().await, Minute::new()?));
    }
    let report = render(&rows, &args);
    println!("{report}");
    if let Some(readme) = &args.write_readme {
        crate::replace_between(readme, "<!-- soak:start -->", "<!-- soak:end -->", &report)?;
        eprintln!("updated {}", readme.display());
    }
    let failed: u64 = rows.iter().map(|m| m.failed).sum();
    anyhow::ensure!(failed == 0, "{failed} requests failed");
    Ok(())
}

const KICK_PATH: &str = "/callbackExample/callbackAfterKickGroupCommand";

fn kick_body(reason: &str) -> Bytes {
    let body = serde_json::json!({
        "callbackCommand": "callbackAfterKickGroupCommand",
        "groupID": "G-soak",
        "kickedUserIDs": ["user-1"],
        "reason": reason,
    });
    Bytes::from(format!("{body}\n"))
}

async fn send(sender: &mut Sender, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
    let request = http::Request::post(path)
        .header("host", "127.0.0.1:10006")
        .header("content-type", "application/json; charset=utf-8")
        .header("operationid", "soak")
        .header("content-length", body.len())
        .body(Full::new(body))?;
    exchange(sender, request).await
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

fn render(rows: &[Minute], args: &SoakArgs) -> String {
    let mib = |kib: u64| format!("{:.0}", kib as f64 / 1024.0);
    let mut out = format!(
        "Soak of {} minutes on {} ({} cores), {} keep-alive connections at saturation, by \
         `scripts/soak.sh {}`: kicks through the Rust guard, the JavaScript guard and the hostile \
         plugin, moderation of messages (send + modify); an endless loop every 2 s and a memory bomb \
         every second through the hostile plugin; the guard hot-swapped (Rust and C builds) every {} s.\n\n\
         | minute | good answers | req/s | failed | hostile answered | reloads | p50 | p99 | RSS min-max (MiB) | open fds |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        args.minutes,
        crate::today(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.connections,
        args.minutes,
        args.reload_every,
    );
    for (i, m) in rows.iter().enumerate() {
        let seconds = if i + 1 == rows.len() {
            (args.minutes * 60.0 - i as f64 * 60.0).max(1.0)
        } else {
            60.0
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {}-{} | {}-{} |\n",
            i + 1,
            m.ok,
            m.ok as f64 / seconds,
            m.failed,
            m.hostile,
            m.reloads,
            crate::micros(m.latency.value_at_quantile(0.5)),
            crate::micros(m.latency.value_at_quantile(0.99)),
            mib(m.rss_kib.iter().copied().min().unwrap_or(0)),
            mib(m.rss_kib.iter().copied().max().unwrap_or(0)),
            m.fds.iter().copied().min().unwrap_or(0),
            m.fds.iter().copied().max().unwrap_or(0),
        ));
    }
    let failed: u64 = rows.iter().map(|m| m.failed).sum();
    let total: u64 = rows.iter().map(|m| m.ok + m.hostile).sum();
    let peak = |m: &Minute| m.rss_kib.iter().copied().max().unwrap_or(0);
    let (first, last) = (rows.first().map_or(0, peak), rows.last().map_or(0, peak));
    out.push_str(&format!(
        "\n{total} requests answered correctly, {failed} failed. Peak RSS {} MiB in the first minute, \
         {} MiB in the last.\n",
        mib(first),
        mib(last)
    ));
    out
}
