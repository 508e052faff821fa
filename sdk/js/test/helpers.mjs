// Shared by the SDK tests: a real rtmd (tests/integration/lib, CommonJS)
// with an RTS project, an app-server link minting tokens with getrtstoken,
// and SDK clients whose events are recorded for the tests to wait on.
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { createRTS } from '../src/index.js';

const require = createRequire(import.meta.url);
export const rtmdLib = require('../../../tests/integration/lib/rtmd.js');
export const rtmLib = require('../../../tests/integration/lib/rtm.js');
export const fpnn = require('../../../tests/integration/lib/fpnn.js');
const { buildRtsToken } = require('../../../tests/integration/lib/rtstoken.js');

export const APP_ID = 'SdkTest0123456789abcdefG';
export const APP_KEY = 'sdk-test-app-key';
export const PID = 77001;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value or ms elapse; returns the last value.
export async function waitFor(fn, ms = 5000, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= end) return v;
    await sleep(step);
  }
}

const RTS_EVENTS = ['onConnectionStateChanged', 'onLoginResult', 'onLogout', 'onTokenExpired', 'onMessageReceived',
  'onBinaryMessageReceived', 'onMessageSendResult', 'onServerParamsSetResult', 'onServerMessageSendResult', 'onPeerOnlineStatus'];
const ROOM_EVENTS = ['onRoomStateChanged', 'onUserJoined', 'onUserLeave', 'onRoomMessageReceived',
  'onRoomBinaryMessageReceived', 'onRoomMessageSendResult', 'onLeaveRoom'];

// Records every event of an IRTS or IRTSRoom as {name, args}.
export function record(target, names) {
  const events = [];
  const waiters = new Set();
  for (const n of names) {
    target.on(n, (...args) => {
      const e = { name: n, args };
      events.push(e);
      for (const w of [...waiters]) w(e);
    });
  }
  events.wait = (name, pred = () => true, ms = 8000) => {
    const found = events.find((e) => e.name === name && pred(...e.args));
    if (found) return Promise.resolve(found.args);
    return new Promise((resolve, reject) => {
      const w = (e) => {
        if (e.name !== name || !pred(...e.args)) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve(e.args);
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no ${name} event within ${ms} ms; got ${events.map((x) => `${x.name}(${x.args.map(show).join(',')})`).join(' ')}`));
      }, ms);
      waiters.add(w);
    });
  };
  events.named = (name) => events.filter((e) => e.name === name).map((e) => e.args);
  return events;
}

function show(v) {
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

export const recordRoom = (room) => record(room, ROOM_EVENTS);

// Writes the configuration: one RTS project (P2Server allowed to appUrl).
export function writeConfig(dir, { p2serverAllow, extra = {} } = {}) {
  const p = { pid: PID, secret: 'sdk-test-secret', app_id: APP_ID, app_key: APP_KEY, ...extra };
  if (p2serverAllow) p.p2server_allow = p2serverAllow;
  return rtmLib.writeProjectsConfig(dir, [p]);
}

// Starts rtmd and an app-server link; returns a context for the tests.
export async function setup({ p2serverAllow, extra, args } = {}) {
  const dir = await rtmdLib.makeTempDir('rtmd-sdk-');
  const config = writeConfig(dir, { p2serverAllow, extra });
  const srv = await rtmdLib.startRtmd({ config, args });
  const project = srv.projects.find((p) => p.pid === String(PID));
  const app = await rtmLib.appServer(srv, { project });
  const ctx = { srv, app, project, config, clients: [], fpnn };
  ctx.endpoint = () => `ws://127.0.0.1:${ctx.srv.ports.client_ws}`;
  // On a cluster (lib/rtmd.js: the clients alternate between two nodes),
  // presence reaches the other node a moment after a login: online(uid)
  // waits until both nodes see the user online, as a test written for one
  // node expects once the login resolved (lib/rtm.js login does the same).
  // Alone it returns at once.
  ctx.online = async (uid) => {
    if (!ctx.srv.twin) return;
    if (ctx.twinAppOf !== ctx.srv.twin) { // first use, or rtmd restarted
      if (ctx.twinApp && !ctx.twinApp.client.isClosed) await ctx.twinApp.close();
      ctx.twinApp = await rtmLib.appServer(ctx.srv.twin, { project });
      ctx.twinAppOf = ctx.srv.twin;
    }
    const id = (await ctx.app.call('getuserids', { ids: [uid] })).uids[uid];
    for (const a of [ctx.app, ctx.twinApp]) {
      const seen = async () => rtmLib.ids((await a.call('getonlineusers', { uids: [id] })).uids).length === 1;
      if (!(await waitFor(seen, 5000))) throw new Error(`${uid} logged in is not online on both nodes`);
    }
  };
  ctx.token = async (uid, expire) => (await ctx.app.call('getrtstoken', expire === undefined ? { uid } : { uid, expire })).token;
  // A new SDK instance (not logged in) with its events recorded.
  ctx.client = (options = {}) => {
    const rts = createRTS(APP_ID, { endpoint: ctx.endpoint(), WebSocket, requestTimeoutMs: 5000, reconnectMinMs: 200, reconnectMaxMs: 1000, ...options });
    rts.events = record(rts, RTS_EVENTS);
    // A login that resolved is online on every node (ctx.online). Not
    // joinSession: its room's events are held only until the caller's
    // continuation runs.
    const login = rts.login.bind(rts);
    rts.login = async (...args) => {
      await login(...args);
      await ctx.online(rts.userId);
    };
    ctx.clients.push(rts);
    return rts;
  };
  // A logged-in SDK instance.
  ctx.user = async (uid, options) => {
    const rts = ctx.client(options);
    await rts.login(await ctx.token(uid), uid);
    return rts;
  };
  ctx.teardown = async () => {
    const { destroyRTS } = await import('../src/index.js');
    for (const c of ctx.clients) destroyRTS(c);
    await sleep(100);
    if (ctx.app && !ctx.app.client.isClosed) await ctx.app.close();
    if (ctx.twinApp && !ctx.twinApp.client.isClosed) await ctx.twinApp.close();
    const alive = ctx.srv.alive;
    await ctx.srv.cleanup();
    if (!alive) throw new Error(`rtmd died during the tests\n${ctx.srv.diagnostics()}`);
    const reports = rtmdLib.sanitizerReports();
    if (reports.length) throw new Error(reports.join('\n'));
  };
  return ctx;
}

// A token in the vendor's format built by the tests (for expired tokens).
export const buildToken = ({ appId = APP_ID, key = APP_KEY, ...opts }) => buildRtsToken({ appId, key, privileges: [], ...opts });

export const now = () => Math.floor(Date.now() / 1000);

export function bytes(n, seed = 1) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b.buffer;
}

export function sameBytes(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}
