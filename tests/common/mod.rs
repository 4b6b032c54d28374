//! Shared test harness: builds the guest components from source (once for the whole suite), starts
//! the real `callback-host` binary on port 0 with a chosen plugin directory and config, and talks
//! to it over real TCP.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod services;
mod wire;

pub use services::*;
pub use wire::*;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Installs what the tests need (`scripts/install-toolchains.sh`: plugin toolchains, Redis,
/// HAProxy, the manifest validator), once for the whole suite; quick when all is there.
pub fn toolchains() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/install-toolchains.sh"))
            .current_dir(&root)
            .status()
            .expect("run scripts/install-toolchains.sh");
        assert!(status.success(), "scripts/install-toolchains.sh failed");
    });
}

/// Builds every example plugin (through `scripts/build-plugins.sh`, the same entry point the
/// README uses, which installs missing toolchains) and the hostile fixtures, once for the whole
/// suite. Returns the directory holding the built Rust components.
pub fn wasm_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        toolchains();
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/build-plugins.sh"))
            .current_dir(&root)
            .status()
            .expect("run scripts/build-plugins.sh");
        assert!(status.success(), "scripts/build-plugins.sh failed");
        let target = root.join("target/wasm");
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .arg("--manifest-path")
            .arg(root.join("tests/fixtures/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo to build the test fixtures");
        assert!(
            status.success(),
            "building tests/fixtures for wasm32-wasip2 failed"
        );
        target.join("wasm32-wasip2/release")
    })
}

