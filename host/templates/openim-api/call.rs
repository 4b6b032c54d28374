        // Tell an operator through OpenIM's API (grant: openim_api = ["send-message"]): a text
        // from the admin user (the sender must be a registered user: the admin user or a bot
        // account) to the admin user. Other calls: revoke_message, mute_group_member,
        // unmute_group_member, kick_group_members, get_users_info (wit/openim-api.wit).
        {
            use openim::callback::openim_api::{self as api, Content, OutgoingMessage, Recipient};
            let note = OutgoingMessage {
                send_id: "imAdmin".into(),
                recipient: Recipient::User("imAdmin".into()),
                content: Content::Text(format!(
                    "{} (operationID {})",
                    delivery.command, delivery.operation_id
                )),
                sender_nickname: String::new(),
                ex: String::new(),
            };
            if let Err(error) = api::send_message(&note) {
                // Down, busy or the host's sign-in refused: in an after-callback,
                // api::retry_later(...) has the queue deliver it again later.
                let error = format!("{error:?}");
                log_line(Level::Warn, "could not tell the operator", &[("error", &error)]);
            }
        }
