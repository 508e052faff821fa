'use strict';
// Unread state and conversations on the client gate (TCP and WebSocket):
// getunread (with clear), cleanunread, getp2punread / getgroupunread (mtime,
// mtypes, the chat-type default), reading history marks a conversation
// read, getsession / removesession, the five conversation lists in the form
// the SDKs parse, deleted messages, and read markers kept across a restart.
// See src/rtmd/modules/history/history.h for the definition of "unread".

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, makeTempDir } = require('./lib/rtmd');

const P = { pid: '82002', secret: 'unread-secret-82002' };
const TRANSPORTS = ['tcp', 'ws'];

let nextUid = 300000;
const freshUid = () => nextUid++;
let nextMid = 8000000000n;
const freshMid = () => fpnn.int64((nextMid++).toString());
const I = (v) => fpnn.int64(String(v));
const big = (v) => fpnn.toBigInt(v);
const ids = (arr) => arr.map((v) => big(v));
const sortIds = (arr) => ids(arr).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
// {key: value} with integer keys, as BigInt -> Number
const counts = (m) => Object.fromEntries(Object.entries(m || {}).map(([k, v]) => [k, Number(v)]));

function writeConfig(dir) {
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf, `[project]\npid = ${P.pid}\nsecret = "${P.secret}"\nuser_msg_burst = 100000\nuser_msg_rate = 100000\n`);
  return conf;
}

async function sendP2P(app, from, to, { mtype = 30, msg = 'hi' } = {}) {
  const mid = freshMid();
  const a = await app.call('sendmsg', { from: I(from), to: I(to), mid, mtype, msg, attrs: 'at' });
  return { mid, mtime: big(a.mtime) };
}

async function sendGroup(app, from, gid, { mtype = 30, msg = 'g' } = {}) {
  const mid = freshMid();
  const a = await app.call('sendgroupmsg', { from: I(from), gid: I(gid), mid, mtype, msg, attrs: '' });
  return { mid, mtime: big(a.mtime) };
}

// A user u with two peers and one group; p1 wrote 3 chats, u answered once,
// p2 wrote 2 chats and one message of mtype 5 (not a chat type), p1 wrote 2
// chats in the group. Sent in this order, so p2's conversation is newest.
async function scenario(app) {
  // p1 < u < p2: u is the larger uid of one conversation, the smaller of the other.
  const p1 = freshUid(), u = freshUid(), p2 = freshUid(), p3 = freshUid(), gid = freshUid();
  await app.call('addgroupmembers', { gid: I(gid), uids: [I(u), I(p1)] });
  const s = { u, p1, p2, p3, gid, p1msgs: [], p2msgs: [], gmsgs: [] };
  for (let i = 0; i < 3; i++) s.p1msgs.push(await sendP2P(app, p1, u, { msg: `p1-${i}` }));
  s.reply = await sendP2P(app, u, p1, { msg: 'reply' });
  for (let i = 0; i < 2; i++) s.gmsgs.push(await sendGroup(app, p1, gid, { msg: `g-${i}` }));
  for (let i = 0; i < 2; i++) s.p2msgs.push(await sendP2P(app, p2, u, { msg: `p2-${i}` }));
  s.p2other = await sendP2P(app, p2, u, { mtype: 5, msg: 'p2-other' });
  return s;
}

