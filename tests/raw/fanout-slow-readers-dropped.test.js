'use strict';
// Slow readers dropped in the middle of a room or group fan-out: rtmd walks
// the members in place, and a member whose output queue overflows is only
// marked closed there and torn down (logged out, removed from its rooms)
// after the fan-out. Every reader that keeps up gets every message, in
// order; the slow ones are closed and leave the room; rtmd goes on (and,
// in the sanitizer build, touches no freed memory).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { appServer, writeProjectsConfig, stopChecked, login } = require('../integration/lib/rtm');
const { startRtmd, makeTempDir, waitFor } = require('../integration/lib/rtmd');

const P = {
  pid: 83001, secret: 'fanout-slow-83001', max_msg_bytes: 262144,
  user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0,
};
let srv, app;
const users = [];

after(async () => {
  for (const u of users) if (!u.client.isClosed) u.client.destroy();
  await stopChecked(srv, [app]);
});

test('readers that keep up get everything while slow ones are dropped mid-fan-out', { timeout: 90000 }, async () => {
  // A small output queue, so that paused readers overflow it quickly.
  const conf = writeProjectsConfig(await makeTempDir(), [P]);
  srv = await startRtmd({ config: conf, args: ['--max_output_queue=65536'] });
  app = await appServer(srv, { project: srv.projects.find((p) => p.pid === String(P.pid)) });

  const RID = fpnn.int64(500);
  const GID = fpnn.int64(600);
  const fast = [];
  const slow = [];
  for (let i = 0; i < 12; i++) {
    const u = await login(srv, app, 8000 + i);
    users.push(u);
    await u.call('enterroom', { rid: RID });
    (i % 3 === 0 ? slow : fast).push(u);
  }
  // The sender is a member too (sendroommsg needs it in the room).
  const sender = await login(srv, app, 9999);
  await sender.call('enterroom', { rid: RID });
  await app.call('addgroupmembers', { gid: GID, uids: [...users.map((u) => fpnn.int64(u.uid)), fpnn.int64(9999)] });
  users.push(sender);
  for (const u of slow) u.client.transport.socket.pause(); // never read again

  // More than the kernel buffers of a paused reader take (a few MiB).
  const body = 'y'.repeat(200000);
  const N = 60;
  for (let i = 0; i < N; i++) {
    const method = i % 2 ? 'sendroommsg' : 'sendgroupmsg';
    const target = i % 2 ? { rid: RID } : { gid: GID };
    await app.call(method, { from: fpnn.int64(9999), ...target, mid: fpnn.int64(i + 1), mtype: 51, msg: `${i}:${body}`, attrs: '' });
  }

  for (const u of fast) {
    await waitFor(() => u.pushes.filter((p) => p.method === 'pushroommsg' || p.method === 'pushgroupmsg').length === N, 30000);
    const seen = u.pushes.filter((p) => p.method === 'pushroommsg' || p.method === 'pushgroupmsg')
      .map((p) => Number(String(p.payload.msg).split(':')[0]));
    assert.deepEqual(seen, Array.from({ length: N }, (_, i) => i), `user ${u.uid} got every message in order`);
  }
  for (const u of slow) {
    u.client.transport.socket.resume();
    assert.ok(await u.client.waitClose(10000), `slow reader ${u.uid} was dropped`);
  }
  const stayed = [...fast.map((u) => u.uid), sender.uid];
  const online = await app.call('getonlineusers', { uids: users.map((u) => fpnn.int64(u.uid)) });
  assert.deepEqual(online.uids.map(fpnn.toNumber).sort((a, b) => a - b), stayed);
  const members = await fast[0].call('getroommembers', { rid: RID });
  assert.deepEqual(members.uids.map(fpnn.toNumber).sort((a, b) => a - b), stayed, 'dropped readers left the room');
});
