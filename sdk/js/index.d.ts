// Type declarations of rtmd-rts: the vendor's web RTS API (IVERTS, IRTS,
// IRTSRoom, IRTSEvents, IRTSRoomEvents) as rtmd serves it. Hand-written.

/** Options of createRTS (rtmd has no fixed cloud address). */
export interface RTSOptions {
  /**
   * `ws://host:port` or `wss://host:port`, optionally with a path
   * (`/service/websocket` is added when the path is empty). Default in a
   * browser: the page's host on port 13321 (`ws`), or 13322 (`wss`) on an
   * https page. Required outside a browser.
   */
  endpoint?: string;
  /** WebSocket constructor (default `globalThis.WebSocket`; in Node pass the `ws` package). */
  WebSocket?: new (url: string) => any;
  /** Time to open the WebSocket, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Time to wait for each answer of the server, ms (default 10000). */
  requestTimeoutMs?: number;
  /** The SDK sends `ping` after this long without traffic, ms (default 20000; 0 = never). */
  keepaliveMs?: number;
  /** First reconnect delay, ms (default 500; doubles up to reconnectMaxMs, with jitter). */
  reconnectMinMs?: number;
  /** Largest reconnect delay, ms (default 30000). */
  reconnectMaxMs?: number;
}

/** State of the link to rtmd (onConnectionStateChanged). */
export enum CONNECTION_STATE {
  /** Not connected: before login, after logout, kickout, or a refused (re)login. */
  DISCONNECTED = 1,
  /** login() is connecting and logging in. */
  CONNECTING = 2,
  /** Logged in by login(). */
  CONNECTED = 3,
  /** The link was lost; the SDK is reconnecting with backoff. */
  RECONNECTING = 4,
  /** Logged in again after a lost link (rooms are being joined again). */
  RECONNECTED = 5,
  /** Still reconnecting after 10 s; the SDK keeps trying. */
  LOST = 6,
}

/** Why the connection state changed (second argument of onConnectionStateChanged). */
export enum CONNECTION_CHANGE_REASON {
  LOGIN = 0,
  LOGIN_SUCCESS = 1,
  LOGIN_FAILED = 2,
  NETWORK_LOST = 3,
  RECONNECT_SUCCESS = 4,
  RECONNECT_TIMEOUT = 5,
  LOGOUT = 6,
  KICKED = 7,
  DUPLICATE_LOGIN = 8,
  DESTROYED = 9,
  TOKEN_EXPIRED = 10,
  INVALID_TOKEN = 11,
  /** The RealTimeCat session or token was deleted (or is gone at a re-login). */
  SESSION_CLOSED = 12,
}

/** Result of a login (onLoginResult). */
export enum LOGIN_ERROR_CODE {
  SUCCESS = 0,
  /** The token is not valid for this app id and user id (call updateLoginToken). */
  INVALID_TOKEN = -1,
  /** No connection to rtmd (network, timeout). */
  LOGIN_FAILED = -2,
  /** The user id (or the app id) is not valid (RTM 200001). */
  INVALID_USER_ID = -3,
  /** rtmd answered with another error (the rejected Error has its code). */
  SERVER_ERROR = -4,
  /** The token has expired (onTokenExpired follows; call updateLoginToken). */
  TOKEN_EXPIRED = -5,
  /** login() on an instance that is logged in already. */
  ALREADY_LOGGED_IN = -6,
}

/** Why the user was logged out (onLogout). */
export enum LOGOUT_REASON {
  /** logout() was called. */
  LOGOUT = 0,
  /** The same user id logged in elsewhere (the server's kickout, reason duplicate_login). */
  DUPLICATE_LOGIN = 1,
  /** The app server kicked the user out. */
  KICKED = 2,
  /**
   * A joinSession session ended: its RealTimeCat session or token was
   * deleted (kickout `session_deleted` / `token_deleted`), or a re-login
   * after a lost link found the token gone or expired. No reconnect.
   */
  SESSION_CLOSED = 3,
}

/** onLogout reason for a login of the same user id elsewhere (= LOGOUT_REASON.DUPLICATE_LOGIN). */
export declare const RTM_DUPLICATE_LOGIN: 1;

/** Result of getPeerOnlineStatus. */
export enum USER_ONLINE_STATUS {
  OFFLINE = 0,
  ONLINE = 1,
}

/** Why a user left a room (onUserLeave). */
export enum USER_OFFLINE_REASON {
  /** leaveRoom() or logout(). */
  QUIT = 0,
  /** The user's connection closed without logout. */
  DROPPED = 1,
  SWITCH_TO_INVISIBLE = 2,
  /** Removed by the app server. */
  KICKED_BY_ADMIN = 3,
}

