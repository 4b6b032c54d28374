//! The HTTP/1.1 server: accepts connections on a listener it is given (tests bind port 0) until
//! the shutdown future resolves, then lets in-flight requests finish.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::http::connection;
use crate::http::connections::{Activity, Connections};
use crate::http::routing::{App, Routes};

/// How long in-flight requests get to finish after shutdown was asked for (OpenIM's own cap).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `routes` of `app` on `listener` (over TLS when `tls` is given) until `shutdown`
/// resolves, then drains in-flight requests.
///
/// At most `max_connections` connections are served at once, at most
/// `max_connections_per_source` of them from one address. At a cap, the connection that has
/// waited longest without a request is closed to make room (see [`crate::http::connections`]);
/// when every one is in a request, new connections wait in the kernel's listen backlog while the
/// open ones are served. A source no configured network allows is closed at accept.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    routes: Routes,
    tls: Option<TlsAcceptor>,
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
    let connections = Arc::new(Connections::default());
    tokio::pin!(shutdown);
    loop {
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
        if !app.admits(peer.ip(), routes) {
            app.metrics.connection_closed(connection::Closed::Network);
            continue;
        }
        // One source may not hold more than its share: its own longest-waiting connection
        // makes room, or, when all of them are in a request, the new one is closed.
        if connections.from_source(peer.ip()) >= limits.max_connections_per_source as usize
            && !connections.evict_oldest_waiting(Some(peer.ip()))
        {
            tracing::debug!(%peer, "connection closed: its source is at max_connections_per_source");
            app.metrics.connection_closed(connection::Closed::SourceCap);
            continue;
        }
        // At the cap, the connection that has waited longest without a request makes room;
        // when every one is in a request, the new one waits for a slot.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                connections.evict_oldest_waiting(None);
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let registered = connections.register(peer.ip());
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let http = Arc::clone(&http);
        let closing = closing_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let metrics = Arc::clone(&app.metrics);
            let _open = metrics.connection_opened();
            let service = |activity: Arc<Activity>| {
                service_fn(move |request| {
                    let app = Arc::clone(&app);
                    let activity = Arc::clone(&activity);
                    Box::pin(async move {
                        activity.begin();
                        let response = app.handle(routes, peer.ip(), request).await;
                        activity.end();
                        Ok::<_, std::convert::Infallible>(response)
                    })
                })
            };
            let serving = connection::Serving {
                http: &http,
                peer,
                limits,
                metrics: &metrics,
                registered: &registered,
                shutdown: closing,
            };
            match tls {
                None => connection::serve(serving, stream, service).await,
                Some(tls) => {
                    // The handshake is part of reading the request: the same timeout bounds it.
                    let stream =
                        match tokio::time::timeout(limits.read_timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                metrics.connection_closed(connection::Closed::ReadTimeout);
                                return;
                            }
                        };
                    connection::serve(serving, stream, service).await;
                }
            }
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

/// The TLS acceptor of a PEM certificate chain and private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no PEM certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate does not match its key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
