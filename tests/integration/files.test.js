'use strict';
// Files (issue 15): `filetoken` on the client and server gates with the
// SDKs' payloads (a one-time token bound to project, sender, command and
// target, and the file gate's endpoint); the file gate's uploads
// (sendfile, sendfiles, sendgroupfile, sendroomfile, broadcastfile) over
// FPNN TCP and WebSocket with the server SDKs' payloads: the token's rules
// (200003), the signature (200004), the mtype (200007), the size (200031),
// truncated uploads and write failures; the files stored on disk once per
// content, and the messages they become, pushed and in history.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, makeTempDir, storeRows, sleep, waitFor } = require('./lib/rtmd');

const P1 = { pid: '85001', secret: 'files-secret-85001' };
const I = (v) => fpnn.int64(v);
const TRANSPORTS = ['tcp', 'ws'];

let nextUid = 850000;
const freshUid = () => nextUid++;

const MAX_FILE = 400000;

function writeConfig(dir, extra = '') {
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf, `${extra}[project]\npid = ${P1.pid}\nsecret = "${P1.secret}"\nuser_msg_burst = 1000\n` +
    `max_file_bytes = ${MAX_FILE}\n`);
  return conf;
}

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
// The file signature of the SDKs: md5(lower(md5(file)) + ":" + token).
const fileSign = (token, file) => md5(`${md5(file)}:${token}`);
// attrs as the Go server SDK builds them ({rtm: {sign, filename, ext}, custom}),
// or with the signature at the top level as the Node server SDK puts it.
function fileAttrs(token, file, { filename = 'photo', ext = 'png', topLevel = false, sign = fileSign(token, file) } = {}) {
  if (topLevel) return JSON.stringify({ sign, ext, filename });
  return JSON.stringify({ rtm: { sign, filename, ext }, custom: {} });
}
const randomFile = (n) => crypto.randomBytes(n);

let nextMid = 8500000000n;
const freshMid = () => I((nextMid++).toString());

// One quest on a fresh link to a node's file gate, as the server SDKs do
// (TCP to the endpoint) or the WebSocket SDK (ws to its derived address).
async function upload(node, method, payload, transport = 'tcp') {
  const port = node.ports[transport === 'ws' ? 'file_ws' : 'file_tcp'];
  const c = await fpnn.connect({ port, transport, timeoutMs: 10000 });
  try {
    return await c.quest(method, payload);
  } finally {
    await c.close();
  }
}

// The payload of an upload for a token, as the Go server SDK sends it.
function uploadPayload(token, from, target, file, { mtype = 50, attrs, mid = freshMid() } = {}) {
  return { pid: I(P1.pid), token, mtype, from: I(from), ...target, mid, file, attrs: attrs ?? fileAttrs(token, file) };
}

