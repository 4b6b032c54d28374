// {{name}}: a callback-host plugin for OpenIM's `{{command}}`.
import { goOn, info } from './openim-helpers.js';
{{openim_api_imports}}

export const {{js_interface}} = {
  handle(delivery, request) {
    info('callback seen', { command: delivery.command, operation_id: delivery.operationId });
{{openim_api_call}}
    // Go on. To refuse: refuse(errCode, errMsg, errDlt) from './openim-helpers.js'.
    const response = goOn();
    return {{js_answer}};
  },
};
