'use strict';
// App-server monitoring: addlisten, removelisten and setlisten (list and
// flag forms of the Node.js and Go server SDKs, setlisten changing only the
// fields given, the Go SDK's lists as maps after a reconnect) on the server gate; the
// pushmsg / pushgroupmsg / pushroommsg copies a listening connection gets
// of the messages it listens to, and pushevent {pid, event, uid, time,
// endpoint, data} for logins and logouts. Listeners are per connection and
// per project.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, answerPushes, sign } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, sleep, makeTempDir } = require('./lib/rtmd');

const P1 = { pid: '82001', secret: 'listen-secret-82001' };
const P2 = { pid: '82002', secret: 'listen-secret-82002' };

let nextUid = 300000;
const freshUid = () => nextUid++;
let nextMid = 1;
const freshMid = () => fpnn.int64(nextMid++);
const big = (v) => fpnn.toBigInt(v);

// An app-server connection that answers pushes and records them.
async function listener(srv, project) {
  const a = await appServer(srv, { project });
  answerPushes(a.client);
  a.got = (method) => a.client.quests.filter((q) => q.method === method);
  a.wait = async (pred, ms = 3000) => {
    const end = Date.now() + ms;
    for (;;) {
      const hit = a.client.quests.find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`listener: no matching push (got ${a.client.quests.map((q) => q.method).join(', ') || 'none'})`);
      await sleep(20);
    }
  };
  return a;
}

