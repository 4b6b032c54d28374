//! Whether this replica can answer rightly: the stores its plugins and its queue need, probed
//! for `/readyz` and for the `callback_host_ready` gauge of `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::http::respond;
use crate::http::routing::App;

/// What a readiness probe found.
pub(super) struct Probe {
    /// Every store this replica needs answered.
    pub ready: bool,
    /// Events in the queue, when it answered.
    pub queue_depth: Option<u64>,
    /// Age of its oldest event.
    pub queue_oldest: Option<Duration>,
    /// Why the queue did not answer.
    pub queue_error: Option<String>,
    /// Why the key-value store did not answer.
    pub keyvalue_error: Option<&'static str>,
}

impl App {
    /// `/readyz`: 200 when this replica can answer rightly, 503 when a store its plugins or its
    /// queue need cannot be reached (an answered event would be lost, a shared count wrong).
    /// The body shows the plugin set (one fingerprint, each file's digest, since when), so a
    /// rollout or a hot reload can be watched across replicas.
    pub(super) async fn readiness(&self) -> Response<Full<Bytes>> {
        let registry = self.dispatcher.plugins().get();
        let mut body = serde_json::json!({
            "plugin_set": registry.fingerprint(),
            "plugin_set_since_ms": registry.since_ms(),
            "plugins": registry.names(),
            "plugin_sha256": registry.digests(),
            "handles": registry.handles(),
        });
        let probe = self.probe().await;
        if let Some(depth) = probe.queue_depth {
            body["queue_depth"] = depth.into();
        }
        if let Some(error) = &probe.queue_error {
            body["queue_error"] = error.as_str().into();
        }
        if let Some(error) = probe.keyvalue_error {
            body["keyvalue_error"] = error.into();
        }
        body["ready"] = probe.ready.into();
        let status = if probe.ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        respond::with_body(status, "application/json", body.to_string())
    }

    /// Whether the stores this replica needs answer: what `/readyz` says, and the
    /// `callback_host_ready` gauge (set here, so `/metrics` carries it for alerts).
    pub(super) async fn probe(&self) -> Probe {
        // A probe waits about a second: a store slower than that counts as not answering.
        const PATIENCE: Duration = Duration::from_millis(800);
        let mut probe = Probe {
            ready: true,
            queue_depth: None,
            queue_oldest: None,
            queue_error: None,
            keyvalue_error: None,
        };
        if let Some(queue) = &self.queue {
            match tokio::time::timeout(PATIENCE, queue.stats()).await {
                Ok(Ok((depth, oldest))) => {
                    probe.queue_depth = Some(depth);
                    probe.queue_oldest = oldest;
                }
                Ok(Err(error)) => probe.queue_error = Some(format!("{error:#}")),
                Err(_) => {
                    probe.queue_error = Some(format!(
                        "the queue's store did not answer within {} ms",
                        PATIENCE.as_millis()
                    ));
                }
            }
        }
        if let Some(keyvalue) = &self.keyvalue
            && !tokio::time::timeout(PATIENCE, keyvalue.healthy())
                .await
                .unwrap_or(false)
        {
            probe.keyvalue_error = Some("the key-value store does not answer");
        }
        probe.ready = probe.queue_error.is_none() && probe.keyvalue_error.is_none();
        self.metrics.ready.set(i64::from(probe.ready));
        probe
    }
}
