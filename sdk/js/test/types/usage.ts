// Compiled with tsc --noEmit by types.test.mjs: every method and event of
// index.d.ts used as an app would, plus lines that must not compile.
import {
  createRTS, destroyRTS, getSdkVersion, CONNECTION_STATE, CONNECTION_CHANGE_REASON, LOGIN_ERROR_CODE, LOGOUT_REASON,
  RTM_DUPLICATE_LOGIN, USER_ONLINE_STATUS, USER_OFFLINE_REASON, ERROR_CODE,
  type IRTS, type IRTSRoom, type RTSError, type RTCatSessionInfo, type ServerMessageReply, type RTSUserInfo,
} from 'rtmd-rts';

const version: string = getSdkVersion();
const rts: IRTS = createRTS('app0123456789abcdefGHIJK', { endpoint: 'ws://localhost:13321', connectTimeoutMs: 5000, requestTimeoutMs: 5000 });

rts.on('onConnectionStateChanged', (state: CONNECTION_STATE, reason: CONNECTION_CHANGE_REASON) => {
  if (state === CONNECTION_STATE.LOST || reason === CONNECTION_CHANGE_REASON.NETWORK_LOST) console.log(version);
});
rts.on('onLoginResult', (userId: string, code: LOGIN_ERROR_CODE, elapsed: number) => {
  if (code === LOGIN_ERROR_CODE.TOKEN_EXPIRED) void rts.updateLoginToken('new');
  console.log(userId, elapsed);
});
rts.on('onLogout', (reason: LOGOUT_REASON) => console.log(reason === RTM_DUPLICATE_LOGIN));
rts.on('onTokenExpired', () => undefined);
rts.on('onMessageReceived', (userId: string, text: string) => console.log(userId, text.length));
rts.on('onBinaryMessageReceived', (userId: string, data: ArrayBuffer) => console.log(userId, data.byteLength));
rts.on('onMessageSendResult', (msgId: number, error: number) => console.log(msgId, error));
rts.on('onServerParamsSetResult', (error: number) => console.log(error));
rts.on('onServerMessageSendResult', (msgId: number, error: number, reply?: ServerMessageReply) => {
  if (reply && typeof reply.body === 'string') console.log(msgId, error, reply.status, reply.body.length);
});
rts.on('onPeerOnlineStatus', (userId: string, status: USER_ONLINE_STATUS) => console.log(userId, status));
const h = (userId: string, text: string) => console.log(userId, text);
rts.on('onMessageReceived', h);
rts.off('onMessageReceived', h);

async function main(): Promise<void> {
  const ok: boolean = rts.setBusinessId('shop');
  console.log(ok);
  try {
    await rts.login('token', 'alice');
  } catch (e) {
    const err = e as RTSError;
    console.log(err.code, err.loginError, err.reason, ERROR_CODE.NOT_LOGGED_IN);
  }
  const s: USER_ONLINE_STATUS = await rts.getPeerOnlineStatus('bob');
  console.log(s === USER_ONLINE_STATUS.ONLINE);
  await rts.sendMessage('bob', 'hi');
  await rts.sendBinaryMessage('bob', new ArrayBuffer(4));
  await rts.setServerParams('sig', 'https://app.example/rtm');
  await rts.sendServerMessage('hi');
  await rts.sendServerBinaryMessage(new Uint8Array(3).buffer);
  const room: IRTSRoom = rts.createRTSRoom('room-1');
  room.on('onRoomStateChanged', (roomId: string, userId: string, state: number, extraInfo: string) => console.log(roomId, userId, state, JSON.parse(extraInfo)));
  room.on('onUserJoined', (info: RTSUserInfo) => console.log(info.userId, info.extraInfo));
  room.on('onUserLeave', (userId: string, reason: USER_OFFLINE_REASON) => console.log(userId, reason === USER_OFFLINE_REASON.DROPPED));
  room.on('onRoomMessageReceived', (userId: string, text: string) => console.log(userId, text));
  room.on('onRoomBinaryMessageReceived', (userId: string, data: ArrayBuffer) => console.log(userId, data.byteLength));
  room.on('onRoomMessageSendResult', (msgId: number, error: number) => console.log(msgId, error));
  room.on('onLeaveRoom', () => undefined);
  await room.joinRoom();
  await room.sendRoomMessage('hello');
  await room.sendRoomBinaryMessage(new ArrayBuffer(1));
  await room.leaveRoom();
  room.destroy();
  await rts.logout();
  // A RealTimeCat session: the token logs in and enters the session's room.
  const session: IRTSRoom = await rts.joinSession('0b1f5d2c-6a3e-4f7b-9c1d-2e3f4a5b6c7d');
  const info: RTCatSessionInfo | null = rts.sessionInfo;
  if (info && info.type === 'pub' && session.roomId === info.session) await session.sendRoomMessage(`I am ${info.uid}`);
  rts.on('onLogout', (reason: LOGOUT_REASON) => console.log(reason === LOGOUT_REASON.SESSION_CLOSED));
  rts.on('onConnectionStateChanged', (_s: CONNECTION_STATE, why: CONNECTION_CHANGE_REASON) => console.log(why === CONNECTION_CHANGE_REASON.SESSION_CLOSED));
  await session.leaveRoom();
  destroyRTS(rts);
}
void main();
