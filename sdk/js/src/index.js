// Entry point of rtmd-rts: createRTS, destroyRTS, getSdkVersion and the
// enums (the vendor's IVERTS surface). Types are in ../index.d.ts.

import { RTS, RTSRoom } from './rts.js';
import { SDK_VERSION } from './constants.js';

export {
  CONNECTION_STATE,
  CONNECTION_CHANGE_REASON,
  LOGIN_ERROR_CODE,
  LOGOUT_REASON,
  RTM_DUPLICATE_LOGIN,
  USER_ONLINE_STATUS,
  USER_OFFLINE_REASON,
  ROOM_JOIN_TYPE,
  ERROR_CODE,
} from './constants.js';
export { RTS, RTSRoom };

export function createRTS(appId, options) {
  return new RTS(appId, options);
}

export function destroyRTS(rts) {
  if (rts instanceof RTS) rts._destroy();
}

export function getSdkVersion() {
  return SDK_VERSION;
}
