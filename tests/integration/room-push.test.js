'use strict';
// Room messages pushed before their commit (room_push, docs/performance.md
// "Push before commit"), on the SQLite store: the writer is held back by
// another process that holds the database's write lock (BEGIN IMMEDIATE in
// the sqlite3 shell; the writer's own BEGIN IMMEDIATE waits for it, up to
// its 5 s busy timeout). While it is held, room members get the push and
// the sender's answer waits; p2p messages wait for the commit as before;
// room_push = after_commit and rooms of more than 100 members wait too. A
// commit that fails after the push (the busy timeout) answers an error,
// and the sender's retry with the same mid is stored once; a kill -9
// between push and commit leaves nothing in history, and the resent
// message (same mid) is stored once and pushed again with the same
// (from, mid), which clients drop.
//
// SQLite only (kept out of the pg.* and cl.* suites): on PostgreSQL the ids
// come from the store and rooms push after the commit.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const fpnn = require('./lib/fpnn');
const { login, expectCode, appServer, startWithProjects, stopChecked, pushText } = require('./lib/rtm');
const { withLogs, sleep, startRtmd } = require('./lib/rtmd');

const I = fpnn.int64;
const N = fpnn.toNumber;
const PID = 83001;
const SECRET = 'room-push-secret';

// Holds the write lock of rtmd's database until release() (sqlite3 shell).
async function holdWriter(dataDir) {
  const proc = spawn('stdbuf', ['-oL', 'sqlite3', path.join(dataDir, 'rtmd.sqlite3')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.once('close', resolve));
  const held = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('held')) resolve();
    });
    exited.then(() => reject(new Error(`sqlite3 exited before it held the lock: ${err}`)));
  });
  proc.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'held';\n");
  await held;
  return {
    async release() {
      proc.stdin.end('ROLLBACK;\n.quit\n');
      assert.equal(await exited, 0, `sqlite3: ${err}`);
    },
  };
}

// A quest whose answer is remembered when it comes (answered: false until then).
function pending(promise) {
  const p = { answered: false };
  p.done = promise.then((v) => { p.answered = true; return v; }, (e) => { p.answered = true; throw e; });
  return p;
}

const isRoomPush = (rid, mid) => (p) => p.method === 'pushroommsg' && N(p.payload.rid) === rid && N(p.payload.mid) === mid;
const pushesOf = (u, rid, mid) => u.pushes.filter(isRoomPush(rid, mid));

