//! The container image, built and run as the docs say: the Dockerfile's runtime stage from the
//! binary and plugins built here (`ARTIFACTS=prebuilt`), on a Debian bookworm base. With podman
//! (Debian's, run by runc) the base is made with mmdebstrap, as this machine reaches no image
//! registry; with docker it is `debian:bookworm-slim`. Where neither engine runs, it says so and
//! skips.

use crate::common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{KICK_PATH, kick_body, openim_request, try_read_response};

/// The base image podman builds on, made by mmdebstrap once and kept in podman's storage.
const PODMAN_BASE: &str = "localhost/callback-host-base:bookworm";
/// The password OpenIM's webhook url carries (`http://openim:PASSWORD@...`).
const PASSWORD: &str = "image-test-password";
/// `openim:image-test-password`, as OpenIM's Go client sends it.
const AUTHORIZATION: &str = "Authorization: Basic b3BlbmltOmltYWdlLXRlc3QtcGFzc3dvcmQ=\r\n";

/// A container engine that runs here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Podman,
    Docker,
}

impl Engine {
    /// The first that answers: podman (Debian ships it), then docker.
    fn find() -> Option<Self> {
        let answers = |program: &str| {
            Command::new(program)
                .args(["info", "--format", "{{.Host.Arch}}"])
                .output()
                .is_ok_and(|o| o.status.success())
                || Command::new(program)
                    .args(["info", "--format", "{{.ServerVersion}}"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        };
        if answers("podman") {
            Some(Self::Podman)
        } else if answers("docker") {
            Some(Self::Docker)
        } else {
            None
        }
    }

    /// The engine's command, with the OCI runtime podman needs here (crun refuses this
    /// machine's hybrid cgroups; runc runs).
    fn command(self) -> Command {
        match self {
            Self::Podman => {
                let mut command = Command::new("podman");
                if Path::new("/usr/sbin/runc").exists() {
                    command.args(["--runtime", "/usr/sbin/runc"]);
                }
                command
            }
            Self::Docker => Command::new("docker"),
        }
    }

    /// Runs the engine with `args`; panics with what it said when it fails.
    fn run(self, args: &[&str]) -> String {
        let output = self.command().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{self:?} {args:?}:\n{}",
            said(&output)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The base image for `BASE`, made when missing; `None` (with the reason) when it cannot be.
    fn base(self) -> Result<String, String> {
        match self {
            Self::Docker => Ok("debian:bookworm-slim".into()),
            Self::Podman => {
                let exists = self
                    .command()
                    .args(["image", "exists", PODMAN_BASE])
                    .status()
                    .is_ok_and(|s| s.success());
                if exists {
                    return Ok(PODMAN_BASE.into());
                }
                let tar = common::repo_root().join("target/image-base/bookworm-minbase.tar");
                std::fs::create_dir_all(tar.parent().unwrap()).unwrap();
                let made = Command::new("mmdebstrap")
                    .args(["--variant=minbase", "--quiet", "bookworm"])
                    .arg(&tar)
                    .output()
                    .map_err(|e| format!("mmdebstrap: {e}"))?;
                if !made.status.success() {
                    return Err(format!("mmdebstrap failed:\n{}", said(&made)));
                }
                self.run(&["import", tar.to_str().unwrap(), PODMAN_BASE]);
                let _ = std::fs::remove_file(&tar);
                Ok(PODMAN_BASE.into())
            }
        }
    }
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Removes what the test made (container, volumes, image and the build's intermediate images),
/// also when an assertion fails.
struct Cleanup {
    engine: Engine,
    container: Option<String>,
    volumes: Vec<String>,
    image: String,
    /// The untagged images there were before the build: the others are the build's.
    dangling_before: Vec<String>,
}

impl Engine {
    /// The untagged images.
    fn dangling(self) -> Vec<String> {
        self.run(&[
            "images",
            "--quiet",
            "--no-trunc",
            "--filter",
            "dangling=true",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = self.engine.command().args(args).output();
        };
        if let Some(id) = &self.container {
            quiet(&["rm", "--force", id]);
        }
        for volume in &self.volumes {
            quiet(&["volume", "rm", "--force", volume]);
        }
        quiet(&["rmi", "--force", &self.image]);
        let dangling = self.engine.dangling();
        for image in dangling
            .iter()
            .filter(|i| !self.dangling_before.contains(i))
        {
            quiet(&["rmi", "--force", image]);
        }
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// POSTs `body` to `path` with OpenIM's Basic credentials; the status and body.
fn callback(port: u16, path: &str, body: &[u8], authorization: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = String::from_utf8(openim_request(path, "op-image", body)).unwrap();
    let request = request.replacen("\r\n", &format!("\r\n{authorization}"), 1);
    stream.write_all(request.as_bytes()).unwrap();
    let response = try_read_response(&mut stream).unwrap();
    (response.status, response.body)
}

#[test]
fn the_image_serves_read_only_as_uid_10001_stops_on_sigterm_and_restarts_from_its_cache() {
    const WHAT: &str = "the container image test";
    let Some(engine) = Engine::find() else {
        common::cannot_run(WHAT, "neither podman nor docker runs here");
        return;
    };
    let base = match engine.base() {
        Ok(base) => base,
        Err(reason) => {
            common::cannot_run(WHAT, &format!("no base image for {engine:?}: {reason}"));
            return;
        }
    };
    let root = common::repo_root();
    common::wasm_dir(); // the example plugins
    // The build context of the prebuilt artifacts: the binary and plugins built here, the config.
    let context = tempfile::tempdir().unwrap();
    let out = context.path().join("out");
    std::fs::create_dir_all(out.join("plugins")).unwrap();
    std::fs::create_dir_all(context.path().join("deploy")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_callback-host"),
        out.join("callback-host"),
    )
    .unwrap();
    let mut plugins = Vec::new();
    for entry in std::fs::read_dir(root.join("plugins")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_name().unwrap().to_owned();
            std::fs::copy(&path, out.join("plugins").join(&name)).unwrap();
            plugins.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(plugins.len() >= 10, "{plugins:?}");
    std::fs::copy(
        root.join("deploy/container.toml"),
        context.path().join("deploy/container.toml"),
    )
    .unwrap();

    let tag = format!("localhost/callback-host:test-{}", std::process::id());
    let cache = format!("callback-host-test-cache-{}", std::process::id());
    let data = format!("callback-host-test-data-{}", std::process::id());
    let mut cleanup = Cleanup {
        engine,
        container: None,
        volumes: vec![cache.clone(), data.clone()],
        image: tag.clone(),
        dangling_before: engine.dangling(),
    };
    let dockerfile = root.join("Dockerfile");
    let base_arg = format!("BASE={base}");
    let mut build = vec![
        "build",
        "--file",
        dockerfile.to_str().unwrap(),
        "--build-arg",
        "ARTIFACTS=prebuilt",
        "--build-arg",
        &base_arg,
        "--tag",
        &tag,
    ];
    if engine == Engine::Podman {
        // HEALTHCHECK is part of docker's image format only.
        build.extend(["--isolation=chroot", "--format", "docker"]);
    }
    build.push(context.path().to_str().unwrap());
    engine.run(&build);

    // Run as the docs say: read-only root, the two volumes, the password from the environment;
    // the image's own user (10001). On the host's network, on a free port.
    let port = free_port();
    let listen = format!("CALLBACK_HOST_LISTEN=127.0.0.1:{port}");
    let password = format!("CALLBACK_HOST_BASIC_PASSWORD={PASSWORD}");
    let cache_volume = format!("{cache}:/cache");
    let data_volume = format!("{data}:/data");
    let id = engine.run(&[
        "run",
        "--detach",
        "--read-only",
        "--network=host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1000:1000",
        "--volume",
        &cache_volume,
        "--volume",
        &data_volume,
        "--env",
        &password,
        "--env",
        &listen,
        &tag,
    ]);
    let id = id.lines().last().unwrap().to_owned();
    cleanup.container = Some(id.clone());
    let logs = || {
        let output = engine.command().args(["logs", &id]).output().unwrap();
        said(&output)
    };
    // The image's HEALTHCHECK command, run as the engine runs it. The first start compiles every
    // plugin (this debug build's compiler is slower than a release build's).
    let healthy = |within: Duration| {
        let until = Instant::now() + within;
        loop {
            let check = match engine {
                Engine::Podman => engine.command().args(["healthcheck", "run", &id]).output(),
                Engine::Docker => engine
                    .command()
                    .args(["exec", &id, "callback-host", "probe"])
                    .output(),
            }
            .unwrap();
            if check.status.success() {
                return;
            }
            assert!(
                Instant::now() < until,
                "not healthy after {within:?}: {}\n{}",
                said(&check),
                logs()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    healthy(Duration::from_secs(300));
    let inspect = |format: &str| engine.run(&["inspect", "--format", format, &id]);
    assert_eq!(inspect("{{.HostConfig.ReadonlyRootfs}}"), "true");
    let pid = inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "10001"),
        "{uid}"
    );

    // OpenIM's request of every command, with the password: answered; every example plugin ran.
    let fixtures = root.join("tests/fixtures/requests");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        let command = path.file_stem().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(&path).unwrap();
        let (status, answer) = callback(
            port,
            &format!("/callbackExample/{command}"),
            &body,
            AUTHORIZATION,
        );
        assert_eq!(status, 200, "{command}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(answer["actionCode"].is_i64(), "{command}: {answer}");
    }
    let (status, _) = callback(port, KICK_PATH, kick_body("G", &["u"], "").as_bytes(), "");
    assert_eq!(status, 401, "the password is required");
    let metrics_ran = |plugin: &str| {
        let metrics = common::Server::get(&format!("127.0.0.1:{port}"), "/metrics").body;
        metrics.lines().any(|l| {
            l.starts_with("callback_host_plugin_calls_total{")
                && l.contains(&format!("plugin=\"{plugin}\""))
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    for plugin in &plugins {
        // Queued after-callbacks run a moment after their answer.
        while !metrics_ran(plugin) {
            assert!(Instant::now() < until, "{plugin} never ran\n{}", logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // SIGTERM mid-load: every request that got an answer got a whole one, and the host exits 0.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let stop = Arc::clone(&stop);
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                let body = kick_body("G", &["u"], &format!("load-{client}"));
                let request = String::from_utf8(openim_request(
                    KICK_PATH,
                    &format!("op-load-{client}"),
                    body.as_bytes(),
                ))
                .unwrap()
                .replacen("\r\n", &format!("\r\n{AUTHORIZATION}"), 1);
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    if stream.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    // A closed connection is the end; an answer is whole and right.
                    let Ok(response) = try_read_response(&mut stream) else {
                        return;
                    };
                    assert_eq!(response.status, 200, "{response:?}");
                    let answer: serde_json::Value = serde_json::from_str(&response.body)
                        .unwrap_or_else(|e| panic!("{e}: {response:?}"));
                    assert!(answer["actionCode"].is_i64(), "{answer}");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = answered.load(Ordering::Relaxed);
    engine.run(&["kill", "--signal", "TERM", &id]);
    let exit = engine.run(&["wait", &id]);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client saw a broken answer");
    }
    assert!(before > 0, "no load before SIGTERM");
    assert_eq!(exit.lines().last(), Some("0"), "exit code\n{}", logs());

    // Restarted on the same volumes: every plugin comes from the compile cache.
    let first_run = logs();
    let compiled = first_run.matches("\"from\":\"compiled\"").count();
    assert_eq!(compiled, plugins.len(), "{first_run}");
    engine.run(&["start", &id]);
    healthy(Duration::from_secs(60));
    let restarted = logs();
    assert_eq!(
        restarted.matches("\"from\":\"cache\"").count(),
        plugins.len(),
        "{restarted}"
    );
    let (status, _) = callback(
        port,
        KICK_PATH,
        kick_body("G", &["u"], "").as_bytes(),
        AUTHORIZATION,
    );
    assert_eq!(status, 200);
    drop(cleanup);
}
