// The RTS API (IRTS and IRTSRoom of the vendor's web SDK) on rtmd's wire
// contract: login with an RTS token and a string user id (`auth`), p2p text
// and binary (`sendmsg`/`pushmsg`), presence (`getonlinestatus`), P2Server
// (`setserverparams`/`sendservermsg`), rooms (`enterroom`, `leaveroom`,
// `sendroommsg` and the room pushes), kickout, and the automatic reconnect
// (backoff, re-login with the last token, rooms joined again), and
// RealTimeCat sessions (`joinSession`: login with a RealTimeCat token, whose
// uuid is the user id, and the session's room entered). Methods return
// promises; the same outcomes are also reported as events.

import { FpnnConnection, FPNN_EC, rtsError } from './fpnn.js';
import { Emitter } from './emitter.js';
import {
  SDK_VERSION,
  CONNECTION_STATE,
  CONNECTION_CHANGE_REASON as WHY,
  LOGIN_ERROR_CODE,
  LOGOUT_REASON,
  USER_ONLINE_STATUS,
  ROOM_JOIN_TYPE,
  ERROR_CODE,
  ID_RE,
} from './constants.js';

const MTYPE_CHAT = 30;
const DEDUP_KEEP = 10000; // (sender, mid) pairs remembered per client
const LOST_AFTER_MS = 10000; // RECONNECTING turns into LOST after this long

const utf8Strict = typeof TextDecoder !== 'undefined' ? new TextDecoder('utf-8', { fatal: true }) : null;
const utf8Encoder = new TextEncoder();

function toArrayBuffer(bytes) {
  if (bytes instanceof ArrayBuffer) return bytes;
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

function toBytes(buf) {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'message must be an ArrayBuffer');
}

function idText(v) {
  return typeof v === 'string' ? v : String(v);
}

function checkId(id, what) {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw rtsError(ERROR_CODE.INVALID_PARAMETER, `${what} must be 1-128 characters of a-z A-Z 0-9 _ @ - .`);
  }
}

function defaultEndpoint() {
  const loc = typeof globalThis !== 'undefined' ? globalThis.location : undefined;
  if (!loc || !loc.hostname) return null;
  return loc.protocol === 'https:' ? `wss://${loc.hostname}:13322` : `ws://${loc.hostname}:13321`;
}

export function endpointUrl(endpoint) {
  const raw = endpoint || defaultEndpoint();
  if (!raw) throw new TypeError('createRTS: no endpoint given and no page location to derive one from');
  const u = new URL(raw);
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TypeError(`createRTS: endpoint must be ws:// or wss://, got ${raw}`);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/service/websocket';
  return u.toString();
}

export class RTS extends Emitter {
  constructor(appId, options = {}) {
    super();
    if (typeof appId !== 'string' || appId.length === 0) throw new TypeError('createRTS: appId must be a non-empty string');
    const WS = options.WebSocket || globalThis.WebSocket;
    if (typeof WS !== 'function') throw new TypeError('createRTS: no WebSocket; pass options.WebSocket (e.g. the ws package in Node)');
    this.appId = appId;
    this.url = endpointUrl(options.endpoint);
    this.WS = WS;
    this.connectTimeoutMs = options.connectTimeoutMs || 10000;
    this.requestTimeoutMs = options.requestTimeoutMs || 10000;
    this.keepaliveMs = options.keepaliveMs === undefined ? 20000 : options.keepaliveMs;
    this.reconnectMinMs = options.reconnectMinMs || 500;
    this.reconnectMaxMs = options.reconnectMaxMs || 30000;
    this.state = CONNECTION_STATE.DISCONNECTED;
    this.conn = null; // the logged-in link, or null
    this.userId = null;
    this.token = null;
    this.rtcatToken = null; // joinSession's token: logins use it instead of token/userId
    this.sessionInfo = null; // {uid, session, type} after joinSession
    this.businessId = null;
    this.session = false; // logged in (or re-logging in) until logout/kickout
    this.loggingIn = false;
    this.reloginOnToken = false; // updateLoginToken logs in again
    this.reconnectTimer = null;
    this.lostTimer = null;
    this.reconnectAttempt = 0;
    this.serverParams = null;
    this.rooms = new Map();
    this.seen = new Map();
    this.nextMid = Date.now() * 1000 + Math.floor(Math.random() * 1000);
    this.destroyed = false;
  }

