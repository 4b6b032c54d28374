//! The real servers the tests and the benchmark start on 127.0.0.1, each on a free port and
//! stopped when dropped: [`Redis`] (the shared key-value store and queue of replicas) and
//! [`Haproxy`] (the load balancer in front of them). Both come from Debian's packages
//! (`scripts/install-toolchains.sh` installs them).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `redis-server` without persistence.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
}

impl Redis {
    /// Starts it and waits until it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.write_all(b"PING\r\n");
                let mut buf = [0u8; 16];
                if stream
                    .read(&mut buf)
                    .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return Ok(redis);
                }
            }
            if Instant::now() > until {
                bail!("redis-server did not answer within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy balancing HTTP over replicas, configured as the README's "Scaling out" advises:
/// round robin, `/readyz` checked every 300 ms (one failure takes a replica out, two passes put
/// it back), and a request whose replica refused the connection or closed it without an answer
/// sent again to another one (`retry-on conn-failure empty-response`, `option redispatch`).
pub struct Haproxy {
    child: Child,
    /// `127.0.0.1:PORT`, where clients call.
    pub addr: String,
    /// Keeps the config file.
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// The config for replicas at `servers` (`host:port`, serving `/readyz`), listening on `port`.
    pub fn config(port: u16, servers: &[String]) -> String {
        let mut config = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n\
             \x20 timeout server 30s\n  timeout check 1s\n  retries 3\n  option redispatch 1\n\
             \x20 retry-on conn-failure empty-response\n\
             frontend callbacks\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n\
             \x20 http-check expect status 200\n  default-server inter 300ms fall 1 rise 2\n"
        );
        for (i, server) in servers.iter().enumerate() {
            config.push_str(&format!("  server replica{i} {server} check\n"));
        }
        config
    }

    /// Starts HAProxy in front of `servers` and waits until it accepts connections and sees every
    /// replica up.
    pub fn start(servers: &[String]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, Self::config(port, servers))?;
        let child = Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting haproxy (apt-get install haproxy)")?;
        let proxy = Self {
            child,
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&proxy.addr).is_err() {
            if Instant::now() > until {
                bail!("haproxy did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Two health checks 300 ms apart bring each replica up.
        std::thread::sleep(Duration::from_millis(800));
        Ok(proxy)
    }
}

impl Haproxy {
    /// Its process id (the benchmark reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian installs HAProxy in /usr/sbin, which a non-root PATH may lack.
fn haproxy_binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/haproxy");
    if sbin.exists() {
        sbin.to_owned()
    } else {
        PathBuf::from("haproxy")
    }
}
