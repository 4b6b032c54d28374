//! The tables: results rendered as Markdown and written between the markers of a doc.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::targets::Served;
use crate::{Results, RunArgs, Workload};

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn render(results: &[Results], args: &RunArgs) -> String {
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
         another runnable thread, mostly the load generator's, which shares the two cores). \
         \"faults/request\" are the server's minor page faults per answer (median round): pages \
         touched for the first time, such as copy-on-write copies of a plugin's memory image.\n\n",
        args.connections, args.rounds, args.seconds
    );
    out.push_str("| target | component size | compile | load from cache | req/s | vs native | CPU/request | native/CPU | switches/request: own + preempted | faults/request | p50 | p99 | p99.9 | idle RSS | peak RSS | +load |\n");
    out.push_str(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let rps = median(r.trials.iter().map(|t| t.requests_per_sec).collect());
        let all = r.latencies();
        let rss = r.trials.iter().map(|t| t.peak_rss_kib).max().unwrap_or(0);
        let idle = median(r.trials.iter().map(|t| t.idle_rss_kib as f64).collect());
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.1}% | {:.1} µs | {:.1}% | {:.2} + {:.2} | {:.1} | {} | {} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |\n",
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
            r.faults(),
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
/// beside native's, paced and (when `back_to_back` has the same rows) back to back.
pub(crate) fn render_latency(
    paced: &[Results],
    back_to_back: &[Results],
    args: &RunArgs,
) -> String {
    let native_p50 = paced
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
         native's. The \"back to back\" columns are the same target with the next request sent as \
         soon as the answer is in: no idle time between calls for building the next instance.\n\n",
        args.rounds, args.seconds
    );
    out.push_str("| target | p50 | p99 | p99.9 | p50 vs native | CPU/request | faults/request |");
    if !back_to_back.is_empty() {
        out.push_str(" back to back: req/s | p50 | p99 | CPU/request | faults/request |");
    }
    out.push_str("\n|---|---:|---:|---:|---:|---:|---:|");
    if !back_to_back.is_empty() {
        out.push_str("---:|---:|---:|---:|---:|");
    }
    out.push('\n');
    for (i, r) in paced.iter().enumerate() {
        let all = r.latencies();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}x | {:.1} µs | {:.1} |",
            r.target.name,
            micros(all.value_at_quantile(0.50)),
            micros(all.value_at_quantile(0.99)),
            micros(all.value_at_quantile(0.999)),
            all.value_at_quantile(0.50) as f64 / native_p50,
            r.cpu(),
            r.faults(),
        ));
        if let Some(b) = back_to_back.get(i) {
            let all = b.latencies();
            out.push_str(&format!(
                " {:.0} | {} | {} | {:.1} µs | {:.1} |",
                median(b.trials.iter().map(|t| t.requests_per_sec).collect()),
                micros(all.value_at_quantile(0.50)),
                micros(all.value_at_quantile(0.99)),
                b.cpu(),
                b.faults(),
            ));
        }
        out.push('\n');
    }
    out
}

pub(crate) fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / 1048576.0)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

pub(crate) fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1000.0),
        _ => format!("{:.1} s", us as f64 / 1_000_000.0),
    }
}

/// Today's date (UTC), YYYY-MM-DD.
pub(crate) fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn replace_section(readme: &Path, table: &str) -> anyhow::Result<()> {
    replace_between(readme, "<!-- bench:start -->", "<!-- bench:end -->", table)
}

/// Replaces the text between the `start` and `end` markers of `readme`.
pub(crate) fn replace_between(
    readme: &Path,
    start: &str,
    end: &str,
    text: &str,
) -> anyhow::Result<()> {
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
