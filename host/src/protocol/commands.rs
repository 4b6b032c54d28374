//! The table of every callback command OpenIM sends: its name, its webhooks.yml keys, whether it
//! comes before or after the operation, the WIT interface plugins export to handle it, and the
//! few rules of its answer that OpenIM's code imposes. Everything else about a command (the shape
//! of its request and of its changes) is read from the WIT (see [`super::schema`]).

/// Before or after the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sent synchronously; the answer can refuse (and for some commands change) the operation.
    Before,
    /// Queued by OpenIM after the operation happened; the answer is ignored.
    After,
}

/// What OpenIM's code does with an answer beyond the five common fields, where the host must step
/// in so that no answer hurts OpenIM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Request fields (WIT names) OpenIM copies back from every answer: the answer carries the
    /// request's value of each one no plugin changed, so that nothing is blanked by omission.
    pub echo: &'static [&'static str],
    /// A change may only set a field the request carries (is `some`): OpenIM dereferences the
    /// request's field unchecked and crashes otherwise.
    pub only_if_present: bool,
    /// These changes must hold a JSON document (OpenIM refuses the message otherwise).
    pub json_fields: &'static [&'static str],
    /// Changes that apply to a request field of another name: (change, request field). Both are
    /// lists of records keyed by `user-id`; each change entry updates the request entry of its user,
    /// field by field, so the next plugin sees the changes.
    pub applies_to: &'static [(&'static str, &'static str)],
    /// Fields OpenIM would read from the answer that the host does not offer (OpenIM's JSON
    /// name, and why): an answer that sets one is the plugin's failure, with the reason.
    pub withheld: &'static [(&'static str, &'static str)],
}

/// One callback command.
#[derive(Debug)]
pub struct CommandSpec {
    /// OpenIM's name: the last path segment of its request, and `callbackCommand` in the body.
    pub name: &'static str,
    /// The keys of OpenIM's `config/webhooks.yml` that configure it (the first is the one OpenIM
    /// reads; see [`CommandSpec::webhook_keys`]).
    pub webhook_keys: &'static [&'static str],
    /// Before or after the operation.
    pub phase: Phase,
    /// The WIT interface a plugin exports to handle it.
    pub interface: &'static str,
    /// The function of that interface.
    pub function: &'static str,
    /// What the host enforces about its answers.
    pub rules: Rules,
}

use Phase::{After, Before};

const NO_RULES: Rules = Rules {
    echo: &[],
    only_if_present: false,
    json_fields: &[],
    applies_to: &[],
    withheld: &[],
};

macro_rules! command {
    ($name:literal, [$($key:literal),+], $phase:expr, $interface:literal) => {
        command!($name, [$($key),+], $phase, $interface, "handle", NO_RULES)
    };
    ($name:literal, [$($key:literal),+], $phase:expr, $interface:literal, $rules:expr) => {
        command!($name, [$($key),+], $phase, $interface, "handle", $rules)
    };
    ($name:literal, [$($key:literal),+], $phase:expr, $interface:literal, $function:literal, $rules:expr) => {
        CommandSpec {
            name: $name,
            webhook_keys: &[$($key),+],
            phase: $phase,
            interface: concat!("openim:callback/", $interface, "@0.1.0"),
            function: $function,
            rules: $rules,
        }
    };
}

