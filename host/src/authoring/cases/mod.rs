//! `callback-host test`: plugin authors' test cases, run through the same chain the server runs.
//!
//! A case is a small TOML file:
//!
//! ```toml
//! name = "kicking a protected user is refused"
//! fixture = "callbackAfterKickGroupCommand"   # OpenIM's request of that command, as a start
//! plugin = "10-guard"                          # whose [config] and [keyvalue] these are
//!
//! [request]                                    # fields set on the fixture (tables merge)
//! kickedUserIDs = ["admin"]
//!
//! [config]                                     # the plugin's config values for this case
//! protected_users = "admin"
//!
//! [keyvalue]                                   # its own bucket's content before the call
//! "sent:user-alice" = "19"
//!
//! [expect]
//! result = "refused"                           # "go_on", "refused" or "fails"
//! by = "10-guard"                              # the plugin that refused (or failed)
//! err_code = 20001                             # and what it answered: err_msg, err_dlt
//! # cause = "timeout"                          # for "fails": the failure's kind
//! # [expect.changes]                           # for "go_on": fields of the answer
//! # needVerification = 1
//! # openim_calls = ["revoke-message"]          # the OpenIM API operations called, in order
//! ```
//!
//! OpenIM's API is stood in for ([`openim`]): every operation answers "ok" unless the case
//! says otherwise, e.g. `[openim_api."send-message"] unavailable = true` or `err_code = 1404`.
//!
//! Each case goes through the app the server builds (the same routing, validation, chain,
//! limits and merge of changes), in process, with every command delivered inline, the
//! key-value store and the queue in a temporary directory and no access rules (the config's
//! limits, grants, policies and timeouts are kept). What each plugin decided is read from the
//! host's own record of the callback ([`crate::history`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::Value;

use crate::config::access::Access;
use crate::config::{Config, Delivery};
use crate::http::routing::Routes;

mod openim;
mod verdict;

pub use openim::StandInAnswer;
pub use verdict::Difference;
use verdict::{compare, got};

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// OpenIM's request of `command`, as it sends it.
pub fn fixture(command: &str) -> Option<&'static str> {
    REQUESTS
        .iter()
        .find(|(name, _)| *name == command)
        .map(|(_, body)| *body)
}

/// One case, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Shown in the report; the file's name when absent.
    pub name: Option<String>,
    /// A command whose request (OpenIM's, as shipped) the case starts from.
    pub fixture: Option<String>,
    /// The command; by default the fixture's, or the request's `callbackCommand`.
    pub command: Option<String>,
    /// The request (without a fixture), or the fields set on the fixture; tables are merged.
    #[serde(default)]
    pub request: toml::Table,
    /// The plugin `config` and `keyvalue` are for; by default the only plugin loaded.
    pub plugin: Option<String>,
    /// The plugin's config values in this case (over those of the config file).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The content of the plugin's own key-value bucket before the call (emptied otherwise).
    #[serde(default)]
    pub keyvalue: BTreeMap<String, String>,
    /// How the stand-in of OpenIM's API answers each operation ("ok" when not listed).
    #[serde(default)]
    pub openim_api: BTreeMap<String, StandInAnswer>,
    /// What should come of it.
    pub expect: Expect,
}

/// What a case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Go on, refused, or a plugin fails.
    pub result: Expected,
    /// The plugin that refused or failed.
    pub by: Option<String>,
    pub err_code: Option<i32>,
    pub err_msg: Option<String>,
    pub err_dlt: Option<String>,
    /// For `fails`: the failure's kind (`timeout`, `fuel`, `memory`, `trap`, `invalid_answer`...).
    pub cause: Option<String>,
    /// For `go_on`: fields of the answer OpenIM gets (the changes the plugins made).
    pub changes: Option<toml::Table>,
    /// The OpenIM API operations the plugins called, in order (`[]` for none).
    pub openim_calls: Option<Vec<String>>,
}

/// The three ways a callback can end for its plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    GoOn,
    Refused,
    Fails,
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Self::GoOn => "go_on",
            Self::Refused => "refused",
            Self::Fails => "fails",
        }
    }
}

/// How a case came out.
#[derive(Debug)]
pub enum Verdict {
    Pass,
    /// Ran, and differs from what it expects.
    Fail(Vec<Difference>),
    /// Could not run: the case file or its request is wrong.
    Error(anyhow::Error),
}

/// A case's file, name and verdict.
#[derive(Debug)]
pub struct Outcome {
    pub file: PathBuf,
    pub name: String,
    pub verdict: Verdict,
}

