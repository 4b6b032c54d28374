//! Guard: refuses a kick when it includes a protected user.
//!
//! The protected users are compiled in from `protected-users.txt`. On a refusal OpenIM gets
//! `actionCode 0, nextCode 1` with `errCode 10001` and the protected ids in `errDlt`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kick-plugin",
});

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim::callback::log::{Level, log};
use openim::callback::types::{Delivery, Response};

/// The errCode of a refusal.
const ERR_PROTECTED: i32 = 10001;

/// The protected user ids, one a line.
const PROTECTED_USERS: &str = include_str!("../protected-users.txt");

fn is_protected(user_id: &str) -> bool {
    PROTECTED_USERS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .any(|protected| protected == user_id)
}

struct Guard;

impl Guest for Guard {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        let mut blocked: Vec<&str> = Vec::new();
        for user in &request.kicked_user_ids {
            if is_protected(user) && !blocked.contains(&user.as_str()) {
                blocked.push(user);
            }
        }
        if blocked.is_empty() {
            return Response {
                action_code: 0,
                err_code: 0,
                err_msg: String::new(),
                err_dlt: String::new(),
                next_code: 0,
            };
        }
        let list = blocked.join(",");
        log(
            Level::Warn,
            "refusing kick of protected users",
            &[
                ("group_id".to_string(), request.group_id.clone()),
                ("protected".to_string(), list.clone()),
                ("operation_id".to_string(), delivery.operation_id),
            ],
        );
        Response {
            action_code: 0,
            err_code: ERR_PROTECTED,
            err_msg: "kicking protected users is not allowed".to_string(),
            err_dlt: format!("protected users: {list}"),
            next_code: 1,
        }
    }
}

export!(Guard);
