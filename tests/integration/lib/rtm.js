'use strict';
// RTM on top of the independent FPNN client: an app-server connection that
// signs every quest as the server SDKs do (md5 of pid:secret:salt:method:ts,
// upper-case hex), and RTM users that log in with a token minted through the
// server gate. Pushes that reach a user are recorded for the tests to check.

const crypto = require('node:crypto');
const fpnn = require('./fpnn');

let saltCounter = 0n;

// A fresh 64-bit salt: random high bits, a counter in the low ones, so that
// two requests of one test never share a salt.
function newSalt() {
  saltCounter += 1n;
  const high = BigInt(crypto.randomInt(1, 2 ** 30)) << 32n;
  return fpnn.int64((high | (saltCounter & 0xffffffffn)).toString());
}

function md5Upper(text) {
  return crypto.createHash('md5').update(text, 'utf8').digest('hex').toUpperCase();
}

// A salt for a JSON quest: a plain number, exact in JSON (below 2^47).
function newJsonSalt() {
  return crypto.randomInt(1, 2 ** 47);
}

// Signs a payload for method: returns a new payload with pid, salt, ts, sign.
// With json, pid and salt are plain numbers, as a JSON app server sends them.
function sign(project, method, payload = {}, { ts = Math.floor(Date.now() / 1000), json = false, salt = json ? newJsonSalt() : newSalt(), oldStyle = false } = {}) {
  const saltText = fpnn.toBigInt(salt).toString();
  const text = oldStyle ? `${project.pid}:${project.secret}:${saltText}` : `${project.pid}:${project.secret}:${saltText}:${method}:${ts}`;
  const signed = { ...payload, pid: json ? Number(project.pid) : fpnn.int64(project.pid), salt, sign: md5Upper(text) };
  if (!oldStyle) signed.ts = ts;
  return signed;
}

// An app-server connection on the server gate.
class AppServer {
  constructor(client, project) {
    this.client = client;
    this.project = project;
  }

  // Sends a signed quest; resolves with the answer payload. A JSON quest
  // ({json: true}) is signed with plain numbers, as a JSON app server does.
  call(method, payload = {}, opts = {}) {
    return this.client.quest(method, sign(this.project, method, payload, { json: opts.json, ...opts.sign }), opts);
  }

  async token(uid) {
    const answer = await this.call('gettoken', { uid: fpnn.int64(uid) });
    return answer.token;
  }

  close() {
    return this.client.close();
  }
}

async function appServer(srv, { project = srv.projects[0], ...opts } = {}) {
  const client = await fpnn.connect({ port: srv.ports.server_tcp, ...opts });
  return new AppServer(client, project);
}

