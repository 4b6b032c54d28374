//! The services some tests need beside the host: a real Redis, openssl for certificates, the
//! kv-probe's counts of handled kicks, and a clock away from a minute's edge.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{kick_body, toolchains};

/// A real `redis-server` on a free loopback port, without persistence, stopped on drop.
pub fn redis() -> testkit::Redis {
    toolchains();
    testkit::Redis::start().expect("redis-server (installed by scripts/install-toolchains.sh)")
}

/// Runs the openssl command line in `dir` (certificates for the TLS tests); panics if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (installed by scripts/install-toolchains.sh)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// Waits, if needed, so that the next few seconds stay within one wall-clock minute (the rate
/// limit's window).
pub fn away_from_a_minute_boundary() {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 45 {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
}

/// A kick whose handling counts itself in Redis through the kv-probe fixture (`10-probe`, granted
/// the key-value store): 5 ms of work, then `handled-OP` + 1. The counts survive a killed host,
/// whose last log lines may not (the log is written in batches).
pub fn counted_kick(operation_id: &str) -> String {
    kick_body(
        "G",
        &["u"],
        &format!("sleep 5; incr handled-{operation_id} 1"),
    )
}

/// How many times each kick was handled, by operationID, from the counts the kv-probe fixture
/// (`10-probe`) kept in Redis for [`counted_kick`]s.
pub fn handled_counts(redis: &testkit::Redis) -> std::collections::HashMap<String, u64> {
    let cli = |args: &[&str]| {
        let output = std::process::Command::new("redis-cli")
            .args(["-u", &redis.url])
            .args(args)
            .output()
            .expect("redis-cli (installed with redis-server)");
        String::from_utf8(output.stdout).unwrap()
    };
    let prefix = "cbh:p/10-probe:handled-";
    let keys: Vec<String> = cli(&["--scan", "--pattern", &format!("{prefix}*")])
        .lines()
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Default::default();
    }
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    let values = cli(&mget);
    keys.iter()
        .zip(values.lines())
        .map(|(key, value)| {
            (
                key[prefix.len()..].to_owned(),
                value.trim().parse().unwrap_or(0),
            )
        })
        .collect()
}