// A request to a URL of rtmd's HTTP listener: status, headers and the
// body as bytes. agent: a keep-alive agent to reuse one link.
function httpRequest(url, { method = 'GET', headers = {}, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = require('node:http').request(url, { method, headers, agent, timeout: 10000 }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const blobPath = (dir, file) => path.join(dir, 'files', sha256(file).slice(0, 2), sha256(file));
// Every file under <data_dir>/files, relative names.
function blobsIn(dir) {
  const root = path.join(dir, 'files');
  if (!fs.existsSync(root)) return [];
  const out = [];
  for (const sub of fs.readdirSync(root)) {
    for (const f of fs.readdirSync(path.join(root, sub))) out.push(`${sub}/${f}`);
  }
  return out.sort();
}

// The file gate's TCP endpoint of the node a token came from.
const endpointOf = (node) => `127.0.0.1:${node.ports.file_tcp}`;

describe('files', () => {
  let srv, app;
  const extra = [];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv, ...extra], fn));

  before(async () => {
    srv = await startRtmd({ config: writeConfig(await makeTempDir()) });
    app = await appServer(srv, { project: P1 });
  });

  after(async () => {
    for (const s of extra) await s.cleanup();
    await stopChecked(srv, [app]);
  });

  it('filetoken answers a fresh 128-bit token and the file gate endpoint on both client gates', async () => {
    for (const transport of TRANSPORTS) {
      const u = await login(srv, app, freshUid(), { transport });
      try {
        const node = u.twin ? srv.node(1) : srv.node(0);
        const seen = new Set();
        // the WebSocket SDK's payloads, one per command
        for (const p of [{ cmd: 'sendfile', to: I(7) }, { cmd: 'sendfiles', tos: [I(7), I(8)] },
          { cmd: 'sendgroupfile', gid: I(9) }, { cmd: 'sendroomfile', rid: I(10) },
          // the Python SDK sends to, rid and gid together: only the field cmd names is read
          { cmd: 'sendfile', to: I(7), rid: 'not read', gid: 'not read' }]) {
          const a = await u.call('filetoken', p);
          assert.match(a.token, /^[0-9a-f]{32}$/, JSON.stringify(p));
          assert.equal(a.endpoint, endpointOf(node));
          assert.ok(!seen.has(a.token), 'tokens are not repeated');
          seen.add(a.token);
        }
        await expectCode(u.call('filetoken', {}), 10009);
        await expectCode(u.call('filetoken', { cmd: 'sendfile' }), 10009);
        await expectCode(u.call('filetoken', { cmd: 'sendfiles', tos: I(1) }), 10010);
        await expectCode(u.call('filetoken', { cmd: 'sendfiles', tos: [] }), 200033);
        await expectCode(u.call('filetoken', { cmd: 'sendgroupfile' }), 10009);
        await expectCode(u.call('filetoken', { cmd: 'sendroomfile', rid: 'r' }), 10010);
        await expectCode(u.call('filetoken', { cmd: 'nosuchcmd' }), 10010);
        await expectCode(u.call('filetoken', { cmd: 'broadcastfile' }), 10010); // the app server's only
        // the JSON form
        const j = await u.client.quest('filetoken', { cmd: 'sendfile', to: 7 }, { json: true });
        assert.match(j.token, /^[0-9a-f]{32}$/);
      } finally {
        await u.close();
      }
    }
  });

  it('filetoken on the server gate: from, every command including broadcastfile', async () => {
    for (const p of [{ cmd: 'sendfile', to: I(7) }, { cmd: 'sendfiles', tos: [I(7)] }, { cmd: 'sendgroupfile', gid: I(9) },
      { cmd: 'sendroomfile', rid: I(10) }, { cmd: 'broadcastfile' }]) {
      const a = await app.call('filetoken', { from: I(freshUid()), ...p });
      assert.match(a.token, /^[0-9a-f]{32}$/);
      assert.equal(a.endpoint, endpointOf(srv.node(0)));
    }
    await expectCode(app.call('filetoken', { cmd: 'sendfile', to: I(7) }), 10009); // from
    await expectCode(app.call('filetoken', { from: I(1), cmd: 'sendfile', to: 'x' }), 10010);
  });

  it('a sender holds at most 16 outstanding tokens (200010)', async () => {
    const from = freshUid();
    const tokens = [];
    for (let i = 0; i < 16; i++) tokens.push((await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) })).token);
    await expectCode(app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) }), 200010);
    // another sender is not limited by it
    await app.call('filetoken', { from: I(freshUid()), cmd: 'sendfile', to: I(7) });
    // a token used frees its place
    const file = randomFile(10);
    await upload(srv.node(0), 'sendfile', uploadPayload(tokens[3], from, { to: I(7) }, file));
    await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
    await expectCode(app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) }), 200010);
  });

  it('filetoken answers file_endpoint when it is configured', async () => {
    const other = await startRtmd({ config: writeConfig(await makeTempDir(), 'file_endpoint = "files.example.com:13460"\n') });
    extra.push(other);
    const a2 = await appServer(other, { project: P1 });
    try {
      const a = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      assert.equal(a.endpoint, 'files.example.com:13460');
    } finally {
      await a2.close();
    }
  });
  // The file message a push or history row carries: msg JSON with url and size.
  function checkFileMsg(msgText, file, { ext = 'png', name = 'photo' } = {}) {
    const info = JSON.parse(msgText);
    assert.equal(info.size, file.length);
    assert.match(info.url, /\/files\/[0-9a-f]{32}$/);
    assert.equal(info.ext, ext);
    assert.equal(info.name, name);
    return info;
  }

  it('sendfile over TCP and WebSocket: stored once on disk, pushed and in history as a file message', async () => {
    for (const transport of TRANSPORTS) {
      const from = freshUid();
      const to = freshUid();
      const u = await login(srv, app, to);
      try {
        const file = randomFile(3000);
        const { token, endpoint } = await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(to) });
        assert.equal(endpoint, endpointOf(srv.node(0)));
        const mid = freshMid();
        const attrs = fileAttrs(token, file);
        const a = await upload(srv.node(0), 'sendfile', uploadPayload(token, from, { to: I(to) }, file, { mtype: 40, attrs, mid }), transport);
        assert.ok(fpnn.toBigInt(a.mtime) > 0n);
        const push = await u.waitPush((p) => p.method === 'pushmsg' && fpnn.toBigInt(p.payload.mid) === fpnn.toBigInt(mid));
        assert.equal(Number(push.payload.mtype), 40);
        assert.equal(Number(push.payload.from), from);
        assert.equal(push.payload.attrs, attrs, 'attrs stored and pushed as given');
        checkFileMsg(push.payload.msg, file);
        // in history, the same
        const h = await app.call('getp2pmsg', { uid: I(to), ouid: I(from), desc: true, num: 10 });
        assert.equal(h.msgs.length, 1);
        assert.equal(Number(h.msgs[0][2]), 40);
        checkFileMsg(h.msgs[0][5], file);
        // on disk, whole, under its sha256, nothing else left there
        assert.deepEqual(fs.readFileSync(blobPath(srv.dataDir, file)), file);
        assert.ok(blobsIn(srv.dataDir).every((f) => !f.includes('.tmp')));
      } finally {
        await u.close();
      }
    }
  });

  it('sendfiles, sendgroupfile, sendroomfile and broadcastfile go through their send paths', async () => {
    const from = freshUid();
    const [a, b] = [freshUid(), freshUid()];
    const ua = await login(srv, app, a);
    const ub = await login(srv, app, b);
    try {
      const node = srv.node(0);
      // sendfiles: one message per receiver
      let file = randomFile(500);
      let t = await app.call('filetoken', { from: I(from), cmd: 'sendfiles', tos: [I(a), I(b)] });
      let mid = freshMid();
      await upload(node, 'sendfiles', uploadPayload(t.token, from, { tos: [I(b), I(a)] }, file, { mid }), 'ws');
      for (const u of [ua, ub]) {
        const p = await u.waitPush((x) => x.method === 'pushmsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
        checkFileMsg(p.payload.msg, file);
      }
      // sendgroupfile
      const gid = 850000 + Math.floor(Math.random() * 1000);
      await app.call('addgroupmembers', { gid: I(gid), uids: [I(a), I(b)] });
      file = randomFile(600);
      t = await app.call('filetoken', { from: I(from), cmd: 'sendgroupfile', gid: I(gid) });
      mid = freshMid();
      await upload(node, 'sendgroupfile', uploadPayload(t.token, from, { gid: I(gid) }, file, { mid, mtype: 41 }));
      let p = await ua.waitPush((x) => x.method === 'pushgroupmsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
      assert.equal(Number(p.payload.mtype), 41);
      checkFileMsg(p.payload.msg, file);
      const gh = await app.call('getgroupmsg', { gid: I(gid), desc: true, num: 5, uid: I(a) });
      checkFileMsg(gh.msgs[0][5], file);
      // sendroomfile
      const rid = 851000 + Math.floor(Math.random() * 1000);
      await ub.call('enterroom', { rid: I(rid) });
      file = randomFile(700);
      t = await app.call('filetoken', { from: I(from), cmd: 'sendroomfile', rid: I(rid) });
      mid = freshMid();
      await upload(node, 'sendroomfile', uploadPayload(t.token, from, { rid: I(rid) }, file, { mid, mtype: 42 }), 'ws');
      p = await ub.waitPush((x) => x.method === 'pushroommsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
      checkFileMsg(p.payload.msg, file);
      // broadcastfile: the app server's only
      file = randomFile(800);
      t = await app.call('filetoken', { from: I(from), cmd: 'broadcastfile' });
      mid = freshMid();
      await upload(node, 'broadcastfile', uploadPayload(t.token, from, {}, file, { mid }));
      p = await ua.waitPush((x) => x.method === 'pushbroadcastmsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
      checkFileMsg(p.payload.msg, file);
    } finally {
      await ua.close();
      await ub.close();
    }
  });

  it('a client-gate token sends as that user, with the client rules (a group the user is not in: 200041)', async () => {
    for (const transport of TRANSPORTS) {
      const [a, b] = [freshUid(), freshUid()];
      const ua = await login(srv, app, a, { transport });
      const ub = await login(srv, app, b);
      try {
        const node = ua.twin ? srv.node(1) : srv.node(0);
        const file = randomFile(1000);
        const t = await ua.call('filetoken', { cmd: 'sendfile', to: I(b) });
        const mid = freshMid();
        await upload(node, 'sendfile', uploadPayload(t.token, a, { to: I(b) }, file, { mid }), transport);
        const p = await ub.waitPush((x) => x.method === 'pushmsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
        assert.equal(Number(p.payload.from), a);
        checkFileMsg(p.payload.msg, file);
        const g = await ua.call('filetoken', { cmd: 'sendgroupfile', gid: I(999999) });
        await expectCode(upload(node, 'sendgroupfile', uploadPayload(g.token, a, { gid: I(999999) }, file), transport), 200041);
      } finally {
        await ua.close();
        await ub.close();
      }
    }
  });

  it("the WebSocket client SDK's upload: its payload (endpoint forwarded, ext null) over ws as the logged-in user", async () => {
    const [a, b] = [freshUid(), freshUid()];
    const ua = await login(srv, app, a, { transport: 'ws' });
    const ub = await login(srv, app, b);
    try {
      const node = ua.twin ? srv.node(1) : srv.node(0);
      const file = randomFile(2500);
      // filetoken with what RTMClient.js puts in it: the ops of sendFile but mtype
      const { token, endpoint } = await ua.call('filetoken', { cmd: 'sendfile', to: I(b) });
      const mid = freshMid();
      // sendFileCommon: pid, from, mid, endpoint, then the ops but sign, ext and cmd
      const payload = { pid: Number(P1.pid), from: I(a), mid, endpoint, token, to: I(b), mtype: 50, file,
        attrs: JSON.stringify({ rtm: { sign: fileSign(token, file), ext: null } }) };
      const answer = await upload(node, 'sendfile', payload, 'ws');
      assert.ok(fpnn.toBigInt(answer.mtime) > 0n);
      const p = await ub.waitPush((x) => x.method === 'pushmsg' && fpnn.toBigInt(x.payload.mid) === fpnn.toBigInt(mid));
      const info = JSON.parse(p.payload.msg);
      assert.equal(info.size, file.length);
      assert.equal(info.ext, undefined);
      const r = await httpRequest(info.url);
      assert.equal(r.headers['content-type'], 'application/octet-stream');
      assert.ok(r.body.equals(file));
    } finally {
      await ua.close();
      await ub.close();
    }
  });

  it('the file gate holds at most max_file_connections links', async () => {
    const other = await startRtmd({ config: writeConfig(await makeTempDir(), 'max_file_connections = 2\n') });
    extra.push(other);
    const node = other.node(0);
    const links = [];
    try {
      for (let i = 0; i < 2; i++) links.push(await fpnn.connect({ port: node.ports.file_tcp }));
      // the third is closed as it is accepted, on TCP as on WebSocket
      const third = await fpnn.connect({ port: node.ports.file_tcp });
      assert.ok(await third.waitClose(3000), 'the third link is closed');
      await assert.rejects(fpnn.connect({ port: node.ports.file_ws, transport: 'ws', timeoutMs: 3000 }));
      await links.pop().close();
      const again = await waitFor(async () => {
        const c = await fpnn.connect({ port: node.ports.file_ws, transport: 'ws', timeoutMs: 3000 }).catch(() => null);
        if (c) links.push(c);
        return c !== null;
      }, 5000);
      assert.ok(again, 'a place freed is taken again');
    } finally {
      for (const c of links) await c.close();
    }
  });

  it('a token is used once and bound to project, sender, command and target (200003)', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(100);
    const fresh = async (cmd = 'sendfile', target = { to: I(7) }) =>
      (await app.call('filetoken', { from: I(from), cmd, ...target })).token;
    let token = await fresh();
    await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file));
    await expectCode(upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file)), 200003); // used
    token = await fresh();
    await expectCode(upload(node, 'sendfile', uploadPayload(token, from + 1, { to: I(7) }, file)), 200003); // sender
    await expectCode(upload(node, 'sendfile', uploadPayload(token, from, { to: I(8) }, file)), 200003); // target
    await expectCode(upload(node, 'sendgroupfile', uploadPayload(token, from, { gid: I(7) }, file)), 200003); // command
    await expectCode(upload(node, 'sendfile', { ...uploadPayload(token, from, { to: I(7) }, file), pid: I(1) }), 200003);
    await expectCode(upload(node, 'sendfile', uploadPayload('0'.repeat(32), from, { to: I(7) }, file)), 200003);
    // none of those used it
    await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file));
    token = await fresh('sendfiles', { tos: [I(7), I(8)] });
    await expectCode(upload(node, 'sendfiles', uploadPayload(token, from, { tos: [I(7)] }, file)), 200003);
    await upload(node, 'sendfiles', uploadPayload(token, from, { tos: [I(8), I(7), I(8)] }, file));
    // missing fields: 10009
    await expectCode(upload(node, 'sendfile', { pid: I(P1.pid), from: I(from), to: I(7) }), 10009);
  });

  it('a token expires after file_token_ttl (200003)', async () => {
    const other = await startRtmd({ config: writeConfig(await makeTempDir(), 'file_token_ttl = 1\n') });
    extra.push(other);
    const a2 = await appServer(other, { project: P1 });
    try {
      const file = randomFile(100);
      const t1 = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      for (let i = 0; i < 15; i++) await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      await expectCode(a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) }), 200010);
      await sleep(2300); // expired tokens free their places too
      await expectCode(upload(other.node(0), 'sendfile', uploadPayload(t1.token, 1, { to: I(2) }, file)), 200003);
      const t2 = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      await upload(other.node(0), 'sendfile', uploadPayload(t2.token, 1, { to: I(2) }, file));
    } finally {
      await a2.close();
    }
  });

  it('the signature: missing or wrong 200004, at the top level of attrs (Node SDK) accepted, any case', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(2000);
    const token = async () => (await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) })).token;
    let t = await token();
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { attrs: fileAttrs(t, file, { sign: md5('x') }) })), 200004);
    t = await token();
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { attrs: JSON.stringify({ rtm: { ext: 'png' } }) })), 200004);
    t = await token();
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { attrs: 'not json' })), 200004);
    t = await token();
    // signed over other bytes than those sent
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { attrs: fileAttrs(t, randomFile(10)) })), 200004);
    assert.ok(!fs.existsSync(blobPath(srv.dataDir, file)), 'nothing stored for a bad signature');
    t = await token();
    await upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { attrs: fileAttrs(t, file, { topLevel: true }) }));
    t = await token();
    t = await token();
    const f2 = randomFile(7);
    await upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, f2, { attrs: fileAttrs(t, f2, { sign: fileSign(t, f2).toUpperCase() }) }));
  });

  it('mtype outside 40-50 is 200007; a file over max_file_bytes (or attrs over max_attrs_bytes) is 200031, not stored', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const token = async () => (await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) })).token;
    let file = randomFile(10);
    let t = await token();
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { mtype: 30 })), 200007);
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { mtype: 51 })), 200007);
    await upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file, { mtype: 50 }));
    file = randomFile(MAX_FILE + 1);
    t = await token();
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file)), 200031);
    assert.ok(!fs.existsSync(blobPath(srv.dataDir, file)));
    // attrs over max_attrs_bytes (2048): 200031 as well
    const small = randomFile(10);
    const padded = JSON.stringify({ rtm: { sign: fileSign(t, small), ext: 'png' }, custom: { pad: 'x'.repeat(2100) } });
    await expectCode(upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, small, { attrs: padded })), 200031);
    file = randomFile(MAX_FILE);
    await upload(node, 'sendfile', uploadPayload(t, from, { to: I(7) }, file));
    assert.deepEqual(fs.readFileSync(blobPath(srv.dataDir, file)), file);
  });

  it('a file over the gate\'s packet limit is answered 200031 over TCP, its bytes skipped, the link still usable', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const token = async () => (await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) })).token;
    // Past max_file_bytes and the 64 KiB the gate allows beside it: the
    // payload is never read into memory; the upload method still answers.
    const huge = randomFile(MAX_FILE + 64 * 1024 + 300000);
    const c = await fpnn.connect({ port: node.ports.file_tcp, timeoutMs: 10000 });
    try {
      let t = await token();
      await expectCode(c.quest('sendfile', uploadPayload(t, from, { to: I(7) }, huge)), 200031);
      assert.ok(!fs.existsSync(blobPath(srv.dataDir, huge)));
      const small = randomFile(100);
      t = await token();
      await c.quest('sendfile', uploadPayload(t, from, { to: I(7) }, small));
      assert.deepEqual(fs.readFileSync(blobPath(srv.dataDir, small)), small);
    } finally {
      await c.close();
    }
  });

  it('the same content uploaded twice is stored once, with two rows of its own', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(4000);
    const before = blobsIn(srv.dataDir).length;
    const ids = [];
    for (const transport of TRANSPORTS) {
      const { token } = await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
      await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file), transport);
    }
    assert.equal(blobsIn(srv.dataDir).length, before + 1);
    const rows = await storeRows(srv.dataDir, `SELECT id, size, content_type, name, ext FROM files WHERE sha256 = '${sha256(file)}'`,
      `SELECT convert_from(id, 'UTF8'), size, convert_from(content_type, 'UTF8'), convert_from(name, 'UTF8'), convert_from(ext, 'UTF8') FROM files WHERE sha256 = '${sha256(file)}'::bytea`);
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.match(r[0], /^[0-9a-f]{32}$/);
      ids.push(r[0]);
      assert.deepEqual(r.slice(1), ['4000', 'image/png', 'photo', 'png']);
    }
    assert.notEqual(ids[0], ids[1]);
  });

  it('a truncated upload leaves nothing behind and the gate goes on', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(50000);
    const { token } = await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
    const packet = fpnn.encodePacket({ mtype: 1, method: 'sendfile', seq: 1, payload: uploadPayload(token, from, { to: I(7) }, file) });
    const c = await fpnn.connect({ port: node.ports.file_tcp });
    c.rawWrite(packet.subarray(0, packet.length - 1000));
    await sleep(200);
    c.destroy();
    await sleep(200);
    assert.ok(!fs.existsSync(blobPath(srv.dataDir, file)));
    assert.ok(blobsIn(srv.dataDir).every((f) => !f.includes('.tmp')));
    // the token was not used by it
    await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file));
    assert.deepEqual(fs.readFileSync(blobPath(srv.dataDir, file)), file);
  });

  it('GET /files/<id> gives the bytes back in parts, with type, length, ranges, ETag and caching', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(300000); // several parts of the transport's 64 KiB
    const { token } = await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
    await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file));
    const h = await app.call('getp2pmsg', { uid: I(from), ouid: I(7), desc: true, num: 1 });
    const { url } = JSON.parse(h.msgs[0][5]);
    assert.equal(url.replace(/[0-9a-f]{32}$/, ''), `http://127.0.0.1:${node.ports.http}/files/`);
    const etag = `"${sha256(file)}"`;
    let r = await httpRequest(url);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(file), 'byte for byte');
    assert.equal(r.headers['content-type'], 'image/png');
    assert.equal(r.headers['content-length'], String(file.length));
    assert.equal(r.headers.etag, etag);
    assert.match(r.headers['cache-control'], /^private, max-age=\d+/);
    assert.equal(r.headers['accept-ranges'], 'bytes');
    r = await httpRequest(url, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(file.length));
    assert.equal(r.body.length, 0);
    // single ranges
    r = await httpRequest(url, { headers: { range: 'bytes=10-19' } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(file.subarray(10, 20)));
    assert.equal(r.headers['content-range'], `bytes 10-19/${file.length}`);
    r = await httpRequest(url, { headers: { range: 'bytes=-5' } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(file.subarray(file.length - 5)));
    r = await httpRequest(url, { headers: { range: 'bytes=200000-' } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(file.subarray(200000)));
    r = await httpRequest(url, { headers: { range: `bytes=0-${file.length + 100}` } });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(file));
    r = await httpRequest(url, { headers: { range: `bytes=${file.length}-` } });
    assert.equal(r.status, 416);
    assert.equal(r.headers['content-range'], `bytes */${file.length}`);
    // several ranges are not honoured: the whole file
    r = await httpRequest(url, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(file));
    // the ETag
    r = await httpRequest(url, { headers: { 'if-none-match': etag } });
    assert.equal(r.status, 304);
    assert.equal(r.body.length, 0);
    r = await httpRequest(url, { headers: { 'if-none-match': '"other"' } });
    assert.equal(r.status, 200);
    // unknown and malformed ids
    r = await httpRequest(url.replace(/[0-9a-f]{32}$/, '0'.repeat(32)));
    assert.equal(r.status, 404);
    r = await httpRequest(url.replace(/[0-9a-f]{32}$/, 'nope'));
    assert.equal(r.status, 404);
    // one kept-alive link: answers in order after a streamed one
    const agent = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 1 });
    try {
      const both = await Promise.all([httpRequest(url, { agent }), httpRequest(url, { agent, headers: { range: 'bytes=1-2' } })]);
      assert.ok(both[0].body.equals(file));
      assert.ok(both[1].body.equals(file.subarray(1, 3)));
    } finally {
      agent.destroy();
    }
  });

  it('a file without a known extension is application/octet-stream', async () => {
    const node = srv.node(0);
    const from = freshUid();
    const file = randomFile(10);
    const { token } = await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
    await upload(node, 'sendfile', uploadPayload(token, from, { to: I(7) }, file, { attrs: fileAttrs(token, file, { ext: 'xyz' }) }));
    const h = await app.call('getp2pmsg', { uid: I(from), ouid: I(7), desc: true, num: 1 });
    const r = await httpRequest(JSON.parse(h.msgs[0][5]).url);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.ok(r.body.equals(file));
  });

  it('the sweep drops a file with the last message that refers to it, and uploads whose message never came', async () => {
    const other = await startRtmd({ config: writeConfig(await makeTempDir(), 'file_orphan_grace = 1\n'), args: ['--retention_interval=1'] });
    extra.push(other);
    const a2 = await appServer(other, { project: P1 });
    const u = await login(other, a2, 42);
    try {
      const node = other.node(0);
      const send = async (from, to, file) => {
        const { token } = await a2.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(to) });
        const mid = freshMid();
        await upload(node, 'sendfile', uploadPayload(token, from, { to: I(to) }, file, { mid }));
        const h = await a2.call('getp2pmsg', { uid: I(from), ouid: I(to), desc: true, num: 1 });
        return { mid, url: JSON.parse(h.msgs[0][5]).url };
      };
      const shared = randomFile(1000);
      const alone = randomFile(1200);
      const kept = await send(1, 2, shared);
      const dropped = await send(3, 4, shared); // the same bytes, another row
      const lone = await send(5, 6, alone);
      // an upload whose message is refused (a client's, to a group it is not in)
      const orphan = randomFile(1300);
      const g = await u.call('filetoken', { cmd: 'sendgroupfile', gid: I(77) });
      const uNode = u.twin ? other.node(1) : other.node(0);
      await expectCode(upload(uNode, 'sendgroupfile', uploadPayload(g.token, 42, { gid: I(77) }, orphan)), 200041);
      const orphanDir = u.twin ? other.node(1).dataDir : other.dataDir;
      assert.ok(fs.existsSync(blobPath(orphanDir, orphan)), 'stored before the message was refused');
      await a2.call('delmsg', { mid: dropped.mid, from: I(3), xid: I(4), type: 1 });
      await a2.call('delmsg', { mid: lone.mid, from: I(5), xid: I(6), type: 1 });
      const gone = async (url) => (await httpRequest(url)).status === 404;
      assert.ok(await waitFor(async () => (await gone(lone.url)) && (await gone(dropped.url)) &&
        !fs.existsSync(blobPath(other.dataDir, alone)) && !fs.existsSync(blobPath(orphanDir, orphan)), 10000),
      'files of deleted messages and orphaned uploads swept');
      // the shared bytes stay for the message still there
      const r = await httpRequest(kept.url);
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(shared));
      assert.ok(fs.existsSync(blobPath(other.dataDir, shared)));
      const rows = await storeRows(other.dataDir, 'SELECT count(*) FROM files');
      assert.equal(rows[0][0], '1');
    } finally {
      await u.close();
      await a2.close();
    }
  });

  it('with TLS the file gate also listens for wss (file_wss_port)', async () => {
    const { makeCa, makeServerCert } = require('./lib/tls');
    const dir = await makeTempDir();
    const ca = makeCa(dir);
    const cert = makeServerCert(dir, ca);
    // HTTP off: file URLs name the HTTPS listener
    const other = await startRtmd({ config: writeConfig(dir), args: [`--tls_cert=${cert.cert}`, `--tls_key=${cert.key}`,
      '--client_wss_port=0', '--https_port=0', '--http_port=-1'] });
    extra.push(other);
    assert.ok(other.ports.file_wss > 0, 'the file_wss listener is announced');
    const a2 = await appServer(other, { project: P1 });
    try {
      const file = randomFile(150000); // several TLS records
      const { token } = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      const c = await fpnn.connect({ host: 'localhost', port: other.node(0).ports.file_wss, transport: 'wss', ca: ca.pem, timeoutMs: 10000 });
      try {
        const a = await c.quest('sendfile', uploadPayload(token, 1, { to: I(2) }, file));
        assert.ok(fpnn.toBigInt(a.mtime) > 0n);
      } finally {
        await c.close();
      }
      assert.deepEqual(fs.readFileSync(blobPath(other.dataDir, file)), file);
      const h = await a2.call('getp2pmsg', { uid: I(1), ouid: I(2), desc: true, num: 1 });
      const { url } = JSON.parse(h.msgs[0][5]);
      assert.equal(url.replace(/[0-9a-f]{32}$/, ''), `https://127.0.0.1:${other.node(0).ports.https}/files/`);
      const body = await new Promise((resolve, reject) => {
        const req = require('node:https').get(url.replace('127.0.0.1', 'localhost'), { ca: ca.pem, agent: false }, (res) => {
          const parts = [];
          res.on('data', (d) => parts.push(d));
          res.on('end', () => resolve(Buffer.concat(parts)));
        });
        req.on('error', reject);
      });
      assert.ok(body.equals(file), 'downloaded over https byte for byte');
    } finally {
      await a2.close();
    }
  });

  it('file_base_url is the prefix of the URLs in file messages', async () => {
    const other = await startRtmd({ config: writeConfig(await makeTempDir(), 'file_base_url = "https://cdn.example.com/chat/"\n') });
    extra.push(other);
    const a2 = await appServer(other, { project: P1 });
    try {
      const file = randomFile(20);
      const { token } = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      await upload(other.node(0), 'sendfile', uploadPayload(token, 1, { to: I(2) }, file));
      const h = await a2.call('getp2pmsg', { uid: I(1), ouid: I(2), desc: true, num: 1 });
      assert.match(JSON.parse(h.msgs[0][5]).url, /^https:\/\/cdn\.example\.com\/chat\/files\/[0-9a-f]{32}$/);
    } finally {
      await a2.close();
    }
  });

  it('max_file_bytes follows a reload, and the file gate takes the larger packets at once', async () => {
    const dir = await makeTempDir();
    const conf = writeConfig(dir);
    const other = await startRtmd({ config: conf, dataDir: path.join(dir, 'data') });
    extra.push(other);
    const a2 = await appServer(other, { project: P1 });
    try {
      const file = randomFile(MAX_FILE * 2); // past the gate's packet bound too (MAX_FILE + 64 KiB)
      const send = async () => {
        const t = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
        return upload(other.node(0), 'sendfile', uploadPayload(t.token, 1, { to: I(2) }, file));
      };
      await expectCode(send(), 200031);
      fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace(`max_file_bytes = ${MAX_FILE}`, `max_file_bytes = ${MAX_FILE * 3}`));
      for (const n of other.nodes) {
        const mark = n.stderr.length;
        n.proc.kill('SIGHUP');
        assert.ok(await waitFor(() => /SIGHUP: configuration read again/.test(n.stderr.slice(mark)), 5000));
        assert.match(n.stderr.slice(mark), /max_file_bytes: 400000 -> 1200000, applied/);
      }
      await send();
      assert.deepEqual(fs.readFileSync(blobPath(other.dataDir, file)), file);
    } finally {
      await a2.close();
    }
  });

  it('a write that fails is answered, leaves no file and the server goes on', async () => {
    const dir = await makeTempDir();
    const other = await startRtmd({ config: writeConfig(dir), dataDir: path.join(dir, 'data') });
    extra.push(other);
    // <data_dir>/files is a plain file: no directory can be made under it
    fs.mkdirSync(other.dataDir, { recursive: true });
    fs.writeFileSync(path.join(other.dataDir, 'files'), 'in the way');
    const a2 = await appServer(other, { project: P1 });
    try {
      const file = randomFile(1000);
      const t = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      const e = await expectCode(upload(other.node(0), 'sendfile', uploadPayload(t.token, 1, { to: I(2) }, file)), 200999);
      assert.match(e.ex, /cannot store the file/);
      assert.equal(fs.readFileSync(path.join(other.dataDir, 'files'), 'utf8'), 'in the way');
      const h = await a2.call('getp2pmsg', { uid: I(1), ouid: I(2), desc: true, num: 10 });
      assert.equal(h.msgs.length, 0, 'no message for a file not stored');
      // the way cleared, the next upload is stored
      fs.rmSync(path.join(other.dataDir, 'files'));
      const t2 = await a2.call('filetoken', { from: I(1), cmd: 'sendfile', to: I(2) });
      await upload(other.node(0), 'sendfile', uploadPayload(t2.token, 1, { to: I(2) }, file));
      assert.deepEqual(fs.readFileSync(blobPath(other.dataDir, file)), file);
    } finally {
      await a2.close();
    }
  });
});