/// Every command OpenIM sends, grouped as in the WIT files.
pub static COMMANDS: &[CommandSpec] = &[
    // user.wit
    command!(
        "callbackBeforeUserRegisterCommand",
        ["beforeUserRegister"],
        Before,
        "before-user-register"
    ),
    command!(
        "callbackAfterUserRegisterCommand",
        ["afterUserRegister"],
        After,
        "after-user-register"
    ),
    command!(
        "callbackBeforeUpdateUserInfoCommand",
        ["beforeUpdateUserInfo"],
        Before,
        "before-update-user-info"
    ),
    command!(
        "callbackAfterUpdateUserInfoCommand",
        ["afterUpdateUserInfo"],
        After,
        "after-update-user-info"
    ),
    command!(
        "callbackBeforeUpdateUserInfoExCommand",
        ["beforeUpdateUserInfoEx"],
        Before,
        "before-update-user-info-ex",
        Rules {
            only_if_present: true,
            withheld: &[(
                "ex",
                "OpenIM never sends the user's ex, and would crash setting it on a user that has none",
            )],
            ..NO_RULES
        }
    ),
    command!(
        "callbackAfterUpdateUserInfoExCommand",
        ["afterUpdateUserInfoEx"],
        After,
        "after-update-user-info-ex"
    ),
    command!(
        "callbackAfterUserOnlineCommand",
        ["afterUserOnline"],
        After,
        "after-user-online"
    ),
    command!(
        "callbackAfterUserOfflineCommand",
        ["afterUserOffline"],
        After,
        "after-user-offline"
    ),
    command!(
        "callbackAfterUserKickOffCommand",
        ["afterUserKickOff"],
        After,
        "after-user-kick-off"
    ),
    // friend.wit
    command!(
        "callbackBeforeAddFriendCommand",
        ["beforeAddFriend"],
        Before,
        "before-add-friend"
    ),
    command!(
        "callbackAfterAddFriendCommand",
        ["afterAddFriend"],
        After,
        "after-add-friend"
    ),
    command!(
        "callbackBeforeAddFriendAgreeCommand",
        ["beforeAddFriendAgree"],
        Before,
        "before-add-friend-agree"
    ),
    command!(
        "callbackAfterAddFriendAgreeCommand",
        ["afterAddFriendAgree"],
        After,
        "after-add-friend-agree"
    ),
    command!(
        "callbackAfterDeleteFriendCommand",
        ["afterDeleteFriend"],
        After,
        "after-delete-friend"
    ),
    command!(
        "callbackBeforeImportFriendsCommand",
        ["beforeImportFriends"],
        Before,
        "before-import-friends"
    ),
    command!(
        "callbackAfterImportFriendsCommand",
        ["afterImportFriends"],
        After,
        "after-import-friends"
    ),
    command!(
        "callbackBeforeSetFriendRemarkCommand",
        ["beforeSetFriendRemark"],
        Before,
        "before-set-friend-remark"
    ),
    command!(
        "callbackAfterSetFriendRemarkCommand",
        ["afterSetFriendRemark"],
        After,
        "after-set-friend-remark"
    ),
    command!(
        "callbackBeforeAddBlackCommand",
        ["beforeAddBlack"],
        Before,
        "before-add-black"
    ),
    command!(
        "callbackAfterRemoveBlackCommand",
        ["afterRemoveBlack"],
        After,
        "after-remove-black"
    ),
    // group.wit (and the kick, the first typed callback, in callback.wit)
    command!(
        "callbackBeforeCreateGroupCommand",
        ["beforeCreateGroup"],
        Before,
        "before-create-group"
    ),
    command!(
        "callbackAfterCreateGroupCommand",
        ["afterCreateGroup"],
        After,
        "after-create-group"
    ),
    command!(
        "callbackBeforeMembersJoinGroupCommand",
        ["beforeMemberJoinGroup"],
        Before,
        "before-members-join-group",
        Rules {
            applies_to: &[("member-callback-list", "member-list")],
            ..NO_RULES
        }
    ),
    command!(
        "callbackBeforeSetGroupMemberInfoCommand",
        ["beforeSetGroupMemberInfo"],
        Before,
        "before-set-group-member-info"
    ),
    command!(
        "callbackAfterSetGroupMemberInfoCommand",
        ["afterSetGroupMemberInfo"],
        After,
        "after-set-group-member-info"
    ),
    command!(
        "callbackAfterQuitGroupCommand",
        ["afterQuitGroup"],
        After,
        "after-quit-group"
    ),
    command!(
        "callbackAfterKickGroupCommand",
        ["afterKickGroupMember"],
        After,
        "kick-group-member",
        "handle-kick",
        NO_RULES
    ),
    command!(
        "callbackAfterDisMissGroupCommand",
        ["afterDismissGroup"],
        After,
        "after-dismiss-group"
    ),
    command!(
        "callbackBeforeJoinGroupCommand",
        ["beforeApplyJoinGroup"],
        Before,
        "before-join-group"
    ),
    command!(
        "callbackAfterTransferGroupOwnerCommand",
        ["afterTransferGroupOwner"],
        After,
        "after-transfer-group-owner"
    ),
    command!(
        "callbackBeforeInviteJoinGroupCommand",
        ["beforeInviteUserToGroup"],
        Before,
        "before-invite-join-group"
    ),
    command!(
        "callbackAfterJoinGroupCommand",
        ["afterJoinGroup"],
        After,
        "after-join-group"
    ),
    command!(
        "callbackBeforeSetGroupInfoCommand",
        ["beforeSetGroupInfo"],
        Before,
        "before-set-group-info",
        Rules {
            echo: &["group-id", "group-name", "face-url", "introduction"],
            ..NO_RULES
        }
    ),
    command!(
        "callbackAfterSetGroupInfoCommand",
        ["afterSetGroupInfo"],
        After,
        "after-set-group-info"
    ),
    command!(
        "callbackBeforeSetGroupInfoExCommand",
        ["beforeSetGroupInfoEx"],
        Before,
        "before-set-group-info-ex",
        Rules {
            echo: &[
                "group-id",
                "group-name",
                "face-url",
                "introduction",
                "ex",
                "need-verification",
                "look-member-info",
                "apply-member-friend"
            ],
            ..NO_RULES
        }
    ),
    command!(
        "callbackAfterSetGroupInfoExCommand",
        ["afterSetGroupInfoEx"],
        After,
        "after-set-group-info-ex"
    ),
    // message.wit
    command!(
        "callbackBeforeSendSingleMsgCommand",
        ["beforeSendSingleMsg"],
        Before,
        "before-send-single-msg"
    ),
    command!(
        "callbackAfterSendSingleMsgCommand",
        ["afterSendSingleMsg"],
        After,
        "after-send-single-msg"
    ),
    command!(
        "callbackBeforeSendGroupMsgCommand",
        ["beforeSendGroupMsg"],
        Before,
        "before-send-group-msg"
    ),
    command!(
        "callbackAfterSendGroupMsgCommand",
        ["afterSendGroupMsg"],
        After,
        "after-send-group-msg"
    ),
    command!(
        "callbackBeforeMsgModifyCommand",
        ["beforeMsgModify"],
        Before,
        "before-msg-modify",
        Rules {
            json_fields: &["content"],
            withheld: &[
                (
                    "options",
                    "OpenIM replaces the message's whole options map with the answer's, and the \
                     request does not carry it: setting one option would wipe the others",
                ),
                (
                    "offlinePushInfo",
                    "the request does not say whether the message has push info, and OpenIM \
                     crashes setting it on one that has none (change it in \
                     callbackBeforeOfflinePushCommand)",
                ),
            ],
            ..NO_RULES
        }
    ),
    command!(
        "callbackAfterSingleMsgReadCommand",
        ["afterSingleMsgRead"],
        After,
        "after-single-msg-read"
    ),
    command!(
        "callbackAfterGroupMsgReadCommand",
        ["afterGroupMsgRead"],
        After,
        "after-group-msg-read"
    ),
    command!(
        "callbackAfterMsgSaveDBCommand",
        ["afterMsgSaveDB"],
        After,
        "after-msg-save-db"
    ),
    // `afterGroupMsgRevoke` is in OpenIM's file but read by none of its code.
    command!(
        "callbackBeforeAfterMsgCommand",
        ["afterRevokeMsg", "afterGroupMsgRevoke"],
        After,
        "after-revoke-msg"
    ),
    // push.wit
    command!(
        "callbackBeforeOfflinePushCommand",
        ["beforeOfflinePush"],
        Before,
        "before-offline-push"
    ),
    command!(
        "callbackBeforeOnlinePushCommand",
        ["beforeOnlinePush"],
        Before,
        "before-online-push"
    ),
    command!(
        "callbackBeforeGroupOnlinePushCommand",
        ["beforeGroupOnlinePush"],
        Before,
        "before-group-online-push"
    ),
    // conversation.wit
    command!(
        "callbackBeforeCreateSingleChatConversationsCommand",
        ["beforeCreateSingleChatConversations"],
        Before,
        "before-create-single-chat-conversations"
    ),
    command!(
        "callbackAfterCreateSingleChatConversationsCommand",
        ["afterCreateSingleChatConversations"],
        After,
        "after-create-single-chat-conversations"
    ),
    command!(
        "callbackBeforeCreateGroupChatConversationsCommand",
        ["beforeCreateGroupChatConversations"],
        Before,
        "before-create-group-chat-conversations"
    ),
    command!(
        "callbackAfterCreateGroupChatConversationsCommand",
        ["afterCreateGroupChatConversations"],
        After,
        "after-create-group-chat-conversations"
    ),
];

/// The command named `name`, if OpenIM sends it.
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The command a webhooks.yml key configures.
pub fn of_webhook_key(key: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.webhook_keys.contains(&key))
}

impl CommandSpec {
    /// Whether OpenIM's code reads `key` for this command (the first key); the others are in its
    /// file but unused.
    pub fn is_primary_key(&self, key: &str) -> bool {
        self.webhook_keys.first() == Some(&key)
    }
}

/// How a command OpenIM may add later is recognised: `callback` + letters + `Command`.
pub fn looks_like_command(name: &str) -> bool {
    name.len() <= 96
        && name
            .strip_prefix("callback")
            .and_then(|rest| rest.strip_suffix("Command"))
            .is_some_and(|middle| {
                !middle.is_empty() && middle.chars().all(|c| c.is_ascii_alphanumeric())
            })
}

#[cfg(test)]
mod tests;
