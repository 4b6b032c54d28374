// {{name}}: a callback-host plugin for OpenIM's kick callback.
import { log } from 'openim:callback/log@0.1.0';

export const kickGroupMember = {
  handleKick(delivery, request) {
    log('info', 'kick seen', [['group_id', request.groupId]]);
    // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
    const refuse = request.kickedUserIds.includes('root');
    return {
      actionCode: 0,
      errCode: refuse ? 4001 : 0,
      errMsg: refuse ? 'root cannot be kicked' : '',
      errDlt: refuse ? delivery.operationId : '',
      nextCode: refuse ? 1 : 0,
    };
  },
};
