//! Guard: refuses a kick when it includes a protected user.
//!
//! The protected users come from the host's config (`wasi:config`, key `protected_users`: ids
//! separated by commas or spaces, in `[plugin_config.10-guard]`), so operators change them
//! without rebuilding; without the key, the three default ids below. On a refusal OpenIM gets
//! `actionCode 0, nextCode 1` with `errCode 10001` and the protected ids in `errDlt`.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package example:guard;

        world guard {
            include openim:callback/kick-plugin@0.1.0;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    world: "example:guard/guard",
    with: {
        "openim:callback/types@0.1.0": openim_helpers::types,
        "openim:callback/log@0.1.0": openim_helpers::log,
    },
    generate_all,
});

use exports::openim::callback::kick_group_member::{Guest, KickRequest};
use openim_helpers::log::Level;
use openim_helpers::{Delivery, Response, go_on, log_line, refuse};

/// The errCode of a refusal.
const ERR_PROTECTED: i32 = 10001;

/// The protected user ids when the config does not name them.
const DEFAULT_PROTECTED_USERS: &str = "admin, owner-bot, security-officer";

/// The protected user ids, from the config.
fn protected_users() -> String {
    wasi::config::store::get("protected_users")
        .ok()
        .flatten()
        .unwrap_or_else(|| DEFAULT_PROTECTED_USERS.to_owned())
}

fn is_protected(protected: &str, user_id: &str) -> bool {
    protected
        .split([',', ' ', '\n'])
        .map(str::trim)
        .any(|id| !id.is_empty() && id == user_id)
}

struct Guard;

impl Guest for Guard {
    fn handle_kick(delivery: Delivery, request: KickRequest) -> Response {
        let protected = protected_users();
        let mut blocked: Vec<&str> = Vec::new();
        for user in &request.kicked_user_ids {
            if is_protected(&protected, user) && !blocked.contains(&user.as_str()) {
                blocked.push(user);
            }
        }
        if blocked.is_empty() {
            return go_on();
        }
        let list = blocked.join(",");
        log_line(
            Level::Warn,
            "refusing kick of protected users",
            &[
                ("group_id", &request.group_id),
                ("protected", &list),
                ("operation_id", &delivery.operation_id),
            ],
        );
        refuse(
            ERR_PROTECTED,
            "kicking protected users is not allowed",
            format!("protected users: {list}"),
        )
    }
}

export!(Guard);
