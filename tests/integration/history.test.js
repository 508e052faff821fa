'use strict';
// History: getp2pmsg, getgroupmsg, getroommsg, getbroadcastmsg on both gates
// (client over TCP and WebSocket), pagination walks in both directions that
// return every message exactly once, begin/end and mtypes filters, binary
// bodies given back as bin, deleted messages, getmsg / delmsg with their
// rights, the server's getmsgnum, the error codes, and the retention job
// (history_max_per_conversation through the protocol with more than one
// delete batch, history_days on messages aged in a stopped server's file).
// Messages are sent with the messages module's send methods.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode } = require('./lib/rtm');
const { sanitizerReports, startRtmd, storeRows, withLogs, waitFor, makeTempDir, TEST_STORE } = require('./lib/rtmd');

const P = { pid: '82001', secret: 'history-secret-82001' };
const TRANSPORTS = ['tcp', 'ws'];

let nextUid = 200000;
const freshUid = () => nextUid++;
let nextMid = 7000000000n;
const freshMid = () => fpnn.int64((nextMid++).toString());
const I = (v) => fpnn.int64(String(v));
const big = (v) => fpnn.toBigInt(v);

function writeConfig(dir, extra = '') {
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf, `[project]\npid = ${P.pid}\nsecret = "${P.secret}"\nuser_msg_burst = 100000\n` +
    `user_msg_rate = 100000\n${extra}`);
  return conf;
}

// Sends through the server gate; resolves with {mid, mtime}.
async function sendP2P(app, from, to, { mtype = 30, msg = 'hello', attrs = '' } = {}) {
  const mid = freshMid();
  const a = await app.call('sendmsg', { from: I(from), to: I(to), mid, mtype, msg, attrs });
  return { mid: big(mid), mtime: big(a.mtime), from: BigInt(from), mtype, msg, attrs };
}

// Walks every page of a history method; returns the messages in order and
// the number of pages.
async function walk(call, payload, { desc, num = 20, max = 100 } = {}) {
  const out = [];
  let lastid = 0n, begin = payload.begin ?? 0n, end = payload.end ?? 0n;
  for (let page = 1; page <= max; page++) {
    const a = await call({ ...payload, desc, num, lastid: I(lastid), begin: I(begin), end: I(end) });
    assert.equal(Number(a.num), a.msgs.length);
    out.push(...a.msgs);
    if (a.msgs.length < num) return { msgs: out, pages: page };
    lastid = big(a.lastid);
    begin = big(a.begin);
    end = big(a.end);
    assert.equal(lastid, big(a.msgs[a.msgs.length - 1][0]), 'lastid is the id of the last message');
  }
  throw new Error('too many pages');
}