/// A built Rust guest by crate name (`guard`, `audit`, `hostile`, `garbage`).
pub fn component(name: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A built example plugin from the drop directory (`10-guard.wasm`, ...).
pub fn example(file: &str) -> PathBuf {
    wasm_dir();
    let path = repo_root().join("plugins").join(file);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The `callback-host` binary as a command, with the tests' compile cache and no config or
/// listen address inherited from the environment.
pub fn callback_host() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callback-host"));
    command
        .env(
            "CALLBACK_HOST_CACHE_DIR",
            repo_root().join("target/test-compile-cache"),
        )
        .env_remove("CALLBACK_HOST_CONFIG")
        .env_remove("CALLBACK_HOST_LISTEN");
    command
}

/// What `callback-host ARGS` did in `dir` (logging warnings only, nothing on its stdin).
pub fn tool_output(dir: &Path, args: &[&str]) -> std::process::Output {
    callback_host()
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run callback-host")
}

/// Runs `callback-host ARGS` in `dir` (with the tests' compile cache) and returns what it
/// printed; panics with its standard error when it fails.
pub fn cli(dir: &Path, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_callback-host"))
        .args(args)
        .current_dir(dir)
        .env(
            "CALLBACK_HOST_CACHE_DIR",
            repo_root().join("target/test-compile-cache"),
        )
        .output()
        .expect("run callback-host");
    assert!(
        output.status.success(),
        "callback-host {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A running `callback-host serve`, killed on drop.
/// A temp dir whose `plugins/` folder holds `plugins` (file name there, built component).
pub fn dir_with_plugins(plugins: &[(&str, PathBuf)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugin_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugin_dir).expect("plugin dir");
    for (file, source) in plugins {
        std::fs::copy(source, plugin_dir.join(file)).expect("copy plugin");
    }
    dir
}

/// Sends SIGTERM to process `pid`.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
}

pub struct Server {
    child: Child,
    /// The bound address, from the `listening on http://ADDR` line.
    pub addr: String,
    /// Everything the server has logged so far.
    log: Arc<Mutex<String>>,
    /// The admin address, when started with `--admin-listen`.
    pub admin_addr: Option<String>,
    /// Keeps the plugin directory and config file alive.
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the host with `plugins` (file name in the plugin dir, built component) and `config`.
    pub fn start(plugins: &[(&str, PathBuf)], config: &str) -> Self {
        Self::start_with_args(plugins, config, &[])
    }

    /// Like [`Server::start`], with extra command-line arguments.
    pub fn start_with_args(plugins: &[(&str, PathBuf)], config: &str, args: &[&str]) -> Self {
        Self::start_in(dir_with_plugins(plugins), config, args)
    }

    /// Starts the host on a prepared temp dir whose `plugins/` folder is already filled.
    pub fn start_in(dir: tempfile::TempDir, config: &str, extra_args: &[&str]) -> Self {
        Self::start_in_env(dir, config, extra_args, &[])
    }

    /// Like [`Server::start_in`], with extra environment variables.
    pub fn start_in_env(
        dir: tempfile::TempDir,
        config: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let config_path = dir.path().join("callback-host.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_callback-host"))
            // Relative paths of the defaults (the queue's `data/`) land in the test's own dir.
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--plugins")
            .arg(dir.path().join("plugins"))
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            // Debug lines of the chain say when each request was answered (see `decision`).
            .env("RUST_LOG", "info,callback_host::dispatch=debug")
            .env(
                "CALLBACK_HOST_CACHE_DIR",
                repo_root().join("target/test-compile-cache"),
            )
            .env_remove("CALLBACK_HOST_LISTEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start callback-host");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("read stdout");
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .or_else(|| first.trim().strip_prefix("listening on https://"))
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {first:?}; log:\n{}",
                    log.lock().unwrap()
                )
            })
            .to_owned();
        let admin_addr = extra_args.contains(&"--admin-listen").then(|| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read stdout");
            line.trim()
                .strip_prefix("admin listening on http://")
                .expect("admin line")
                .to_owned()
        });
        Self {
            child,
            addr,
            log,
            admin_addr,
            dir,
        }
    }

    /// Stops the server gracefully (SIGTERM) and hands back its directory (config, plugins), to
    /// start it again.
    pub fn terminate_and_keep_dir(mut self) -> tempfile::TempDir {
        assert!(
            self.terminate(),
            "the server exited with an error; log:\n{}",
            self.log()
        );
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Kills the server (SIGKILL: no shutdown at all) and hands back its directory.
    pub fn kill_and_keep_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in bytes (VmRSS).
    pub fn rss_bytes(&self) -> u64 {
        self.memory_status("VmRSS:")
    }

    /// The most resident memory the server has had, in bytes (VmHWM).
    pub fn peak_rss_bytes(&self) -> u64 {
        self.memory_status("VmHWM:")
    }

    /// A memory line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in bytes.
    fn memory_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kib * 1024
    }

    /// The temp dir holding the config file and the plugin directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The plugin directory the server watches.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Installs a plugin the safe way: written under a dot-name, then renamed into place.
    pub fn deploy(&self, source: &Path, file: &str) {
        let temp = self.plugin_dir().join(format!(".{file}.tmp"));
        std::fs::copy(source, &temp).expect("copy plugin");
        std::fs::rename(&temp, self.plugin_dir().join(file)).expect("rename plugin");
    }

    /// GETs `path` from `addr`.
    pub fn get(addr: &str, path: &str) -> HttpResponse {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        read_response(&mut stream)
    }

    /// Waits (up to 20 s) until `check` holds.
    pub fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until a log line contains every one of `parts`, and returns it.
    pub fn wait_for_log(&self, parts: &[&str]) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self
                .log()
                .lines()
                .find(|line| parts.iter().all(|p| line.contains(p)))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < until,
                "no log line with {parts:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        sigterm(self.child.id());
        self.child.wait().expect("wait for the server").success()
    }

    /// Opens a connection.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn raw(&self, request: &[u8]) -> HttpResponse {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        read_response(&mut stream)
    }

    /// POSTs `body` to `path` the way OpenIM's Go client does.
    pub fn post(&self, path: &str, body: &str) -> HttpResponse {
        self.raw(&openim_request(path, "op-test", body.as_bytes()))
    }

    /// POSTs a kick with these users and reason under OpenIM's default prefix.
    pub fn kick(&self, users: &[&str], reason: &str) -> HttpResponse {
        self.post(KICK_PATH, &kick_body("G001", users, reason))
    }

    /// POSTs a kick under a fresh operationID and returns what the plugins decided: the answer
    /// of the first plugin that refused it, as the host logs it, or [`GO_ON`]. The kick is an
    /// after-callback, so the host itself always answers OpenIM "go on" (checked here too).
    pub fn kick_decision(&self, users: &[&str], reason: &str) -> String {
        self.decide(KICK_PATH, &kick_body("G001", users, reason))
    }

    /// Like [`Server::kick_decision`], for any after-callback `body` posted to `path`.
    pub fn decide(&self, path: &str, body: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let op = format!(
            "op-test-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let response = self.raw(&openim_request(path, &op, body.as_bytes()));
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, GO_ON),
            "an after-callback is answered go on"
        );
        self.decision(&op)
    }

    /// The value of the first metric line starting with `line_start` (0 when there is none),
    /// from the admin address when started with `--admin-listen`, else from the callback one.
    pub fn metric(&self, line_start: &str) -> f64 {
        let metrics = Self::get(self.admin_addr.as_deref().unwrap_or(&self.addr), "/metrics").body;
        metrics
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// The first refusal a plugin gave the request with operationID `op` (the host logs refusals
    /// of after-callbacks), or [`GO_ON`] once its plugins ran without one: inline, when the
    /// request was answered; queued, when a worker handled the event (or it failed).
    pub fn decision(&self, op: &str) -> String {
        let tag = format!("operation_id={op}}}");
        self.wait_until(&format!("the request {op} to be handled"), || {
            self.log().lines().any(|l| {
                l.contains(&tag)
                    && (l.contains("request answered")
                        || l.contains("queued event handled")
                        || l.contains("queued event failed")
                        || l.contains("queued event dead-lettered"))
            })
        });
        let log = self.log();
        let Some(line) = log
            .lines()
            .find(|l| l.contains(&tag) && l.contains("after-callback refused by a plugin"))
        else {
            return GO_ON.to_owned();
        };
        let json = &line[line.find("answer=").expect("the answer is logged") + 7..];
        let mut answers = serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>();
        answers.next().expect("a JSON answer").expect("valid JSON");
        json[..answers.byte_offset()].to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says that part of a test cannot run here and why: a failure under `CI=true` (CI installs and
/// allows everything the suite needs, so there it means a missing install step), a visible
/// skip otherwise. The `SKIPPED:` line goes to the real standard error, past the test harness's
/// capture, so that it shows in `cargo test`'s output although the test passes; and, when
/// `CALLBACK_HOST_TEST_SKIPS` names a file (`scripts/test.sh` does), it is added there, for the
/// closing "N skipped" line.
pub fn cannot_run(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} cannot run under CI=true: {why}");
    }
    let line = format!("SKIPPED: {what}: {why}\n");
    // `eprintln!` would be captured and shown only if the test failed.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    if let Some(file) = std::env::var_os("CALLBACK_HOST_TEST_SKIPS") {
        let mut skips = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .expect("open the skip list (CALLBACK_HOST_TEST_SKIPS)");
        std::io::Write::write_all(&mut skips, line.as_bytes()).expect("write the skip list");
    }
}
