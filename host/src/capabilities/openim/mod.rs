//! `openim:callback/openim-api`: OpenIM's own REST API for plugins (send, revoke, mute, kick,
//! read users), called by the host with the admin token it keeps ([`client`]). A plugin calls
//! only the operations its grant lists, at most `openim_api_rate` a second over all its
//! instances and `openim_api_calls_per_callback` in one plugin call, each call under the plugin's
//! deadline; every call is counted by plugin, operation and outcome, and noted for the console in
//! bounded [`ApiCallNotes`](crate::metrics::ApiCallNotes). `retry-later` lets a plugin fail its delivery on purpose, so the queue delivers
//! a queued after-callback again.

pub mod client;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmtime::component::{HasData, Linker};

use crate::config::CallsPerCallback;
use crate::config::openim_api::ApiOperation;
use crate::metrics::{ApiCall, ApiCalls, Metrics};
use crate::outcomes::ApiOutcome;
pub use client::{ApiFailure, Client};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "openim-api-imports",
        imports: { default: async },
    });
}

use bindings::openim::callback::openim_api::{
    self as api, ApiError, Content, Conversation, OpenimError, OutgoingMessage, Recipient, Sent,
    UserInfo,
};

/// `openim:callback/openim-api`, with the operations it may call in the plugin's grant.
pub const CAPABILITY: super::Capability = super::Capability {
    imports: "openim:callback/openim-api",
    status: |plugin, import, grants| match grants.openim_api {
        Some(_) => super::ImportStatus::Granted(
            "openim-api (the operations listed, with the host's admin token)",
        ),
        None => super::ImportStatus::Denied(format!(
            "{import} needs the operations it may call in `openim_api = [...]` of \
             [plugin_grants.{plugin}]"
        )),
    },
};

/// OpenIM's content types (`constant.Text`, `constant.Custom`) and session types.
const TEXT: i32 = 101;
const CUSTOM: i32 = 110;
const SINGLE_CHAT: i32 = 1;
const GROUP_CHAT: i32 = 3;

/// What an OpenIM call leaves of the plugin's time: it gives up this much before the plugin's
/// deadline, so the plugin learns `timed-out` and can still answer (or ask to be retried).
const LEAVE_TO_THE_PLUGIN: Duration = Duration::from_millis(50);

/// One plugin's access to OpenIM's API: its granted operations and its rate cap, shared by its
/// calls.
pub struct PluginOpenim {
    /// The host's client, when `[openim_api]` is configured.
    client: Option<Arc<Client>>,
    /// The operations its grant lists.
    granted: Vec<ApiOperation>,
    /// Its calls a second, over all its instances.
    rate: RateCap,
    /// Its calls in one plugin call.
    per_callback: CallsPerCallback,
    /// The plugin's name, for the metrics.
    plugin: Arc<str>,
    /// Counts calls.
    metrics: Arc<Metrics>,
}

impl PluginOpenim {
    pub fn new(
        client: Option<Arc<Client>>,
        plugin: Arc<str>,
        grant: &crate::config::OpenimApiGrant,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            granted: grant.operations.clone(),
            rate: RateCap::new(grant.rate),
            per_callback: grant.calls_per_callback,
            plugin,
            metrics,
        }
    }

    /// Calls `operation` for the plugin: granted, under its rate cap, by `deadline`.
    async fn call(
        &self,
        operation: ApiOperation,
        body: Value,
        operation_id: &str,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        let result = self.checked(operation, body, operation_id, deadline).await;
        let outcome = outcome(&result);
        self.metrics
            .openim_api_call(&self.plugin, operation.as_str(), outcome);
        if let Err(error) = &result {
            tracing::debug!(plugin = %self.plugin, operation = operation.as_str(),
                outcome = outcome.as_str(), "OpenIM API call failed: {error:?}");
        }
        result
    }

    /// Refuses a call past the plugin's calls per callback: counted, and nothing else done.
    fn over_cap(&self, operation: ApiOperation) -> ApiError {
        self.metrics
            .openim_api_call(&self.plugin, operation.as_str(), ApiOutcome::CallCap);
        ApiError::RateLimited
    }

    async fn checked(
        &self,
        operation: ApiOperation,
        body: Value,
        operation_id: &str,
        deadline: Instant,
    ) -> Result<Value, ApiError> {
        if !self.granted.contains(&operation) {
            return Err(ApiError::NotGranted(operation.as_str().to_owned()));
        }
        let Some(client) = &self.client else {
            return Err(ApiError::NotConfigured);
        };
        if !self.rate.admit() {
            return Err(ApiError::RateLimited);
        }
        // OpenIM needs an operationID: the callback's, so its logs tie the two together.
        let operation_id = if operation_id.is_empty() {
            format!("callback-host-{}", crate::util::unix_ms())
        } else {
            operation_id.to_owned()
        };
        client
            .call(operation, &body, &operation_id, deadline)
            .await
            .map_err(|failure| match failure {
                ApiFailure::Openim {
                    code,
                    message,
                    detail,
                } => ApiError::Openim(OpenimError {
                    code,
                    message,
                    detail,
                }),
                ApiFailure::SignInRefused {
                    code,
                    message,
                    detail,
                } => ApiError::SignInRefused(OpenimError {
                    code,
                    message,
                    detail,
                }),
                ApiFailure::TimedOut => ApiError::TimedOut,
                ApiFailure::Unavailable(what) => ApiError::Unavailable(what),
            })
    }
}

