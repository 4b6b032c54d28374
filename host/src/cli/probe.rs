//! `callback-host probe [URL]`: GET an admin endpoint of a running host, print the body, succeed
//! only on 200 (the container image has no curl; its health check is this, without a URL: it
//! finds `/healthz` from the same settings `serve` reads).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{ConfigFile, runtime};

/// How long the probe waits for the whole answer, connecting included.
const PATIENCE: Duration = Duration::from_secs(2);
/// The most of the body it reads (the admin endpoints answer a few KiB).
const MAX_BODY: usize = 1 << 20;

/// The `/healthz` url of a host started with the same settings: its admin address, else its
/// callback address (from the flag or the config file), else the default; an address on every
/// interface is probed on loopback.
pub fn healthz(
    admin_listen: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    config: &ConfigFile,
) -> anyhow::Result<String> {
    let configured = match admin_listen.or(listen) {
        Some(addr) => addr,
        None => config.load()?.listen,
    };
    let ip = match configured.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/healthz",
        SocketAddr::new(ip, configured.port())
    ))
}

/// Prints the body of `GET url` and fails unless it answered 200.
pub fn probe(url: &str) -> anyhow::Result<()> {
    let (status, body) = runtime()?.block_on(get(url))?;
    println!("{body}");
    anyhow::ensure!(status == 200, "{url} answered {status}");
    Ok(())
}

/// The status and body of `GET url` (plain HTTP, with hyper's client), within [`PATIENCE`].
async fn get(url: &str) -> anyhow::Result<(u16, String)> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a url"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "{url:?}: only http:// urls"
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let answer = async {
        let response = client
            .get(uri)
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer of {url}: {e}"))?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(PATIENCE, answer)
        .await
        .with_context(|| format!("{url} did not answer within {PATIENCE:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_follows_the_address_serve_would_use() {
        let addr = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(
            healthz(None, None, &ConfigFile::Defaults).unwrap(),
            "http://127.0.0.1:10006/healthz"
        );
        assert_eq!(
            healthz(None, addr("0.0.0.0:10077"), &ConfigFile::Defaults).unwrap(),
            "http://127.0.0.1:10077/healthz"
        );
        assert_eq!(
            healthz(
                addr("[::]:10007"),
                addr("0.0.0.0:10077"),
                &ConfigFile::Defaults
            )
            .unwrap(),
            "http://[::1]:10007/healthz"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "listen = \"10.1.2.3:9000\"\n[auth]\nopen = true\n").unwrap();
        assert_eq!(
            healthz(None, None, &ConfigFile::Given(config)).unwrap(),
            "http://10.1.2.3:9000/healthz"
        );
    }
}
