	// Tell an operator through OpenIM's API (grant: openim_api = ["send-message"]): a text from
	// the admin user (the sender must be a registered user: the admin user or a bot account) to
	// the admin user. Other calls: RevokeMessage, MuteGroupMember, UnmuteGroupMember,
	// KickGroupMembers, GetUsersInfo (wit/openim-api.wit).
	sent := openim_callback_openim_api.SendMessage(openim_callback_openim_api.OutgoingMessage{
		SendId:    "imAdmin",
		Recipient: openim_callback_openim_api.MakeRecipientUser("imAdmin"),
		Content:   openim_callback_openim_api.MakeContentText(delivery.Command + " (operationID " + delivery.OperationId + ")"),
	})
	if sent.IsErr() {
		// Down, busy or the host's sign-in refused: in an after-callback,
		// openim_callback_openim_api.RetryLater(...) has the queue deliver it again later.
		openim_helpers.Warn("could not tell the operator", "error", fmt.Sprintf("%+v", sent.Err()))
	}
