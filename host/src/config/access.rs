//! Who may call, as configured (`[auth]`): the resolved rules. The HTTP side checks requests
//! against them (`http::access`).

use ipnet::IpNet;

/// HTTP Basic credentials OpenIM must send (its webhook url's `user:pass@`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The resolved access rules.
#[derive(Clone, PartialEq, Eq)]
pub struct Access {
    /// Basic credentials every callback must carry, when set.
    pub basic: Option<Credentials>,
    /// A path segment every callback's URL must contain (before the command), when set.
    pub secret_path: Option<String>,
    /// Source networks callbacks may come from, when set.
    pub allow: Option<Vec<IpNet>>,
    /// Source networks the admin endpoints (`/healthz`, `/readyz`, `/metrics`) answer.
    pub admin_allow: Vec<IpNet>,
    /// Callbacks from anyone were asked for explicitly (a network policy guards the host).
    pub open: bool,
    /// Refuse (`actionCode 0`, `nextCode 1`) a before-callback that fails authentication, instead
    /// of the 401/403 answer OpenIM reads as go on: a misconfigured OpenIM then stops its users'
    /// operations instead of letting them through unchecked.
    pub refuse_unauthenticated: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("basic", &self.basic)
            .field(
                "secret_path",
                &self.secret_path.as_ref().map(|_| "<redacted>"),
            )
            .field("allow", &self.allow)
            .field("admin_allow", &self.admin_allow)
            .field("open", &self.open)
            .field("refuse_unauthenticated", &self.refuse_unauthenticated)
            .finish()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self {
            basic: None,
            secret_path: None,
            allow: None,
            admin_allow: loopback(),
            open: false,
            refuse_unauthenticated: false,
        }
    }
}

/// The loopback networks, IPv4 and IPv6.
pub fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|net| net.parse().expect("a valid network"))
        .collect()
}
