//! `callback-bench replicas`: the host alone, then 1, 2 and 3 replicas behind HAProxy (as the
//! README's "Scaling out" deploys them), kicks through one plugin at saturation. Besides
//! requests/s and latency it reads the CPU time every host process and HAProxy used, so the
//! table shows requests per second per core of host: the number that says what N cores serve,
//! which one 2-core machine cannot show by adding replicas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::Workload;
use crate::drive::{Load, drive};
use crate::process::ServerProcess;
use crate::workload::request_mix;

#[derive(clap::Args)]
pub struct ReplicasArgs {
    /// Directory of the built example plugins.
    #[arg(long, default_value = "plugins")]
    plugins: PathBuf,
    /// The plugin served (a file in the plugin directory).
    #[arg(long, default_value = "10-guard.wasm")]
    plugin: String,
    /// Replica counts behind the balancer, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
    replicas: Vec<usize>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds per row.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before each.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

pub async fn run(args: ReplicasArgs) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let load = Load {
        connections: args.connections,
        warmup: args.warmup,
        seconds: args.seconds,
        pace: std::time::Duration::ZERO,
    };
    let mut rows = Vec::new();
    // 0: the host alone, called directly.
    for replicas in std::iter::once(0).chain(args.replicas.iter().copied()) {
        let (servers, _dirs): (Vec<_>, Vec<_>) = (0..replicas.max(1))
            .map(|_| start_host(&args, cache.path()))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        let proxy = if replicas > 0 {
            let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
            Some(testkit::Haproxy::start(&addrs)?)
        } else {
            None
        };
        let addr = match &proxy {
            Some(proxy) => proxy.addr.parse()?,
            None => servers[0].addr,
        };
        eprintln!("{} replicas", replicas.max(1));
        let hosts_before: f64 = servers.iter().map(|s| cpu_seconds(s.child.id())).sum();
        let proxy_before = proxy.as_ref().map_or(0.0, |p| cpu_seconds(p.pid()));
        // Warm-up and measurement: the CPU read spans both, so it is divided by all requests.
        let (per_sec, latency) = drive(addr, load, Arc::new(request_mix(Workload::Kick))).await?;
        let hosts_cpu = servers
            .iter()
            .map(|s| cpu_seconds(s.child.id()))
            .sum::<f64>()
            - hosts_before;
        let proxy_cpu = proxy.as_ref().map_or(0.0, |p| cpu_seconds(p.pid())) - proxy_before;
        let requests = per_sec * (load.seconds + load.warmup);
        rows.push(format!(
            "| {} | {} | {:.0} | {} µs | {} µs | {:.0} | {} |",
            if replicas == 0 {
                "none (direct)"
            } else {
                "HAProxy"
            },
            replicas.max(1),
            per_sec,
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
            requests / hosts_cpu,
            if replicas == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", requests / proxy_cpu)
            },
        ));
    }
    println!(
        "Kicks through {} (a fresh instance per request), {} connections, {} s per row after {} s \
         of warm-up; client, balancer and replicas share this machine's 2 cores.\n\n\
         | balancer | replicas | req/s | p50 | p99 | req/s per host core | req/s per balancer core |\n\
         |---|---|---|---|---|---|---|\n{}",
        args.plugin,
        args.connections,
        args.seconds,
        args.warmup,
        rows.join("\n")
    );
    Ok(())
}

/// One host (inline delivery) on a plugin directory of its own.
fn start_host(
    args: &ReplicasArgs,
    cache: &Path,
) -> anyhow::Result<(ServerProcess, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path();
    std::fs::copy(args.plugins.join(&args.plugin), plugins.join(&args.plugin))?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("host-server")
        .arg("--plugins")
        .arg(plugins)
        .arg("--cache-dir")
        .arg(cache);
    Ok((ServerProcess::start(command)?, dir))
}

/// User plus system CPU seconds process `pid` has used so far (0 once it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // USER_HZ: 100 ticks a second on Linux.
    ticks / 100.0
}