  // ------------------------------------------------------------ helpers

  _newMid() {
    this.nextMid += 1;
    return this.nextMid;
  }

  _setState(state, reason) {
    if (this.destroyed) return;
    if (state === this.state && state !== CONNECTION_STATE.RECONNECTED) return;
    this.state = state;
    this.emit('onConnectionStateChanged', state, reason);
  }

  _duplicate(key) {
    if (this.seen.has(key)) return true;
    this.seen.set(key, true);
    if (this.seen.size > DEDUP_KEEP) this.seen.delete(this.seen.keys().next().value);
    return false;
  }

  // The link to send on; throws (code) when there is none.
  _link() {
    if (this.destroyed) throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    if (!this.session) throw rtsError(ERROR_CODE.NOT_LOGGED_IN, 'not logged in');
    if (!this.conn || !this.conn.open) throw rtsError(FPNN_EC.CONNECTION_CLOSED, 'not connected (reconnecting)');
    return this.conn;
  }

  // Runs quest on the logged-in link; rejects with an Error carrying `code`.
  async _quest(method, payload) {
    return this._link().quest(method, payload);
  }

  // Opens a link and sends auth; resolves {conn, code, error} with code a
  // LOGIN_ERROR_CODE; conn is the open, logged-in link on success only.
  async _connectAndAuth() {
    const conn = new FpnnConnection({
      url: this.url,
      WebSocket: this.WS,
      connectTimeoutMs: this.connectTimeoutMs,
      requestTimeoutMs: this.requestTimeoutMs,
      keepaliveMs: this.keepaliveMs,
      onQuest: (method, payload) => this._onQuest(conn, method, payload),
      onClose: (info) => this._onClose(conn, info),
    });
    try {
      await conn.connect();
    } catch (e) {
      return { code: LOGIN_ERROR_CODE.LOGIN_FAILED, error: e };
    }
    const version = `rtmd-rts-js/${SDK_VERSION}`;
    const auth = this.rtcatToken !== null
      ? { appid: this.appId, rtcat_token: this.rtcatToken, version }
      : { appid: this.appId, uid: this.userId, token: this.token || '', version };
    if (this.businessId) auth.businessid = this.businessId;
    try {
      const ans = await conn.quest('auth', auth);
      if (ans && ans.ok === true) {
        if (this.rtcatToken !== null) {
          if (typeof ans.uid !== 'string' || typeof ans.session !== 'string') {
            conn.close();
            return { code: LOGIN_ERROR_CODE.SERVER_ERROR, error: rtsError(ERROR_CODE.INVALID_PARAMETER, 'the server answered a session login without uid and session') };
          }
          this.userId = ans.uid;
          this.sessionInfo = { uid: ans.uid, session: ans.session, type: ans.type === 'sub' ? 'sub' : 'pub' };
        }
        return { conn, code: LOGIN_ERROR_CODE.SUCCESS };
      }
      conn.close();
      const expired = ans && ans.reason === 'expired';
      return {
        code: expired ? LOGIN_ERROR_CODE.TOKEN_EXPIRED : LOGIN_ERROR_CODE.INVALID_TOKEN,
        error: rtsError(ERROR_CODE.INVALID_AUTH_TOKEN, expired ? 'login token expired' : 'login token invalid', { reason: expired ? 'expired' : 'invalid' }),
      };
    } catch (e) {
      conn.close();
      let code = LOGIN_ERROR_CODE.SERVER_ERROR;
      if (e.code === FPNN_EC.CONNECTION_CLOSED || e.code === FPNN_EC.TIMEOUT) code = LOGIN_ERROR_CODE.LOGIN_FAILED;
      else if (e.code === 200001) code = LOGIN_ERROR_CODE.INVALID_USER_ID;
      return { code, error: e };
    }
  }

  // ------------------------------------------------------------ login

