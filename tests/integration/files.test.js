'use strict';
// Files (issue 15): `filetoken` on the client and server gates with the
// SDKs' payloads (a one-time token bound to project, sender, command and
// target, and the file gate's endpoint).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs, makeTempDir } = require('./lib/rtmd');

const P1 = { pid: '85001', secret: 'files-secret-85001' };
const I = (v) => fpnn.int64(v);
const TRANSPORTS = ['tcp', 'ws'];

let nextUid = 850000;
const freshUid = () => nextUid++;

function writeConfig(dir, extra = '') {
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf, `${extra}[project]\npid = ${P1.pid}\nsecret = "${P1.secret}"\nuser_msg_burst = 1000\n`);
  return conf;
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
    for (let i = 0; i < 16; i++) await app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) });
    await expectCode(app.call('filetoken', { from: I(from), cmd: 'sendfile', to: I(7) }), 200010);
    // another sender is not limited by it
    await app.call('filetoken', { from: I(freshUid()), cmd: 'sendfile', to: I(7) });
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
});
