//! The labels of the host's metrics. Each outcome or reason a label names is a type of
//! [`crate::outcomes`], written in a label only through its `as_str`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::outcomes::{
    ApiOutcome, CallOutcome, CapabilityOutcome, Closed, Rejection, ReloadResult, RequestOutcome,
    ShadowVerdict, StockTake,
};

/// Labels of a request-level metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The callback command (or `unknown` when the path named none).
    pub command: &'static str,
    /// What the request came to.
    pub outcome: RequestOutcome,
}

/// Labels of a plugin-call metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Shared with the plugin: labelling a call allocates nothing.
    pub plugin: Arc<str>,
    pub outcome: CallOutcome,
}

/// Labels of a plugin's key-value call or outbound HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabels {
    pub plugin: Arc<str>,
    pub outcome: CapabilityOutcome,
}

/// Labels of `callback_host_openim_api_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCallLabels {
    /// The plugin that made the call.
    pub plugin: Arc<str>,
    /// The operation's name in the interface (`send-message`...).
    pub operation: &'static str,
    /// What it came to.
    pub outcome: ApiOutcome,
}

/// Labels of `callback_host_openim_api_token_fetches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenFetchLabels {
    /// `ok`, or why no token came back.
    pub outcome: ApiOutcome,
}

/// Labels naming a plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: Arc<str>,
}

/// Labels of a take from a plugin's stock of instances built ahead.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StockLabels {
    pub plugin: Arc<str>,
    /// Whether the call found an instance ready.
    pub take: StockTake,
}

/// Labels of a callback rejected before any plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectedLabels {
    pub reason: Rejection,
}

/// Labels naming a command.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub command: &'static str,
}

/// Labels of what a plugin handles.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlesLabels {
    pub plugin: Arc<str>,
    /// OpenIM's name of the command.
    pub command: &'static str,
}

/// Labels of a shadow plugin's verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    pub command: &'static str,
    pub plugin: Arc<str>,
    pub verdict: ShadowVerdict,
}

/// Labels of a connection the server closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub reason: Closed,
}

/// Labels of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: ReloadResult,
}

/// Makes latency histograms: 50 µs to ~13 s.
#[derive(Clone)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
    }
}

/// Makes fuel histograms: 1k to ~1.1·10¹⁰ instructions.
#[derive(Clone)]
pub struct FuelBuckets;

impl MetricConstructor<Histogram> for FuelBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(1000.0, 4.0, 13))
    }
}

/// Label values that are one of a type's `as_str` names: written in metrics only through it.
macro_rules! label_value {
    ($($label:ty),+) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $label {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                use std::fmt::Write as _;
                encoder.write_str(self.as_str())
            }
        }
    )+};
}

label_value!(
    RequestOutcome,
    Rejection,
    StockTake,
    ApiOutcome,
    CallOutcome,
    CapabilityOutcome,
    ShadowVerdict,
    Closed,
    ReloadResult
);