  async login(token, userId) {
    if (this.destroyed) throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    if (this.session || this.loggingIn) {
      throw rtsError(ERROR_CODE.ALREADY_LOGGED_IN, 'already logged in (call logout first)', { loginError: LOGIN_ERROR_CODE.ALREADY_LOGGED_IN });
    }
    const t0 = Date.now();
    if (typeof userId !== 'string' || !ID_RE.test(userId)) {
      this.emit('onLoginResult', userId, LOGIN_ERROR_CODE.INVALID_USER_ID, 0);
      throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'userId must be 1-128 characters of a-z A-Z 0-9 _ @ - .', { loginError: LOGIN_ERROR_CODE.INVALID_USER_ID });
    }
    if (this.userId !== userId) this.seen.clear();
    this.userId = userId;
    this.token = token;
    this.rtcatToken = null;
    this.sessionInfo = null;
    this.reloginOnToken = false;
    return this._login(t0);
  }

  // Logs in with a RealTimeCat token (its uuid is the user id) and enters
  // the session's room (the session uuid). A refused token rejects like
  // login() (200027 with loginError and reason); there is no
  // updateLoginToken for a session: a new token is a new joinSession.
  async joinSession(token) {
    if (this.destroyed) throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    if (this.session || this.loggingIn) {
      throw rtsError(ERROR_CODE.ALREADY_LOGGED_IN, 'already logged in (call logout first)', { loginError: LOGIN_ERROR_CODE.ALREADY_LOGGED_IN });
    }
    if (typeof token !== 'string' || token.length === 0 || token.length > 128) {
      throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'token must be a RealTimeCat token (its uuid)', { loginError: LOGIN_ERROR_CODE.INVALID_TOKEN });
    }
    const t0 = Date.now();
    if (this.rtcatToken !== token) this.seen.clear();
    this.rtcatToken = token;
    this.sessionInfo = null;
    this.userId = '';
    this.token = null;
    this.reloginOnToken = false;
    try {
      await this._login(t0);
    } finally {
      this.reloginOnToken = false; // a refused session token is not retried
    }
    const rid = this.sessionInfo.session;
    let room = this.rooms.get(rid);
    if (!room) room = this.createRTSRoom(rid);
    // The app gets the room only when this resolves: its events until then
    // (the members already there, pushes meanwhile) are held and emitted,
    // in order, just after the app's continuation has run.
    room._hold();
    try {
      await room.joinRoom();
    } catch (e) {
      room._release(false);
      await this.logout();
      throw e;
    }
    setTimeout(() => room._release(true), 0);
    return room;
  }

  async _login(t0) {
    this.loggingIn = true;
    this._setState(CONNECTION_STATE.CONNECTING, WHY.LOGIN);
    const r = await this._connectAndAuth();
    this.loggingIn = false;
    const elapsed = Date.now() - t0;
    if (this.destroyed) {
      if (r.conn) r.conn.close();
      throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    }
    if (r.code === LOGIN_ERROR_CODE.SUCCESS) {
      this.conn = r.conn;
      this.session = true;
      this.reconnectAttempt = 0;
      this._setState(CONNECTION_STATE.CONNECTED, WHY.LOGIN_SUCCESS);
      this.emit('onLoginResult', this.userId, LOGIN_ERROR_CODE.SUCCESS, elapsed);
      return;
    }
    this._loginFailed(r, elapsed);
    r.error.loginError = r.code;
    throw r.error;
  }

  _loginFailed(r, elapsed) {
    const tokenProblem = r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED || r.code === LOGIN_ERROR_CODE.INVALID_TOKEN;
    this.reloginOnToken = tokenProblem;
    let why = WHY.LOGIN_FAILED;
    if (r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED) why = WHY.TOKEN_EXPIRED;
    else if (r.code === LOGIN_ERROR_CODE.INVALID_TOKEN) why = WHY.INVALID_TOKEN;
    this._setState(CONNECTION_STATE.DISCONNECTED, why);
    this.emit('onLoginResult', this.userId, r.code, elapsed);
    if (r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED) this.emit('onTokenExpired');
  }

  async updateLoginToken(token) {
    if (this.destroyed) throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    this.token = token;
    if (!this.reloginOnToken || this.loggingIn) return;
    this.reloginOnToken = false;
    if (this.session) {
      // A re-login after a lost link was refused for the token: try again now.
      this._reconnectNow();
      return;
    }
    // A login() was refused for the token: log in again on our own; the
    // outcome is reported by onLoginResult.
    this._login(Date.now()).catch(() => {});
  }

  async logout() {
    if (this.destroyed) return;
    const conn = this.conn;
    const was = this.session || this.loggingIn;
    this._endSession();
    if (conn && conn.open) {
      try {
        await conn.quest('bye', {}, Math.min(this.requestTimeoutMs, 3000));
      } catch (e) {
        /* closing anyway */
      }
      conn.close();
    }
    if (was) {
      this.emit('onLogout', LOGOUT_REASON.LOGOUT);
      this._setState(CONNECTION_STATE.DISCONNECTED, WHY.LOGOUT);
    }
  }

  // Forgets the session: no reconnect, rooms left (they can be joined again
  // after a new login).
  _endSession() {
    this.session = false;
    this.sessionInfo = null;
    this.reloginOnToken = false;
    this.serverParams = null;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.lostTimer);
    this.reconnectTimer = null;
    this.lostTimer = null;
    for (const room of this.rooms.values()) room._reset();
    const conn = this.conn;
    this.conn = null;
    return conn;
  }

  setBusinessId(businessId) {
    if (this.session || this.loggingIn || this.destroyed) return false;
    if (typeof businessId !== 'string' || utf8Encoder.encode(businessId).length > 128) return false;
    this.businessId = businessId;
    return true;
  }

  // ------------------------------------------------------------ reconnect

  _onClose(conn, info) {
    if (conn !== this.conn || this.destroyed) return;
    this.conn = null;
    if (info.byUs || !this.session) return;
    this._setState(CONNECTION_STATE.RECONNECTING, WHY.NETWORK_LOST);
    this.reconnectAttempt = 0;
    this._armLost();
    this._scheduleReconnect();
  }

  _armLost() {
    clearTimeout(this.lostTimer);
    this.lostTimer = setTimeout(() => {
      if (this.session && !this.conn) this._setState(CONNECTION_STATE.LOST, WHY.RECONNECT_TIMEOUT);
    }, LOST_AFTER_MS);
  }

  _scheduleReconnect() {
    clearTimeout(this.reconnectTimer);
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(this.reconnectAttempt, 16));
    const delay = Math.min(this.reconnectMaxMs, Math.round(base * (0.75 + Math.random() * 0.5)));
    this.reconnectAttempt += 1;
    this.reconnectTimer = setTimeout(() => this._reconnect(), delay);
  }

  _reconnectNow() {
    clearTimeout(this.reconnectTimer);
    if (this.state !== CONNECTION_STATE.RECONNECTING) this._setState(CONNECTION_STATE.RECONNECTING, WHY.LOGIN);
    this._armLost();
    this._reconnect();
  }

  async _reconnect() {
    this.reconnectTimer = null;
    if (!this.session || this.conn || this.destroyed || this.loggingIn) return;
    const t0 = Date.now();
    this.loggingIn = true;
    const r = await this._connectAndAuth();
    this.loggingIn = false;
    if (!this.session || this.destroyed) {
      if (r.conn) r.conn.close();
      return;
    }
    if (r.code === LOGIN_ERROR_CODE.SUCCESS) {
      this.conn = r.conn;
      this.reconnectAttempt = 0;
      clearTimeout(this.lostTimer);
      this._setState(CONNECTION_STATE.RECONNECTED, WHY.RECONNECT_SUCCESS);
      this._restore(r.conn);
      return;
    }
    if ((r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED || r.code === LOGIN_ERROR_CODE.INVALID_TOKEN) && this.rtcatToken !== null) {
      // The RealTimeCat token (or its session) was deleted or has expired
      // while the link was down: the session is over.
      const expired = r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED;
      this.emit('onLoginResult', this.userId, r.code, Date.now() - t0);
      if (expired) this.emit('onTokenExpired');
      this._endSession();
      this.emit('onLogout', LOGOUT_REASON.SESSION_CLOSED);
      this._setState(CONNECTION_STATE.DISCONNECTED, expired ? WHY.TOKEN_EXPIRED : WHY.INVALID_TOKEN);
      return;
    }
    if (r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED || r.code === LOGIN_ERROR_CODE.INVALID_TOKEN) {
      // Wait for updateLoginToken; the session (rooms) is kept.
      clearTimeout(this.lostTimer);
      this.reloginOnToken = true;
      this._setState(CONNECTION_STATE.DISCONNECTED, r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED ? WHY.TOKEN_EXPIRED : WHY.INVALID_TOKEN);
      this.emit('onLoginResult', this.userId, r.code, Date.now() - t0);
      if (r.code === LOGIN_ERROR_CODE.TOKEN_EXPIRED) this.emit('onTokenExpired');
      return;
    }
    this._scheduleReconnect();
  }

  // After a re-login: server parameters and rooms as they were.
  _restore(conn) {
    if (this.serverParams) {
      conn.quest('setserverparams', this.serverParams).catch(() => {});
    }
    for (const room of this.rooms.values()) {
      if (room.joined) room._rejoin(conn);
    }
  }

  // ------------------------------------------------------------ pushes

  _onQuest(conn, method, p) {
    if (conn !== this.conn && method !== 'ping') return {};
    switch (method) {
      case 'pushmsg':
        this._onPushMsg(p);
        break;
      case 'pushroommsg':
      case 'pushroomjoined':
      case 'pushroomleft':
      case 'kickoutroom': {
        const room = p && typeof p.rid === 'string' ? this.rooms.get(p.rid) : undefined;
        if (room) room._onPush(method, p);
        break;
      }
      case 'kickout':
        // At once: rtmd closes the link right after this push.
        this._onKickout(conn, p);
        break;
      default:
        break;
    }
    return {};
  }

  _onPushMsg(p) {
    if (!p || p.from === undefined || p.msg === undefined) return;
    const from = idText(p.from);
    if (this._duplicate(`p:${from}:${String(p.mid)}`)) return;
    if (typeof p.msg === 'string') this.emit('onMessageReceived', from, p.msg);
    else if (p.msg instanceof Uint8Array) this.emit('onBinaryMessageReceived', from, toArrayBuffer(p.msg));
  }

  _onKickout(conn, p) {
    if (conn !== this.conn || !this.session) return;
    const reason = p ? p.reason : undefined;
    const dup = reason === 'duplicate_login';
    const closed = reason === 'session_deleted' || reason === 'token_deleted';
    this._endSession();
    setTimeout(() => conn.close(), 0); // after answering the push
    if (closed) {
      this.emit('onLogout', LOGOUT_REASON.SESSION_CLOSED);
      this._setState(CONNECTION_STATE.DISCONNECTED, WHY.SESSION_CLOSED);
      return;
    }
    this.emit('onLogout', dup ? LOGOUT_REASON.DUPLICATE_LOGIN : LOGOUT_REASON.KICKED);
    this._setState(CONNECTION_STATE.DISCONNECTED, dup ? WHY.DUPLICATE_LOGIN : WHY.KICKED);
  }

  // ------------------------------------------------------------ p2p

  async _send(event, method, payload, mid) {
    try {
      const ans = await this._quest(method, payload);
      this.emit(event, mid, 0);
      return ans;
    } catch (e) {
      this.emit(event, mid, e.code);
      throw e;
    }
  }

  async sendMessage(userId, message) {
    const mid = this._newMid();
    if (typeof message !== 'string') {
      this.emit('onMessageSendResult', mid, ERROR_CODE.INVALID_PARAMETER);
      throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'message must be a string');
    }
    await this._send('onMessageSendResult', 'sendmsg', { to: userId, mid: BigInt(mid), mtype: MTYPE_CHAT, msg: message }, mid);
  }

  async sendBinaryMessage(userId, message) {
    const mid = this._newMid();
    let bytes;
    try {
      bytes = toBytes(message);
    } catch (e) {
      this.emit('onMessageSendResult', mid, e.code);
      throw e;
    }
    await this._send('onMessageSendResult', 'sendmsg', { to: userId, mid: BigInt(mid), mtype: MTYPE_CHAT, msg: bytes }, mid);
  }

  async getPeerOnlineStatus(userId) {
    const ans = await this._quest('getonlinestatus', { uids: [userId] });
    const online = Array.isArray(ans && ans.online) ? ans.online.map(idText) : [];
    const status = online.includes(idText(userId)) ? USER_ONLINE_STATUS.ONLINE : USER_ONLINE_STATUS.OFFLINE;
    this.emit('onPeerOnlineStatus', userId, status);
    return status;
  }

  // ------------------------------------------------------------ P2Server

  async setServerParams(signature, url) {
    const params = { signature, url };
    try {
      await this._quest('setserverparams', params);
    } catch (e) {
      this.emit('onServerParamsSetResult', e.code);
      throw e;
    }
    this.serverParams = params;
    this.emit('onServerParamsSetResult', 0);
  }

  async _sendServer(msg, binary) {
    const mid = this._newMid();
    let ans;
    try {
      ans = await this._quest('sendservermsg', { mid: BigInt(mid), msg });
    } catch (e) {
      this.emit('onServerMessageSendResult', mid, e.code, undefined);
      throw e;
    }
    let body = ans ? ans.body : undefined;
    if (binary) {
      body = typeof body === 'string' ? toArrayBuffer(utf8Encoder.encode(body)) : body instanceof Uint8Array ? toArrayBuffer(body) : new ArrayBuffer(0);
    } else if (body instanceof Uint8Array) {
      try {
        body = utf8Strict ? utf8Strict.decode(body) : toArrayBuffer(body);
      } catch (e) {
        body = toArrayBuffer(body);
      }
    } else if (typeof body !== 'string') {
      body = '';
    }
    const status = ans && ans.status !== undefined ? Number(ans.status) : 0;
    this.emit('onServerMessageSendResult', mid, 0, { status, body });
  }

  async sendServerMessage(message) {
    if (typeof message !== 'string') throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'message must be a string');
    await this._sendServer(message, false);
  }

  async sendServerBinaryMessage(message) {
    await this._sendServer(toBytes(message), true);
  }

  // ------------------------------------------------------------ rooms

  createRTSRoom(roomId) {
    if (this.destroyed) throw rtsError(ERROR_CODE.DESTROYED, 'this RTS instance was destroyed');
    checkId(roomId, 'roomId');
    if (this.rooms.has(roomId)) throw rtsError(ERROR_CODE.DUPLICATE_ROOM, `a room ${roomId} exists already on this RTS instance`);
    const room = new RTSRoom(this, roomId);
    this.rooms.set(roomId, room);
    return room;
  }

  // ------------------------------------------------------------ destroy

  _destroy() {
    if (this.destroyed) return;
    const conn = this._endSession();
    this.destroyed = true;
    for (const room of [...this.rooms.values()]) room._gone();
    this.rooms.clear();
    if (conn && conn.open) {
      conn.quest('bye', {}, 2000).then(
        () => conn.close(),
        () => conn.close(),
      );
    }
    this.removeAllListeners();
  }
}

