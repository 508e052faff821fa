// Enums and constants of the public API (values documented in index.d.ts).

export const SDK_VERSION = '0.1.0';

export const CONNECTION_STATE = Object.freeze({
  DISCONNECTED: 1,
  CONNECTING: 2,
  CONNECTED: 3,
  RECONNECTING: 4,
  RECONNECTED: 5,
  LOST: 6,
});

export const CONNECTION_CHANGE_REASON = Object.freeze({
  LOGIN: 0,
  LOGIN_SUCCESS: 1,
  LOGIN_FAILED: 2,
  NETWORK_LOST: 3,
  RECONNECT_SUCCESS: 4,
  RECONNECT_TIMEOUT: 5,
  LOGOUT: 6,
  KICKED: 7,
  DUPLICATE_LOGIN: 8,
  DESTROYED: 9,
  TOKEN_EXPIRED: 10,
  INVALID_TOKEN: 11,
  SESSION_CLOSED: 12,
});

export const LOGIN_ERROR_CODE = Object.freeze({
  SUCCESS: 0,
  INVALID_TOKEN: -1,
  LOGIN_FAILED: -2,
  INVALID_USER_ID: -3,
  SERVER_ERROR: -4,
  TOKEN_EXPIRED: -5,
  ALREADY_LOGGED_IN: -6,
});

export const LOGOUT_REASON = Object.freeze({
  LOGOUT: 0,
  DUPLICATE_LOGIN: 1,
  KICKED: 2,
  SESSION_CLOSED: 3,
});

export const RTM_DUPLICATE_LOGIN = LOGOUT_REASON.DUPLICATE_LOGIN;

export const USER_ONLINE_STATUS = Object.freeze({
  OFFLINE: 0,
  ONLINE: 1,
});

export const USER_OFFLINE_REASON = Object.freeze({
  QUIT: 0,
  DROPPED: 1,
  SWITCH_TO_INVISIBLE: 2,
  KICKED_BY_ADMIN: 3,
});

export const ROOM_JOIN_TYPE = Object.freeze({
  FIRST_JOIN: 0,
  REJOIN: 1,
});

// Codes of Errors the SDK raises itself (server errors carry the server's code).
export const ERROR_CODE = Object.freeze({
  SUCCESS: 0,
  // FPNN core codes
  CONNECTION_CLOSED: 20001,
  NOT_CONNECTED: 20002,
  TIMEOUT: 20003,
  // RTM codes the SDK checks before sending
  INVALID_PARAMETER: 200001,
  INVALID_AUTH_TOKEN: 200027,
  LARGE_MESSAGE: 200030,
  NOT_IN_ROOM: 200040,
  // SDK-only codes
  NOT_LOGGED_IN: -100,
  DUPLICATE_ROOM: -101,
  ROOM_DESTROYED: -102,
  ALREADY_LOGGED_IN: -103,
  DESTROYED: -104,
});

export const MAX_MESSAGE_BYTES = 65536;
export const ID_RE = /^[a-zA-Z0-9_@\-.]{1,128}$/;
