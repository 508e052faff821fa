'use strict';
// What older or not-yet-served clients send: the `which` dispatch question
// of the WebSocket SDKs of 2018 (answered with the gate the link reached),
// adddebuglog (logged, escaped, bounded in size and rate per connection),
// and the file, translation and moderation methods that answer 200060
// (RTM_EC_NO_CONFIG_IN_CONSOLE) after their payload checks (10009/10010
// first), on the gates where the SDKs send them. On a cluster `which`
// answers each node's own gate, asked of every node (srv.nodes), and the
// log checked is one process's: the debuglog senders log in to the node
// whose log is read (srv.node(0)).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, sleep } = require('./lib/rtmd');

const I = fpnn.int64;

describe('compat', () => {
  let srv, app;
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    srv = await startRtmd();
    app = await appServer(srv);
  });

  after(async () => {
    if (!app.client.isClosed) await app.close();
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  const raw = (transport, node = srv) =>
    fpnn.connect({ host: '127.0.0.1', port: transport === 'ws' ? node.ports.client_ws : node.ports.client_tcp, transport });

  it('which (seed-era WebSocket SDK payload) answers the endpoint of the gate asked, before login', async () => {
    const pid = Number(srv.projects[0].pid);
    for (const [node, transport] of srv.nodes.flatMap((n) => [[n, 'ws'], [n, 'tcp']])) {
      const port = transport === 'ws' ? node.ports.client_ws : node.ports.client_tcp;
      const c = await raw(transport, node);
      try {
        const a = await c.quest('which', { pid, uid: I(5001), what: 'rtmGated', addrType: 'ipv4', version: '1.0.0' });
        assert.deepEqual(a, { endpoint: `127.0.0.1:${port}`, server: `127.0.0.1:${port}` }, transport);
        // rtm-doc's form, in JSON
        const j = await c.quest('which', { what: 'rtmGated', iptype: 'ip4', proto: 'tcp' }, { json: true });
        assert.equal(j.server, `127.0.0.1:${port}`);
        await expectCode(c.quest('which', { pid, uid: I(5001) }), 10009);
        await expectCode(c.quest('which', { what: 7 }), 10010);
        await expectCode(c.quest('which', { what: 'fileGated' }), 10010);
        // the link is still not logged in
        await expectCode(c.quest('getattrs', {}), 200022);
      } finally {
        await c.close();
      }
    }
    // the server gate has no dispatch
    await expectCode(app.client.quest('which', { what: 'rtmGated' }), 20004);
  });

  it('adddebuglog is logged escaped, bounded in size (200030) and in rate per connection (200010)', async () => {
    const u = await login(srv.node(0), app, 5002, { transport: 'ws' });
    const v = await login(srv.node(0), app, 5003);
    try {
      assert.deepEqual(await u.call('adddebuglog', { msg: 'boot ok\nFAKE line', attrs: '{"os":"web"}' }), {});
      await sleep(100);
      assert.match(srv.stderr, /debuglog pid \d+ uid 5002 from 127\.0\.0\.1:\d+: boot ok\\nFAKE line \(attrs \{"os":"web"\}\)/);
      assert.doesNotMatch(srv.stderr, /\nFAKE line/, 'no forged line');
      await expectCode(u.call('adddebuglog', { attrs: '' }), 10009);
      await expectCode(u.call('adddebuglog', { msg: 'x' }), 10009);
      await expectCode(u.call('adddebuglog', { msg: 3, attrs: '' }), 10010);
      await expectCode(u.call('adddebuglog', { msg: 'x'.repeat(4097), attrs: '' }), 200030);
      // the JSON form
      assert.deepEqual(await u.client.quest('adddebuglog', { msg: 'json', attrs: '' }, { json: true }), {});
      // a burst of 10, then 200010; another connection has its own bucket
      let limited = 0;
      for (let i = 0; i < 12; i++) {
        try {
          await u.call('adddebuglog', { msg: `n${i}`, attrs: '' });
        } catch (e) {
          assert.equal(e.code, 200010);
          limited++;
        }
      }
      assert.ok(limited >= 3, `rate limited ${limited} of 12`);
      assert.deepEqual(await v.call('adddebuglog', { msg: 'other', attrs: '' }), {});
      // before login: 200022; not on the server gate
      const c = await raw('tcp');
      await expectCode(c.quest('adddebuglog', { msg: 'x', attrs: '' }), 200022);
      await c.close();
      await expectCode(app.call('adddebuglog', { msg: 'x', attrs: '' }), 20004);
    } finally {
      await u.close();
      await v.close();
    }
  });

  // Each method with the payload the SDKs send, on the gates they send it.
  const client = {
    translate: [{ text: 'hello', dst: 'zh-CN' }, { text: 'hello', dst: 'en', src: 'zh-CN', type: 'chat', profanity: 'censor' }],
    profanity: [{ text: 'words' }, { text: 'words', classify: true }],
    tcheck: [{ text: 'words' }],
    icheck: [{ image: 'https://example.invalid/a.png', type: 1 }, { image: Buffer.from([0x89, 0x50]), type: 2 }],
    acheck: [{ audio: 'https://example.invalid/a.amr', type: 1, lang: 'en-US' },
      { audio: Buffer.from([1, 2, 3]), type: 2, lang: 'en-US', codec: 'amr-wb', srate: 16000 }],
    vcheck: [{ video: 'https://example.invalid/v.mp4', type: 1, videoName: 'v.mp4' }],
    speech2text: [{ audio: 'https://example.invalid/a.amr', type: 1, lang: 'zh-CN' },
      { audio: Buffer.from([1]), type: 2, lang: 'zh-CN', codec: 'amr-wb', srate: 16000 }],
  };
  const server = {
    translate: [{ text: 'hello', dst: 'en', src: 'zh-CN', type: 'chat', profanity: 'off', postProfanity: true, uid: I(6) }],
    profanity: [{ text: 'words', classify: false, uid: I(6) }],
    tcheck: [{ text: 'words', uid: I(6) }],
    icheck: [{ image: 'https://example.invalid/a.png', type: 1, uid: I(6) }],
    acheck: [{ audio: 'https://example.invalid/a.amr', type: 1, lang: 'en-US', codec: 'amr-wb', srate: 16000, uid: I(6) }],
    vcheck: [{ video: 'https://example.invalid/v.mp4', type: 1, videoName: 'v.mp4', uid: I(6) }],
    speech2text: [{ audio: 'https://example.invalid/a.amr', type: 1, lang: 'zh-CN', uid: I(6) }],
  };

  it('translation and moderation answer 200060 on both client gates, after their payload checks', async () => {
    for (const transport of ['tcp', 'ws']) {
      const u = await login(srv, app, 5004, { transport });
      try {
        for (const [method, payloads] of Object.entries(client)) {
          for (const p of payloads) {
            const e = await expectCode(u.call(method, p), 200060);
            assert.match(e.ex, new RegExp(`${method} is not enabled`), method);
          }
        }
        await expectCode(u.call('translate', { dst: 'en' }), 10009);
        await expectCode(u.call('translate', { text: 'x' }), 10009);
        await expectCode(u.call('translate', { text: 1, dst: 'en' }), 10010);
        await expectCode(u.call('translate', { text: 'x', dst: 'en', src: 5 }), 10010);
        await expectCode(u.call('setlang', {}), 10009);
        await expectCode(u.call('profanity', { text: 'x', classify: 'yes' }), 10010);
        await expectCode(u.call('tcheck', {}), 10009);
        await expectCode(u.call('icheck', { image: 'u' }), 10009);
        await expectCode(u.call('icheck', { image: 'u', type: 'url' }), 10010);
        await expectCode(u.call('acheck', { audio: 'u', type: 1 }), 10009);
        await expectCode(u.call('speech2text', { audio: 'u', type: 1, lang: 'en', srate: 'fast' }), 10010);
        await expectCode(u.call('vcheck', { video: 'u', type: 1 }), 10009);
        // the JSON form
        await expectCode(u.client.quest('translate', { text: 'hello', dst: 'en' }, { json: true }), 200060);
        await expectCode(u.client.quest('icheck', { image: 'u' }, { json: true }), 10009);
      } finally {
        await u.close();
      }
    }
  });

  it('the server-gate forms answer 200060 after their checks; setlang is the client\'s own', async () => {
    for (const [method, payloads] of Object.entries(server)) {
      for (const p of payloads) await expectCode(app.call(method, p), 200060);
    }
    await expectCode(app.call('translate', { text: 'x', dst: 'en', uid: 'me' }), 10010);
    await expectCode(app.call('tcheck', { text: 'x', uid: 1.5 }), 10010);
    await expectCode(app.call('setlang', { lang: 'en' }), 20004);
    // the JSON form, signed as a JSON client does (numbers, not int64)
    await expectCode(app.call('profanity', { text: 'x' }, { json: true }), 200060);
  });
});
