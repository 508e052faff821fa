'use strict';
// A kickout closes every connection of the user, however many it holds
// (multi_login allows any number): each gets the oneway `kickout` push, then
// is closed, and the user is offline. The app server's `kickout` and the
// project blacklist (`addprojectblack`) both kick this way; another user's
// connections stay open.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs } = require('../integration/lib/rtmd');
const { appServer, login, stopChecked } = require('../integration/lib/rtm');

const CONNECTIONS = 100;

describe('a kickout closes every connection of the user', () => {
  let srv;
  let app;
  const it = (name, fn) => test(name, { timeout: 120000 }, withLogs(() => [srv], fn));

  before(async () => {
    srv = await startRtmd();
    app = await appServer(srv);
  });

  after(async () => {
    await stopChecked(srv, [app]);
  });

  // Logs uid in on CONNECTIONS links, every tenth over WebSocket.
  async function loginMany(uid) {
    const users = [];
    for (let i = 0; i < CONNECTIONS; i++) users.push(await login(srv, app, uid, { transport: i % 10 === 9 ? 'ws' : 'tcp' }));
    return users;
  }

  async function online(uids) {
    return (await app.call('getonlineusers', { uids: uids.map((u) => fpnn.int64(u)) })).uids.map(fpnn.toNumber);
  }

  // Waits for the links to close; asserts all closed after a kickout push.
  async function expectAllKicked(users) {
    const closed = await Promise.all(users.map((u) => u.client.waitClose(10000)));
    const kicked = users.filter((u) => u.pushes.some((p) => p.method === 'kickout'));
    assert.equal(closed.filter(Boolean).length, CONNECTIONS, 'connections closed');
    assert.equal(kicked.length, CONNECTIONS, 'connections that got the kickout push first');
  }

  it(`the app server's kickout closes all ${CONNECTIONS} connections of a user`, async () => {
    const bystander = await login(srv, app, 9100);
    const users = await loginMany(9001);
    assert.deepEqual(await online([9001, 9100]), [9001, 9100]);
    await app.call('kickout', { uid: fpnn.int64(9001) });
    await expectAllKicked(users);
    assert.deepEqual(await online([9001, 9100]), [9100]);
    assert.equal(bystander.client.isClosed, false, "another user's connection stays open");
    await bystander.close();
  });

  it(`the project blacklist closes all ${CONNECTIONS} connections of a user`, async () => {
    const users = await loginMany(9002);
    await app.call('addprojectblack', { uid: fpnn.int64(9002), btime: 0 });
    await expectAllKicked(users);
    assert.deepEqual(await online([9002]), []);
  });
});
