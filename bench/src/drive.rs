//! The load generator: keep-alive hyper clients driving a server at a pace or back to back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::workload::Call;

/// One keep-alive HTTP/1.1 connection to `addr` (no Nagle delay), driven in a task of its own.
pub(crate) async fn client(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A keep-alive HTTP/1.1 connection to a server under test.
pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Sends `request` on `sender` and returns the body of the answer.
pub(crate) async fn exchange(
    sender: &mut Sender,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<Bytes> {
    let response = sender.send_request(request).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}

/// Runs `connections` keep-alive connections for warm-up plus the measured time; every answer is
/// checked against the expected decision.
pub(crate) async fn drive(
    addr: SocketAddr,
    load: Load,
    bodies: Arc<Vec<Call>>,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(load.warmup);
    let until = measure_from + Duration::from_secs_f64(load.seconds);
    let mut tasks = Vec::new();
    for c in 0..load.connections {
        let bodies = Arc::clone(&bodies);
        tasks.push(tokio::spawn(async move {
            let mut sender = client(addr).await?;
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut count = 0u64;
            let mut i = c;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let call = &bodies[i % bodies.len()];
                let body = &call.body;
                i += 1;
                let request = http::Request::post(call.path)
                    .header("host", "127.0.0.1:10006")
                    .header("user-agent", "Go-http-client/1.1")
                    .header("content-type", "application/json; charset=utf-8")
                    .header("operationid", "bench")
                    .header("content-length", body.len())
                    .body(Full::new(body.clone()))?;
                let answer = exchange(&mut sender, request).await?;
                if !call.expect.holds(&answer) {
                    bail!(
                        "wrong answer (expected {:?}): {}",
                        call.expect,
                        String::from_utf8_lossy(&answer)
                    );
                }
                if now >= measure_from {
                    histogram.record(now.elapsed().as_micros() as u64)?;
                    count += 1;
                }
                if !load.pace.is_zero() {
                    tokio::time::sleep_until((now + load.pace).into()).await;
                }
            }
            Ok::<_, anyhow::Error>((count, histogram))
        }));
    }
    let mut total = 0u64;
    let mut merged = Histogram::<u64>::new(3)?;
    for task in tasks {
        let (count, histogram) = task.await??;
        total += count;
        merged.add(&histogram)?;
    }
    Ok((total as f64 / load.seconds, merged))
}

/// How [`drive`] loads a server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Concurrent keep-alive connections.
    pub(crate) connections: usize,
    /// Unmeasured seconds first.
    pub(crate) warmup: f64,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// From the start of one request to the start of the next on a connection (zero: back to
    /// back).
    pub(crate) pace: Duration,
}
