// Helpers for callback-host plugins in JavaScript: the answers every plugin writes, "no changes"
// and the text of a text message. Import it beside your plugin
// (`import { goOn, refuse } from './openim-helpers.js'`); componentize-js bundles it.
// Plugins written without it keep working.
import { log } from 'openim:callback/log@0.1.0';

// OpenIM's content type of a text message (its content is {"content": "..."}).
export const TEXT = 101;

// The operation proceeds.
export function goOn() {
  return { actionCode: 0, errCode: 0, errMsg: '', errDlt: '', nextCode: 0 };
}

// A refusal: OpenIM hands errCode, errMsg and errDlt to its caller (only actionCode 0 with
// nextCode 1 refuses).
export function refuse(errCode, errMsg, errDlt = '') {
  return { actionCode: 0, errCode, errMsg, errDlt, nextCode: 1 };
}

// A command's changes with nothing changed: every field left undefined (none).
export function noChanges(set = {}) {
  return { ...set };
}

// The text of a message, when it is a text message.
export function textOf(contentType, content) {
  if (contentType !== TEXT) return undefined;
  try {
    const text = JSON.parse(content).content;
    return typeof text === 'string' ? text : undefined;
  } catch {
    return undefined;
  }
}

function line(level, message, fields) {
  log(level, message, Object.entries(fields).map(([key, value]) => [key, String(value)]));
}

// A line in the host's log, fields as an object.
export const info = (message, fields = {}) => line('info', message, fields);
export const warn = (message, fields = {}) => line('warn', message, fields);
