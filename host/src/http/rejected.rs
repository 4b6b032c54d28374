//! Callbacks rejected before any plugin, made loud. OpenIM reads every 4xx answer of ours as "go
//! on" (its client never checks the status, and our answer says `actionCode 1`), so a wrong
//! password, a wrong URL or a body the host cannot read switches every before-callback off
//! without a sound. Each rejection is counted by reason in `/metrics`, shown by the console per
//! source and reason, and logged once per source and reason (then again every
//! [`LOG_EVERY`], with the count since), not once per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::errors::RequestError;
use crate::metrics::Metrics;
use crate::outcomes::Rejection;
use crate::untrusted::Untrusted;

/// How often the log repeats a (source, reason) that keeps being rejected.
pub const LOG_EVERY: Duration = Duration::from_secs(600);

/// Sources and reasons kept for the console and the log; past it, new pairs are counted in
/// `/metrics` only (one client cannot grow the map, or the log, without bound).
const KEPT: usize = 256;

/// What the operator should check for a rejection of `reason`.
pub fn hint(reason: Rejection) -> &'static str {
    match reason {
        Rejection::Unauthenticated => {
            "OpenIM's webhook url (webhooks.yml) must carry the user:pass@ and the secret path segment set in [auth]"
        }
        Rejection::ForbiddenNetwork => "add OpenIM's address to [auth] allow",
        Rejection::UnknownPath => {
            "OpenIM's webhook url must be this host's address and a path prefix (e.g. http://host:8080/callbackExample)"
        }
        Rejection::BadBody => "the sender is not OpenIM, or a proxy changes its requests",
    }
}

/// The request a rejection is about, for its log line.
pub struct Rejected<'a> {
    /// Who sent it.
    pub peer: IpAddr,
    /// Its path (with a secret segment shown as such by the caller).
    pub path: &'a str,
    /// Its `operationID` header.
    pub operation_id: &'a str,
}

/// One source's rejections for one reason.
struct Seen {
    /// Rejections since start.
    count: u64,
    /// When the last one came (ms since the epoch), for the console.
    last_ms: u64,
    /// What was wrong the last time (escaped and capped: the path and body are the client's).
    last_error: String,
    /// When the log last said it, to repeat it every [`LOG_EVERY`] only.
    logged: Instant,
    /// Rejections since the log last said it.
    unlogged: u64,
}

/// The rejections seen, by source and reason.
#[derive(Default)]
pub struct Rejections {
    seen: Mutex<HashMap<(IpAddr, Rejection), Seen>>,
}

/// Whether a rejection is to be logged now.
#[derive(Debug, PartialEq, Eq)]
pub enum Log {
    /// The first from this source for this reason.
    First,
    /// The first after [`LOG_EVERY`]: this many came since the log last said it.
    Again(u64),
    /// Said lately.
    Quiet,
}

impl Rejections {
    /// Notes one rejection of `peer`'s for `reason`; says whether to log it.
    pub fn note(&self, peer: IpAddr, reason: Rejection, error: &RequestError) -> Log {
        self.note_at(peer, reason, error, Instant::now())
    }

    fn note_at(&self, peer: IpAddr, reason: Rejection, error: &RequestError, now: Instant) -> Log {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let last_error = Untrusted::capped(&error.to_string(), 300).to_string();
        let last_ms = crate::util::unix_ms();
        if let Some(entry) = seen.get_mut(&(peer, reason)) {
            entry.count += 1;
            entry.last_ms = last_ms;
            entry.last_error = last_error;
            entry.unlogged += 1;
            if now.duration_since(entry.logged) < LOG_EVERY {
                return Log::Quiet;
            }
            let since = entry.unlogged;
            entry.logged = now;
            entry.unlogged = 0;
            return Log::Again(since);
        }
        if seen.len() >= KEPT {
            return Log::Quiet;
        }
        seen.insert(
            (peer, reason),
            Seen {
                count: 1,
                last_ms,
                last_error,
                logged: now,
                unlogged: 0,
            },
        );
        Log::First
    }

