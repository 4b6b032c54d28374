//! `callback-host probe URL`: GET an admin endpoint of a running host, print the body, succeed
//! only on 200 (the container image has no curl; its health check is this).

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::runtime;

/// How long the probe waits for the whole answer, connecting included.
const PATIENCE: Duration = Duration::from_secs(2);
/// The most of the body it reads (the admin endpoints answer a few KiB).
const MAX_BODY: usize = 1 << 20;

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