/// What a call came to, as counted.
fn outcome(result: &Result<Value, ApiError>) -> ApiOutcome {
    match result {
        Ok(_) => ApiOutcome::Ok,
        Err(ApiError::Openim(_)) => ApiOutcome::Openim,
        Err(ApiError::SignInRefused(_)) => ApiOutcome::SignInRefused,
        Err(ApiError::NotGranted(_)) => ApiOutcome::NotGranted,
        Err(ApiError::RateLimited) => ApiOutcome::RateLimited,
        Err(ApiError::TimedOut) => ApiOutcome::Timeout,
        Err(ApiError::Unavailable(_)) => ApiOutcome::Unavailable,
        Err(ApiError::NotConfigured) => ApiOutcome::NotConfigured,
    }
}

/// A token bucket: `rate` calls a second, bursts of as many.
struct RateCap {
    /// Calls a second, and the bucket's size.
    rate: f64,
    /// Calls left, and when they were counted.
    left: Mutex<(f64, Instant)>,
}

impl RateCap {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            left: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one call from the bucket, if one is left.
    fn admit(&self) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refilled = left.0 + now.duration_since(left.1).as_secs_f64() * self.rate;
        *left = (refilled.min(self.rate), now);
        if left.0 >= 1.0 {
            left.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The OpenIM side of one instance's store data.
#[derive(Default)]
pub struct OpenimState {
    /// `None` when the plugin was granted no operation.
    pub access: Option<Arc<PluginOpenim>>,
    /// Set by `retry-later`: the call is counted as failed once the plugin returns.
    pub retry_later: Option<String>,
    /// Where the current call's OpenIM calls are noted, for the console.
    pub calls: Option<Arc<ApiCalls>>,
    /// OpenIM calls the current call has made (refused ones included), against the grant's
    /// calls per callback.
    made: u32,
}

impl OpenimState {
    /// The OpenIM side of a new instance of a plugin with `access`.
    pub fn new(access: Option<Arc<PluginOpenim>>) -> Self {
        Self {
            access,
            ..Self::default()
        }
    }

    /// Prepares the instance for a call: no retry asked yet, no OpenIM call made, its calls noted
    /// in `calls`.
    pub fn begin_call(&mut self, calls: Option<Arc<ApiCalls>>) {
        self.retry_later = None;
        self.made = 0;
        self.calls = calls;
    }
}

/// What the interface works on during one call.
pub struct OpenimView<'a> {
    /// The plugin's access and its retry request.
    pub instance: &'a mut OpenimState,
    /// The callback's operationID, sent to OpenIM.
    pub operation_id: &'a str,
    /// No OpenIM call outlives it.
    pub deadline: Instant,
}

/// Names [`OpenimView`] as the data the interface's host trait is implemented on.
struct OpenimData;

impl HasData for OpenimData {
    type Data<'a> = OpenimView<'a>;
}

/// Adds the interface to the linker, for store data that gives an [`OpenimView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> OpenimView<'_>,
) -> wasmtime::Result<()> {
    api::add_to_linker::<T, OpenimData>(linker, view)
}

impl OpenimView<'_> {
    async fn call(&mut self, operation: ApiOperation, body: Value) -> Result<Value, ApiError> {
        let Some(access) = &self.instance.access else {
            return Err(ApiError::NotGranted(operation.as_str().to_owned()));
        };
        self.instance.made = self.instance.made.saturating_add(1);
        let (result, outcome) = if self.instance.made > access.per_callback.0 {
            (Err(access.over_cap(operation)), ApiOutcome::CallCap)
        } else {
            let deadline = self
                .deadline
                .checked_sub(LEAVE_TO_THE_PLUGIN)
                .unwrap_or(self.deadline);
            let result = access
                .call(operation, body, self.operation_id, deadline)
                .await;
            let outcome = outcome(&result);
            (result, outcome)
        };
        if let Some(calls) = &self.instance.calls {
            calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .note(ApiCall {
                    operation: operation.as_str(),
                    outcome,
                });
        }
        result
    }
}

/// OpenIM's name of a conversation (`si_<a>_<b>` sorted, `sg_<group>`).
pub fn conversation_id(conversation: &Conversation) -> String {
    match conversation {
        Conversation::Single((a, b)) => {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            format!("si_{first}_{second}")
        }
        Conversation::Group(group) => format!("sg_{group}"),
    }
}

