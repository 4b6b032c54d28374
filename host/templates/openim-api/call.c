  // Tell an operator through OpenIM's API (grant: openim_api = ["send-message"]): a text from the
  // admin user (the sender must be a registered user: the admin user or a bot account) to the
  // admin user: the callback's command. Other calls: openim_callback_openim_api_revoke_message,
  // _mute_group_member, _unmute_group_member, _kick_group_members, _get_users_info.
  {
    openim_callback_openim_api_outgoing_message_t note = {0};
    OPENIM_NAME(_string_set)(&note.send_id, "imAdmin");
    note.recipient.tag = OPENIM_CALLBACK_OPENIM_API_RECIPIENT_USER;
    OPENIM_NAME(_string_set)(&note.recipient.val.user, "imAdmin");
    note.content.tag = OPENIM_CALLBACK_OPENIM_API_CONTENT_TEXT;
    note.content.val.text = delivery->command;  // borrowed: the call does not free it
    openim_callback_openim_api_sent_t sent;
    openim_callback_openim_api_api_error_t error;
    if (openim_callback_openim_api_send_message(&note, &sent, &error)) {
      openim_callback_openim_api_sent_free(&sent);
    } else {
      // Down, busy or the host's sign-in refused: in an after-callback,
      // openim_callback_openim_api_retry_later(...) has the queue deliver it again later.
      OPENIM_LOG(OPENIM_CALLBACK_LOG_LEVEL_WARN, "could not tell the operator");
      openim_callback_openim_api_api_error_free(&error);
    }
  }
