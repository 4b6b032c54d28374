//! Outbound HTTP (`wasi:http/outgoing-handler`, through `wasmtime-wasi-http`): denied unless
//! the plugin's grant lists the origin it calls. Every request is bounded by the call's remaining
//! deadline, the plugin's cap on requests in flight and a cap on the response body.
//!
//! Private, loopback and link-local addresses are refused unless the origin was listed as such an
//! address (`http://127.0.0.1:8080`), or the grant sets `http_private` (an internal service by
//! name). The request goes to the very address that was checked (no second lookup a DNS answer
//! could change in between); HTTPS verifies the listed name with rustls, against the webpki roots
//! and the operator's own CA (`[outbound_http] ca_file`) if one is configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::pki_types as rustls_pki_types;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use crate::config::{HttpGrant, OutboundHttpSettings};
use crate::metrics::Metrics;
pub use crate::origin::{Origin, Scheme};
use crate::outcomes::CapabilityOutcome;

/// `wasi:http`, with the origins it may call in the plugin's grant.
pub const CAPABILITY: super::Capability = super::Capability {
    imports: "wasi:http/",
    status: |plugin, import, grants| match grants.http {
        Some(_) => super::ImportStatus::Granted("http (to the origins listed)"),
        None => super::ImportStatus::Denied(format!(
            "{import} needs the origins it may call in `http = [...]` of [plugin_grants.{plugin}]"
        )),
    },
};

/// One plugin's outbound HTTP: the origins it may call and its bounds, shared by its calls.
pub struct PluginHttp {
    /// The origins listed in its grant.
    origins: Vec<Origin>,
    /// TLS with the trusted roots, shared by every plugin.
    tls: tokio_rustls::TlsConnector,
    /// Names may resolve to private addresses.
    private: bool,
    /// Requests in flight, over all its instances.
    in_flight: Arc<Semaphore>,
    /// Largest response body.
    max_response_bytes: usize,
    /// Counts requests.
    metrics: Arc<Metrics>,
    /// The plugin's name, for the metrics.
    plugin: Arc<str>,
}

impl PluginHttp {
    pub fn new(
        plugin: Arc<str>,
        grant: &HttpGrant,
        settings: OutboundHttpSettings,
        tls: tokio_rustls::TlsConnector,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            origins: grant.origins.clone(),
            tls,
            private: grant.private,
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent)),
            max_response_bytes: settings.max_response_bytes,
            metrics,
            plugin,
        }
    }
}

/// The HTTP side of one instance's store data.
pub struct HttpState {
    /// wasmtime-wasi-http's own state.
    ctx: WasiHttpCtx,
    /// Our checks on each request.
    hooks: Hooks,
}

impl HttpState {
    pub fn new(access: Option<Arc<PluginHttp>>, deadline: Instant) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks { access, deadline },
        }
    }

    /// A reused instance's next call ends at `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.hooks.deadline = deadline;
    }

    /// What wasmtime-wasi-http works on for one call: this state and the store's resources.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table,
            ctx: &mut self.ctx,
        }
    }
}

/// Decides and sends each request of one instance.
struct Hooks {
    /// `None` when the plugin was not granted outbound HTTP.
    access: Option<Arc<PluginHttp>>,
    /// The call's deadline: no request outlives it.
    deadline: Instant,
}

/// Adds `wasi:http` (types and outgoing-handler) for store data that gives an
/// [`HttpState::view`].
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let access = self.access.clone();
        let deadline = self.deadline;
        Box::new(async move {
            let Some(access) = access else {
                return Err(HttpError::HttpRequestDenied);
            };
            // Counted as a timeout if the call is stopped at its deadline while waiting.
            let mut pending = Pending {
                access: Some(&access),
            };
            let result = send(&access, request, deadline).await;
            pending.access = None;
            let outcome = match &result {
                Ok(_) => CapabilityOutcome::Ok,
                Err(HttpError::HttpRequestDenied | HttpError::DestinationIpProhibited) => {
                    CapabilityOutcome::Denied
                }
                Err(HttpError::ConnectionLimitReached) => CapabilityOutcome::Busy,
                Err(HttpError::ConnectionTimeout | HttpError::ConnectionReadTimeout) => {
                    CapabilityOutcome::Timeout
                }
                Err(_) => CapabilityOutcome::Error,
            };
            access.metrics.http_request(&access.plugin, outcome);
            if outcome == CapabilityOutcome::Denied {
                tracing::warn!(plugin = %access.plugin, "outbound request refused: not to an origin its grant lists");
            }
            result
        })
    }
}

/// A request not answered yet: dropped (its call stopped at the deadline), it counts as a
/// timeout.
struct Pending<'a> {
    access: Option<&'a PluginHttp>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(access) = self.access {
            access
                .metrics
                .http_request(&access.plugin, CapabilityOutcome::Timeout);
        }
    }
}

/// Checks `request` against the grant, then sends it within the deadline and the caps.
async fn send(
    access: &PluginHttp,
    request: http::Request<WasiBody>,
    deadline: Instant,
) -> SendResult {
    let (parts, body) = request.into_parts();
    let admitted = match admit(access, &parts.uri, deadline).await {
        Ok(admitted) => admitted,
        Err(error) => {
            // The plugin may still be writing the body: it is read to the end (and dropped) so
            // that the plugin sees this error, not a write to a closed body racing it.
            tokio::spawn(discard(body, deadline));
            return Err(error);
        }
    };
    connect_and_send(
        access,
        http::Request::from_parts(parts, body),
        admitted,
        deadline,
    )
    .await
}