describe('history', () => {
  let srv, app;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    srv = await startRtmd({ config: writeConfig(await makeTempDir()) });
    app = await appServer(srv, { project: P });
  });

  after(async () => {
    if (app && !app.client.isClosed) await app.close();
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
  });

  for (const transport of TRANSPORTS) {
    it(`p2p: 57 messages walked by 20 in both directions, each exactly once (client ${transport} and server)`, async () => {
      const a = freshUid(), b = freshUid();
      const sent = [];
      for (let i = 0; i < 57; i++) sent.push(await sendP2P(app, i % 3 === 0 ? b : a, i % 3 === 0 ? a : b, { msg: `m${i}`, attrs: `a${i}` }));
      const user = await login(srv, app, a, { transport, project: P });
      try {
        const call = (p) => user.call('getp2pmsg', p);
        for (const desc of [true, false]) {
          const { msgs, pages } = await walk(call, { ouid: I(b) }, { desc });
          assert.equal(pages, 3);
          assert.equal(msgs.length, 57);
          const ids = msgs.map((m) => big(m[0]));
          assert.equal(new Set(ids.map(String)).size, 57, 'no message twice');
          const sorted = [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
          assert.deepEqual(ids, desc ? sorted.reverse() : sorted);
          const inOrder = desc ? [...sent].reverse() : sent;
          msgs.forEach((m, i) => {
            const s = inOrder[i];
            assert.equal(m.length, 8);
            assert.equal(Number(m[1]), s.from === BigInt(a) ? 1 : 2, 'direction: 1 sent by the caller, 2 received');
            assert.equal(Number(m[2]), 30);
            assert.equal(big(m[3]), s.mid);
            assert.equal(m[4], false);
            assert.equal(m[5], s.msg);
            assert.equal(m[6], s.attrs);
            assert.equal(big(m[7]), s.mtime);
          });
        }
        // The server gate: the same conversation seen by b.
        const srvCall = (p) => app.call('getp2pmsg', p);
        const { msgs } = await walk(srvCall, { uid: I(b), ouid: I(a) }, { desc: true });
        assert.equal(msgs.length, 57);
        const first = msgs[msgs.length - 1]; // oldest: sent by b
        assert.equal(Number(first[1]), 1, 'direction is relative to uid');
        assert.equal(first[5], 'm0');
      } finally {
        await user.close();
      }
    });
  }

  it('num above 20 gives 20; num 0 gives none; answers carry num, lastid, begin, end', async () => {
    const a = freshUid(), b = freshUid();
    for (let i = 0; i < 25; i++) await sendP2P(app, a, b);
    const r = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: true, num: 100 });
    assert.equal(r.msgs.length, 20);
    assert.equal(Number(r.num), 20);
    assert.equal(big(r.lastid), big(r.msgs[19][0]));
    assert.equal(big(r.end), big(r.msgs[19][7]), 'desc: end moves to the mtime of the last message');
    assert.equal(big(r.begin), 0n);
    const asc = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: false, num: 5 });
    assert.equal(big(asc.begin), big(asc.msgs[4][7]), 'asc: begin moves to the mtime of the last message');
    const none = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: true, num: 0 });
    assert.equal(none.msgs.length, 0);
    const empty = await app.call('getp2pmsg', { uid: I(a), ouid: I(freshUid()), desc: true, num: 10, lastid: I(7) });
    assert.deepEqual([Number(empty.num), big(empty.lastid), empty.msgs.length], [0, 7n, 0]);
  });

  it('begin/end keep messages with begin <= mtime <= end; mtypes keep the types asked', async () => {
    const a = freshUid(), b = freshUid();
    const sent = [];
    for (let i = 0; i < 30; i++) {
      sent.push(await sendP2P(app, a, b, { mtype: [30, 40, 5][i % 3], msg: `t${i}` }));
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 3));
    }
    const begin = sent[7].mtime, end = sent[21].mtime;
    const expect = sent.filter((s) => s.mtime >= begin && s.mtime <= end).map((s) => s.mid);
    for (const desc of [true, false]) {
      const { msgs } = await walk((p) => app.call('getp2pmsg', p), { uid: I(a), ouid: I(b), begin, end }, { desc, num: 4 });
      const mids = msgs.map((m) => big(m[3]));
      assert.deepEqual([...mids].sort(), [...expect].sort(), `desc=${desc}`);
      for (const m of msgs) assert.ok(big(m[7]) >= begin && big(m[7]) <= end);
    }
    const only40 = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: false, num: 20, mtypes: [40] });
    assert.equal(only40.msgs.length, 10);
    assert.ok(only40.msgs.every((m) => Number(m[2]) === 40));
    const two = await walk((p) => app.call('getp2pmsg', p), { uid: I(a), ouid: I(b), mtypes: [5, 30] }, { desc: true, num: 6 });
    assert.equal(two.msgs.length, 20);
    assert.ok(two.msgs.every((m) => [5, 30].includes(Number(m[2]))));
    await expectCode(app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: true, num: 5, mtypes: Array.from({ length: 65 }, (_, i) => i + 1) }), 200032);
  });

  for (const transport of TRANSPORTS) {
    it(`binary bodies come back as bin, text as str; deleted messages are marked (client ${transport})`, async () => {
      const a = freshUid(), b = freshUid();
      const ua = await login(srv, app, a, { transport, project: P });
      try {
        const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]);
        const m1 = freshMid(), m2 = freshMid();
        await ua.call('sendmsg', { to: I(b), mid: m1, mtype: 40, msg: bin, attrs: '{"x":1}' });
        await ua.call('sendmsg', { to: I(b), mid: m2, mtype: 30, msg: 'text body', attrs: '' });
        let r = await ua.call('getp2pmsg', { ouid: I(b), desc: false, num: 10 });
        assert.ok(Buffer.isBuffer(r.msgs[0][5]), 'bin stays bin');
        assert.deepEqual(r.msgs[0][5], bin);
        assert.equal(r.msgs[0][6], '{"x":1}');
        assert.equal(typeof r.msgs[1][5], 'string');
        assert.equal(r.msgs[1][5], 'text body');
        const g = await ua.call('getmsg', { mid: m1, from: I(a), xid: I(b), type: 1 });
        assert.deepEqual(g.msg, bin);
        assert.equal(Number(g.mtype), 40);
        assert.equal(big(g.id), big(r.msgs[0][0]));
        assert.equal(big(g.mtime), big(r.msgs[0][7]));
        assert.equal(g.attrs, '{"x":1}');
        // delete the first: still listed, marked, without content
        assert.deepEqual(await ua.call('delmsg', { mid: m1, from: I(a), xid: I(b), type: 1 }), {});
        r = await ua.call('getp2pmsg', { ouid: I(b), desc: false, num: 10 });
        assert.equal(r.msgs.length, 2);
        assert.equal(r.msgs[0][4], true);
        assert.equal(r.msgs[0][5].length, 0);
        assert.equal(r.msgs[0][6], '');
        assert.equal(r.msgs[1][4], false);
        await expectCode(ua.call('getmsg', { mid: m1, from: I(a), xid: I(b), type: 1 }), 200070); // deleted: RTM_EC_MESSAGE_NOT_FOUND
        // deleting again is harmless
        assert.deepEqual(await ua.call('delmsg', { mid: m1, from: I(a), xid: I(b), type: 1 }), {});
      } finally {
        await ua.close();
      }
    });
  }

  it('getmsg and delmsg: rights and errors on the client gate, anything on the server gate', async () => {
    const a = freshUid(), b = freshUid(), c = freshUid();
    const s = await sendP2P(app, a, b, { msg: 'secret' });
    const ub = await login(srv, app, b, { project: P });
    const uc = await login(srv, app, c, { transport: 'ws', project: P });
    try {
      const key = { mid: I(s.mid), from: I(a), xid: I(b), type: 1 };
      const got = await ub.call('getmsg', key);
      assert.equal(got.msg, 'secret');
      await expectCode(uc.call('getmsg', key), 200021);
      await expectCode(ub.call('delmsg', key), 200021); // b did not send it
      await expectCode(ub.call('getmsg', { mid: I(s.mid), from: I(a), xid: I(b) }), 10009);
      await expectCode(ub.call('getmsg', { mid: I(s.mid), from: I(a), xid: I(b), type: 9 }), 10010);
      await expectCode(ub.call('getmsg', { from: I(a), xid: I(b), type: 1 }), 10009);
      // absent message: RTM_EC_MESSAGE_NOT_FOUND, on both gates
      await expectCode(ub.call('getmsg', { ...key, mid: I(1) }), 200070);
      await expectCode(app.call('getmsg', { ...key, mid: I(1) }), 200070);
      // server gate reads and deletes any
      const sg = await app.call('getmsg', key);
      assert.equal(sg.msg, 'secret');
      assert.deepEqual(await app.call('delmsg', key), {});
      await expectCode(app.call('getmsg', key), 200070);
      await expectCode(ub.call('getmsg', key), 200070);
      const h = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: true, num: 5 });
      assert.equal(h.msgs[0][4], true);
      // group and room rights
      const gid = freshUid(), rid = freshUid();
      await app.call('addgroupmembers', { gid: I(gid), uids: [I(a)] });
      const gm = freshMid();
      await app.call('sendgroupmsg', { from: I(a), gid: I(gid), mid: gm, mtype: 30, msg: 'g', attrs: '' });
      await expectCode(ub.call('getmsg', { mid: gm, from: I(a), xid: I(gid), type: 2 }), 200041);
      assert.equal((await app.call('getmsg', { mid: gm, from: I(a), xid: I(gid), type: 2 })).msg, 'g');
      const rm = freshMid();
      const ua = await login(srv, app, a, { project: P });
      await ua.call('enterroom', { rid: I(rid) });
      await ua.call('sendroommsg', { rid: I(rid), mid: rm, mtype: 30, msg: 'r', attrs: '' });
      await ua.close();
      await expectCode(ub.call('getmsg', { mid: rm, from: I(a), xid: I(rid), type: 3 }), 200040);
      await ub.call('enterroom', { rid: I(rid) });
      assert.equal((await ub.call('getmsg', { mid: rm, from: I(a), xid: I(rid), type: 3 })).msg, 'r');
      // server deletes a group message
      assert.deepEqual(await app.call('delmsg', { mid: gm, from: I(a), xid: I(gid), type: 2 }), {});
      await expectCode(app.call('getmsg', { mid: gm, from: I(a), xid: I(gid), type: 2 }), 200070);
    } finally {
      await ub.close();
      await uc.close();
    }
  });

  for (const transport of TRANSPORTS) {
    it(`group history for members only (200041), room history for users in the room (200040), broadcast for all (client ${transport})`, async () => {
      const a = freshUid(), b = freshUid(), out = freshUid(), gid = freshUid(), rid = freshUid();
      await app.call('addgroupmembers', { gid: I(gid), uids: [I(a), I(b)] });
      const ua = await login(srv, app, a, { transport, project: P });
      const uo = await login(srv, app, out, { transport, project: P });
      try {
        for (let i = 0; i < 23; i++) {
          await ua.call('sendgroupmsg', { gid: I(gid), mid: freshMid(), mtype: 30, msg: `g${i}`, attrs: '' });
        }
        await app.call('sendgroupmsg', { from: I(b), gid: I(gid), mid: freshMid(), mtype: 31, msg: 'from b', attrs: '' });
        const { msgs } = await walk((p) => ua.call('getgroupmsg', p), { gid: I(gid) }, { desc: true, num: 10 });
        assert.equal(msgs.length, 24);
        assert.equal(big(msgs[0][1]), BigInt(b), 'group messages carry the sender');
        assert.equal(msgs[0][5], 'from b');
        assert.equal(big(msgs[1][1]), BigInt(a));
        await expectCode(uo.call('getgroupmsg', { gid: I(gid), desc: true, num: 10 }), 200041);
        await expectCode(uo.call('getgroupmsg', { desc: true, num: 10 }), 10009);
        // server gate: {gid, uid}
        const sg = await walk((p) => app.call('getgroupmsg', p), { gid: I(gid), uid: I(a) }, { desc: false, num: 20 });
        assert.equal(sg.msgs.length, 24);
        assert.equal(sg.msgs[0][5], 'g0');
        // getmsgnum
        let n = await app.call('getmsgnum', { type: 2, xid: I(gid) });
        assert.deepEqual([Number(n.sender), Number(n.num)], [2, 24]);
        n = await app.call('getmsgnum', { type: 2, xid: I(gid), mtypes: [31] });
        assert.deepEqual([Number(n.sender), Number(n.num)], [1, 1]);
        n = await app.call('getmsgnum', { type: 2, xid: I(gid), begin: sg.msgs[23][7] });
        assert.ok(Number(n.num) >= 1 && Number(n.num) <= 24);
        n = await app.call('getmsgnum', { type: 2, xid: I(gid), end: I(big(sg.msgs[0][7]) - 1n) });
        assert.equal(Number(n.num), 0);
        await expectCode(app.call('getmsgnum', { type: 1, xid: I(gid) }), 10010);

        // rooms
        await ua.call('enterroom', { rid: I(rid) });
        for (let i = 0; i < 3; i++) await ua.call('sendroommsg', { rid: I(rid), mid: freshMid(), mtype: 30, msg: `r${i}`, attrs: '' });
        const rm = await ua.call('getroommsg', { rid: I(rid), desc: false, num: 10 });
        assert.deepEqual(rm.msgs.map((m) => m[5]), ['r0', 'r1', 'r2']);
        await expectCode(uo.call('getroommsg', { rid: I(rid), desc: false, num: 10 }), 200040);
        const srm = await app.call('getroommsg', { rid: I(rid), uid: I(out), desc: true, num: 2 });
        assert.deepEqual(srm.msgs.map((m) => m[5]), ['r2', 'r1']);
        n = await app.call('getmsgnum', { type: 3, xid: I(rid) });
        assert.deepEqual([Number(n.sender), Number(n.num)], [1, 3]);

        // broadcasts
        const admin = freshUid();
        const tag = `b-${transport}-${admin}`;
        for (let i = 0; i < 3; i++) await app.call('broadcastmsg', { from: I(admin), mid: freshMid(), mtype: 30, msg: `${tag}-${i}`, attrs: '' });
        const bc = await uo.call('getbroadcastmsg', { desc: true, num: 3 });
        assert.deepEqual(bc.msgs.map((m) => m[5]), [`${tag}-2`, `${tag}-1`, `${tag}-0`]);
        assert.equal(big(bc.msgs[0][1]), BigInt(admin));
        const sbc = await app.call('getbroadcastmsg', { uid: I(out), desc: true, num: 1 });
        assert.equal(sbc.msgs[0][5], `${tag}-2`);
      } finally {
        await ua.close();
        await uo.close();
      }
    });
  }

  it('missing conversation keys are refused with 10009 on both gates', async () => {
    const u = await login(srv, app, freshUid(), { project: P });
    try {
      await expectCode(u.call('getp2pmsg', { desc: true, num: 10 }), 10009);
      await expectCode(u.call('getroommsg', { desc: true, num: 10 }), 10009);
      await expectCode(u.call('getp2pmsg', { ouid: I(1), desc: true }), 10009);
      await expectCode(app.call('getp2pmsg', { ouid: I(1), desc: true, num: 10 }), 10009);
      await expectCode(app.call('getgroupmsg', { desc: true, num: 10 }), 10009);
      await expectCode(app.call('getp2pmsg', { uid: 'x', ouid: I(1), desc: true, num: 10 }), 10010);
      await expectCode(u.call('getmsgnum', { type: 2, xid: I(1) }), 20004); // server gate only
    } finally {
      await u.close();
    }
  });
});