/** join_type in the extraInfo JSON of onRoomStateChanged. */
export enum ROOM_JOIN_TYPE {
  FIRST_JOIN = 0,
  /** Joined again by the SDK after a reconnect. */
  REJOIN = 1,
}

/**
 * `code` of the Errors the SDK raises itself; server failures carry the
 * server's RTM code (200001-200999) or FPNN code.
 */
export enum ERROR_CODE {
  SUCCESS = 0,
  /** The link closed before the answer (or the SDK is reconnecting). */
  CONNECTION_CLOSED = 20001,
  NOT_CONNECTED = 20002,
  /** No answer within requestTimeoutMs. */
  TIMEOUT = 20003,
  INVALID_PARAMETER = 200001,
  /** Login refused for the token (see `loginError` and `reason` on the Error). */
  INVALID_AUTH_TOKEN = 200027,
  LARGE_MESSAGE = 200030,
  NOT_IN_ROOM = 200040,
  /** The method needs a login. */
  NOT_LOGGED_IN = -100,
  /** createRTSRoom with a room id that has a live IRTSRoom on this instance. */
  DUPLICATE_ROOM = -101,
  /** The IRTSRoom was destroyed. */
  ROOM_DESTROYED = -102,
  ALREADY_LOGGED_IN = -103,
  /** The IRTS was destroyed. */
  DESTROYED = -104,
}

/** The Error every rejected promise and thrown failure carries. */
export interface RTSError extends Error {
  /** RTM or FPNN code from rtmd, or an ERROR_CODE of the SDK. */
  code: number;
  /** The server's exception text, when rtmd gave one. */
  ex?: string;
  /** For login failures: the LOGIN_ERROR_CODE also reported by onLoginResult. */
  loginError?: LOGIN_ERROR_CODE;
  /** For token refusals: 'invalid' or 'expired'. */
  reason?: 'invalid' | 'expired';
}

/** The app server's reply to sendServerMessage / sendServerBinaryMessage. */
export interface ServerMessageReply {
  /** HTTP status of the app server's reply. */
  status: number;
  /**
   * Reply body. After sendServerMessage: a string when the body is UTF-8
   * text, else an ArrayBuffer. After sendServerBinaryMessage: always an
   * ArrayBuffer.
   */
  body: string | ArrayBuffer;
}

/** Events of IRTS (rts.on(name, handler)). */
export interface IRTSEvents {
  /** The link changed state; `reason` says why. */
  onConnectionStateChanged: (state: CONNECTION_STATE, reason: CONNECTION_CHANGE_REASON) => void;
  /**
   * Result of login(), of the re-login updateLoginToken starts after a
   * refused login, and of a re-login after a lost link that was refused for
   * its token. `elapsed` in ms.
   */
  onLoginResult: (userId: string, errorCode: LOGIN_ERROR_CODE, elapsed: number) => void;
  /** Logged out: by logout(), or by the server (then no reconnect). */
  onLogout: (reason: LOGOUT_REASON) => void;
  /** A (re)login was refused because the token has expired: call updateLoginToken. */
  onTokenExpired: () => void;
  /** A p2p text message (duplicates by sender and message id are dropped). */
  onMessageReceived: (userId: string, message: string) => void;
  /** A p2p binary message. */
  onBinaryMessageReceived: (userId: string, message: ArrayBuffer) => void;
  /** Outcome of sendMessage/sendBinaryMessage: error 0, or the error code. */
  onMessageSendResult: (msgId: number, error: number) => void;
  /** Outcome of setServerParams: 0, or the error code. */
  onServerParamsSetResult: (error: number) => void;
  /**
   * Outcome of sendServerMessage/sendServerBinaryMessage: error 0 and the
   * app server's reply, or the error code (200090-200094, ...) and no reply.
   */
  onServerMessageSendResult: (msgId: number, error: number, reply?: ServerMessageReply) => void;
  /** Outcome of getPeerOnlineStatus. */
  onPeerOnlineStatus: (userId: string, status: USER_ONLINE_STATUS) => void;
}

/** A user in a room (onUserJoined). */
export interface RTSUserInfo {
  userId: string;
  /** Always "" with rtmd. */
  extraInfo: string;
}

