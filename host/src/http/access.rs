//! Who may call, checked: HTTP Basic credentials, a secret path segment and an allow-list of
//! source networks for callbacks; an allow-list of its own for the admin endpoints (the rules
//! themselves, [`Access`], are settings: `config::access`). A request that fails any configured
//! check is refused before its body is read and never reaches a plugin.

use std::net::IpAddr;
use subtle::ConstantTimeEq as _;

use base64::Engine as _;
use http::{HeaderMap, header};
use ipnet::IpNet;

use crate::config::access::{Access, Credentials};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Missing or wrong Basic credentials (401).
    Credentials,
    /// The URL lacks the secret path segment (403).
    SecretPath,
    /// The source address is not in the allow-list (403).
    Network,
}

impl Access {
    /// Whether any check guards the callbacks.
    pub fn guarded(&self) -> bool {
        self.basic.is_some() || self.secret_path.is_some() || self.allow.is_some()
    }

    /// Whether `peer` may open a connection to a listener that serves callbacks, the admin
    /// endpoints, or both: a source no configured network allows is closed at accept.
    pub fn may_connect(&self, peer: IpAddr, callbacks: bool, admin: bool) -> bool {
        let for_callbacks = callbacks && self.allow.as_ref().is_none_or(|a| contains(a, peer));
        let for_admin = admin && contains(&self.admin_allow, peer);
        for_callbacks || for_admin
    }

    /// Checks a callback request from `peer` to `path` with `headers`.
    pub fn check_callback(
        &self,
        peer: IpAddr,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), Denied> {
        if let Some(allow) = &self.allow
            && !contains(allow, peer)
        {
            return Err(Denied::Network);
        }
        if let Some(secret) = &self.secret_path {
            // Any segment but the last (the command) may carry it.
            let mut segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            segments.pop();
            if !segments
                .iter()
                .any(|s| same(s.as_bytes(), secret.as_bytes()))
            {
                return Err(Denied::SecretPath);
            }
        }
        if let Some(expected) = &self.basic
            && !basic_matches(headers, expected)
        {
            return Err(Denied::Credentials);
        }
        Ok(())
    }

    /// Checks a request from `peer` to the console: from an admin network, and with the Basic
    /// credentials when they are set (the console shows callbacks and can change state; the
    /// probes and `/metrics` stay reachable without them).
    pub fn check_console(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Denied> {
        self.check_admin(peer)?;
        match &self.basic {
            Some(expected) if !basic_matches(headers, expected) => Err(Denied::Credentials),
            _ => Ok(()),
        }
    }

    /// Checks a request from `peer` to an admin endpoint.
    pub fn check_admin(&self, peer: IpAddr) -> Result<(), Denied> {
        if contains(&self.admin_allow, peer) {
            Ok(())
        } else {
            Err(Denied::Network)
        }
    }
}

fn contains(networks: &[IpNet], peer: IpAddr) -> bool {
    // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    networks.iter().any(|net| net.contains(&peer))
}

fn basic_matches(headers: &HeaderMap, expected: &Credentials) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    // Both compared, whatever the first gives: the time says nothing of which was wrong.
    let user = same(&decoded[..colon], expected.user.as_bytes());
    let password = same(&decoded[colon + 1..], expected.password.as_bytes());
    user & password
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_as_go_sends_them() {
        let access = Access {
            basic: Some(Credentials {
                user: "openim".into(),
                password: "p:ss".into(),
            }),
            ..Access::default()
        };
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        // Go's SetBasicAuth: base64("openim:p:ss"); a password may contain ':'.
        let good = basic("Basic b3BlbmltOnA6c3M=");
        assert_eq!(access.check_callback(peer, "/cb/x", &good), Ok(()));
        for wrong in [
            "Basic b3BlbmltOnBhc3M=",
            "Bearer b3BlbmltOnA6c3M=",
            "Basic !!",
        ] {
            assert_eq!(
                access.check_callback(peer, "/cb/x", &basic(wrong)),
                Err(Denied::Credentials),
                "{wrong}"
            );
        }
        assert_eq!(
            access.check_callback(peer, "/cb/x", &HeaderMap::new()),
            Err(Denied::Credentials)
        );
    }

    #[test]
    fn secret_segment_and_networks() {
        let access = Access {
            secret_path: Some("k3y-0123456789abcdef".into()),
            allow: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            ..Access::default()
        };
        let inside: IpAddr = "::ffff:10.9.8.7".parse().unwrap();
        let none = HeaderMap::new();
        let path = "/k3y-0123456789abcdef/callbackExample/callbackAfterKickGroupCommand";
        assert_eq!(access.check_callback(inside, path, &none), Ok(()));
        assert_eq!(
            access.check_callback(inside, "/callbackExample/k3y-0123456789abcdef", &none),
            Err(Denied::SecretPath)
        );
        assert_eq!(
            access.check_callback("192.168.1.1".parse().unwrap(), path, &none),
            Err(Denied::Network)
        );
        assert_eq!(access.check_admin(inside), Err(Denied::Network));
        assert_eq!(access.check_admin("::1".parse().unwrap()), Ok(()));
    }
}