/// Reads `body` to its end (or the deadline) and drops what it reads.
async fn discard(mut body: WasiBody, deadline: Instant) {
    let _ = tokio::time::timeout_at(deadline.into(), async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}

/// Where an admitted request goes, and its place among the plugin's requests in flight.
struct Admitted {
    scheme: Scheme,
    /// The host as the plugin named it (no brackets): TLS verifies it.
    host: String,
    /// The address checked, which the request goes to.
    address: SocketAddr,
    /// Held until the response body is done.
    permit: OwnedSemaphorePermit,
}

/// The grant's decision on `uri`: an origin it lists, within the plugin's requests in flight, to
/// an address it may reach.
async fn admit(
    access: &PluginHttp,
    uri: &http::Uri,
    deadline: Instant,
) -> Result<Admitted, HttpError> {
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(HttpError::HttpRequestUriInvalid),
    };
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    let Some(origin) = access.origins.iter().find(|o| o.allows(scheme, host, port)) else {
        return Err(HttpError::HttpRequestDenied);
    };
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let permit = tokio::time::timeout(remaining(), Arc::clone(&access.in_flight).acquire_owned())
        .await
        .map_err(|_| HttpError::ConnectionLimitReached)?
        .map_err(|_| HttpError::ConnectionLimitReached)?;
    // Where the name points now; private addresses only when the grant allows them.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let literal = bare.parse::<IpAddr>().ok();
    let addresses: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::time::timeout(remaining(), tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|e| HttpError::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let listed_address = literal.is_some() && origin.host == bare.to_lowercase();
    let address = addresses
        .into_iter()
        .find(|a| listed_address || access.private || is_public(a.ip()))
        .ok_or(HttpError::DestinationIpProhibited)?;
    Ok(Admitted {
        scheme,
        host: bare.to_owned(),
        address,
        permit,
    })
}

/// Sends an admitted request to its checked address, within the deadline and the caps.
async fn connect_and_send(
    access: &PluginHttp,
    mut request: http::Request<WasiBody>,
    Admitted {
        scheme,
        host: bare,
        address,
        permit,
    }: Admitted,
    deadline: Instant,
) -> SendResult {
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let uri = request.uri().clone();
    // On the wire the request line carries only the path; the Host header keeps the name.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let left = remaining().max(Duration::from_millis(1));
    let tcp = tokio::time::timeout(left, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match scheme {
        Scheme::Http => Box::new(tcp),
        Scheme::Https => {
            let name = rustls_pki_types::ServerName::try_from(bare)?;
            let tls = tokio::time::timeout(remaining(), access.tls.connect(name, tcp))
                .await
                .map_err(|_| HttpError::ConnectionTimeout)?
                .map_err(HttpError::Tls)?;
            Box::new(tls)
        }
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    // The connection runs on its own task, and never past the deadline.
    let connection = tokio::spawn(tokio::time::timeout(remaining(), connection));
    let response = match tokio::time::timeout(remaining(), sender.send_request(request)).await {
        Err(_) => return Err(HttpError::ConnectionReadTimeout),
        // The connection's task stops at the same deadline, and may do so first: the request
        // then fails as "connection closed", but what ended it was the deadline.
        Ok(Err(_)) if remaining().is_zero() => return Err(HttpError::ConnectionReadTimeout),
        Ok(result) => result?,
    };
    let io = async move {
        match connection.await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(HttpError::from(error)),
            Ok(Err(_)) => Err(HttpError::HttpResponseTimeout),
            Err(_) => Err(HttpError::ConnectionTerminated),
        }
    };
    let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
    let cap = access.max_response_bytes;
    let response = response.map(|body| {
        Capped {
            body: body.boxed_unsync(),
            left: cap,
            cap,
            _permit: permit,
        }
        .boxed_unsync()
    });
    Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
}

/// A TCP or TLS stream to an upstream.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// The TLS connector of outbound requests: the webpki roots, and the PEM certificates of
/// `ca_file` (an operator's own CA) when given.
pub fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use anyhow::Context as _;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    if let Some(path) = ca_file {
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading [outbound_http] ca_file {}", path.display()))?;
        anyhow::ensure!(
            !certificates.is_empty(),
            "{} holds no PEM certificate",
            path.display()
        );
        for certificate in certificates {
            roots
                .add(certificate)
                .with_context(|| format!("a certificate of {}", path.display()))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Whether a plugin may reach `ip` without a grant for private addresses.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// A response body that fails once it passes `cap` bytes; it holds the plugin's in-flight
/// permit until it is dropped.
struct Capped {
    body: WasiBody,
    left: usize,
    cap: usize,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(data)) = frame
            .as_ref()
            .map(|f| f.as_ref().map(http_body::Frame::data_ref))
            && let Some(data) = data
        {
            if data.len() > self.left {
                let cap = self.cap as u64;
                return std::task::Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                    cap,
                )))));
            }
            self.left -= data.len();
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}
