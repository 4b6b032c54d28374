//! The requests of each workload (the kick, message moderation) and what each answer must be.

use std::path::Path;

use bytes::Bytes;

use crate::Workload;

/// What an answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    GoOn,
    Refused,
    /// "Go on" with the message content rewritten.
    Masked,
}

/// One request of a mix.
pub(crate) struct Call {
    pub(crate) path: &'static str,
    pub(crate) body: Bytes,
    pub(crate) expect: Expect,
}

impl Expect {
    pub(crate) fn holds(self, answer: &[u8]) -> bool {
        let has = |needle: &[u8]| answer.windows(needle.len()).any(|w| w == needle);
        match self {
            Self::GoOn => {
                answer == br#"{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}"#
            }
            Self::Refused => has(b"\"nextCode\":1"),
            Self::Masked => has(b"\"nextCode\":0") && has(b"\"content\":") && has(b"****"),
        }
    }
}

/// The fixed request mix of a workload.
pub(crate) fn request_mix(workload: Workload) -> Vec<Call> {
    match workload {
        // One kick in four includes a protected user: the guard refuses it, the host still
        // answers "go on" (the kick already happened).
        Workload::Kick => (0..64)
            .map(|i| {
                let mut users: Vec<String> = (0..(1 + i % 5)).map(|u| format!("user-{i}-{u}")).collect();
                if i % 4 == 0 {
                    users.push("admin".into());
                }
                let body = serde_json::json!({
                    "callbackCommand": "callbackAfterKickGroupCommand",
                    "groupID": format!("G{i}"),
                    "kickedUserIDs": users,
                    "reason": if i % 3 == 0 { "" } else { "Violation of group rules" },
                });
                Call {
                    path: "/callbackExample/callbackAfterKickGroupCommand",
                    body: Bytes::from(format!("{body}\n")),
                    expect: Expect::GoOn,
                }
            })
            .collect(),
        // Before-send and msg-modify in turn, as OpenIM sends them for each message; one message
        // in four has a blocked phrase (refused before sending) or banned words (masked).
        Workload::Moderation => (0..64)
            .map(|i| {
                let flagged = (i / 2) % 4 == 0;
                let modify = i % 2 == 1;
                let text = match (flagged, modify) {
                    (true, false) => format!("Hey all, FREE BITCOIN for the first {i} people who click my link!"),
                    (true, true) => format!("darn, the build broke again ({i}), what the heck happened?"),
                    _ => format!("Are we still on for the meetup at 7? I will bring the slides for part {i}."),
                };
                let (command, path) = if modify {
                    ("callbackBeforeMsgModifyCommand", "/callbackExample/callbackBeforeMsgModifyCommand")
                } else {
                    ("callbackBeforeSendSingleMsgCommand", "/callbackExample/callbackBeforeSendSingleMsgCommand")
                };
                let mut body = serde_json::json!({
                    "sendID": format!("user-{i}"), "callbackCommand": command, "serverMsgID": "",
                    "clientMsgID": format!("c3f4a9e2b1d0{i:04}"), "operationID": format!("{i}-1732550000123"),
                    "senderPlatformID": 2, "senderNickname": "Alice", "sessionType": 1, "msgFrom": 100,
                    "contentType": 101, "status": 1, "sendTime": 1732550000123i64, "createTime": 1732550000100i64,
                    "content": serde_json::json!({ "content": text }).to_string(), "seq": 0,
                    "atUserList": null, "faceURL": "https://example.com/avatar/alice.png", "ex": "",
                });
                if !modify {
                    body["recvID"] = serde_json::json!("user-bob");
                }
                let expect = match (flagged, modify) {
                    (true, false) => Expect::Refused,
                    (true, true) => Expect::Masked,
                    _ => Expect::GoOn,
                };
                Call {
                    path,
                    body: Bytes::from(format!("{body}\n")),
                    expect,
                }
            })
            .collect(),
        // One-to-one messages from 64 senders, each counted (and let through).
        Workload::RateLimitEmbedded | Workload::RateLimitRedis => (0..64)
            .map(|i| {
                let body = serde_json::json!({
                    "sendID": format!("user-{i}"), "callbackCommand": "callbackBeforeSendSingleMsgCommand",
                    "serverMsgID": "", "clientMsgID": format!("c3f4a9e2b1d0{i:04}"),
                    "operationID": format!("{i}-1732550000123"), "senderPlatformID": 2,
                    "senderNickname": "Alice", "sessionType": 1, "msgFrom": 100, "contentType": 101,
                    "status": 1, "sendTime": 1732550000123i64, "createTime": 1732550000100i64,
                    "content": "{\"content\":\"see you at 7\"}", "seq": 0, "atUserList": null,
                    "faceURL": "", "ex": "", "recvID": "user-bob",
                });
                Call {
                    path: "/callbackExample/callbackBeforeSendSingleMsgCommand",
                    body: Bytes::from(format!("{body}\n")),
                    expect: Expect::GoOn,
                }
            })
            .collect(),
    }
}

/// The rate-limit plugin's grant and a limit no run reaches (every answer is "go on").
pub(crate) const RATE_LIMIT_GRANTS: &str = "[plugin_config.40-rate-limit]\nmax_per_minute = \"1000000000\"\n\
     [plugin_grants.40-rate-limit]\nkeyvalue = true\nkeyvalue_ttl_secs = 120\n";

/// The `[keyvalue]` section of a rate-limit target's host (a fresh file in `dir`, or the
/// benchmark's Redis), `None` for other workloads.
pub(crate) fn rate_limit_store(
    workload: Workload,
    dir: &Path,
    redis: Option<&str>,
) -> Option<String> {
    match workload {
        Workload::RateLimitEmbedded => Some(format!(
            "[keyvalue]\nbackend = \"embedded\"\npath = {:?}\n",
            dir.join("host.redb").to_string_lossy()
        )),
        Workload::RateLimitRedis => Some(format!(
            "[keyvalue]\nbackend = \"redis\"\nredis_url = {:?}\n",
            redis.unwrap_or_default()
        )),
        _ => None,
    }
}