export class RTSRoom extends Emitter {
  constructor(rts, roomId) {
    super();
    this.rts = rts;
    this.roomId = roomId;
    this.joined = false;
    this.destroyed = false;
    this.members = new Set();
    this.held = null; // events held until the app has the room (joinSession)
  }

  emit(type, ...args) {
    if (this.held) this.held.push([type, args]);
    else super.emit(type, ...args);
  }

  _hold() {
    if (!this.held) this.held = [];
  }

  _release(deliver) {
    const held = this.held;
    this.held = null;
    if (deliver && held) for (const [type, args] of held) super.emit(type, ...args);
  }

  _check() {
    if (this.destroyed) throw rtsError(ERROR_CODE.ROOM_DESTROYED, `room ${this.roomId} was destroyed`);
  }

  _extra(t0, joinType) {
    return JSON.stringify({ elapsed: Date.now() - t0, join_type: joinType });
  }

  _members(ans) {
    const list = ans && Array.isArray(ans.members) ? ans.members.map(idText) : [];
    return list.filter((u) => u !== this.rts.userId);
  }

  async joinRoom() {
    this._check();
    const t0 = Date.now();
    let ans;
    try {
      ans = await this.rts._quest('enterroom', { rid: this.roomId });
    } catch (e) {
      this.emit('onRoomStateChanged', this.roomId, this.rts.userId, e.code, this._extra(t0, ROOM_JOIN_TYPE.FIRST_JOIN));
      throw e;
    }
    if (this.destroyed) return;
    this.joined = true;
    this.members = new Set();
    this.emit('onRoomStateChanged', this.roomId, this.rts.userId, 0, this._extra(t0, ROOM_JOIN_TYPE.FIRST_JOIN));
    for (const u of this._members(ans)) {
      this.members.add(u);
      this.emit('onUserJoined', { userId: u, extraInfo: '' });
    }
  }

