//! No page written by one request reaches the next instance in the slot: a plugin keeps each
//! request's secret in thousands of disjoint pages of a 40 MiB area (beyond `keep_resident`, more
//! dirty runs than one page-map scan reports) and, on each instance's first call, looks for any
//! earlier secret there. Run through a fresh instance per request, instances built ahead, and past
//! `reuse_instances`; and with the slot's dirty pages swapped out between two calls, where the
//! machine lets the test turn swap on (wasmtime 48.0.8 left such pages for the next instance).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{self, Server, component};

/// Requests in each mode.
const ROUNDS: usize = 12;

/// The pages plugin with `limits` as its `[plugins_limits.10-pages]`, inline.
fn pages_server(limits: &str) -> Server {
    let config =
        format!("[defaults]\ndelivery = \"inline\"\n[plugins_limits.10-pages]\n{limits}\n");
    Server::start(&[("10-pages.wasm", component("pages"))], &config)
}

/// What the instance serving a `write SECRET` kick answered: `clean`, `leak` (with what it found)
/// or `reused`.
fn write(server: &Server, secret: &str) -> (String, String) {
    let decision = server.kick_decision(&["u1"], &format!("write {secret}"));
    let answer: Value = serde_json::from_str(&decision).expect("the plugin's answer");
    (
        answer["errMsg"].as_str().unwrap().to_owned(),
        answer["errDlt"].as_str().unwrap().to_owned(),
    )
}

/// Asserts that every first call of an instance over `rounds` requests found its area clean.
fn assert_no_leak(server: &Server, mode: &str, rounds: usize) {
    let mut first_calls = 0;
    for round in 0..rounds {
        let (seen, detail) = write(server, &format!("{mode}-{round}"));
        assert_ne!(seen, "leak", "{mode}, request {round}: {detail}");
        first_calls += usize::from(seen == "clean");
    }
    assert!(first_calls > 0, "{mode}: no instance served a first call");
}

#[test]
fn a_fragmented_dirty_set_never_reaches_the_next_instance() {
    for (mode, limits) in [
        ("fresh", "stock_instances = 0"),
        ("stocked", "stock_instances = 2"),
        ("reused", "reuse_instances = 3"),
    ] {
        let server = pages_server(limits);
        assert_no_leak(&server, mode, ROUNDS);
    }
}

/// A swap file switched on for the test, and off (and removed) when dropped.
struct SwapFile(PathBuf);

impl SwapFile {
    /// Turns on a 512 MiB swap file at `path`, or says why it cannot.
    fn on(path: &Path) -> Result<Self, String> {
        let run = |program: &str, args: &[&str]| -> Result<(), String> {
            let output = Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("{program}: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program} {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        };
        let file = path.to_str().unwrap();
        run(
            "dd",
            &[
                "if=/dev/zero",
                &format!("of={file}"),
                "bs=1M",
                "count=512",
                "status=none",
            ],
        )?;
        run("chmod", &["600", file])?;
        run("mkswap", &[file])?;
        let swap = Self(path.to_owned());
        run("swapon", &[file])?;
        Ok(swap)
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Pages every private writable mapping of process `pid` out to swap (`MADV_PAGEOUT` through
/// `process_madvise(2)`), as the kernel does under memory pressure; returns its `VmSwap` after.
fn page_out(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let ranges: Vec<(usize, usize)> = maps
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some("rw-p"))
        .filter_map(|line| {
            let (start, end) = line.split_whitespace().next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            Some((start, usize::from_str_radix(end, 16).ok()? - start))
        })
        .collect();
    let pidfd = pidfd_of(pid);
    // One range a call, at most 1 GiB each: the kernel takes at most 2 GiB of ranges a call and
    // drops the rest silently (the pool's table and stack reservations are larger).
    for (start, len) in ranges {
        for offset in (0..len).step_by(1 << 30) {
            let iovec = libc::iovec {
                iov_base: (start + offset) as *mut libc::c_void,
                iov_len: (len - offset).min(1 << 30),
            };
            // Errors (a mapping gone meanwhile) are ignored: the swap the process ends up with is
            // what the caller checks.
            #[allow(unsafe_code)]
            // SAFETY: a plain syscall with a valid pidfd and one iovec that lives until it
            // returns; the ranges are the other process's, and no memory of this one is written.
            unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    pidfd,
                    &iovec as *const libc::iovec,
                    1usize,
                    libc::MADV_PAGEOUT,
                    0u32,
                );
            }
        }
    }
    // SAFETY: closes the descriptor opened above, once.
    #[allow(unsafe_code)]
    unsafe {
        libc::close(pidfd);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSwap:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap_or(0);
    kib << 10
}

/// A pidfd of `pid` (`pidfd_open(2)`).
fn pidfd_of(pid: u32) -> libc::c_int {
    // SAFETY: a plain syscall that takes two integers.
    #[allow(unsafe_code)]
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    fd as libc::c_int
}

#[test]
fn a_page_swapped_out_between_two_calls_never_reaches_the_next_instance() {
    let dir = tempfile::tempdir_in(common::repo_root().join("target")).unwrap();
    let swap = match SwapFile::on(&dir.path().join("isolation.swap")) {
        Ok(swap) => swap,
        Err(why) => {
            // The fragmented part above runs everywhere; this one needs root and a file system
            // that takes a swap file.
            common::cannot_run("the swapped-out half of the isolation test", &why);
            return;
        }
    };
    // Two requests an instance: the first writes its secret, the test swaps it out, the second
    // ends the instance (its memory is reset with the secret in swap); the next instance in the
    // slot looks for it.
    let server = pages_server("reuse_instances = 2");
    let mut swapped = 0;
    for round in 0..ROUNDS {
        let (seen, detail) = write(&server, &format!("swapped-{round}"));
        assert_eq!(seen, "clean", "request {round}: {detail}");
        swapped = swapped.max(page_out(server.pid()));
        let (seen, _) = write(&server, "unused");
        assert_eq!(
            seen, "reused",
            "request {round}: the same instance's second call"
        );
    }
    assert!(
        swapped >= 8 << 20,
        "the secrets were never swapped out (VmSwap at most {} KiB): the test proved nothing",
        swapped >> 10
    );
    eprintln!(
        "isolation: up to {} KiB of the server swapped out",
        swapped >> 10
    );
    drop(server);
    drop(swap);
}
