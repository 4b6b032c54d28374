// {{name}}: a callback-host plugin for OpenIM's `{{command}}`.
import { log } from 'openim:callback/log@0.1.0';

export const {{js_interface}} = {
  handle(delivery, request) {
    log('info', 'callback seen', [['command', delivery.command]]);
    // Go on (actionCode 0, nextCode 0). To refuse: nextCode 1 with your errCode and errMsg.
    const response = { actionCode: 0, errCode: 0, errMsg: '', errDlt: delivery.operationId, nextCode: 0 };
    return {{js_answer}};
  },
};
