//! The HTTP/1.1 server: accepts connections on a listener it is given (tests bind port 0) until
//! the shutdown future resolves, then lets in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::http::connection;
use crate::http::routing::{App, Routes};

/// How long in-flight requests get to finish after shutdown was asked for (OpenIM's own cap).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `routes` of `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
///
/// At most `max_connections` connections are served at once: beyond it the loop stops accepting,
/// so new connections wait in the kernel's listen backlog while the open ones are served.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) {
    let limits = app.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (closing, closing_rx) = watch::channel(false);
    let mut http = http1::Builder::new();
    // hyper answers a bare 431 and closes beyond these; up to the configured caps (a quarter of
    // hyper's) the app answers a 431 that says what is wrong. The read timeout is the watchdog's.
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(limits.max_headers * 4)
        .max_header_size(limits.max_header_bytes * 4)
        .max_buf_size((limits.max_header_bytes * 4).max(8192))
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let http = Arc::clone(&http);
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let metrics = Arc::clone(&app.metrics);
            let _open = metrics.connection_opened();
            connection::serve(&http, stream, peer, limits, &metrics, closing, |activity| {
                service_fn(move |request| {
                    let app = Arc::clone(&app);
                    let activity = Arc::clone(&activity);
                    Box::pin(async move {
                        activity.begin();
                        let response = app.handle(routes, request).await;
                        activity.end();
                        Ok::<_, std::convert::Infallible>(response)
                    })
                })
            })
            .await;
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = closing.send(true);
    let all = limits.max_connections;
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after {DRAIN_TIMEOUT:?}; exiting anyway");
    }
}
