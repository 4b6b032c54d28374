//! `[openim_api]`: where OpenIM's REST API is and how the host signs in to it (its admin user,
//! and the secret from `CALLBACK_HOST_OPENIM_SECRET`), and the operations a grant may list.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// The `[openim_api]` section as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenimApiFile {
    /// OpenIM's API address, e.g. `http://openim-server:10002`.
    pub url: Option<String>,
    /// The admin user the token is fetched for (one of OpenIM's `share.yml` `imAdminUser.userIDs`).
    pub admin_user: Option<String>,
    /// OpenIM's `share.yml` `secret`: better given in `CALLBACK_HOST_OPENIM_SECRET`.
    pub secret: Option<String>,
    /// Most milliseconds one API request may take (besides the calling plugin's deadline).
    pub timeout_ms: Option<u64>,
}

/// A value no log line, answer or page may show: its `Debug` says `<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Resolved `[openim_api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenimApiSettings {
    /// The API's base address (scheme, host, port and any path prefix), without a trailing `/`.
    pub url: http::Uri,
    /// The admin user the host's token belongs to.
    pub admin_user: String,
    /// OpenIM's secret, sent only to `/auth/get_admin_token`.
    pub secret: Secret,
    /// Most time one API request may take.
    pub timeout: Duration,
}

/// One OpenIM API operation a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiOperation {
    SendMessage,
    RevokeMessage,
    MuteGroupMember,
    UnmuteGroupMember,
    KickGroupMembers,
    GetUsersInfo,
}

impl ApiOperation {
    /// Every operation, in the interface's order.
    pub const ALL: [Self; 6] = [
        Self::SendMessage,
        Self::RevokeMessage,
        Self::MuteGroupMember,
        Self::UnmuteGroupMember,
        Self::KickGroupMembers,
        Self::GetUsersInfo,
    ];

    /// Its name in the interface, the grant and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendMessage => "send-message",
            Self::RevokeMessage => "revoke-message",
            Self::MuteGroupMember => "mute-group-member",
            Self::UnmuteGroupMember => "unmute-group-member",
            Self::KickGroupMembers => "kick-group-members",
            Self::GetUsersInfo => "get-users-info",
        }
    }

    /// OpenIM's route of it.
    pub fn route(self) -> &'static str {
        match self {
            Self::SendMessage => "/msg/send_msg",
            Self::RevokeMessage => "/msg/revoke_msg",
            Self::MuteGroupMember => "/group/mute_group_member",
            Self::UnmuteGroupMember => "/group/cancel_mute_group_member",
            Self::KickGroupMembers => "/group/kick_group",
            Self::GetUsersInfo => "/user/get_users_info",
        }
    }
}

/// Reads `[openim_api]`: `None` when the section is absent (no plugin may then be granted an
/// operation).
pub(super) fn resolve_openim_api(
    file: Option<&OpenimApiFile>,
) -> Result<Option<OpenimApiSettings>, ConfigError> {
    let Some(file) = file else {
        return Ok(None);
    };
    let invalid = |key: &str, reason: String| ConfigError::Invalid {
        key: format!("openim_api.{key}"),
        reason,
    };
    let url = file.url.as_deref().ok_or_else(|| {
        invalid(
            "url",
            "OpenIM's API address is needed, e.g. http://openim-server:10002".into(),
        )
    })?;
    let uri: http::Uri = url
        .trim_end_matches('/')
        .parse()
        .map_err(|e| invalid("url", format!("{url:?}: {e}")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) if uri.query().is_none() => {}
        _ => {
            return Err(invalid(
                "url",
                format!("{url:?} is not an http(s) address without a query"),
            ));
        }
    }
    let admin_user = match file.admin_user.as_deref() {
        Some(user) if !user.is_empty() => user.to_owned(),
        _ => {
            return Err(invalid(
                "admin_user",
                "the admin user OpenIM's token is for is needed (OpenIM's share.yml \
                 imAdminUser.userIDs, e.g. imAdmin)"
                    .into(),
            ));
        }
    };
    let secret = std::env::var("CALLBACK_HOST_OPENIM_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| file.secret.clone().filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            invalid(
                "secret",
                "give OpenIM's secret (share.yml `secret`) in CALLBACK_HOST_OPENIM_SECRET".into(),
            )
        })?;
    Ok(Some(OpenimApiSettings {
        url: uri,
        admin_user,
        secret: Secret::new(secret),
        timeout: Duration::from_millis(file.timeout_ms.unwrap_or(5_000).max(1)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_granted_by_the_name_the_interface_and_metrics_use() {
        for operation in ApiOperation::ALL {
            let granted: ApiOperation =
                serde_json::from_value(serde_json::json!(operation.as_str())).unwrap();
            assert_eq!(granted, operation);
            assert!(operation.route().starts_with('/'));
        }
        let wit = include_str!("../../../wit/openim-api.wit");
        for operation in ApiOperation::ALL {
            assert!(
                wit.contains(&format!("    {}: func(", operation.as_str())),
                "{} is not a function of wit/openim-api.wit",
                operation.as_str()
            );
        }
    }
}
