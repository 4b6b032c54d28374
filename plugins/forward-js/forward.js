// Forwards every one-to-one message OpenIM reports as sent (callbackAfterSendSingleMsgCommand) to
// an HTTP endpoint of yours, e.g. a CRM or an archive: a JSON POST to the `url` of its
// [plugin_config.50-forward-js] section. The host lets it call only the origins its grant lists.
import { get } from 'wasi:config/store@0.2.0-rc.1';
import { goOn, info, warn } from '../openim-helpers/js/openim-helpers.js';

export const afterSendSingleMsg = {
  async handle(delivery, request) {
    const url = get('url');
    if (!url) {
      warn('no url in [plugin_config]: nothing forwarded');
      return goOn();
    }
    const m = request.message;
    const event = {
      event: 'message-sent',
      operationID: delivery.operationId,
      sendID: m.sendId,
      recvID: request.recvId,
      clientMsgID: m.clientMsgId,
      contentType: m.contentType,
      content: m.content,
      sendTime: Number(m.sendTime),
    };
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
      });
      info('forwarded', { status: response.status });
    } catch (error) {
      warn('forwarding failed', { error });
    }
    return goOn();
  },
};
