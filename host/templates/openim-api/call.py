        # Tell an operator through OpenIM's API (grant: openim_api = ["send-message"]): a text
        # from the admin user (the sender must be a registered user: the admin user or a bot
        # account) to the admin user. Other calls: revoke_message, mute_group_member,
        # unmute_group_member, kick_group_members, get_users_info (wit/openim-api.wit).
        try:
            openim_api.send_message(openim_api.OutgoingMessage(
                send_id="imAdmin",
                recipient=openim_api.Recipient_User("imAdmin"),
                content=openim_api.Content_Text(f"{delivery.command} (operationID {delivery.operation_id})"),
                sender_nickname="",
                ex="",
            ))
        except Err as error:
            # Down, busy or the host's sign-in refused: in an after-callback,
            # openim_api.retry_later(...) has the queue deliver it again later.
            warn("could not tell the operator", error=repr(error.value))
