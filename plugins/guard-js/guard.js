// The guard plugin in JavaScript: refuses a kick when it includes a protected user.
// Same policy as the Rust guard (plugins/guard): errCode 10001, the protected ids in errDlt.
import { goOn, refuse, warn } from '../openim-helpers/js/openim-helpers.js';

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
      return goOn();
    }
    const list = blocked.join(',');
    warn('refusing kick of protected users', {
      group_id: request.groupId,
      protected: list,
      operation_id: delivery.operationId,
    });
    return refuse(ERR_PROTECTED, 'kicking protected users is not allowed', `protected users: ${list}`);
  },
};