// Records every push quest a client link gets (pings aside) in
// client.pushes, and gives it waitPush(pred, ms): resolves with the first
// recorded or future push matching pred(packet). Returns client.
function recordPushes(client) {
  client.pushes = [];
  const waiters = new Set();
  client.on('quest', (p) => {
    if (p.method === 'ping') return;
    client.pushes.push(p);
    for (const w of [...waiters]) w(p);
  });
  client.waitPush = (pred, ms = 5000) => {
    const found = client.pushes.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${client.label || 'link'}: no matching push within ${ms} ms (got ${client.pushes.map((p) => p.method).join(', ') || 'none'})`));
      }, ms);
      const check = (p) => {
        if (!pred(p)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(p);
      };
      waiters.add(check);
    });
  };
  return client;
}

// A logged-in RTM user on the client gate (TCP or WebSocket). Every push
// quest is answered with {} (as the RTM SDKs do, except kickout and
// kickoutroom, which they never answer) and recorded in `pushes`.
class User {
  constructor(client, uid) {
    this.client = client;
    this.uid = uid;
    client.label = `user ${uid}`;
    recordPushes(client);
    this.pushes = client.pushes;
  }

  call(method, payload = {}, opts = {}) {
    return this.client.quest(method, payload, opts);
  }

  // Resolves with the first recorded or future push matching pred(packet).
  waitPush(pred, ms = 5000) {
    return this.client.waitPush(pred, ms);
  }

  close() {
    return this.client.close();
  }
}

function answerPushes(client) {
  const answer = (payload, packet) => (packet.method === 'kickout' || packet.method === 'kickoutroom' ? undefined : {});
  for (const m of ['pushmsg', 'pushgroupmsg', 'pushroommsg', 'pushbroadcastmsg', 'pushchat', 'pushaudio', 'pushcmd',
    'pushgroupchat', 'pushgroupaudio', 'pushgroupcmd', 'pushroomchat', 'pushroomaudio', 'pushroomcmd',
    'pushbroadcastchat', 'pushbroadcastaudio', 'pushbroadcastcmd', 'pushfile', 'pushgroupfile', 'pushroomfile',
    'pushbroadcastfile', 'kickout', 'kickoutroom', 'pushevent']) {
    client.onQuest(m, answer);
  }
}

// Mints a token through app and logs uid in; transport 'tcp', 'ws', or
// 'wss' (then ca is the CA to trust, and the link goes to localhost).
// ports: the client ports to use (srv.node(i).ports of lib/rtmd.js: one
// node of a cluster), srv.ports by default.
// lang: auth's lang (the user's language).
async function login(srv, app, uid, { transport = 'tcp', attrs, lang, project = app.project, ca, ports = srv.ports } = {}) {
  const token = await app.token(uid);
  const port = ports[{ tcp: 'client_tcp', ws: 'client_ws', wss: 'client_wss' }[transport]];
  const host = transport === 'wss' ? 'localhost' : '127.0.0.1';
  const client = await fpnn.connect({ host, port, transport, ca });
  answerPushes(client);
  const payload = { pid: fpnn.int64(project.pid), uid: fpnn.int64(uid), token, version: 'rtmd-tests' };
  if (attrs) payload.attrs = attrs;
  if (lang !== undefined) payload.lang = lang;
  const answer = await client.quest('auth', payload);
  if (!answer.ok) {
    client.destroy();
    throw new Error(`login of ${uid} refused`);
  }
  // On a cluster (lib/rtmd.js), presence reaches the app server's node a
  // moment after the login: wait for it, as a test written for one node
  // expects the user online once logged in.
  const twin = require('./rtmd').onTwin(srv, port);
  if (twin) await waitOnline(app, uid);
  const user = new User(client, uid);
  user.twin = twin; // on a cluster's second node (rooms are per user and node there)
  return user;
}

// Waits until app's node reports uid (a number, a decimal string or an
// Int64: string-id users have uids above 2^53) online.
async function waitOnline(app, uid) {
  const want = BigInt(String(uid));
  const seen = async () => ((await app.call('getonlineusers', { uids: [fpnn.int64(uid)] })).uids || []).some((v) => fpnn.toBigInt(v) === want);
  if (!(await require('./rtmd').waitFor(seen, 5000))) throw new Error(`${uid} logged in on one node is not online on the other`);
}

// The text of a message push's msg: msg itself, or for a text chat push
// (mtype 30) to a number-id session, which carries msg as the map
// {source, target, sourceText, targetText}, what the Unity SDK shows:
// targetText when there is one, else sourceText.
function pushText(payload) {
  const m = payload.msg;
  if (m && typeof m === 'object' && !Buffer.isBuffer(m) && 'sourceText' in m) return m.targetText || m.sourceText;
  return m;
}

// The map form of an untranslated text chat push's msg.
function chatMap(text) {
  return { source: '', target: '', sourceText: text, targetText: '' };
}

// Asserts that promise rejects with an FPNN/RTM error of the given code.
async function expectCode(promise, code) {
  try {
    await promise;
  } catch (e) {
    if (e.code === code) return e;
    throw new Error(`expected error ${code}, got ${e.code}: ${e.message}`);
  }
  throw new Error(`expected error ${code}, got a successful answer`);
}

// A list of ids as msgpack int64 values, and back as sorted numbers.
function int64s(list) {
  return list.map((v) => fpnn.int64(v));
}

function ids(list) {
  return (list || []).map(fpnn.toNumber).sort((a, b) => a - b);
}

// Writes an rtmd configuration file declaring the given projects (objects
// of pid, secret and any per-project settings) and returns its path.
function writeProjectsConfig(dir, projects) {
  const text = projects.map((p) => `[project]\n${Object.entries(p).map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : v}`).join('\n')}\n`).join('');
  const file = require('node:path').join(dir, 'rtmd.conf');
  require('node:fs').writeFileSync(file, text);
  return file;
}

// Starts rtmd with the given projects ([{pid, secret, ...settings}]) and
// one app-server link per project, in that order.
async function startWithProjects(projects) {
  const { startRtmd, makeTempDir } = require('./rtmd');
  const conf = writeProjectsConfig(await makeTempDir(), projects);
  const srv = await startRtmd({ config: conf });
  const found = projects.map((p) => srv.projects.find((x) => x.pid === String(p.pid)));
  const apps = [];
  for (const project of found) apps.push(await appServer(srv, { project }));
  return { srv, conf, projects: found, apps };
}

// Closes the app-server links, stops rtmd, expects exit code 0 and no
// sanitizer report: the end of every suite that starts one server.
async function stopChecked(srv, apps = []) {
  const assert = require('node:assert/strict');
  const { sanitizerReports } = require('./rtmd');
  for (const a of apps) if (a && !a.client.isClosed) await a.close();
  const code = await srv.stop('SIGTERM');
  await srv.cleanup();
  assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
  assert.deepEqual(sanitizerReports(), []);
}

module.exports = {
  AppServer, User, appServer, login, recordPushes, pushText, chatMap, sign, newSalt, md5Upper, answerPushes, expectCode, int64s, ids, waitOnline,
  writeProjectsConfig, startWithProjects, stopChecked,
};
