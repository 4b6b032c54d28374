//! The servers under test as processes: the `callback-host` binary with its generated config,
//! and what `/proc` says of them (CPU time, context switches).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::targets::{Settings, Target};
use crate::workload::{RATE_LIMIT_GRANTS, rate_limit_store};

/// `callback-host` beside this binary (both are built by `cargo build --release`).
pub(crate) fn callback_host_binary() -> anyhow::Result<PathBuf> {
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
pub(crate) fn host_config(
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
        warm_up,
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
    if warm_up {
        toml.push_str("warm_up_call = true\n");
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
pub(crate) fn context_switches(pid: u32) -> Option<Switches> {
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
pub(crate) struct Switches {
    /// Its threads gave up the core (waiting: a lock, a park, a sleep, I/O).
    pub(crate) own: u64,
    /// The kernel took the core from them for another runnable thread (here mostly the load
    /// generator's, which shares the two cores).
    pub(crate) preempted: u64,
}

impl Switches {
    pub(crate) fn saturating_sub(self, before: Self) -> Self {
        Self {
            own: self.own.saturating_sub(before.own),
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }
}

/// Minor page faults a process has taken so far (all its threads), from `/proc/PID/stat`: a
/// fault served without I/O, mostly the first touch of a page (a copy-on-write copy, a zeroed
/// page, a mapping of a page already in the page cache).
pub(crate) fn minor_faults(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(7)?.parse().ok()
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces and ends with
/// ')'): the state is the first.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (in clock ticks of
/// 10 ms: over a measured window of seconds, within a percent).
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    // utime and stime: the 14th and 15th fields of the line.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A server child process, killed on drop.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    pub(crate) fn start(mut command: Command) -> anyhow::Result<Self> {
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
    pub(crate) fn reset_peak_rss(&self) {
        if let Err(error) = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5") {
            eprintln!("cannot reset the server's peak RSS ({error}): the peak includes its start");
        }
    }

    /// A memory line of `/proc/PID/status` in KiB: `VmRSS:` (resident now), `VmHWM:` (the
    /// most it has had resident).
    pub(crate) fn status_kib(&self, field: &str) -> u64 {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