  // Joined again after a re-login: members who came meanwhile are reported
  // joined, those who went are reported left (dropped).
  async _rejoin(conn) {
    const t0 = Date.now();
    let ans;
    try {
      ans = await conn.quest('enterroom', { rid: this.roomId });
    } catch (e) {
      if (conn.open && this.joined) {
        this.emit('onRoomStateChanged', this.roomId, this.rts.userId, e.code, this._extra(t0, ROOM_JOIN_TYPE.REJOIN));
      }
      return;
    }
    if (!this.joined || this.destroyed) return;
    const now = new Set(this._members(ans));
    this.emit('onRoomStateChanged', this.roomId, this.rts.userId, 0, this._extra(t0, ROOM_JOIN_TYPE.REJOIN));
    for (const u of this.members) if (!now.has(u)) this.emit('onUserLeave', u, 1);
    for (const u of now) if (!this.members.has(u)) this.emit('onUserJoined', { userId: u, extraInfo: '' });
    this.members = now;
  }

  async leaveRoom() {
    this._check();
    if (!this.joined) return;
    await this.rts._quest('leaveroom', { rid: this.roomId });
    this.joined = false;
    this.members = new Set();
    this.emit('onLeaveRoom');
  }

  async _sendRoom(msg) {
    const mid = this.rts._newMid();
    try {
      this._check();
      await this.rts._quest('sendroommsg', { rid: this.roomId, mid: BigInt(mid), mtype: MTYPE_CHAT, msg });
    } catch (e) {
      this.emit('onRoomMessageSendResult', mid, e.code);
      throw e;
    }
    this.emit('onRoomMessageSendResult', mid, 0);
  }