describe('room messages pushed before the commit', () => {
  let srv, app, late, lateApp;
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => [srv, late].filter(Boolean), fn));

  before(async () => {
    ({ srv, apps: [app] } = await startWithProjects([{ pid: PID, secret: SECRET }]));
  });

  after(async () => {
    await stopChecked(srv, [app]);
    if (late) await stopChecked(late, [lateApp]);
  });

  const room = async (rid, uids, server = srv, a = app) => {
    const users = [];
    for (const uid of uids) {
      const u = await login(server, a, uid);
      await u.call('enterroom', { rid: I(rid) });
      users.push(u);
    }
    return users;
  };

  it('members get the push while the answer waits for the commit; p2p waits for it', async () => {
    const rid = 501;
    const [a, b, c] = await room(rid, [5001, 5002, 5003]);
    const hold = await holdWriter(srv.dataDir);
    const sent = pending(a.call('sendroommsg', { rid: I(rid), mid: I(1), mtype: 30, msg: 'early', attrs: '' }));
    const p2p = pending(a.call('sendmsg', { to: I(5002), mid: I(2), mtype: 30, msg: 'p2p', attrs: '' }));
    const pb = await b.waitPush(isRoomPush(rid, 1));
    const pc = await c.waitPush(isRoomPush(rid, 1));
    assert.equal(pushText(pb.payload), 'early');
    assert.equal(N(pb.payload.from), 5001);
    assert.equal(N(pc.payload.mtime), N(pb.payload.mtime));
    await sleep(300);
    assert.equal(sent.answered, false, 'the sender is answered only after the commit');
    assert.equal(p2p.answered, false);
    assert.equal(b.pushes.some((p) => p.method === 'pushmsg'), false, 'p2p is pushed after the commit');
    assert.equal(pushesOf(a, rid, 1).length, 0, 'the sender gets no copy');
    await hold.release();
    const ans = await sent.done;
    assert.equal(N(ans.mtime), N(pb.payload.mtime));
    await p2p.done;
    await b.waitPush((p) => p.method === 'pushmsg' && N(p.payload.mid) === 2);
    const h = await app.call('getroommsg', { rid: I(rid), uid: I(5002), desc: false, num: 10 });
    assert.deepEqual(h.msgs.map((m) => [N(m[1]), N(m[3]), m[5]]), [[5001, 1, 'early']]);
    assert.equal(pushesOf(b, rid, 1).length, 1);
    for (const u of [a, b, c]) await u.close();
  });

  it('an app server\'s sendroommsg is pushed before the commit too', async () => {
    const rid = 502;
    const [b] = await room(rid, [5011]);
    const hold = await holdWriter(srv.dataDir);
    const sent = pending(app.call('sendroommsg', { from: I(9), rid: I(rid), mid: I(3), mtype: 30, msg: 'from app', attrs: '' }));
    const pb = await b.waitPush(isRoomPush(rid, 3));
    assert.equal(N(pb.payload.from), 9);
    assert.equal(sent.answered, false);
    await hold.release();
    assert.equal(N((await sent.done).mtime), N(pb.payload.mtime));
    await b.close();
  });

  it('a commit that fails after the push answers an error; the retry (same mid) is stored once', async () => {
    const rid = 503;
    const [a, b] = await room(rid, [5021, 5022]);
    const hold = await holdWriter(srv.dataDir);
    const sent = a.call('sendroommsg', { rid: I(rid), mid: I(4), mtype: 30, msg: 'lost', attrs: '' }, { timeoutMs: 20000 });
    await b.waitPush(isRoomPush(rid, 4));
    // The writer's BEGIN IMMEDIATE gives up after its busy timeout (5 s).
    await expectCode(sent, 200999);
    await hold.release();
    let h = await app.call('getroommsg', { rid: I(rid), uid: I(5022), desc: false, num: 10 });
    assert.deepEqual(h.msgs, []);
    const ans = await a.call('sendroommsg', { rid: I(rid), mid: I(4), mtype: 30, msg: 'lost', attrs: '' });
    await b.waitPush((p) => isRoomPush(rid, 4)(p) && N(p.payload.mtime) === N(ans.mtime));
    // Again: a duplicate now; answered with the first mtime, stored once.
    const again = await a.call('sendroommsg', { rid: I(rid), mid: I(4), mtype: 30, msg: 'lost', attrs: '' });
    assert.equal(N(again.mtime), N(ans.mtime));
    h = await app.call('getroommsg', { rid: I(rid), uid: I(5022), desc: false, num: 10 });
    assert.deepEqual(h.msgs.map((m) => [N(m[3]), m[5]]), [[4, 'lost']]);
    // Every push b got of it has the same (from, mid): clients keep the first.
    const got = pushesOf(b, rid, 4);
    assert.ok(got.length >= 2);
    assert.ok(got.every((p) => N(p.payload.from) === 5021));
    for (const u of [a, b]) await u.close();
  }, 90000);

  it('kill -9 between push and commit: not in history; the resent message is stored once', async () => {
    const { makeTempDir } = require('./lib/rtmd');
    const { writeProjectsConfig } = require('./lib/rtm');
    const conf = writeProjectsConfig(await makeTempDir(), [{ pid: PID, secret: SECRET }]);
    let node = await startRtmd({ config: conf });
    const dataDir = node.dataDir;
    let nodeApp = await appServer(node, { project: node.projects[0] });
    const rid = 504;
    let [a, b] = await room(rid, [5031, 5032], node, nodeApp);
    const hold = await holdWriter(dataDir);
    a.call('sendroommsg', { rid: I(rid), mid: I(5), mtype: 30, msg: 'crash', attrs: '' }).catch(() => {});
    const first = await b.waitPush(isRoomPush(rid, 5));
    assert.equal(await node.stop('SIGKILL'), 'SIGKILL');
    await hold.release();
    for (const c of [a.client, b.client, nodeApp.client]) c.destroy();

    late = node = await startRtmd({ config: conf, dataDir });
    lateApp = nodeApp = await appServer(node, { project: node.projects[0] });
    let h = await nodeApp.call('getroommsg', { rid: I(rid), uid: I(5032), desc: false, num: 10 });
    assert.deepEqual(h.msgs, [], 'the pushed message was never committed');
    [a, b] = await room(rid, [5031, 5032], node, nodeApp);
    const ans = await a.call('sendroommsg', { rid: I(rid), mid: I(5), mtype: 30, msg: 'crash', attrs: '' });
    const repeat = await b.waitPush(isRoomPush(rid, 5));
    assert.deepEqual([N(repeat.payload.from), N(repeat.payload.mid)], [N(first.payload.from), N(first.payload.mid)]);
    assert.equal(N(repeat.payload.mtime), N(ans.mtime));
    h = await nodeApp.call('getroommsg', { rid: I(rid), uid: I(5032), desc: false, num: 10 });
    assert.deepEqual(h.msgs.map((m) => [N(m[1]), N(m[3]), m[5]]), [[5031, 5, 'crash']]);
    for (const u of [a, b]) await u.close();
    // Removed by cleanup: the data directory was made by the first start.
    node.ownDataDir = true;
  });

  it('room_push = after_commit: the push waits for the commit', async () => {
    const { makeTempDir } = require('./lib/rtmd');
    const { writeProjectsConfig } = require('./lib/rtm');
    const conf = writeProjectsConfig(await makeTempDir(), [{ pid: PID, secret: SECRET }]);
    const node = await startRtmd({ config: conf, args: ['--room_push=after_commit'] });
    const nodeApp = await appServer(node, { project: node.projects[0] });
    try {
      const rid = 505;
      const [a, b] = await room(rid, [5041, 5042], node, nodeApp);
      const hold = await holdWriter(node.dataDir);
      const sent = pending(a.call('sendroommsg', { rid: I(rid), mid: I(6), mtype: 30, msg: 'late', attrs: '' }));
      await sleep(500);
      assert.equal(pushesOf(b, rid, 6).length, 0, 'no push before the commit');
      assert.equal(sent.answered, false);
      await hold.release();
      const ans = await sent.done;
      const pb = await b.waitPush(isRoomPush(rid, 6));
      assert.equal(N(pb.payload.mtime), N(ans.mtime));
      for (const u of [a, b]) await u.close();
    } finally {
      await stopChecked(node, [nodeApp]);
    }
  });

  it('a room of more than 100 members on the node pushes after the commit', async () => {
    // Early pushes cost each member a write per message; past 100 members
    // (ROOM_PUSH_EARLY_MAX) the batch's pushes go out together after it.
    const rid = 506;
    const users = await room(rid, Array.from({ length: 101 }, (_, i) => 5100 + i));
    try {
      const hold = await holdWriter(srv.dataDir);
      const sent = pending(users[0].call('sendroommsg', { rid: I(rid), mid: I(7), mtype: 30, msg: 'big room', attrs: '' }));
      await sleep(500);
      assert.equal(pushesOf(users[1], rid, 7).length, 0, 'no push before the commit in a room of 101');
      await hold.release();
      const ans = await sent.done;
      const pb = await users[100].waitPush(isRoomPush(rid, 7));
      assert.equal(N(pb.payload.mtime), N(ans.mtime));
      // One member fewer: 100 members push early again.
      await users[100].call('leaveroom', { rid: I(rid) });
      const hold2 = await holdWriter(srv.dataDir);
      const sent2 = pending(users[0].call('sendroommsg', { rid: I(rid), mid: I(8), mtype: 30, msg: 'small room', attrs: '' }));
      await users[1].waitPush(isRoomPush(rid, 8));
      assert.equal(sent2.answered, false);
      await hold2.release();
      await sent2.done;
    } finally {
      for (const u of users) await u.close();
    }
  });

  it('a bad room_push is refused at start', async () => {
    await assert.rejects(startRtmd({ args: ['--room_push=sometimes'] }), /room_push: must be before_commit or after_commit/);
  });
});
