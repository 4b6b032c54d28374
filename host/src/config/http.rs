//! The HTTP server's sections: `[http]` (what one client may hold of the server), `[auth]` (who
//! may call the callbacks and the admin endpoints) and `[tls]`, read and validated.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::ConfigError;
use super::access::{Access, Credentials, loopback};

/// The `[http]` section: what a client may hold of the server.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<u32>,
    pub max_connections_per_source: Option<u32>,
    pub max_headers: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

/// The `[auth]` section: who may call.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub basic_user: Option<String>,
    /// Better given in the environment: `CALLBACK_HOST_BASIC_PASSWORD`.
    pub basic_password: Option<String>,
    pub secret_path: Option<String>,
    pub allow: Option<Vec<String>>,
    pub admin_allow: Option<Vec<String>>,
    pub open: Option<bool>,
    pub refuse_unauthenticated: Option<bool>,
}

/// The `[tls]` section: serve callbacks over HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Resolved limits of the HTTP server: what one client can hold of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers (from the connection's first byte or from
    /// a request's first byte), and then its body. A client that trickles is cut off.
    pub read_timeout: Duration,
    /// Time a keep-alive connection may stay idle between requests before it is closed.
    pub idle_timeout: Duration,
    /// Connections served at once. At the cap, the connection that has waited longest without
    /// a request is closed to make room; when all are in a request, new connections wait in the
    /// listen backlog while the open ones keep being served.
    pub max_connections: u32,
    /// Connections one source address may hold (so one neighbour cannot take them all): its
    /// own longest-waiting connection makes room, or a new one is closed.
    pub max_connections_per_source: u32,
    /// Headers a request may have (431 beyond).
    pub max_headers: usize,
    /// Bytes of a request's headers, names and values (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            // Go's HTTP client (OpenIM's) keeps idle connections for 90 s; closing them earlier
            // only costs a reconnect.
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_source: 512,
            // OpenIM sends 7 headers.
            max_headers: 64,
            max_header_bytes: 16 << 10,
        }
    }
}

pub(super) fn resolve_http(file: &HttpFile) -> Result<HttpLimits, ConfigError> {
    let base = HttpLimits::default();
    let at_least = |key: &str, value: Option<u64>, min: u64| match value {
        Some(v) if v < min => Err(ConfigError::Invalid {
            key: format!("http.{key}"),
            reason: format!("{v} is below the minimum of {min}"),
        }),
        other => Ok(other),
    };
    let ms = |key: &str, value: Option<u64>, default: Duration| {
        at_least(key, value, 100).map(|v| v.map_or(default, Duration::from_millis))
    };
    let max_connections = at_least("max_connections", file.max_connections.map(u64::from), 1)?
        .map_or(base.max_connections, |v| v as u32);
    Ok(HttpLimits {
        read_timeout: ms("read_timeout_ms", file.read_timeout_ms, base.read_timeout)?,
        idle_timeout: ms("idle_timeout_ms", file.idle_timeout_ms, base.idle_timeout)?,
        max_connections,
        // Half the cap unless set: one source cannot hold them all.
        max_connections_per_source: at_least(
            "max_connections_per_source",
            file.max_connections_per_source.map(u64::from),
            1,
        )?
        .map_or((max_connections / 2).max(1), |v| v as u32),
        max_headers: at_least("max_headers", file.max_headers.map(|v| v as u64), 8)?
            .map_or(base.max_headers, |v| v as usize),
        max_header_bytes: at_least(
            "max_header_bytes",
            file.max_header_bytes.map(|v| v as u64),
            1024,
        )?
        .map_or(base.max_header_bytes, |v| v as usize),
    })
}

/// The environment variable that sets `[auth] admin_allow` (comma-separated), over the file: a
/// container's admin endpoints reached through a published port come from the bridge's address.
pub const ADMIN_ALLOW_ENV: &str = "CALLBACK_HOST_ADMIN_ALLOW";

/// The networks [`ADMIN_ALLOW_ENV`] lists, when it is set and not empty.
fn admin_allow_from_env() -> Option<Vec<String>> {
    let value = std::env::var(ADMIN_ALLOW_ENV).ok()?;
    let list: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|net| !net.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

pub(super) fn resolve_access(file: &AuthFile) -> Result<Access, ConfigError> {
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: format!("auth.{key}"),
        reason,
    };
    let networks = |key: &str, list: &[String]| {
        list.iter()
            .map(|net| {
                net.parse::<IpNet>()
                    .or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        invalid(
                            key,
                            format!("{net:?} is not an address or network (10.0.0.0/8)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let password = std::env::var("CALLBACK_HOST_BASIC_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| file.basic_password.clone());
    let basic = match (&file.basic_user, password) {
        (None, None) => None,
        (Some(user), Some(password)) if !user.is_empty() && !user.contains(':') => {
            Some(Credentials {
                user: user.clone(),
                password,
            })
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "basic_user",
                "must be non-empty, without ':'".into(),
            ));
        }
        (Some(_), None) => {
            return Err(invalid(
                "basic_password",
                "basic_user is set: give its password in CALLBACK_HOST_BASIC_PASSWORD".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "basic_user",
                "a password is set without a user".into(),
            ));
        }
    };
    if let Some(secret) = &file.secret_path
        && (secret.len() < 16
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(invalid(
            "secret_path",
            "must be at least 16 characters of A-Z a-z 0-9 - _ (one URL path segment)".into(),
        ));
    }
    Ok(Access {
        basic,
        secret_path: file.secret_path.clone(),
        allow: file
            .allow
            .as_deref()
            .map(|list| networks("allow", list))
            .transpose()?,
        admin_allow: match (admin_allow_from_env(), &file.admin_allow) {
            (Some(list), _) => networks(&format!("admin_allow (from {ADMIN_ALLOW_ENV})"), &list)?,
            (None, Some(list)) => networks("admin_allow", list)?,
            (None, None) => loopback(),
        },
        open: file.open.unwrap_or(false),
        refuse_unauthenticated: file.refuse_unauthenticated.unwrap_or(false),
    })
}