/** Events of IRTSRoom (room.on(name, handler)). */
export interface IRTSRoomEvents {
  /**
   * Outcome of joinRoom (state 0, or the error code), and of the join the
   * SDK repeats after a reconnect. extraInfo is JSON:
   * `{"elapsed": ms, "join_type": 0 | 1}` (ROOM_JOIN_TYPE).
   */
  onRoomStateChanged: (roomId: string, userId: string, state: number, extraInfo: string) => void;
  /** A user is in the room: the ones there when this user joined, then each newcomer. */
  onUserJoined: (userInfo: RTSUserInfo) => void;
  /** A user left the room. */
  onUserLeave: (userId: string, reason: USER_OFFLINE_REASON) => void;
  onRoomMessageReceived: (userId: string, message: string) => void;
  onRoomBinaryMessageReceived: (userId: string, message: ArrayBuffer) => void;
  /** Outcome of sendRoomMessage/sendRoomBinaryMessage: 0 or the error code (200040 not in the room). */
  onRoomMessageSendResult: (msgId: number, error: number) => void;
  /** This user left the room (leaveRoom, or removed by the server). */
  onLeaveRoom: () => void;
}

/** What joinSession logged in as (IRTS.sessionInfo). */
export interface RTCatSessionInfo {
  /** The token's uuid: this connection's user id (as others see it in the room). */
  uid: string;
  /** The session's uuid: the id of its room. */
  session: string;
  /** `pub` sends and receives; `sub` receives only (its sends reject with 200021). */
  type: 'pub' | 'sub';
}

export interface IRTS {
  /**
   * Logs in with a RealTimeCat token (no login() needed) and enters the
   * session's room; resolves with it (roomId = the session uuid). A
   * refused token rejects like login() (code 200027, `loginError`
   * INVALID_TOKEN or TOKEN_EXPIRED, `reason`). Reconnects log in again with
   * the token and enter again; a deleted session or token ends with
   * onLogout(LOGOUT_REASON.SESSION_CLOSED).
   */
  joinSession(token: string): Promise<IRTSRoom>;
  /** After joinSession: the token's uid, the session uuid and the token type; null otherwise. */
  readonly sessionInfo: RTCatSessionInfo | null;
  /** A room object (joinRoom enters it). Throws (code DUPLICATE_ROOM) for a room id with a live IRTSRoom, and for an invalid id. */
  createRTSRoom(roomId: string): IRTSRoom;
  /** Logs in; rejects with an RTSError (`loginError` set) when refused. */
  login(token: string | null, userId: string): Promise<void>;
  /** Sends `bye` and closes; no reconnect. */
  logout(): Promise<void>;
  /** Keeps the token for re-logins; after a login refused for its token, logs in again on its own. */
  updateLoginToken(token: string | null): Promise<void>;
  getPeerOnlineStatus(userId: string): Promise<USER_ONLINE_STATUS>;
  sendMessage(userId: string, message: string): Promise<void>;
  sendBinaryMessage(userId: string, message: ArrayBuffer | ArrayBufferView): Promise<void>;
  /** Parameters of P2Server (kept, and set again after a reconnect). */
  setServerParams(signature: string, url: string): Promise<void>;
  /** The reply comes in onServerMessageSendResult. */
  sendServerMessage(message: string): Promise<void>;
  sendServerBinaryMessage(message: ArrayBuffer | ArrayBufferView): Promise<void>;
  /** Before login only (returns false after it, and for more than 128 bytes). */
  setBusinessId(businessId: string): boolean;
  on<T extends keyof IRTSEvents>(type: T, handler: IRTSEvents[T]): void;
  off<T extends keyof IRTSEvents>(type: T, handler: IRTSEvents[T]): void;
}

export interface IRTSRoom {
  /** The room id (for a joinSession room: the session uuid). */
  readonly roomId: string;
  joinRoom(): Promise<void>;
  leaveRoom(): Promise<void>;
  sendRoomMessage(message: string): Promise<void>;
  sendRoomBinaryMessage(message: ArrayBuffer | ArrayBufferView): Promise<void>;
  on<T extends keyof IRTSRoomEvents>(type: T, handler: IRTSRoomEvents[T]): void;
  off<T extends keyof IRTSRoomEvents>(type: T, handler: IRTSRoomEvents[T]): void;
  /** Leaves the room (when joined) and frees the room id for createRTSRoom. */
  destroy(): void;
}

/** A new, independent instance for appId (the project's 24-character app_id). */
export declare function createRTS(appId: string, options?: RTSOptions): IRTS;
/** Logs out, leaves the rooms and drops every handler of rts. */
export declare function destroyRTS(rts: IRTS): void;
export declare function getSdkVersion(): string;
