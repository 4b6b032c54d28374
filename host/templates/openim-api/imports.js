import { sendMessage } from 'openim:callback/openim-api@0.1.0';
import { warn } from './openim-helpers.js';
