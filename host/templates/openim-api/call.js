    // Tell an operator through OpenIM's API (grant: openim_api = ["send-message"]): a text from
    // the admin user (the sender must be a registered user: the admin user or a bot account) to
    // the admin user. Other calls: revokeMessage, muteGroupMember, unmuteGroupMember,
    // kickGroupMembers, getUsersInfo (wit/openim-api.wit).
    try {
      sendMessage({
        sendId: 'imAdmin',
        recipient: { tag: 'user', val: 'imAdmin' },
        content: { tag: 'text', val: `${delivery.command} (operationID ${delivery.operationId})` },
        senderNickname: '',
        ex: '',
      });
    } catch (error) {
      // Down, busy or the host's sign-in refused: in an after-callback, retryLater(...) has the
      // queue deliver it again later.
      warn('could not tell the operator', { error: JSON.stringify(error.payload ?? String(error)) });
    }