/// The case files among `paths`: each file, and the `*.toml` files of each directory (sorted).
pub fn case_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            found.sort();
            anyhow::ensure!(!found.is_empty(), "no case (*.toml) in {}", path.display());
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads one case file.
pub fn read_case(file: &Path) -> anyhow::Result<Case> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid case", file.display()))
}

/// Runs `files` through the plugins at `plugins` (a directory, or one plugin file) under
/// `config` (its limits, grants, policies and values).
pub async fn run(
    plugins: &Path,
    mut config: Config,
    files: &[PathBuf],
) -> anyhow::Result<Vec<Outcome>> {
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    config.plugins_dir = if plugins.is_dir() {
        plugins.to_owned()
    } else {
        let dir = scratch.path().join("plugins");
        std::fs::create_dir(&dir)?;
        let name = plugins
            .file_name()
            .with_context(|| format!("{} names no file", plugins.display()))?;
        std::fs::copy(plugins, dir.join(name))
            .with_context(|| format!("reading {}", plugins.display()))?;
        dir
    };
    config.access = Access::default();
    config.keyvalue.backend = crate::config::KeyValueBackend::Embedded;
    config.keyvalue.path = scratch.path().join("keyvalue.redb");
    config.queue.backend = crate::config::QueueBackend::Embedded;
    config.queue.path = scratch.path().join("queue.redb");
    config.record.path = scratch.path().join("record.jsonl");
    config.defaults.delivery = Delivery::Inline;
    for settings in config.commands.values_mut() {
        settings.delivery = Delivery::Inline;
    }
    let openim = openim::StandIn::start()
        .await
        .context("starting the stand-in of OpenIM's API")?;
    config.openim_api = Some(openim.settings());
    let base = config.clone();
    let mut host = crate::build(Arc::new(config)).await?;
    if let Some(error) = std::mem::take(&mut host.load_errors).into_iter().next() {
        return Err(error.into());
    }
    let plugins = host.app.dispatcher.plugins().get().names();
    anyhow::ensure!(
        !plugins.is_empty(),
        "no plugin in {}",
        base.plugins_dir.display()
    );
    let mut outcomes = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let case = read_case(file);
        let name = match &case {
            Ok(Case {
                name: Some(name), ..
            }) => name.clone(),
            _ => file
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        };
        let verdict = match case {
            Err(error) => Verdict::Error(error),
            Ok(case) => match run_case(&host, &base, &plugins, &openim, &case, index).await {
                Ok(differences) if differences.is_empty() => Verdict::Pass,
                Ok(differences) => Verdict::Fail(differences),
                Err(error) => Verdict::Error(error),
            },
        };
        outcomes.push(Outcome {
            file: file.clone(),
            name,
            verdict,
        });
    }
    Ok(outcomes)
}

/// Runs one case; returns how it differs from what it expects.
async fn run_case(
    host: &crate::Host,
    base: &Config,
    plugins: &[String],
    openim: &openim::StandIn,
    case: &Case,
    index: usize,
) -> anyhow::Result<Vec<Difference>> {
    let (command, body) = request(case)?;
    openim.begin(case.openim_api.clone())?;
    let plugin = match (&case.plugin, plugins) {
        (Some(plugin), _) => {
            anyhow::ensure!(
                plugins.contains(plugin),
                "plugin {plugin:?} is not loaded (loaded: {})",
                plugins.join(", ")
            );
            Some(plugin.clone())
        }
        (None, [only]) => Some(only.clone()),
        (None, _) if case.config.is_empty() && case.keyvalue.is_empty() => None,
        (None, _) => anyhow::bail!(
            "name the plugin its [config] and [keyvalue] are for (plugin = \"...\"): {} are loaded",
            plugins.join(", ")
        ),
    };
    // The config values: the file's, with the case's over them.
    let mut config = base.clone();
    if let Some(plugin) = &plugin {
        let values = config.plugin_values.entry(plugin.clone()).or_default();
        values.extend(case.config.clone());
    }
    host.reload_config(&config);
    if let Some(plugin) = &plugin {
        match &host.app.keyvalue {
            Some(store) => {
                let entries: Vec<(String, String)> = case.keyvalue.clone().into_iter().collect();
                store.reset_own(plugin, &entries).await?;
            }
            None if case.keyvalue.is_empty() => {}
            None => anyhow::bail!(
                "the case sets [keyvalue], but no plugin is granted the key-value store \
                 ([plugin_grants.{plugin}] keyvalue = true in the config)"
            ),
        }
    }
    let operation_id = format!("case-{index}");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("/callbackExample/{command}"))
        .header("host", "127.0.0.1:10006")
        .header("content-type", "application/json; charset=utf-8")
        .header("operationid", &operation_id)
        .body(Full::new(Bytes::from(body)))?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let response = Arc::clone(&host.app)
        .handle(Routes::Callbacks, loopback, request)
        .await;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    let answer: Value = serde_json::from_slice(&answer).context("the host's answer")?;
    anyhow::ensure!(
        status.is_success(),
        "the host refused the request ({status}): {}",
        answer["errMsg"].as_str().unwrap_or_default()
    );
    let trace = host
        .app
        .dispatcher
        .history()
        .find(&operation_id)
        .context("the host kept no record of the callback")?;
    let mut differences = compare(&case.expect, &got(&trace, answer));
    let called = openim.calls();
    if let Some(expected) = &case.expect.openim_calls
        && *expected != called
    {
        differences.push(Difference {
            field: "openim_calls".into(),
            expected: format!("{expected:?}"),
            got: format!("{called:?}"),
        });
    }
    Ok(differences)
}

