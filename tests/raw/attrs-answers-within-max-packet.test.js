'use strict';
// No answer rtmd builds is larger than max_packet, so that no request makes
// rtmd or the SDK drop the link: getattrs over it is answered with 200032
// (the link stays), a page of history and a conversation list carry the
// messages that fit (history goes on from lastid, every message once).
// getattrs answers the asking node's sessions (docs/cluster.md): on a
// cluster its sessions log in to one node (srv.node(0)).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, makeTempDir, withLogs } = require('../integration/lib/rtmd');
const { appServer, login, expectCode, stopChecked, writeProjectsConfig } = require('../integration/lib/rtm');

const MAX_PACKET = 16384;
const PROJECT = { pid: 72001, secret: 'answers-bounded-secret', max_msg_bytes: 5000 };

describe('answers stay within max_packet', () => {
  let srv;
  let app;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => [srv], fn));

  before(async () => {
    const conf = writeProjectsConfig(await makeTempDir(), [PROJECT]);
    srv = await startRtmd({ config: conf, args: [`--max_packet=${MAX_PACKET}`] });
    app = await appServer(srv, { project: srv.projects.find((p) => p.pid === String(PROJECT.pid)) });
  });

  after(async () => {
    await stopChecked(srv, [app]);
  });

  it('getattrs that would exceed max_packet is answered 200032 and the link stays', async () => {
    const users = [];
    for (let i = 0; i < 3; i++) {
      const u = await login(srv.node(0), app, 10);
      await u.call('addattrs', { attrs: { a: 'x'.repeat(2048), b: 'x'.repeat(2048), c: 'x'.repeat(2048) } });
      users.push(u);
      if (i === 1) assert.equal((await u.call('getattrs', {})).attrs.length, 2, 'two sessions fit');
    }
    const e = await expectCode(users[0].call('getattrs', {}), 200032);
    assert.match(e.message, /max_packet/);
    await users[0].call('addattrs', { attrs: { small: '1' } });
    assert.equal(users[0].client.isClosed, false);
    for (const u of users) await u.close();
  });

  it('a history page holds the messages that fit; lastid walks every message once', async () => {
    for (let i = 0; i < 10; i++) {
      await app.call('sendmsg', { from: fpnn.int64(20), to: fpnn.int64(21), mid: fpnn.int64(1000 + i), mtype: 30, msg: `${i}`.repeat(5000), attrs: '' });
    }
    const u = await login(srv, app, 21);
    const seen = [];
    let lastid = fpnn.int64(0);
    for (let page = 0; page < 20 && seen.length < 10; page++) {
      const a = await u.call('getp2pmsg', { ouid: fpnn.int64(20), desc: true, num: 20, lastid });
      assert.ok(a.num >= 1 && a.num <= 3, `page of ${a.num} messages of 5000 bytes within ${MAX_PACKET}`);
      for (const m of a.msgs) seen.push(m[5]);
      lastid = a.lastid;
    }
    assert.deepEqual(seen, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map((i) => `${i}`.repeat(5000)));
    await u.close();
  });

  it('a conversation list holds the newest conversations whose last messages fit', async () => {
    for (let i = 0; i < 10; i++) {
      await app.call('sendmsg', { from: fpnn.int64(40 + i), to: fpnn.int64(30), mid: fpnn.int64(1), mtype: 30, msg: `${i}`.repeat(5000), attrs: '' });
    }
    const u = await login(srv, app, 30);
    const a = await u.call('getp2pconversationlist', {});
    assert.ok(a.conversations.length >= 1 && a.conversations.length <= 3, `${a.conversations.length} conversations`);
    assert.deepEqual(a.conversations.map(fpnn.toNumber), [49, 48, 47].slice(0, a.conversations.length));
    await u.close();
  });
});