    /// Counts a rejected request in `metrics`, notes it, and logs it once per source and reason
    /// (see the module docs); returns the reason.
    pub fn reject(
        &self,
        metrics: &Metrics,
        request: &Rejected<'_>,
        error: &RequestError,
    ) -> Rejection {
        let Rejected {
            peer,
            path,
            operation_id,
        } = *request;
        let reason = error.rejection();
        metrics.rejected(reason);
        let (outcome, kind, label) = (error.outcome().as_str(), error.kind(), reason.as_str());
        match self.note(peer, reason, error) {
            Log::First => {
                tracing::warn!(%path, %peer, operation_id, outcome, kind, reason = label,
                    "rejected: {error}. OpenIM reads this answer as go on: {}. \
                     Logged once per source and reason (then every {} min); \
                     counted in callback_host_rejected_requests_total",
                    hint(reason), LOG_EVERY.as_secs() / 60);
            }
            Log::Again(since) => {
                tracing::warn!(%path, %peer, operation_id, outcome, kind, reason = label,
                    "rejected: {error} ({since} rejections from {peer} for this reason since it was last logged)");
            }
            Log::Quiet => {
                tracing::debug!(%path, %peer, operation_id, outcome, kind, reason = label,
                    "rejected: {error}");
            }
        }
        reason
    }

    /// Counts, notes and logs (as [`Rejections::reject`]) a connection closed at accept.
    pub fn at_accept(&self, metrics: &Metrics, peer: IpAddr, error: &RequestError) {
        let reason = error.rejection();
        metrics.rejected(reason);
        match self.note(peer, reason, error) {
            Log::First | Log::Again(_) => {
                tracing::warn!(%peer, reason = reason.as_str(),
                    "connection closed at accept: {error}. If this is OpenIM, {}. \
                     Logged once per source (then every {} min); counted in \
                     callback_host_rejected_requests_total",
                    hint(reason), LOG_EVERY.as_secs() / 60);
            }
            Log::Quiet => {
                tracing::debug!(%peer, "connection closed at accept: {error}");
            }
        }
    }

    /// For the console: each source and reason, most recent first.
    pub fn summary(&self) -> Value {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = seen.iter().collect();
        rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.last_ms));
        rows.iter()
            .map(|((source, reason), s)| {
                json!({
                    "source": source.to_string(),
                    "reason": reason.as_str(),
                    "hint": hint(*reason),
                    "count": s.count,
                    "last_ms": s.last_ms,
                    "last_error": s.last_error,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::access::Denied;

    #[test]
    fn logs_once_per_source_and_reason_then_again_after_the_interval_with_the_count() {
        let rejections = Rejections::default();
        let error = RequestError::Denied(Denied::Credentials);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let start = Instant::now();
        let reason = error.rejection();
        assert_eq!(reason, Rejection::Unauthenticated);
        assert_eq!(rejections.note_at(a, reason, &error, start), Log::First);
        assert_eq!(rejections.note_at(a, reason, &error, start), Log::Quiet);
        assert_eq!(rejections.note_at(b, reason, &error, start), Log::First);
        let unknown = RequestError::UnknownCommand("x".into());
        assert_eq!(
            rejections.note_at(a, unknown.rejection(), &unknown, start),
            Log::First
        );
        let later = start + LOG_EVERY;
        assert_eq!(rejections.note_at(a, reason, &error, later), Log::Again(2));
        assert_eq!(rejections.note_at(a, reason, &error, later), Log::Quiet);

        let summary = rejections.summary();
        let rows = summary.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let row = rows
            .iter()
            .find(|r| r["source"] == "10.0.0.1" && r["reason"] == "unauthenticated")
            .unwrap();
        assert_eq!(row["count"], 4);
    }

    #[test]
    fn one_client_cannot_grow_the_map_without_bound() {
        let rejections = Rejections::default();
        let error = RequestError::Denied(Denied::Network);
        for i in 0..(KEPT as u32 + 100) {
            let peer = IpAddr::from(std::net::Ipv4Addr::from(i));
            let log = rejections.note(peer, Rejection::ForbiddenNetwork, &error);
            let expected = if (i as usize) < KEPT {
                Log::First
            } else {
                Log::Quiet
            };
            assert_eq!(log, expected);
        }
        assert_eq!(rejections.summary().as_array().unwrap().len(), KEPT);
    }
}