/// The request of a case: its command and body.
fn request(case: &Case) -> anyhow::Result<(String, String)> {
    let mut body = match &case.fixture {
        Some(name) => {
            let text = fixture(name).with_context(|| {
                format!("no fixture {name:?}: name a command OpenIM sends, such as callbackAfterKickGroupCommand")
            })?;
            serde_json::from_str(text)?
        }
        None => Value::Object(serde_json::Map::new()),
    };
    let changes = serde_json::to_value(&case.request)?;
    if case.fixture.is_some() {
        unknown_fields(&body, &changes, "")?;
    }
    merge(&mut body, changes);
    let command = case
        .command
        .clone()
        .or_else(|| body["callbackCommand"].as_str().map(str::to_owned))
        .or_else(|| case.fixture.clone())
        .context("no command: give fixture, command, or callbackCommand in [request]")?;
    Ok((command, body.to_string()))
}

/// Refuses a field of `changes` that OpenIM's request (`fixture`) does not have: the host
/// would ignore it, and the case would not test what it says.
fn unknown_fields(fixture: &Value, changes: &Value, at: &str) -> anyhow::Result<()> {
    let (Value::Object(fixture), Value::Object(changes)) = (fixture, changes) else {
        return Ok(());
    };
    for (key, change) in changes {
        match fixture.get(key) {
            Some(inner) => unknown_fields(inner, change, &format!("{at}{key}."))?,
            None => {
                let known: Vec<&str> = fixture.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "[request] sets {at}{key}, which OpenIM's request does not have (its fields: {})",
                    known.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Sets `changes` on `value`: objects are merged key by key, anything else replaced.
fn merge(value: &mut Value, changes: Value) {
    match (value, changes) {
        (Value::Object(value), Value::Object(changes)) => {
            for (key, change) in changes {
                merge(value.entry(key).or_insert(Value::Null), change);
            }
        }
        (value, change) => *value = change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_fixture_and_requests_merge_into_it() {
        for command in crate::protocol::commands::COMMANDS {
            assert!(fixture(command.name).is_some(), "{}", command.name);
        }
        let case: Case = toml::from_str(
            "fixture = \"callbackBeforeCreateGroupCommand\"\n\
             [request]\ngroupName = \"casino night\"\n\
             [expect]\nresult = \"refused\"\n",
        )
        .unwrap();
        let (command, body) = request(&case).unwrap();
        assert_eq!(command, "callbackBeforeCreateGroupCommand");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["groupName"], "casino night");
        // The rest of the fixture is kept.
        assert_eq!(body["groupID"], "group-1", "{body}");
        // Objects merge key by key; anything else is replaced.
        let mut value = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut value, serde_json::json!({"a": {"c": [3]}, "e": true}));
        assert_eq!(
            value,
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": 1, "e": true})
        );
        // A field OpenIM does not send is refused, with the fields it does.
        let case: Case = toml::from_str(
            "fixture = \"callbackBeforeCreateGroupCommand\"\n\
             [request.groupInfo]\ngroupName = \"x\"\n[expect]\nresult = \"go_on\"\n",
        )
        .unwrap();
        let error = request(&case).unwrap_err().to_string();
        assert!(
            error.contains("sets groupInfo, which OpenIM's request does not have"),
            "{error}"
        );
        assert!(error.contains("groupName"), "{error}");
    }
}
