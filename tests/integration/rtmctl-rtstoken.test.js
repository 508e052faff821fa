'use strict';
// RTS access tokens against a real rtmd: `rtmctl rtstoken` and the signed
// server-gate method getrtstoken (msgpack and JSON) mint tokens in the
// vendor's AccessToken format; every token is checked here by a verifier
// written from the published format with node:crypto (not from rtmd's
// code): "001" + 24-character app id + base64(u16 len + msg, u16 len +
// HMAC-SHA256(app_key, msg)), msg = u32 nonce, issued_at, expire_at,
// u16-prefixed room and user ids, u16 count of (u16 key, u32 expire), all
// little-endian. Also: the settings' absence (200060), every argument
// error, the demo project's derived keys, and rtmctl's usage errors.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fpnn = require('./lib/fpnn');
const { appServer, expectCode, writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, sanitizerReports, startRtmd, withLogs, run, rtmctlBin } = require('./lib/rtmd');

const rtmctl = (args, opts = {}) => run(rtmctlBin(), args, { timeoutMs: 10000, ...opts });
const show = (r) => `exit=${r.code} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

const APP_ID = 'Rts0123456789abcdefGHIJK';
const APP_KEY = 'rts-key#with-quote"-and-more';
const TTL = 600;

// Reads a token by the published format; throws on any deviation.
function parseRtsToken(token) {
  assert.equal(typeof token, 'string');
  assert.equal(token.slice(0, 3), '001', 'version');
  const appId = token.slice(3, 27);
  const b64 = token.slice(27);
  assert.match(b64, /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'padded standard base64');
  const content = Buffer.from(b64, 'base64');
  assert.equal(content.toString('base64'), b64, 'canonical base64');
  let off = 0;
  const bytes = (buf) => {
    const n = buf.readUInt16LE(off);
    off += 2;
    assert.ok(off + n <= buf.length, 'length within the buffer');
    const out = buf.subarray(off, off + n);
    off += n;
    return out;
  };
  const msg = bytes(content);
  const signature = bytes(content);
  assert.equal(off, content.length, 'nothing after the signature');
  assert.equal(signature.length, 32);
  off = 0;
  const nonce = msg.readUInt32LE(0);
  const issuedAt = msg.readUInt32LE(4);
  const expireAt = msg.readUInt32LE(8);
  off = 12;
  const roomId = bytes(msg).toString('utf8');
  const userId = bytes(msg).toString('utf8');
  const count = msg.readUInt16LE(off);
  off += 2;
  const privileges = [];
  for (let i = 0; i < count; i++) {
    privileges.push([msg.readUInt16LE(off), msg.readUInt32LE(off + 2)]);
    off += 6;
  }
  assert.equal(off, msg.length, 'nothing after the privileges');
  return { appId, msg, signature, nonce, issuedAt, expireAt, roomId, userId, privileges };
}

// Parses and checks the signature with appKey and the app id; returns the fields.
function verifyRtsToken(token, appId, appKey) {
  const t = parseRtsToken(token);
  assert.equal(t.appId, appId, 'app id');
  const mac = crypto.createHmac('sha256', Buffer.from(appKey, 'utf8')).update(t.msg).digest();
  assert.ok(crypto.timingSafeEqual(mac, t.signature), 'HMAC-SHA256(app_key, msg)');
  return t;
}

const now = () => Math.floor(Date.now() / 1000);
const near = (actual, expected, what) => assert.ok(Math.abs(actual - expected) <= 3, `${what}: ${actual} vs ${expected}`);

// A JSON quest of an app server, signed with plain numbers (lib/rtm.js).
const jsonCall = (a, method, payload) => a.call(method, payload, { json: true });

describe('RTS tokens (getrtstoken, rtmctl rtstoken)', () => {
  let srv, app, plain;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));
  const addr = () => `127.0.0.1:${srv.ports.server_tcp}`;
  const project = (pid) => srv.projects.find((p) => p.pid === String(pid));
  const signed = (pid = 41) => ['--pid', String(pid), '--secret', project(pid).secret];
  const mint = async (args) => {
    const r = await rtmctl(['rtstoken', addr(), ...signed(), ...args]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^001\S+\n$/, show(r));
    return r.stdout.trim();
  };

  before(async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [
      { pid: 41, secret: 'rts-project-secret', app_id: APP_ID, app_key: APP_KEY, token_ttl: TTL },
      { pid: 42, secret: 'plain-project-secret' },
    ]);
    srv = await startRtmd({ config: conf });
    app = await appServer(srv, { project: project(41) });
    plain = await appServer(srv, { project: project(42) });
  });

  after(async () => {
    if (app) await app.close();
    if (plain) await plain.close();
    const alive = srv.alive;
    await srv.cleanup();
    assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  it('the ready banner names the RTS project and only it, without a configured secret or key', async () => {
    assert.match(srv.stdout, new RegExp(`^rts pid=41 app_id=${APP_ID}$`, 'm'));
    assert.doesNotMatch(srv.stdout, /^rts pid=42 /m);
    assert.match(srv.stdout, /^project pid=41$/m);
    assert.doesNotMatch(srv.stdout, /secret=|app_key=/, 'configured secrets stay in the file (the banner goes to the journal)');
  });

  it('rtmctl rtstoken mints a token the format verifier accepts, for that user and room', async () => {
    const token = await mint(['--user', 'alice@example.com', '--room', 'room_1', '--expire', '120']);
    const t = verifyRtsToken(token, APP_ID, APP_KEY);
    assert.equal(t.userId, 'alice@example.com');
    assert.equal(t.roomId, 'room_1');
    near(t.issuedAt, now(), 'issued_at');
    near(t.expireAt, t.issuedAt + 120, 'expire_at');
    assert.equal(t.expireAt - t.issuedAt, 120);
    assert.ok(t.nonce >= 1 && t.nonce <= 99999999, `nonce ${t.nonce}`);
    // Default privileges: PublishStream (with 1-3) and SubscribeStream, sorted, no own expiry.
    assert.deepEqual(t.privileges, [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]]);
    // The verifier itself refuses another key and another app id.
    assert.throws(() => verifyRtsToken(token, APP_ID, `${APP_KEY}x`));
    assert.throws(() => verifyRtsToken(token, 'Rts0123456789abcdefGHIJL', APP_KEY));
    // Two tokens differ (nonce), both valid.
    const again = await mint(['--user', 'alice@example.com', '--room', 'room_1', '--expire', '120']);
    assert.notEqual(again, token);
    verifyRtsToken(again, APP_ID, APP_KEY);
  });

  it('without --expire the project token_ttl applies; --expire 0 is no expiry; no --room is an empty room', async () => {
    let t = verifyRtsToken(await mint(['--user', 'bob']), APP_ID, APP_KEY);
    assert.equal(t.expireAt - t.issuedAt, TTL);
    assert.equal(t.roomId, '');
    t = verifyRtsToken(await mint(['--user', 'bob', '--expire', '0']), APP_ID, APP_KEY);
    assert.equal(t.expireAt, 0);
    // A numeric-looking room id stays a string.
    t = verifyRtsToken(await mint(['--user', 'bob', '--room', '12345']), APP_ID, APP_KEY);
    assert.equal(t.roomId, '12345');
  });

  it('getrtstoken over msgpack: privileges map of seconds, an integer uid as its decimal text', async () => {
    let ans = await app.call('getrtstoken', { uid: 'carol', rid: 'r.1', expire: 300, privileges: { 4: 60 } });
    assert.deepEqual(Object.keys(ans), ['token']);
    let t = verifyRtsToken(ans.token, APP_ID, APP_KEY);
    assert.equal(t.userId, 'carol');
    assert.equal(t.roomId, 'r.1');
    assert.equal(t.expireAt - t.issuedAt, 300);
    assert.deepEqual(t.privileges, [[4, t.issuedAt + 60]]);
    // 0 brings 1-3 along; an explicit 2 keeps its own expiry; 0 seconds = as long as the token.
    ans = await app.call('getrtstoken', { uid: fpnn.int64('9007199254740993'), privileges: { 0: 0, 2: 30 } });
    t = verifyRtsToken(ans.token, APP_ID, APP_KEY);
    assert.equal(t.userId, '9007199254740993');
    assert.deepEqual(t.privileges, [[0, 0], [1, 0], [2, t.issuedAt + 30], [3, 0]]);
    // An empty map: a token without privileges (login only); nil fields are absent.
    ans = await app.call('getrtstoken', { uid: 'dave', rid: null, expire: null, privileges: {} });
    t = verifyRtsToken(ans.token, APP_ID, APP_KEY);
    assert.deepEqual(t.privileges, []);
    assert.equal(t.roomId, '');
    assert.equal(t.expireAt - t.issuedAt, TTL);
    // The longest id the SDK allows (128 characters).
    const long = 'u'.repeat(128);
    t = verifyRtsToken((await app.call('getrtstoken', { uid: long, rid: long })).token, APP_ID, APP_KEY);
    assert.equal(t.userId, long);
    assert.equal(t.roomId, long);
  });

  it('getrtstoken over JSON: string privilege keys, numbers as JSON numbers', async () => {
    const ans = await jsonCall(app, 'getrtstoken', { uid: 'erin', rid: 'lobby', expire: 90, privileges: { 4: 45, 0: 0 } });
    const t = verifyRtsToken(ans.token, APP_ID, APP_KEY);
    assert.equal(t.userId, 'erin');
    assert.equal(t.roomId, 'lobby');
    assert.equal(t.expireAt - t.issuedAt, 90);
    assert.deepEqual(t.privileges, [[0, 0], [1, 0], [2, 0], [3, 0], [4, t.issuedAt + 45]]);
    await expectCode(jsonCall(app, 'getrtstoken', { uid: 'erin', privileges: { x: 1 } }), 10010);
  });

  it('a project without app_id/app_key: 200060, also through rtmctl (exit 2)', async () => {
    const e = await expectCode(plain.call('getrtstoken', { uid: 'alice' }), 200060);
    assert.match(e.message, /app_id and app_key/);
    const r = await rtmctl(['rtstoken', addr(), ...signed(42), '--user', 'alice']);
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /"code":200060/, show(r));
    assert.equal(r.stdout, '');
  });

  it('argument errors: missing, mistyped, invalid ids, expire and privileges out of range', async () => {
    const call = (p) => app.call('getrtstoken', p);
    await expectCode(call({}), 10009);
    await expectCode(call({ uid: null }), 10009);
    await expectCode(call({ uid: ['alice'] }), 10010);
    await expectCode(call({ uid: 'a b' }), 200001);
    await expectCode(call({ uid: '' }), 200001);
    await expectCode(call({ uid: 'u'.repeat(129) }), 200001);
    await expectCode(call({ uid: 'ali\u00e9' }), 200001);
    await expectCode(call({ uid: 'alice', rid: 'r 1' }), 10010);
    await expectCode(call({ uid: 'alice', rid: 'r'.repeat(129) }), 10010);
    await expectCode(call({ uid: 'alice', rid: true }), 10010);
    await expectCode(call({ uid: 'alice', expire: -1 }), 10010);
    await expectCode(call({ uid: 'alice', expire: 315360001 }), 10010);
    await expectCode(call({ uid: 'alice', expire: '60' }), 10010);
    await expectCode(call({ uid: 'alice', privileges: [0, 4] }), 10010);
    await expectCode(call({ uid: 'alice', privileges: { 5: 0 } }), 10010);
    await expectCode(call({ uid: 'alice', privileges: { 4: -1 } }), 10010);
    await expectCode(call({ uid: 'alice', privileges: { 4: 'x' } }), 10010);
    const nine = {};
    for (let i = 0; i < 9; i++) nine[`${i % 5}${' '.repeat(i)}`] = 0;
    await expectCode(call({ uid: 'alice', privileges: nine }), 200032);
    // The limits themselves are accepted.
    const t = verifyRtsToken((await call({ uid: 'alice', expire: 315360000 })).token, APP_ID, APP_KEY);
    assert.equal(t.expireAt - t.issuedAt, 315360000);
  });

  it('only signed app servers get tokens: a bad signature is refused', async () => {
    const bad = { uid: 'alice', pid: fpnn.int64(41), salt: fpnn.int64('12345'), ts: now(), sign: 'F'.repeat(32) };
    await expectCode(app.client.quest('getrtstoken', bad), 200002);
  });

  it('rtmctl rtstoken usage errors exit 1', async () => {
    const cases = [
      [['--user', 'a', 'extra'], /usage: rtmctl rtstoken/],
      [[], /rtstoken needs --user/],
      [['--user', 'a', '--expire', '-5'], /--expire must be 0 or more/],
      [['--user', 'a', '--expire', 'soon'], /--expire needs an integer/],
      [['--user', 'a', '--uid', '5'], /--uid is not an option of 'rtstoken'/],
    ];
    for (const [args, re] of cases) {
      const r = await rtmctl(['rtstoken', addr(), ...signed(), ...args]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, re, show(r));
    }
    // --room stays an integer for the commands that take a room number.
    const r = await rtmctl(['send', addr(), ...signed(), '--from', '1', '--room', 'lobby', 'hi']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /--room needs an integer, not 'lobby'/, show(r));
  });
});

describe('RTS tokens of the demo project', () => {
  let srv;
  after(async () => {
    if (srv) await srv.cleanup();
    assert.deepEqual(sanitizerReports(), []);
  });

  test('keys derived from the secret, printed on the banner, the same after a restart', { timeout: 30000 }, async () => {
    const dataDir = await makeTempDir();
    srv = await startRtmd({ dataDir });
    const m = /^rts pid=(\d+) app_id=([0-9a-f]{24}) app_key=([0-9a-f]{32})$/m.exec(srv.stdout);
    assert.ok(m, srv.stdout);
    const [, pid, appId, appKey] = m;
    const p = srv.projects[0];
    assert.equal(pid, p.pid);
    const r = await rtmctl(['rtstoken', `127.0.0.1:${srv.ports.server_tcp}`, '--user', 'demo-user'], {
      env: { ...process.env, RTM_PID: p.pid, RTM_SECRET: p.secret },
    });
    assert.equal(r.code, 0, show(r));
    const t = verifyRtsToken(r.stdout.trim(), appId, appKey);
    assert.equal(t.userId, 'demo-user');
    assert.equal(t.expireAt - t.issuedAt, 86400);
    assert.equal(await srv.stop('SIGTERM'), 0);
    await srv.cleanup();
    srv = await startRtmd({ dataDir });
    assert.ok(srv.stdout.includes(m[0]), srv.stdout);
  });
});