describe('listen', () => {
  let srv, app, app2;
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));

  before(async () => {
    const dir = await makeTempDir();
    const conf = path.join(dir, 'rtmd.conf');
    fs.writeFileSync(conf, `[project]\npid = ${P1.pid}\nsecret = "${P1.secret}"\n[project]\npid = ${P2.pid}\nsecret = "${P2.secret}"\n`);
    srv = await startRtmd({ config: conf });
    app = await appServer(srv, { project: P1 });
    app2 = await appServer(srv, { project: P2 });
  });

  after(async () => {
    for (const a of [app, app2]) if (!a.client.isClosed) await a.close();
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  const send = (from, to, extra = {}) =>
    app.call('sendmsg', { from: fpnn.int64(from), to: fpnn.int64(to), mid: freshMid(), mtype: 7, msg: 'p2p', attrs: '', ...extra });

  it('addlisten uids: the listener gets pushmsg for messages from or to those users only', async () => {
    const l = await listener(srv, P1);
    const [u, v, w] = [freshUid(), freshUid(), freshUid()];
    await l.call('addlisten', { uids: [fpnn.int64(u)] });
    const receiver = await login(srv, app, v, { project: P1 });
    const a1 = await send(u, v, { msg: Buffer.from([1, 2, 3]), mtype: 30 });
    await send(w, u, { msg: 'to u' });
    await send(v, w, { msg: 'not listened' });
    const p1 = await l.wait((q) => q.method === 'pushmsg' && Buffer.isBuffer(q.payload.msg));
    assert.deepEqual(fpnn.normalize(p1.payload), {
      from: BigInt(u), to: BigInt(v), mtype: 30n, mid: big(p1.payload.mid), msg: Buffer.from([1, 2, 3]), attrs: '', mtime: big(a1.mtime),
    });
    const rp = await receiver.waitPush((q) => q.method === 'pushmsg');
    assert.deepEqual(fpnn.normalize(rp.payload), fpnn.normalize(p1.payload), 'the listener sees what the receiver sees');
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'to u');
    await sleep(200);
    assert.equal(l.got('pushmsg').length, 2);
    // removelisten stops it
    await l.call('removelisten', { uids: [fpnn.int64(u)] });
    await send(u, v);
    await sleep(200);
    assert.equal(l.got('pushmsg').length, 2);
    await receiver.close();
    await l.close();
  });

  it('addlisten gids and rids: pushgroupmsg and pushroommsg of those groups and rooms only', async () => {
    const l = await listener(srv, P1);
    const gid = fpnn.int64(91000000001n);
    const other = fpnn.int64(91000000002n);
    const rid = fpnn.int64(92000000001n);
    const [m, n] = [freshUid(), freshUid()];
    await app.call('addgroupmembers', { gid, uids: [fpnn.int64(m), fpnn.int64(n)] });
    await app.call('addgroupmembers', { gid: other, uids: [fpnn.int64(m)] });
    await l.call('addlisten', { gids: [gid], rids: [rid] });
    const um = await login(srv, app, m, { project: P1, transport: 'ws' });
    const ans = await um.call('sendgroupmsg', { gid, mid: freshMid(), mtype: 32, msg: 'cmd', attrs: 'x' });
    await um.call('sendgroupmsg', { gid: other, mid: freshMid(), mtype: 1, msg: 'other group', attrs: '' });
    const p = await l.wait((q) => q.method === 'pushgroupmsg');
    assert.deepEqual(fpnn.normalize(p.payload), {
      from: BigInt(m), gid: 91000000001n, mtype: 32n, mid: big(p.payload.mid), msg: 'cmd', attrs: 'x', mtime: big(ans.mtime),
    });
    await um.call('enterroom', { rid });
    await um.call('sendroommsg', { rid, mid: freshMid(), mtype: 3, msg: 'room', attrs: '' });
    const r = await l.wait((q) => q.method === 'pushroommsg');
    assert.equal(big(r.payload.rid), 92000000001n);
    assert.equal(r.payload.msg, 'room');
    await sleep(200);
    assert.equal(l.got('pushgroupmsg').length, 1, 'nothing of the other group');
    assert.equal(l.got('pushmsg').length, 0);
    await um.close();
    await l.close();
  });

  it('setlisten replaces what it names; the flag forms (p2p/group/room/ev, all) listen to a whole kind', async () => {
    const l = await listener(srv, P1);
    const [u, v] = [freshUid(), freshUid()];
    await l.call('addlisten', { uids: [fpnn.int64(u)] });
    await l.call('setlisten', { uids: [fpnn.int64(v)] });
    await send(u, freshUid(), { msg: 'u' });
    await send(freshUid(), v, { msg: 'v' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'v');
    await sleep(150);
    assert.equal(l.got('pushmsg').length, 1, 'u was replaced by v');
    // Go SetListenStatus with every flag false leaves the lists alone
    await l.call('setlisten', { group: false, room: false, p2p: false, ev: false });
    await send(freshUid(), v, { msg: 'v again' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'v again');
    // Go SetListenStatus: every flag
    await l.call('setlisten', { group: false, room: false, p2p: true, ev: false });
    await send(freshUid(), freshUid(), { msg: 'any' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'any');
    // Node SDK addEvtListener with the older p2p flag, then removelisten p2p
    await l.call('removelisten', { p2p: true });
    await send(freshUid(), freshUid(), { msg: 'off' });
    await sleep(150);
    assert.equal(l.got('pushmsg').filter((q) => q.payload.msg === 'off').length, 0);
    await l.call('addlisten', { p2p: true });
    await send(freshUid(), freshUid(), { msg: 'on again' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'on again');
    // setlisten {} names nothing and changes nothing
    await l.call('setlisten', {});
    await send(freshUid(), freshUid(), { msg: 'kept' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'kept');
    // {all: false} clears everything, lists included; {all: true} turns everything on
    await l.call('setlisten', { all: false, uids: [fpnn.int64(v)] });
    await send(freshUid(), freshUid(), { msg: 'cleared' });
    await send(freshUid(), v, { msg: 'cleared v' });
    await sleep(150);
    assert.equal(l.got('pushmsg').filter((q) => q.payload.msg.startsWith('cleared')).length, 0, 'all alone decides');
    await l.call('setlisten', { all: true });
    await send(freshUid(), freshUid(), { msg: 'all' });
    await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'all');
    const e = freshUid();
    const ue = await login(srv, app, e, { project: P1 });
    await l.wait((q) => q.method === 'pushevent' && big(q.payload.uid) === BigInt(e));
    await ue.close();
    await l.close();
  });

  it('setlisten changes only the fields given: the Go SDK sends lists and flags in two calls, again after a reconnect (lists as maps)', async () => {
    const gid = fpnn.int64(91000000011n);
    const other = fpnn.int64(91000000012n);
    const [u, m] = [freshUid(), freshUid()];
    await app.call('addgroupmembers', { gid, uids: [fpnn.int64(m)] });
    await app.call('addgroupmembers', { gid: other, uids: [fpnn.int64(m)] });
    const check = async (l, tag, { otherGroup }) => {
      await send(u, freshUid(), { msg: `p2p ${tag}` });
      await app.call('sendgroupmsg', { from: fpnn.int64(m), gid, mid: freshMid(), mtype: 1, msg: `group ${tag}`, attrs: '' });
      await app.call('sendgroupmsg', { from: fpnn.int64(m), gid: other, mid: freshMid(), mtype: 1, msg: `other ${tag}`, attrs: '' });
      const who = freshUid();
      const x = await login(srv, app, who, { project: P1 });
      await x.close();
      await l.wait((q) => q.method === 'pushmsg' && q.payload.msg === `p2p ${tag}`);
      await l.wait((q) => q.method === 'pushgroupmsg' && q.payload.msg === `group ${tag}`);
      await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'login' && big(q.payload.uid) === BigInt(who));
      await sleep(150);
      assert.equal(l.got('pushgroupmsg').filter((q) => q.payload.msg === `other ${tag}`).length, otherGroup ? 1 : 0, `other group (${tag})`);
      assert.equal(l.got('pushevent').filter((q) => q.payload.event === 'logout').length, 0, `logout not listened (${tag})`);
    };
    // SetListen(gids, nil rids, uids, events), then SetListenStatus(false, false, false, false)
    const l = await listener(srv, P1);
    await l.call('setlisten', { gids: [gid], uids: [fpnn.int64(u)], events: ['login'] });
    await l.call('setlisten', { group: false, room: false, p2p: false, ev: false });
    await check(l, 'first', { otherGroup: false });
    await l.close();
    // After a reconnect the Go SDK sends its record again: the lists are Go
    // maps used as sets ({id: {}}), then the flags, once any is true.
    const r = await listener(srv, P1);
    const body = goSetPayload(P1, 'setlisten', { uids: [fpnn.int64(u)], gids: [gid], events: ['login'] });
    assert.deepEqual(await r.client.quest('setlisten', body), {});
    await check(r, 'again', { otherGroup: false });
    await r.call('setlisten', { group: true, room: false, p2p: false, ev: false });
    await app.call('sendgroupmsg', { from: fpnn.int64(m), gid: other, mid: freshMid(), mtype: 1, msg: 'every group', attrs: '' });
    await r.wait((q) => q.method === 'pushgroupmsg' && q.payload.msg === 'every group');
    await send(u, freshUid(), { msg: 'uids kept' });
    await r.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'uids kept');
    // a true flag forgets the ids of its kind, as the Go SDK's record does
    await r.call('setlisten', { group: true, room: false, p2p: true, ev: false });
    await r.call('setlisten', { group: true, room: false, p2p: false, ev: false });
    await send(u, freshUid(), { msg: 'forgotten' });
    await app.call('sendgroupmsg', { from: fpnn.int64(m), gid, mid: freshMid(), mtype: 1, msg: 'group kept', attrs: '' });
    await r.wait((q) => q.method === 'pushgroupmsg' && q.payload.msg === 'group kept');
    await sleep(150);
    assert.equal(r.got('pushmsg').filter((q) => q.payload.msg === 'forgotten').length, 0);
    // the older Go SDK's one call {gids, rids, p2p, events}: nil lists are empty
    await r.call('setlisten', { group: false, room: false, p2p: false, ev: false });
    await r.call('setlisten', { gids: [other], rids: null, p2p: false, events: null });
    await app.call('sendgroupmsg', { from: fpnn.int64(m), gid, mid: freshMid(), mtype: 1, msg: 'old gid', attrs: '' });
    await app.call('sendgroupmsg', { from: fpnn.int64(m), gid: other, mid: freshMid(), mtype: 1, msg: 'new gid', attrs: '' });
    const y = await login(srv, app, freshUid(), { project: P1 });
    await y.close();
    await r.wait((q) => q.method === 'pushgroupmsg' && q.payload.msg === 'new gid');
    await sleep(150);
    assert.equal(r.got('pushgroupmsg').filter((q) => q.payload.msg === 'old gid').length, 0);
    assert.equal(r.got('pushevent').filter((q) => big(q.payload.uid) === big(y.uid)).length, 0, 'events: nil cleared them');
    await r.close();
  });

  it('pushevent login and logout: {pid, event, uid, time, endpoint, data}', async () => {
    const l = await listener(srv, P1);
    await l.call('addlisten', { events: ['login', 'logout'] });
    const uid = freshUid();
    const t0 = Math.floor(Date.now() / 1000);
    const u = await login(srv, app, uid, { project: P1, transport: 'ws' });
    const second = await login(srv, app, uid, { project: P1 });
    const inEv = await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'login');
    assert.equal(toNum(inEv.payload.pid), Number(P1.pid));
    assert.equal(big(inEv.payload.uid), BigInt(uid));
    assert.ok(Math.abs(toNum(inEv.payload.time) - t0) <= 2, 'time is unix seconds');
    assert.match(inEv.payload.endpoint, /^127\.0\.0\.1:\d+$/);
    assert.equal(inEv.payload.data, '');
    await u.close();
    await sleep(150);
    assert.equal(l.got('pushevent').length, 1, 'no event while another connection of the user is online');
    await second.close();
    const outEv = await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'logout');
    assert.equal(big(outEv.payload.uid), BigInt(uid));
    // only the events named: removelisten logout, then ev:true via setlisten
    await l.call('removelisten', { events: ['logout'] });
    const u2 = await login(srv, app, freshUid(), { project: P1 });
    await u2.close();
    await sleep(200);
    assert.deepEqual(l.got('pushevent').map((q) => q.payload.event), ['login', 'logout', 'login']);
    await l.call('setlisten', { ev: true });
    const u3 = await login(srv, app, freshUid(), { project: P1 });
    await u3.close();
    await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'logout' && big(q.payload.uid) === big(u3.uid));
    await l.close();
  });

  it('the documented events are login and logout: logout also when the server ends the sessions', async () => {
    // The server SDKs document these two (Node RTMConfig.SERVER_EVENT, the
    // Java and Python listen docs); other names are accepted, never sent.
    const l = await listener(srv, P1);
    await l.call('addlisten', { events: ['login', 'logout', 'enterroom', 'kickout'] });
    const kicked = freshUid();
    const black = freshUid();
    const k = await login(srv, app, kicked, { project: P1 });
    const b = await login(srv, app, black, { project: P1, transport: 'ws' });
    await app.call('kickout', { uid: fpnn.int64(kicked) });
    await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'logout' && big(q.payload.uid) === BigInt(kicked));
    await app.call('addprojectblack', { uid: fpnn.int64(black), btime: 0 });
    await l.wait((q) => q.method === 'pushevent' && q.payload.event === 'logout' && big(q.payload.uid) === BigInt(black));
    await app.call('removeprojectblack', { uid: fpnn.int64(black) });
    await sleep(150);
    const events = l.got('pushevent').map((q) => `${q.payload.event}:${q.payload.uid}`);
    // Each user's events in order; between users only on one node (on a
    // cluster, lib/rtmd.js, the two may log in on different nodes, whose
    // events reach the listener through Redis in no common order).
    for (const uid of [kicked, black])
      assert.deepEqual(events.filter((e) => e.endsWith(`:${uid}`)), [`login:${uid}`, `logout:${uid}`]);
    assert.equal(events.length, 4, events.join(' '));
    if (srv.nodes.length === 1)
      assert.deepEqual(events, [`login:${kicked}`, `login:${black}`, `logout:${kicked}`, `logout:${black}`]);
    await Promise.allSettled([k.close(), b.close()]);
    await l.close();
  });

  it('listeners are per project and per connection; a closed listener is forgotten', async () => {
    const l2 = await listener(srv, P2);
    await l2.call('setlisten', { all: true });
    const l1 = await listener(srv, P1);
    await l1.call('setlisten', { p2p: true });
    const l1b = await listener(srv, P1);
    await send(freshUid(), freshUid(), { msg: 'project one' });
    const u = await login(srv, app, freshUid(), { project: P1 });
    await u.close();
    await l1.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'project one');
    await sleep(200);
    assert.equal(l2.client.quests.filter((q) => q.method !== 'ping').length, 0, 'project two saw nothing');
    assert.equal(l1b.client.quests.length, 0, 'another connection of project one saw nothing');
    await l1.close();
    await sleep(50);
    await send(freshUid(), freshUid(), { msg: 'after close' });
    await app2.call('sendmsg', { from: fpnn.int64(1), to: fpnn.int64(2), mid: freshMid(), mtype: 1, msg: 'p2', attrs: '' });
    await l2.wait((q) => q.method === 'pushmsg' && q.payload.msg === 'p2');
    await l2.close();
    await l1b.close();
  });

  it('mistyped listen fields get 10010; client gates cannot listen', async () => {
    const l = await listener(srv, P1);
    await expectCode(l.call('addlisten', { uids: 'x' }), 10010);
    await expectCode(l.call('addlisten', { gids: ['a'] }), 10010);
    await expectCode(l.call('setlisten', { p2p: 1 }), 10010);
    await expectCode(l.call('removelisten', { events: [3] }), 10010);
    await expectCode(l.client.quest('setlisten', goSetPayload(P1, 'setlisten', { uids: ['not an id'] })), 10010);
    await expectCode(l.call('setlisten', { all: 'yes' }), 10010);
    const u = await login(srv, app, freshUid(), { project: P1 });
    await assert.rejects(u.call('addlisten', { uids: [fpnn.int64(1)] }));
    await u.close();
    await l.close();
  });
});

// The msgpack bytes of a signed request whose set fields are encoded as the
// Go SDK encodes a map[T]struct{}: a map from each member to an empty map.
function goSetPayload(project, method, sets) {
  const signed = sign(project, method, {});
  const entries = Object.entries(signed);
  const parts = [Buffer.from([0x80 | (entries.length + Object.keys(sets).length)])];
  for (const [k, v] of entries) parts.push(fpnn.encodeMsgpack(k), fpnn.encodeMsgpack(v));
  for (const [k, members] of Object.entries(sets)) {
    parts.push(fpnn.encodeMsgpack(k), Buffer.from([0x80 | members.length]));
    for (const x of members) parts.push(fpnn.encodeMsgpack(x), Buffer.from([0x80]));
  }
  return Buffer.concat(parts);
}

function toNum(v) {
  return fpnn.toNumber(v);
}