describe('unread and conversations', () => {
  const servers = [];
  let srv, app;
  const logs = () => servers;
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));

  const setup = async () => {
    if (srv) return;
    srv = await startRtmd({ config: writeConfig(await makeTempDir()) });
    servers.push(srv);
    app = await appServer(srv, { project: P });
  };

  after(async () => {
    if (app && !app.client.isClosed) await app.close();
    for (const s of servers) {
      if (!s.alive) continue;
      const code = await s.stop('SIGTERM');
      await s.cleanup();
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${s.diagnostics()}`);
    }
    assert.deepEqual(sanitizerReports(), []);
  });

  for (const transport of TRANSPORTS) {
    it(`getunread, getp2punread, getgroupunread; history reads and cleanunread clear them (${transport})`, async () => {
      await setup();
      const s = await scenario(app);
      const u = await login(srv, app, s.u, { transport, project: P });
      try {
        let r = await u.call('getunread', {});
        assert.deepEqual(sortIds(r.p2p), [BigInt(s.p1), BigInt(s.p2)]);
        assert.deepEqual(ids(r.group), [BigInt(s.gid)]);

        r = await u.call('getp2punread', { uids: [I(s.p1), I(s.p2), I(s.p3)] });
        assert.deepEqual(counts(r.p2p), { [s.p1]: 3, [s.p2]: 2 }, 'chat types only by default');
        assert.equal(big(r.ltime[s.p1]), s.reply.mtime, 'ltime: newest message of the conversation');
        assert.equal(big(r.ltime[s.p2]), s.p2msgs[1].mtime);
        assert.equal(r.ltime[s.p3], undefined);
        r = await u.call('getp2punread', { uids: [I(s.p1), I(s.p2)], mtypes: [5] });
        assert.deepEqual(counts(r.p2p), { [s.p2]: 1 });
        const t = s.p1msgs[0].mtime;
        const newer = s.p1msgs.filter((m) => m.mtime > t).length;
        r = await u.call('getp2punread', { uids: [I(s.p1)], mtime: I(t) });
        assert.deepEqual(counts(r.p2p), newer ? { [s.p1]: newer } : {}, 'with mtime: messages newer than mtime');

        r = await u.call('getgroupunread', { gids: [I(s.gid), I(freshUid())] });
        assert.deepEqual(counts(r.group), { [s.gid]: 2 });
        assert.equal(big(r.ltime[s.gid]), s.gmsgs[1].mtime);

        await expectCode(u.call('getp2punread', {}), 10009);
        await expectCode(u.call('getp2punread', { uids: Array.from({ length: 201 }, (_, i) => I(i + 1)) }), 200032);
        await expectCode(app.call('getunread', {}), 20004);

        // a deleted message is not unread
        await app.call('delmsg', { mid: s.p1msgs[0].mid, from: I(s.p1), xid: I(s.u), type: 1 });
        r = await u.call('getp2punread', { uids: [I(s.p1)] });
        assert.deepEqual(counts(r.p2p), { [s.p1]: 2 });

        // reading a page of history reads the conversation
        await u.call('getp2pmsg', { ouid: I(s.p1), desc: true, num: 20 });
        r = await u.call('getunread', {});
        assert.deepEqual(ids(r.p2p), [BigInt(s.p2)]);
        r = await u.call('getp2punread', { uids: [I(s.p1), I(s.p2)] });
        assert.deepEqual(counts(r.p2p), { [s.p2]: 2 });
        await u.call('getgroupmsg', { gid: I(s.gid), desc: true, num: 1 });
        r = await u.call('getunread', {});
        assert.deepEqual(ids(r.group), []);

        // a new message is unread again
        await sendGroup(app, s.p1, s.gid);
        r = await u.call('getgroupunread', { gids: [I(s.gid)] });
        assert.deepEqual(counts(r.group), { [s.gid]: 1 });

        // cleanunread clears everything, until the next message
        assert.deepEqual(await u.call('cleanunread', {}), {});
        r = await u.call('getunread', {});
        assert.deepEqual([r.p2p.length, r.group.length], [0, 0]);
        await sendP2P(app, s.p2, s.u);
        r = await u.call('getunread', { clear: true });
        assert.deepEqual(ids(r.p2p), [BigInt(s.p2)]);
        r = await u.call('getunread', {});
        assert.deepEqual([r.p2p.length, r.group.length], [0, 0], 'clear: true cleared them');
      } finally {
        await u.close();
      }
    });
  }

  for (const transport of TRANSPORTS) {
    it(`getsession and removesession (${transport})`, async () => {
      await setup();
      const s = await scenario(app);
      const u = await login(srv, app, s.u, { transport, project: P });
      try {
        let r = await u.call('getsession', {});
        assert.deepEqual(ids(r.p2p), [BigInt(s.p2), BigInt(s.p1)], 'newest first');
        assert.deepEqual(ids(r.group), [BigInt(s.gid)]);
        assert.deepEqual(await u.call('removesession', { to: I(s.p2) }), {});
        r = await u.call('getsession', {});
        assert.deepEqual(ids(r.p2p), [BigInt(s.p1)]);
        r = await u.call('getunread', {});
        assert.deepEqual(ids(r.p2p), [BigInt(s.p1)], 'a removed conversation is read');
        r = await u.call('getp2pconversationlist', {});
        assert.deepEqual(ids(r.conversations), [BigInt(s.p1)]);
        await sendP2P(app, s.p2, s.u, { msg: 'back' });
        r = await u.call('getsession', {});
        assert.deepEqual(ids(r.p2p), [BigInt(s.p2), BigInt(s.p1)], 'a new message brings it back');
        await expectCode(u.call('removesession', {}), 10009);
      } finally {
        await u.close();
      }
    });
  }

  for (const transport of TRANSPORTS) {
    it(`conversation lists: conversations, unreads and last messages as the SDKs parse them (${transport})`, async () => {
      await setup();
      const s = await scenario(app);
      const u = await login(srv, app, s.u, { transport, project: P });
      try {
        let r = await u.call('getp2pconversationlist', {});
        assert.deepEqual(Object.keys(r).sort(), ['conversations', 'msgs', 'unreads']);
        assert.deepEqual(ids(r.conversations), [BigInt(s.p2), BigInt(s.p1)]);
        assert.deepEqual(r.unreads.map(Number), [2, 3]);
        const [m2, m1] = r.msgs;
        assert.equal(m2.length, 8);
        assert.equal(Number(m2[1]), 2, 'p2 wrote it: received');
        assert.equal(m2[5], 'p2-1', 'mtype 5 is not a chat type: not the last message by default');
        assert.equal(big(m2[3]), big(s.p2msgs[1].mid));
        assert.equal(m2[4], false);
        assert.equal(m2[6], 'at');
        assert.equal(big(m2[7]), s.p2msgs[1].mtime);
        assert.equal(Number(m1[1]), 1, 'u wrote the reply: sent');
        assert.equal(m1[5], 'reply');

        r = await u.call('getp2pconversationlist', { mtypes: [5] });
        assert.deepEqual(ids(r.conversations), [BigInt(s.p2)]);
        assert.deepEqual(r.unreads.map(Number), [1]);
        assert.equal(r.msgs[0][5], 'p2-other');
        const t = s.p1msgs[2].mtime;
        const after = (msgs) => msgs.filter((m) => m.mtime > t).length;
        r = await u.call('getp2pconversationlist', { mtime: I(t) });
        assert.deepEqual(r.unreads.map(Number), [after(s.p2msgs), 0], 'mtime: newer messages are the unread ones');

        r = await u.call('getgroupconversationlist', {});
        assert.deepEqual(ids(r.conversations), [BigInt(s.gid)]);
        assert.deepEqual(r.unreads.map(Number), [2]);
        assert.equal(big(r.msgs[0][1]), BigInt(s.p1), 'group: the sender');
        assert.equal(r.msgs[0][5], 'g-1');

        await u.call('getp2pmsg', { ouid: I(s.p1), desc: true, num: 5 });
        r = await u.call('getp2punreadconversationlist', {});
        assert.deepEqual(ids(r.conversations), [BigInt(s.p2)]);
        assert.deepEqual(r.unreads.map(Number), [2]);
        r = await u.call('getgroupunreadconversationlist', {});
        assert.deepEqual(ids(r.conversations), [BigInt(s.gid)]);

        r = await u.call('getunreadconversationlist', { clear: true });
        assert.deepEqual(Object.keys(r).sort(),
          ['groupConversations', 'groupMsgs', 'groupUnreads', 'p2pConversations', 'p2pMsgs', 'p2pUnreads']);
        assert.deepEqual(ids(r.p2pConversations), [BigInt(s.p2)]);
        assert.deepEqual(r.p2pUnreads.map(Number), [2]);
        assert.equal(r.p2pMsgs[0][5], 'p2-1');
        assert.deepEqual(ids(r.groupConversations), [BigInt(s.gid)]);
        assert.deepEqual(r.groupUnreads.map(Number), [2]);
        assert.equal(r.groupMsgs[0][5], 'g-1');

        r = await u.call('getunreadconversationlist', {});
        assert.deepEqual([r.p2pConversations.length, r.groupConversations.length], [0, 0], 'cleared');
        r = await u.call('getp2pconversationlist', {});
        assert.deepEqual(r.unreads.map(Number), [0, 0], 'read conversations stay listed');
        await expectCode(u.call('getgroupconversationlist', { mtypes: 'x' }), 10010);
      } finally {
        await u.close();
      }
    });
  }

  it('read markers survive a restart', async () => {
    const dir = await makeTempDir();
    const conf = writeConfig(dir);
    const dataDir = path.join(dir, 'data');
    let s1 = await startRtmd({ config: conf, dataDir });
    servers.push(s1);
    let a = await appServer(s1, { project: P });
    const uid = freshUid(), peer = freshUid();
    await sendP2P(a, peer, uid);
    let u = await login(s1, a, uid, { project: P });
    assert.deepEqual(ids((await u.call('getunread', {})).p2p), [BigInt(peer)]);
    await u.call('cleanunread', {});
    await u.close();
    await a.close();
    assert.equal(await s1.stop('SIGTERM'), 0);
    s1 = await startRtmd({ config: conf, dataDir });
    servers.push(s1);
    a = await appServer(s1, { project: P });
    u = await login(s1, a, uid, { project: P });
    try {
      assert.deepEqual((await u.call('getunread', {})).p2p, []);
      await sendP2P(a, peer, uid);
      assert.deepEqual(ids((await u.call('getunread', {})).p2p), [BigInt(peer)]);
    } finally {
      await u.close();
      await a.close();
    }
  });
});
