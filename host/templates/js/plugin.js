// {{name}}: a callback-host plugin for OpenIM's kick callback.
import { goOn, info, refuse } from './openim-helpers.js';
{{openim_api_imports}}

export const kickGroupMember = {
  handleKick(delivery, request) {
    info('kick seen', { group_id: request.groupId });
{{openim_api_call}}
    // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
    if (request.kickedUserIds.includes('root')) {
      return refuse(4001, 'root cannot be kicked', delivery.operationId);
    }
    return goOn();
  },
};
