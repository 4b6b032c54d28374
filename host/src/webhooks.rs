//! OpenIM's own `config/webhooks.yml`, read so that each callback's deadline is exactly what
//! OpenIM will wait for, and so that the host knows which callbacks OpenIM will send at all.
//!
//! The file maps keys such as `afterKickGroupMember` to `{enable, timeout, failedContinue, ...}`
//! and has the base `url`. Keys are OpenIM's config names, not the commands: most are the command
//! without `callback`/`Command` (`beforeSendSingleMsg`), five are not (see [`command_of_key`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, effective_timeout};
use crate::protocol::commands;

/// What the file says about one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The key in the file, for messages.
    pub key: String,
    /// Whether OpenIM sends this callback at all.
    pub enabled: bool,
    /// `timeout` in seconds, as OpenIM reads it (0 or more than 15 mean 15).
    pub timeout_secs: u64,
}

/// The parts of webhooks.yml the host uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Webhooks {
    /// The base url OpenIM posts to.
    pub url: Option<String>,
    /// By command.
    pub callbacks: BTreeMap<&'static str, Webhook>,
    /// Keys that name no callback this host knows (listed in a warning, not an error: OpenIM's
    /// file has keys for callbacks its current code never sends).
    pub unknown_keys: Vec<String>,
}

impl Webhooks {
    /// Puts the file's timeouts, and which callbacks OpenIM sends, in force in `config`.
    pub fn apply_to(&self, config: &mut Config) -> Result<(), ConfigError> {
        config.set_openim_callbacks(
            self.callbacks
                .iter()
                .map(|(command, hook)| (*command, hook.timeout_secs, hook.enabled)),
        )
    }
}

/// The command a webhooks.yml key configures (the table is in [`crate::protocol::commands`]).
pub fn command_of_key(key: &str) -> Option<&'static str> {
    commands::of_webhook_key(key).map(|c| c.name)
}

fn invalid(path: &Path, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("{} {key}", path.display()),
        reason: reason.into(),
    }
}

impl Webhooks {
    /// Reads and validates a webhooks.yml.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: PathBuf::from(path),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses webhooks.yml text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let root: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: PathBuf::from(path),
                message: e.to_string(),
            })?;
        let mut top = root
            .as_mapping()
            .ok_or_else(|| invalid(path, "(top level)", "must be a mapping of callback names"))?;
        // OpenIM 3.5 and older nest everything under `callback:`.
        if let Some(nested) = top.get("callback").and_then(|v| v.as_mapping()) {
            top = nested;
        }
        let mut webhooks = Webhooks::default();
        for (key, value) in top {
            let key = key
                .as_str()
                .ok_or_else(|| invalid(path, &format!("{key:?}"), "keys must be strings"))?;
            if key == "url" {
                let url = value
                    .as_str()
                    .ok_or_else(|| invalid(path, "url", "must be a string"))?;
                webhooks.url = Some(url.to_owned());
                continue;
            }
            let Some(spec) = commands::of_webhook_key(key) else {
                webhooks.unknown_keys.push(key.to_owned());
                continue;
            };
            let command = spec.name;
            if !spec.is_primary_key(key) {
                // OpenIM's own code never reads this key; its twin decides.
                tracing::info!(
                    key,
                    command,
                    "webhooks.yml key that OpenIM does not read; ignored"
                );
                continue;
            }
            let section = value.as_mapping().ok_or_else(|| {
                invalid(path, key, "must be a mapping with `enable` and `timeout`")
            })?;
            let enabled = match section.get("enable") {
                None | Some(serde_yaml_ng::Value::Null) => false,
                Some(v) => v.as_bool().ok_or_else(|| {
                    invalid(
                        path,
                        &format!("{key}.enable"),
                        format!("must be true or false, got {v:?}"),
                    )
                })?,
            };
            let timeout_secs = match section.get("timeout") {
                None | Some(serde_yaml_ng::Value::Null) => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    invalid(
                        path,
                        &format!("{key}.timeout"),
                        format!("must be a whole number of seconds >= 0, got {v:?}"),
                    )
                })?,
            };
            webhooks.callbacks.insert(
                command,
                Webhook {
                    key: key.to_owned(),
                    enabled,
                    timeout_secs,
                },
            );
        }
        Ok(webhooks)
    }

    /// The deadline OpenIM gives `command`, if the file configures it.
    pub fn timeout(&self, command: &str) -> Option<std::time::Duration> {
        self.callbacks
            .get(command)
            .map(|w| effective_timeout(w.timeout_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_commands() {
        assert_eq!(
            command_of_key("afterKickGroupMember"),
            Some("callbackAfterKickGroupCommand")
        );
        assert_eq!(
            command_of_key("beforeSendSingleMsg"),
            Some("callbackBeforeSendSingleMsgCommand")
        );
        assert_eq!(
            command_of_key("afterDismissGroup"),
            Some("callbackAfterDisMissGroupCommand")
        );
        assert_eq!(
            command_of_key("beforeApplyJoinGroup"),
            Some("callbackBeforeJoinGroupCommand")
        );
        assert_eq!(
            command_of_key("afterGroupMsgRevoke"),
            Some("callbackBeforeAfterMsgCommand")
        );
        assert_eq!(command_of_key("afterNothing"), None);
    }

    #[test]
    fn reads_enable_and_timeout_and_rejects_bad_values() {
        let hooks = Webhooks::parse(
            Path::new("webhooks.yml"),
            "url: http://127.0.0.1:10006/callbackExample\nafterKickGroupMember:\n  enable: true\n  timeout: 3\n\
             beforeAddBlack:\n  enable: false\n  timeout: 5\n  failedContinue:\nsomethingNew:\n  enable: true\n",
        )
        .unwrap();
        let kick = &hooks.callbacks["callbackAfterKickGroupCommand"];
        assert!(kick.enabled);
        assert_eq!(
            hooks.timeout("callbackAfterKickGroupCommand"),
            Some(std::time::Duration::from_secs(3))
        );
        assert!(!hooks.callbacks["callbackBeforeAddBlackCommand"].enabled);
        assert_eq!(hooks.unknown_keys, ["somethingNew"]);
        let err = Webhooks::parse(
            Path::new("w.yml"),
            "afterKickGroupMember:\n  enable: yes please\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("w.yml afterKickGroupMember.enable"),
            "{err}"
        );
        let err = Webhooks::parse(Path::new("w.yml"), "afterKickGroupMember:\n  timeout: -1\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("afterKickGroupMember.timeout"),
            "{err}"
        );
    }
}
