//! One client connection, from accept to close, under the limits of [`HttpLimits`]: a client
//! that trickles a request is cut off, an idle keep-alive connection is closed, and a connection
//! that ends with unread bytes (an early 413) is closed gracefully so the client reads the answer.
//!
//! hyper's own header timer also runs while a keep-alive connection is idle, which would make the
//! idle timeout as short as the header timeout; so the connection's phase is tracked here (by
//! the bytes it reads and the requests it serves) and one watchdog applies both.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::HttpLimits;
use crate::http::connections::{Activity, Registered};
use crate::metrics::Metrics;
pub use crate::outcomes::Closed;

/// How long a closing connection keeps reading (and discarding) what the client still sends, so
/// that the kernel does not answer it with a reset that can destroy the answer in flight.
const LINGER: Duration = Duration::from_secs(2);
/// The most a closing connection reads and discards.
const LINGER_BYTES: usize = 4 << 20;

/// A client stream (TCP or TLS) that tells its connection's [`Activity`] when request bytes
/// arrive.
struct Watched<T> {
    /// The client's stream.
    stream: T,
    /// Told of every read that returns bytes.
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// What serving one connection needs besides its stream (plain or TLS) and its service.
pub struct Serving<'a> {
    /// hyper's HTTP/1.1 settings, shared by every connection.
    pub http: &'a http1::Builder,
    /// The client's address, for the log.
    pub peer: SocketAddr,
    /// The timeouts.
    pub limits: HttpLimits,
    /// Counts the connections closed, and why.
    pub metrics: &'a Metrics,
    /// The connection's place among the open ones: its activity, and the eviction signal.
    pub registered: &'a Registered,
    /// Turns true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves one connection until it closes, shutdown is asked for, a timeout ends it, or it is
/// evicted to make room (see [`crate::http::connections`]). `service` is made with the
/// connection's [`Activity`] and must call `begin`/`end` around each request.
pub async fn serve<T, S, F>(serving: Serving<'_>, stream: T, make_service: F)
where
    F: FnOnce(Arc<Activity>) -> S,
    S: Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<http_body_util::Full<bytes::Bytes>>,
            Error = std::convert::Infallible,
        > + Unpin,
    S::Future: Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Serving {
        http,
        peer,
        limits,
        metrics,
        registered,
        mut shutdown,
    } = serving;
    let activity = Arc::clone(&registered.activity);
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let mut connection = http.serve_connection(io, make_service(Arc::clone(&activity)));
    let mut closing = *shutdown.borrow();
    if closing {
        Pin::new(&mut connection).graceful_shutdown();
    }
    let result = loop {
        let timeout = activity.deadline(&limits);
        let wake = timeout.map_or_else(|| Instant::now() + limits.idle_timeout, |(at, _)| at);
        tokio::select! {
            result = poll_fn(|cx| connection.poll_without_shutdown(cx)) => break result,
            () = tokio::time::sleep_until(wake) => {
                // The phase may have changed while asleep: only a timeout still due counts.
                match activity.deadline(&limits) {
                    Some((at, Closed::ReadTimeout)) if at <= Instant::now() => {
                        tracing::debug!(%peer, "closing a connection that sent no request in time");
                        metrics.connection_closed(Closed::ReadTimeout);
                        return;
                    }
                    Some((at, Closed::IdleTimeout)) if at <= Instant::now() && !closing => {
                        metrics.connection_closed(Closed::IdleTimeout);
                        closing = true;
                        Pin::new(&mut connection).graceful_shutdown();
                    }
                    _ => {}
                }
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                Pin::new(&mut connection).graceful_shutdown();
            }
            () = registered.evict.notified() => {
                // Chosen while it had no request; if one has begun since, it is answered first.
                metrics.connection_closed(Closed::Evicted);
                if activity.waiting_since().is_some() {
                    tracing::debug!(%peer, "closing a connection without a request to make room");
                    return;
                }
                closing = true;
                Pin::new(&mut connection).graceful_shutdown();
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
        return;
    }
    linger(connection.into_parts().io.into_inner().stream).await;
}

/// Closes a connection gracefully: the answer is sent (FIN), then what the client still sends is
/// read and discarded for a moment, so that closing with unread bytes does not reset the
/// connection before the client has read the answer.
async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
