//! `callback-bench queue`: after-callbacks (kicks, to one plugin) as OpenIM sends them (2 connections: its webhook
//! workers) and at 16 connections, inline and queued (embedded store, in each durability): how fast OpenIM is
//! answered (latency, answers/s) and how many events/s the plugins sustain until the last event
//! is handled.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hdrhistogram::Histogram;
use http_body_util::Full;

use crate::Workload;
use crate::drive::{client, exchange};
use crate::process::ServerProcess;
use crate::workload::request_mix;

#[derive(clap::Args)]
pub struct QueueArgs {
    /// Directory of the built example plugins (the Rust guard is served).
    #[arg(long, default_value = "plugins")]
    plugins: PathBuf,
    /// The plugin served (a file in the plugin directory).
    #[arg(long, default_value = "10-guard.wasm")]
    plugin: String,
    /// Events sent per run.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Connection counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [2, 16])]
    connections: Vec<usize>,
}

/// One run's numbers.
struct Run {
    answers_per_sec: f64,
    latency_us: Histogram<u64>,
    handled_per_sec: f64,
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for &connections in &args.connections {
        for queued in [None, Some("process"), Some("machine")] {
            eprintln!("{connections} connections, queued: {queued:?}");
            let run = one(&args, cache.path(), connections, queued).await?;
            rows.push(format!(
                "| {} | {connections} | {:.0} | {} µs | {} µs | {:.0} |",
                match queued {
                    Some(durability) => format!("queued, {durability}"),
                    None => "inline".to_owned(),
                },
                run.answers_per_sec,
                run.latency_us.value_at_quantile(0.5),
                run.latency_us.value_at_quantile(0.99),
                run.handled_per_sec,
            ));
        }
    }
    println!(
        "{} kicks per run through {} (a fresh instance per event); 'handled/s' runs from the \
         first request to the last event handled.\n\n\
         | delivery | connections | answers/s | p50 | p99 | handled/s |\n\
         |---|---|---|---|---|---|\n{}",
        args.events,
        args.plugin,
        rows.join("\n")
    );
    Ok(())
}

async fn one(
    args: &QueueArgs,
    cache: &std::path::Path,
    connections: usize,
    queued: Option<&str>,
) -> anyhow::Result<Run> {
    let plugins = tempfile::tempdir()?;
    std::fs::copy(
        args.plugins.join(&args.plugin),
        plugins.path().join(&args.plugin),
    )?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("host-server")
        .arg("--plugins")
        .arg(plugins.path())
        .arg("--cache-dir")
        .arg(cache)
        .args(
            queued
                .map(|durability| ["--queued", durability])
                .into_iter()
                .flatten(),
        );
    let server = ServerProcess::start(command)?;
    let addr = server.addr;
    let bodies = Arc::new(request_mix(Workload::Kick));
    let started = Instant::now();
    let per_connection = args.events / connections;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let bodies = Arc::clone(&bodies);
        tasks.push(tokio::spawn(async move {
            let mut sender = client(addr).await?;
            let mut histogram = Histogram::<u64>::new(3)?;
            for i in 0..per_connection {
                let call = &bodies[(c + i) % bodies.len()];
                let sent = Instant::now();
                let request = http::Request::post(call.path)
                    .header("content-type", "application/json; charset=utf-8")
                    .header("operationid", format!("bench-{c}-{i}"))
                    .body(Full::new(call.body.clone()))?;
                let answer = exchange(&mut sender, request).await?;
                if !call.expect.holds(&answer) {
                    bail!("wrong answer: {}", String::from_utf8_lossy(&answer));
                }
                histogram.record(sent.elapsed().as_micros() as u64)?;
            }
            Ok::<_, anyhow::Error>(histogram)
        }));
    }
    let mut latency_us = Histogram::<u64>::new(3)?;
    for task in tasks {
        latency_us.add(&task.await??)?;
    }
    let answered = started.elapsed();
    let sent = per_connection * connections;
    if queued.is_some() {
        let deadline = Instant::now() + Duration::from_secs(300);
        while handled(addr).await? < sent as u64 {
            if Instant::now() > deadline {
                bail!("the queue did not drain in 5 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let done = started.elapsed();
    drop(server);
    Ok(Run {
        answers_per_sec: sent as f64 / answered.as_secs_f64(),
        latency_us,
        handled_per_sec: sent as f64 / done.as_secs_f64(),
    })
}

/// `callback_host_queue_handled_total` from the host's `/metrics`.
async fn handled(addr: std::net::SocketAddr) -> anyhow::Result<u64> {
    let mut sender = client(addr).await?;
    let request = http::Request::get("/metrics").body(Full::new(bytes::Bytes::new()))?;
    let body = exchange(&mut sender, request).await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("callback_host_queue_handled_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}
