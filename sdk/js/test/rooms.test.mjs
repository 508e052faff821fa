// Rooms through the SDK (wire contract, branch rts-rooms): joinRoom with
// onRoomStateChanged and the members already there as onUserJoined, later
// joins and leaves with their reasons (quit, dropped, kicked by the app
// server), text and binary room messages with send results, 200040 when
// not in the room, createRTSRoom refusing a live duplicate id, destroy, and
// rooms joined again after rtmd restarts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTION_STATE as S, USER_OFFLINE_REASON as R, ERROR_CODE } from '../src/index.js';
import { setup, recordRoom, sameBytes, bytes, rtmdLib, rtmLib, PID } from './helpers.mjs';

describe('sdk rooms', () => {
  let ctx, a, b;
  before(async () => {
    ctx = await setup();
    a = await ctx.user('room-a');
    b = await ctx.user('room-b');
  });
  after(async () => {
    await ctx.teardown();
  });
  const it = (name, fn) => test(name, { timeout: 40000 }, fn);

  it('join: state, members already there, then newcomers', async () => {
    const ra = a.createRTSRoom('r1');
    ra.events = recordRoom(ra);
    await ra.joinRoom();
    const [rid, uid, state, extra] = await ra.events.wait('onRoomStateChanged');
    assert.deepEqual([rid, uid, state], ['r1', 'room-a', 0]);
    assert.equal(JSON.parse(extra).join_type, 0);
    const rb = b.createRTSRoom('r1');
    rb.events = recordRoom(rb);
    await rb.joinRoom();
    assert.deepEqual(await rb.events.wait('onUserJoined'), [{ userId: 'room-a', extraInfo: '' }]);
    assert.deepEqual(await ra.events.wait('onUserJoined'), [{ userId: 'room-b', extraInfo: '' }]);
    // Messages, text and binary, with send results.
    await ra.sendRoomMessage('hi room ✓');
    assert.deepEqual(await rb.events.wait('onRoomMessageReceived'), ['room-a', 'hi room ✓']);
    const data = bytes(3000, 5);
    await rb.sendRoomBinaryMessage(data);
    const [from, got] = await ra.events.wait('onRoomBinaryMessageReceived');
    assert.equal(from, 'room-b');
    assert.ok(got instanceof ArrayBuffer && sameBytes(got, data));
    assert.equal(ra.events.named('onRoomMessageSendResult')[0][1], 0);
    assert.equal(rb.events.named('onRoomMessageSendResult')[0][1], 0);
    // b leaves: onLeaveRoom for b, onUserLeave(quit) for a.
    await rb.leaveRoom();
    await rb.events.wait('onLeaveRoom');
    assert.deepEqual(await ra.events.wait('onUserLeave'), ['room-b', R.QUIT]);
    // Not in the room any more: 200040, in the promise and the event.
    await assert.rejects(rb.sendRoomMessage('x'), (e) => e.code === ERROR_CODE.NOT_IN_ROOM);
    assert.equal(rb.events.named('onRoomMessageSendResult').at(-1)[1], ERROR_CODE.NOT_IN_ROOM);
    rb.destroy();
    ra.destroy();
  });

  it('a repeated pushroommsg of one (from, mid) is delivered once; the memory of pairs is bounded', async () => {
    // rtmd pushes a room message before its commit: a sender's retry (same
    // mid) after a failed commit or a restart reaches members again.
    const ra = a.createRTSRoom('r-dedup');
    await ra.joinRoom();
    const rb = b.createRTSRoom('r-dedup');
    rb.events = recordRoom(rb);
    await rb.joinRoom();
    const quests = [];
    const onQuest = b._onQuest.bind(b);
    b._onQuest = (conn, method, p) => {
      if (method === 'pushroommsg') quests.push([conn, p]);
      return onQuest(conn, method, p);
    };
    await ra.sendRoomMessage('once');
    assert.deepEqual(await rb.events.wait('onRoomMessageReceived'), ['room-a', 'once']);
    assert.equal(quests.length, 1);
    const [conn, push] = quests[0];
    b._onQuest(conn, 'pushroommsg', { ...push }); // the same push again
    await ra.sendRoomMessage('next');
    await rb.events.wait('onRoomMessageReceived', (from, msg) => msg === 'next');
    assert.deepEqual(rb.events.named('onRoomMessageReceived').map((e) => e[1]), ['once', 'next']);
    // Another sender's message with the same mid is not a repeat.
    b._onQuest(conn, 'pushroommsg', { ...push, from: 'room-z', msg: 'other sender' });
    assert.deepEqual(rb.events.named('onRoomMessageReceived').at(-1), ['room-z', 'other sender']);
    // At most 10,000 pairs are kept: the oldest is forgotten first.
    for (let i = 0; i < 10000; i++) b._onQuest(conn, 'pushroommsg', { ...push, mid: 10n ** 12n + BigInt(i), msg: 'filler' });
    assert.ok(b.seen.size <= 10000, `${b.seen.size} pairs kept`);
    const before = rb.events.named('onRoomMessageReceived').length;
    b._onQuest(conn, 'pushroommsg', { ...push }); // forgotten by now: delivered again
    assert.equal(rb.events.named('onRoomMessageReceived').length, before + 1);
    b._onQuest = onQuest;
    rb.destroy();
    ra.destroy();
  });

  test('createRTSRoom: a live duplicate id and an invalid id are refused; destroy frees the id', async () => {
    const r = a.createRTSRoom('dup-room');
    assert.throws(() => a.createRTSRoom('dup-room'), (e) => e.code === ERROR_CODE.DUPLICATE_ROOM);
    assert.throws(() => a.createRTSRoom('bad room!'), (e) => e.code === ERROR_CODE.INVALID_PARAMETER);
    r.destroy();
    const again = a.createRTSRoom('dup-room');
    await assert.rejects(r.joinRoom(), (e) => e.code === ERROR_CODE.ROOM_DESTROYED);
    again.destroy();
  });

  it('a member whose link drops is reported DROPPED, and joined again after its reconnect', async () => {
    const c = await ctx.user('room-c');
    const ra = a.createRTSRoom('r-drop');
    ra.events = recordRoom(ra);
    await ra.joinRoom();
    const rc = c.createRTSRoom('r-drop');
    rc.events = recordRoom(rc);
    await rc.joinRoom();
    await ra.events.wait('onUserJoined', (u) => u.userId === 'room-c');
    c.conn.ws.terminate(); // the link drops without bye
    assert.deepEqual(await ra.events.wait('onUserLeave'), ['room-c', R.DROPPED]);
    // c reconnects on its own and enters the room again.
    await c.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTED, 10000);
    const [, , state, extra] = await rc.events.wait('onRoomStateChanged', (r, u, st, x) => JSON.parse(x).join_type === 1);
    assert.equal(state, 0);
    // a hears of c's return once (c's answer and a's push may come in either order).
    await ra.events.wait('onUserJoined', (u) => u.userId === 'room-c' && ra.events.named('onUserJoined').filter(([x]) => x.userId === 'room-c').length === 2);
    await rc.sendRoomMessage('back');
    await ra.events.wait('onRoomMessageReceived', (f, t) => t === 'back');
    assert.equal(ra.events.named('onUserJoined').filter(([u]) => u.userId === 'room-c').length, 2);
    ra.destroy();
    rc.destroy();
  });

  it('removed by the app server: onLeaveRoom for it, KICKED_BY_ADMIN for the others', async () => {
    const d = await ctx.user('room-d');
    const ra = a.createRTSRoom('r-kick');
    ra.events = recordRoom(ra);
    await ra.joinRoom();
    const rd = d.createRTSRoom('r-kick');
    rd.events = recordRoom(rd);
    await rd.joinRoom();
    const { uids } = await ctx.app.call('getuserids', { ids: ['room-d', 'r-kick'] });
    await ctx.app.call('delroommember', { rid: uids['r-kick'], uid: uids['room-d'] });
    assert.deepEqual(await ra.events.wait('onUserLeave'), ['room-d', R.KICKED_BY_ADMIN]);
    await rd.events.wait('onLeaveRoom');
    ra.destroy();
    rd.destroy();
  });

  it('rooms are joined again after rtmd restarts', async () => {
    const ra = a.createRTSRoom('r-restart');
    ra.events = recordRoom(ra);
    await ra.joinRoom();
    const rb = b.createRTSRoom('r-restart');
    rb.events = recordRoom(rb);
    await rb.joinRoom();
    const old = ctx.srv;
    // The ports it listened on (on a cluster, the first node's: its twin is
    // restarted on its own ports too, lib/rtmd.js).
    const ports = Object.fromEntries(Object.entries(old.listens).map(([gate, l]) => [gate, l.port]));
    await old.stop('SIGKILL');
    await a.events.wait('onConnectionStateChanged', (s) => s === S.RECONNECTING);
    ctx.srv = await rtmdLib.startRtmd({
      config: ctx.config,
      dataDir: old.dataDir,
      args: [`--client_tcp_port=${ports.client_tcp}`, `--client_ws_port=${ports.client_ws}`, `--server_tcp_port=${ports.server_tcp}`, `--http_port=${ports.http}`],
    });
    ctx.app = await rtmLib.appServer(ctx.srv, { project: ctx.srv.projects.find((p) => p.pid === String(PID)) });
    for (const r of [ra, rb]) await r.events.wait('onRoomStateChanged', (x, u, st, e) => st === 0 && JSON.parse(e).join_type === 1, 10000);
    await ra.sendRoomMessage('after restart');
    assert.deepEqual(await rb.events.wait('onRoomMessageReceived', (f, t) => t === 'after restart'), ['room-a', 'after restart']);
  });
});