/// The body of `/msg/send_msg` (`apistruct.SendMsgReq`).
fn send_body(message: &OutgoingMessage) -> Value {
    let (recv_id, group_id, session_type) = match &message.recipient {
        Recipient::User(user) => (user.as_str(), "", SINGLE_CHAT),
        Recipient::Group(group) => ("", group.as_str(), GROUP_CHAT),
    };
    let (content_type, content) = match &message.content {
        Content::Text(text) => (TEXT, json!({ "content": text })),
        Content::Custom(custom) => (
            CUSTOM,
            json!({
                "data": custom.data,
                "description": custom.description,
                "extension": custom.extension,
            }),
        ),
    };
    json!({
        "sendID": message.send_id,
        "recvID": recv_id,
        "groupID": group_id,
        "senderNickname": message.sender_nickname,
        "senderPlatformID": 0,
        "content": content,
        "contentType": content_type,
        "sessionType": session_type,
        "isOnlineOnly": false,
        "notOfflinePush": false,
        "ex": message.ex,
    })
}

impl api::Host for OpenimView<'_> {
    async fn send_message(&mut self, message: OutgoingMessage) -> Result<Sent, ApiError> {
        let data = self
            .call(ApiOperation::SendMessage, send_body(&message))
            .await?;
        Ok(Sent {
            server_msg_id: data["serverMsgID"].as_str().unwrap_or_default().to_owned(),
            client_msg_id: data["clientMsgID"].as_str().unwrap_or_default().to_owned(),
            send_time: data["sendTime"].as_i64().unwrap_or_default(),
        })
    }

    async fn revoke_message(
        &mut self,
        user_id: String,
        conversation: Conversation,
        seq: i64,
    ) -> Result<(), ApiError> {
        let body = json!({
            "userID": user_id,
            "conversationID": conversation_id(&conversation),
            "seq": seq,
        });
        self.call(ApiOperation::RevokeMessage, body).await.map(drop)
    }

    async fn mute_group_member(
        &mut self,
        group_id: String,
        user_id: String,
        seconds: u32,
    ) -> Result<(), ApiError> {
        let body = json!({ "groupID": group_id, "userID": user_id, "mutedSeconds": seconds });
        self.call(ApiOperation::MuteGroupMember, body)
            .await
            .map(drop)
    }

    async fn unmute_group_member(
        &mut self,
        group_id: String,
        user_id: String,
    ) -> Result<(), ApiError> {
        let body = json!({ "groupID": group_id, "userID": user_id });
        self.call(ApiOperation::UnmuteGroupMember, body)
            .await
            .map(drop)
    }

    async fn kick_group_members(
        &mut self,
        group_id: String,
        user_ids: Vec<String>,
        reason: String,
    ) -> Result<(), ApiError> {
        let body = json!({ "groupID": group_id, "kickedUserIDs": user_ids, "reason": reason });
        self.call(ApiOperation::KickGroupMembers, body)
            .await
            .map(drop)
    }

    async fn get_users_info(&mut self, user_ids: Vec<String>) -> Result<Vec<UserInfo>, ApiError> {
        let data = self
            .call(ApiOperation::GetUsersInfo, json!({ "userIDs": user_ids }))
            .await?;
        let text = |user: &Value, key: &str| user[key].as_str().unwrap_or_default().to_owned();
        Ok(data["usersInfo"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|user| UserInfo {
                user_id: text(user, "userID"),
                nickname: text(user, "nickname"),
                face_url: text(user, "faceURL"),
                ex: text(user, "ex"),
            })
            .collect())
    }

    async fn retry_later(&mut self, reason: String) {
        self.instance.retry_later = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_are_openims() {
        let single = Conversation::Single(("u2".into(), "u10".into()));
        assert_eq!(conversation_id(&single), "si_u10_u2");
        let swapped = Conversation::Single(("u10".into(), "u2".into()));
        assert_eq!(conversation_id(&swapped), "si_u10_u2");
        assert_eq!(conversation_id(&Conversation::Group("g1".into())), "sg_g1");
    }

    #[test]
    fn the_rate_cap_allows_a_burst_then_refuses() {
        let cap = RateCap::new(3);
        assert!((0..3).all(|_| cap.admit()));
        assert!(!cap.admit());
    }

    #[test]
    fn a_group_message_has_session_type_3_and_no_receiver() {
        let body = send_body(&OutgoingMessage {
            send_id: "bot".into(),
            recipient: Recipient::Group("g1".into()),
            content: Content::Text("hi".into()),
            sender_nickname: String::new(),
            ex: String::new(),
        });
        assert_eq!(body["sessionType"], 3);
        assert_eq!(body["groupID"], "g1");
        assert_eq!(body["recvID"], "");
        assert_eq!(body["contentType"], 101);
        assert_eq!(body["content"]["content"], "hi");
    }
}
