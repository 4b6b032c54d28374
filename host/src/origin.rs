//! An origin a plugin may call over outbound HTTP, as the config lists it (`http = [...]` of a
//! plugin's grant): parsed once, matched against every request the plugin makes.

use std::fmt;
use std::str::FromStr;

/// An origin a plugin may call: scheme, host (or `*.` and one more label), port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host, lower-cased: a name, an IP address, or `*.example.com` (exactly one label more).
    pub host: String,
    /// The port: given, or the scheme's.
    pub port: u16,
}

/// The scheme of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The port a url of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("an origin is scheme://host[:port], e.g. https://moderation.example.com")?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("scheme {other:?} is not http or https")),
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains(['/', '?', '#', '@']) {
            return Err("an origin has no path, query or user info".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("port {port:?} is not a number"))?;
                (host, port)
            }
            _ => (authority, scheme.default_port()),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_lowercase();
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        if let Some(base) = host.strip_prefix("*.") {
            if base.contains('*') || !base.contains('.') {
                return Err(
                    "a wildcard covers one label of a domain with at least two (*.example.com)"
                        .into(),
                );
            }
        } else if host.contains('*') {
            return Err("a wildcard may only be the first label (*.example.com)".into());
        }
        Ok(Self { scheme, host, port })
    }
}

impl Origin {
    /// Whether a request to `scheme://host:port` is to this origin.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme || port != self.port {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_lowercase();
        match self.host.strip_prefix("*.") {
            // Exactly one label more than the base.
            Some(base) => host
                .strip_suffix(base)
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            None => host == self.host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_what_they_allow() {
        let o: Origin = "https://moderation.example.com".parse().unwrap();
        assert!(o.allows(Scheme::Https, "Moderation.Example.com", 443));
        assert!(!o.allows(Scheme::Http, "moderation.example.com", 443));
        assert!(!o.allows(Scheme::Https, "moderation.example.com", 8443));
        let w: Origin = "https://*.example.com:8443".parse().unwrap();
        assert!(w.allows(Scheme::Https, "a.example.com", 8443));
        assert!(!w.allows(Scheme::Https, "a.b.example.com", 8443));
        assert!(!w.allows(Scheme::Https, "example.com", 8443));
        assert!(!w.allows(Scheme::Https, "evilexample.com", 8443));
        let local: Origin = "http://127.0.0.1:8080".parse().unwrap();
        assert!(local.allows(Scheme::Http, "127.0.0.1", 8080));
        for bad in [
            "moderation.example.com",
            "ftp://x.com",
            "https://*.com",
            "https://a.*.com",
            "https://x.com/path",
            "https://u:p@x.com",
            "https://x.com:99999",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }
}