// On SQLite each conversation is a chain (migration 21): a message keeps
// its conversation's previous id, conv_last the newest, conv_index every
// 64th message; history walks the chain. Pages give every message once
// and in order in both directions, before and after a restart (the writer
// then reads the newest ids back from conv_last), and after messages in
// the middle of a conversation were deleted (the writer forgets what it
// knew of the newest ids, which may be gone).
describe('history along the conversation chain', () => {
  const servers = [];
  after(async () => {
    for (const s of servers) await s.cleanup();
  });

  // The chain of every stored conversation is whole: each message's prev_id
  // is its conversation's previous message, conv_last its newest, and
  // conv_index has its first message and then one in 64 at most 64 apart.
  const checkChains = async (dataDir) => {
    if (TEST_STORE !== 'sqlite') return;
    const [[broken, lasts, gaps]] = await storeRows(dataDir,
      'SELECT (SELECT count(*) FROM messages m WHERE m.prev_id IS NOT (SELECT max(p.id) FROM messages p' +
      '   WHERE p.pid = m.pid AND p.conv_type = m.conv_type AND p.conv_a = m.conv_a AND p.conv_b = m.conv_b' +
      '   AND p.id < m.id)),' +
      ' (SELECT count(*) FROM (SELECT pid, conv_type, conv_a, conv_b, max(id) AS id FROM messages' +
      '   GROUP BY 1, 2, 3, 4) c LEFT JOIN conv_last l USING (pid, conv_type, conv_a, conv_b) WHERE l.last_id IS NOT c.id),' +
      ' (SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conv_index i' +
      '   WHERE i.pid = m.pid AND i.conv_type = m.conv_type AND i.conv_a = m.conv_a AND i.conv_b = m.conv_b' +
      '   AND i.id <= m.id AND (SELECT count(*) FROM messages q WHERE q.pid = m.pid AND q.conv_type = m.conv_type' +
      '   AND q.conv_a = m.conv_a AND q.conv_b = m.conv_b AND q.id > i.id AND q.id <= m.id) < 64))');
    assert.equal(Number(broken), 0, 'every prev_id is the previous message of its conversation');
    assert.equal(Number(lasts), 0, 'conv_last holds every conversation\'s newest id');
    assert.equal(Number(gaps), 0, 'every message is fewer than 64 past an indexed one');
  };

  const checkWalks = async (app, a, sent) => {
    for (const peer of Object.keys(sent)) {
      for (const desc of [true, false]) {
        const { msgs } = await walk((q) => app.call('getp2pmsg', q), { uid: I(a), ouid: I(peer) },
          { desc, max: 200 });
        const mids = msgs.map((m) => big(m[3]));
        const want = sent[peer].map((m) => m.mid).sort((x, y) => (x < y ? -1 : 1));
        const ids = msgs.map((m) => big(m[0]));
        assert.equal(new Set(ids.map(String)).size, ids.length, 'no message twice');
        assert.deepEqual([...mids].sort((x, y) => (x < y ? -1 : 1)), want, `every message with ${peer} once (${desc}: ${mids.length} of ${want.length})`);
        const sorted = [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        assert.deepEqual(ids, desc ? sorted.reverse() : sorted);
      }
    }
  };

  test('1,300 messages of two conversations walked in both directions, before and after a restart', { timeout: 120000 },
    withLogs(() => servers, async () => {
      const dir = await makeTempDir();
      const dataDir = path.join(dir, 'data');
      const conf = writeConfig(dir, 'history_max_per_conversation = 0\n');
      let srv = await startRtmd({ config: conf, dataDir });
      servers.push(srv);
      let app = await appServer(srv, { project: P });
      const a = freshUid(), b = freshUid(), c = freshUid();
      const sent = { [b]: [], [c]: [] };
      const send = async (n) => {
        for (let i = 0; i < n; i += 100) {
          const round = [];
          for (let k = i; k < Math.min(n, i + 100); k++) {
            const to = k % 5 === 0 ? c : b;
            round.push(sendP2P(app, a, to, { msg: `m${sent[b].length + sent[c].length + k}` }).then((m) => ({ to, m })));
          }
          // each round in the order of its ids
          for (const { to, m } of (await Promise.all(round))) sent[to].push(m);
        }
      };
      await send(1300);
      await checkWalks(app, a, sent);
      await app.close();
      assert.equal(await srv.stop('SIGTERM'), 0);
      await checkChains(dataDir);
      if (TEST_STORE === 'sqlite') {
        const [[indexed]] = await storeRows(dataDir, 'SELECT count(*) FROM conv_index');
        // 1,040 and 260 messages: the first of each and one in 64 after
        assert.equal(Number(indexed), 17 + 5, 'conv_index holds one message in 64');
      }
      srv = await startRtmd({ config: conf, dataDir });
      servers.push(srv);
      app = await appServer(srv, { project: P });
      await send(30);
      await checkWalks(app, a, sent);
      await app.close();
      assert.equal(await srv.stop('SIGTERM'), 0);
      await checkChains(dataDir);
    }));

  test('messages deleted in the middle of a conversation: the rest walked both ways, new ones follow', { timeout: 60000 },
    withLogs(() => servers, async () => {
      const dir = await makeTempDir();
      const dataDir = path.join(dir, 'data');
      const srv = await startRtmd({ config: writeConfig(dir, 'history_max_per_conversation = 0\n'), dataDir });
      servers.push(srv);
      const app = await appServer(srv, { project: P });
      const a = freshUid(), b = freshUid();
      const kept = [];
      // a and b in turn, a last: the newest message is one of those deleted
      for (let i = 0; i < 150; i++) {
        if (i % 3 === 0) kept.push(await sendP2P(app, b, a));
        else await sendP2P(app, a, b);
      }
      await app.call('delconversationmsgs', { from: I(a), xid: I(b), type: 1 });
      await checkWalks(app, a, { [b]: kept });
      for (let i = 0; i < 10; i++) {
        await sendP2P(app, a, b);
        kept.push(await sendP2P(app, b, a));
      }
      await app.call('delconversationmsgs', { from: I(a), xid: I(b), type: 1 });
      await checkWalks(app, a, { [b]: kept });
      await app.close();
      assert.equal(await srv.stop('SIGTERM'), 0);
      await checkChains(dataDir);
    }));
});

describe('history retention', () => {
  const servers = [];
  const logs = () => servers;
  const it = (name, fn, timeout = 90000) => test(name, { timeout }, withLogs(logs, fn));

  after(async () => {
    for (const s of servers) {
      if (!s.alive) continue;
      const code = await s.stop('SIGTERM');
      await s.cleanup();
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${s.diagnostics()}`);
    }
    assert.deepEqual(sanitizerReports(), []);
  });

  it('history_max_per_conversation keeps the newest messages of each conversation, in several delete batches', async () => {
    const dir = await makeTempDir();
    const srv = await startRtmd({ config: writeConfig(dir, 'history_max_per_conversation = 10\n'), args: ['--retention_interval=1'] });
    servers.push(srv);
    const app = await appServer(srv, { project: P });
    try {
      const a = freshUid(), b = freshUid(), c = freshUid();
      // 2100 messages in a -> b (more than one batch of 2000), 4 in a -> c
      const sends = [];
      for (let i = 0; i < 2100; i++) {
        sends.push(app.call('sendmsg', { from: I(a), to: I(b), mid: freshMid(), mtype: 30, msg: `x${i}`, attrs: '' }));
      }
      await Promise.all(sends);
      for (let i = 0; i < 4; i++) await sendP2P(app, a, c, { msg: `c${i}` });
      const count = async (o) => (await walk((p) => app.call('getp2pmsg', p), { uid: I(a), ouid: I(o) }, { desc: true, max: 200 })).msgs;
      const left = await waitFor(async () => {
        const m = await count(b);
        return m.length === 10 ? m : null;
      }, 20000, 250);
      assert.ok(left, 'trimmed to 10');
      assert.deepEqual(left.map((m) => m[5]), Array.from({ length: 10 }, (_, i) => `x${2099 - i}`));
      assert.equal((await count(c)).length, 4, 'a smaller conversation is untouched');
      // a conversation growing later is trimmed by a later run
      for (let i = 0; i < 15; i++) await sendP2P(app, c, a, { msg: `d${i}` });
      const again = await waitFor(async () => {
        const m = await count(c);
        return m.length === 10 ? m : null;
      }, 10000, 250);
      assert.ok(again);
      assert.equal(again[0][5], 'd14');
      assert.equal(again[9][5], 'd5');
    } finally {
      await app.close();
    }
  });

  it('message ids are not handed out again after retention deleted the newest messages', async () => {
    const dir = await makeTempDir();
    const dataDir = path.join(dir, 'data');
    const conf = writeConfig(dir, 'history_days = 3\n');
    const a = freshUid(), b = freshUid();
    const newestOf = async (app) => (await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: true, num: 10 })).msgs;
    const restart = async () => {
      const srv = await startRtmd({ config: conf, dataDir });
      servers.push(srv);
      return { srv, app: await appServer(srv, { project: P }) };
    };
    let { srv, app } = await restart();
    for (let i = 0; i < 3; i++) await sendP2P(app, a, b, { msg: `old${i}` });
    const deletedId = big((await newestOf(app))[0][0]);
    await app.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    // Every message ages past history_days: the next start deletes them all.
    await storeRows(dataDir, 'UPDATE messages SET mtime = mtime - 4*86400000');
    ({ srv, app } = await restart());
    const gone = await waitFor(async () => ((await newestOf(app)).length === 0 ? true : null), 10000, 100);
    assert.ok(gone, 'retention deleted every message');
    await app.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    // The start after that finds no message row to begin ids above.
    ({ srv, app } = await restart());
    try {
      await sendP2P(app, a, b, { msg: 'new' });
      const msgs = await newestOf(app);
      assert.equal(msgs.length, 1);
      assert.ok(big(msgs[0][0]) > deletedId, `new id ${msgs[0][0]} above the deleted ${deletedId}`);
    } finally {
      await app.close();
    }
  });

  it('history_days deletes older messages at start and keeps newer ones', async () => {
    const dir = await makeTempDir();
    const dataDir = path.join(dir, 'data');
    const conf = writeConfig(dir, 'history_days = 3\n');
    let srv = await startRtmd({ config: conf, dataDir });
    servers.push(srv);
    let app = await appServer(srv, { project: P });
    const a = freshUid(), b = freshUid(), c = freshUid(), gid = freshUid();
    for (let i = 0; i < 6; i++) await sendP2P(app, a, b, { msg: `p${i}` });
    for (let i = 0; i < 2; i++) await sendP2P(app, c, a, { msg: `q${i}` });
    await app.call('addgroupmembers', { gid: I(gid), uids: [I(a)] });
    for (let i = 0; i < 4; i++) await app.call('sendgroupmsg', { from: I(a), gid: I(gid), mid: freshMid(), mtype: 30, msg: `g${i}`, attrs: '' });
    await app.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    // Age the first half of each conversation by 4 days (the protocol
    // cannot send messages in the past).
    const aged = "('p0','p1','p2','g0','g1','q0','q1')";
    await storeRows(dataDir, `UPDATE messages SET mtime = mtime - 4*86400000 WHERE pid = ${P.pid} AND CAST(msg AS TEXT) IN ${aged}`,
      `UPDATE messages SET mtime = mtime - 4*86400000 WHERE pid = ${P.pid} AND msg IN ${aged}`);
    srv = await startRtmd({ config: conf, dataDir });
    servers.push(srv);
    app = await appServer(srv, { project: P });
    try {
      const p2p = await waitFor(async () => {
        const h = await app.call('getp2pmsg', { uid: I(a), ouid: I(b), desc: false, num: 20 });
        return h.msgs.length === 3 ? h : null;
      }, 10000, 100);
      assert.ok(p2p, 'old p2p messages deleted');
      assert.deepEqual(p2p.msgs.map((m) => m[5]), ['p3', 'p4', 'p5']);
      const g = await app.call('getgroupmsg', { gid: I(gid), desc: false, num: 20 });
      assert.deepEqual(g.msgs.map((m) => m[5]), ['g2', 'g3']);
      // a's conversation with c lost every message: it is no longer listed.
      const u = await login(srv, app, a, { project: P });
      try {
        const r = await u.call('getsession', {});
        assert.deepEqual(r.p2p.map((v) => BigInt(v)), [BigInt(b)]);
      } finally {
        await u.close();
      }
    } finally {
      await app.close();
    }
  });
});
