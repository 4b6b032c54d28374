// The guard plugin in JavaScript: refuses a kick when it includes a protected user.
// Same policy as the Rust guard (plugins/guard): errCode 10001, the protected ids in errDlt.
import { log } from 'openim:callback/log@0.1.0';

const PROTECTED_USERS = new Set(['admin', 'owner-bot', 'security-officer']);
const ERR_PROTECTED = 10001;

export const kickGroupMember = {
  handleKick(delivery, request) {
    const blocked = [];
    for (const user of request.kickedUserIds) {
      if (PROTECTED_USERS.has(user) && !blocked.includes(user)) {
        blocked.push(user);
      }
    }
    if (blocked.length === 0) {
      return { actionCode: 0, errCode: 0, errMsg: '', errDlt: '', nextCode: 0 };
    }
    const list = blocked.join(',');
    log('warn', 'refusing kick of protected users', [
      ['group_id', request.groupId],
      ['protected', list],
      ['operation_id', delivery.operationId],
    ]);
    return {
      actionCode: 0,
      errCode: ERR_PROTECTED,
      errMsg: 'kicking protected users is not allowed',
      errDlt: `protected users: ${list}`,
      nextCode: 1,
    };
  },
};
