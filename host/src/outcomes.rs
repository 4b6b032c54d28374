//! What things came to: one enum per outcome, each with its label written once (`as_str`), in
//! metrics, logs, answers' `errDlt` and the console alike. The ground floor: this module imports
//! nothing of the host, and every room that decides an outcome names it from here; `metrics`
//! only counts them.

/// What one callback request came to: the `outcome` of `callback_host_requests_total`, of the
/// console's recent callbacks and of its charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// Every plugin let it go on (possibly with changes).
    Ok,
    /// A plugin refused it.
    Refused,
    /// No plugin handles the command.
    NoPlugin,
    /// A plugin failed and the `refuse` policy answered; why it failed.
    Failed(FailureKind),
    /// A `queued` after-callback, stored: the queue's workers deliver it.
    Queued,
    /// A queued event, delivered to its plugins by the queue's workers.
    Delivered,
    /// Rejected before any plugin, and why (OpenIM reads the 4xx answer as "go on").
    Rejected(Rejection),
    /// The client left before the answer.
    Abandoned,
}

impl RequestOutcome {
    /// The label: in metrics, logs and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::NoPlugin => "no_plugin",
            Self::Failed(kind) => kind.as_str(),
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Rejected(why) => why.as_str(),
            Self::Abandoned => "abandoned",
        }
    }
}

/// How a plugin call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// It answered "go on" (with changes or not).
    Ok,
    /// It answered a refusal.
    Refused,
    /// It failed, and why.
    Failed(FailureKind),
}

impl CallOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Failed(kind) => kind.as_str(),
        }
    }
}

/// What a plugin's use of a capability (a key-value call, an outbound HTTP request) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityOutcome {
    /// Done.
    Ok,
    /// Not granted: the bucket or origin is not in the plugin's grant.
    Denied,
    /// Outbound HTTP: the plugin's connections are all in use.
    Busy,
    /// The call's deadline passed.
    Timeout,
    /// Key-value: the bucket is full, or the key or value too large.
    Quota,
    /// The backend or the destination failed.
    Error,
}

impl CapabilityOutcome {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Busy => "busy",
            Self::Timeout => "timeout",
            Self::Quota => "quota",
            Self::Error => "error",
        }
    }
}

/// What a plugin's OpenIM API call came to (`callback_host_openim_api_calls_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiOutcome {
    /// OpenIM did it.
    Ok,
    /// OpenIM answered an error (its errCode goes to the plugin).
    Openim,
    /// The operation is not in the plugin's grant.
    NotGranted,
    /// Over the plugin's `openim_api_rate`.
    RateLimited,
    /// The call's deadline (or `[openim_api] timeout_ms`) passed.
    Timeout,
    /// OpenIM's API could not be reached or did not answer in its envelope.
    Unavailable,
    /// No `[openim_api]` section.
    NotConfigured,
    /// OpenIM refused the host's sign-in (its admin user or secret is wrong): the call was not
    /// made.
    SignInRefused,
    /// Past the plugin's `openim_api_calls_per_callback` in this one callback (the plugin is told
    /// `rate-limited`).
    CallCap,
}

impl ApiOutcome {
    /// Every outcome, in the order [`ApiCallNotes`] counts them.
    pub const ALL: [Self; 9] = [
        Self::Ok,
        Self::Openim,
        Self::NotGranted,
        Self::RateLimited,
        Self::Timeout,
        Self::Unavailable,
        Self::NotConfigured,
        Self::SignInRefused,
        Self::CallCap,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Openim => "openim_error",
            Self::NotGranted => "not_granted",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::NotConfigured => "not_configured",
            Self::SignInRefused => "sign_in_refused",
            Self::CallCap => "call_cap",
        }
    }

    /// Its place in [`ApiOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a plugin call failed, as a cause: the `outcome` of its metrics, the `errDlt` of a
/// `refuse` policy's answer, the console's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Out of time: its deadline passed, in the guest or in a host call, or none was left.
    Timeout,
    /// Out of fuel (instructions).
    Fuel,
    /// A memory grew past its cap.
    Memory,
    /// A table grew past its cap.
    Table,
    /// The memory budget of all instances had no room.
    MemoryBudget,
    /// The guest's stack overflowed.
    StackOverflow,
    /// The guest trapped (a panic, an unreachable, a host call it got wrong).
    Trap,
    /// The instance could not be made, or the request does not fit its interface.
    Instantiate,
    /// Its answer broke the rules of the command's answers.
    InvalidAnswer,
    /// The request could not be read for it.
    UnparsableRequest,
    /// The plugin asked to be retried later (`openim-api.retry-later`).
    RetryRequested,
    /// The host could not call it (a fault of the host's).
    Host,
}

impl FailureKind {
    /// The label: in metrics, logs and `errDlt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Fuel => "fuel",
            Self::Memory => "memory",
            Self::Table => "table",
            Self::MemoryBudget => "memory_budget",
            Self::StackOverflow => "stack_overflow",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
            Self::InvalidAnswer => "invalid_answer",
            Self::UnparsableRequest => "unparsable_request",
            Self::RetryRequested => "retry_requested",
            Self::Host => "host_error",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call found in its plugin's stock.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StockTake {
    /// An instance built ahead: the call did not wait for one.
    Hit,
    /// None ready: the call built its own.
    Miss,
}

impl StockTake {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// Why a callback was rejected before any plugin, as the operator fixes it. OpenIM reads every
/// such answer as "go on", so these are before-callbacks that checked nothing.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// Wrong or missing Basic credentials, or a URL without the secret path segment: OpenIM's
    /// webhook `url` does not match `[auth]`.
    Unauthenticated,
    /// The source address is not in `[auth] allow`.
    ForbiddenNetwork,
    /// Not a callback: an unknown command or a method other than POST (a wrong webhook `url`).
    UnknownPath,
    /// The request could not be read as its command's callback: headers, size, JSON, shape.
    BadBody,
}

impl Rejection {
    /// The label in `/metrics`, the log and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::ForbiddenNetwork => "forbidden_network",
            Self::UnknownPath => "unknown_path",
            Self::BadBody => "bad_body",
        }
    }
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Closed {
    /// The client did not send a request's headers within the read timeout.
    ReadTimeout,
    /// The connection was idle past the idle timeout.
    IdleTimeout,
    /// The server (or the connection's source) was at its connection cap and this connection,
    /// without a request, had waited longest: closed to make room.
    Evicted,
    /// Its source already held `max_connections_per_source`, none of them without a request.
    SourceCap,
    /// Its source address is not allowed on this listener.
    Network,
}

impl Closed {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadTimeout => "read_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Evicted => "evicted",
            Self::SourceCap => "source_cap",
            Self::Network => "forbidden_network",
        }
    }
}

/// What a shadow plugin's answer was, next to the answer given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShadowVerdict {
    /// The same answer.
    Agree,
    /// Another answer (logged, and recorded when recording is on).
    Disagree,
    /// The shadow plugin failed.
    Failed,
    /// Not run: too many shadow calls in flight (live traffic comes first).
    Skipped,
}

impl ShadowVerdict {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agree => "agree",
            Self::Disagree => "disagree",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// What a change in the plugin directory did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReloadResult {
    /// A new or changed file is in force.
    Loaded,
    /// A file went, and its plugin with it.
    Removed,
    /// A new or changed file did not load (its previous version, if any, still serves).
    Failed,
}

impl ReloadResult {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Removed => "removed",
            Self::Failed => "failed",
        }
    }
}