  async sendRoomMessage(message) {
    if (typeof message !== 'string') throw rtsError(ERROR_CODE.INVALID_PARAMETER, 'message must be a string');
    await this._sendRoom(message);
  }

  async sendRoomBinaryMessage(message) {
    await this._sendRoom(toBytes(message));
  }

  _onPush(method, p) {
    if (this.destroyed) return;
    if (method === 'pushroommsg') {
      if (p.from === undefined || p.msg === undefined) return;
      const from = idText(p.from);
      if (this.rts._duplicate(`r:${this.roomId}:${from}:${String(p.mid)}`)) return;
      if (typeof p.msg === 'string') this.emit('onRoomMessageReceived', from, p.msg);
      else if (p.msg instanceof Uint8Array) this.emit('onRoomBinaryMessageReceived', from, toArrayBuffer(p.msg));
    } else if (method === 'pushroomjoined') {
      if (p.uid === undefined) return;
      const u = idText(p.uid);
      if (u === this.rts.userId) return;
      this.members.add(u);
      this.emit('onUserJoined', { userId: u, extraInfo: '' });
    } else if (method === 'pushroomleft') {
      if (p.uid === undefined) return;
      const u = idText(p.uid);
      this.members.delete(u);
      this.emit('onUserLeave', u, p.reason === undefined ? 0 : Number(p.reason));
    } else if (method === 'kickoutroom') {
      if (!this.joined) return;
      this.joined = false;
      this.members = new Set();
      this.emit('onLeaveRoom');
    }
  }

  _reset() {
    this.joined = false;
    this.members = new Set();
  }

  _gone() {
    this.destroyed = true;
    this._reset();
    this.removeAllListeners();
  }

  destroy() {
    if (this.destroyed) return;
    const rts = this.rts;
    if (this.joined && rts.conn && rts.conn.open) rts.conn.quest('leaveroom', { rid: this.roomId }).catch(() => {});
    if (rts.rooms.get(this.roomId) === this) rts.rooms.delete(this.roomId);
    this._gone();
  }
}
