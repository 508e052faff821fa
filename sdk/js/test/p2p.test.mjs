// Peer to peer: text and binary both ways between two SDK clients, send
// results (msgId and error) for successes and failures, and messages from a
// number-id sender arriving with its uid as text.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODE } from '../src/index.js';
import { setup, bytes, sameBytes } from './helpers.mjs';

describe('sdk p2p', () => {
  let ctx, a, b;
  before(async () => {
    ctx = await setup();
    a = await ctx.user('p2p-a');
    b = await ctx.user('p2p-b');
  });
  after(async () => {
    await ctx.teardown();
  });

  test('text both ways, with onMessageSendResult', async () => {
    await a.sendMessage('p2p-b', 'hello b ✓');
    assert.deepEqual(await b.events.wait('onMessageReceived'), ['p2p-a', 'hello b ✓']);
    await b.sendMessage('p2p-a', 'hello a');
    assert.deepEqual(await a.events.wait('onMessageReceived'), ['p2p-b', 'hello a']);
    const [mid, err] = a.events.named('onMessageSendResult')[0];
    assert.equal(typeof mid, 'number');
    assert.ok(mid > 0);
    assert.equal(err, 0);
    assert.equal(b.events.named('onMessageSendResult').length, 1);
  });

  test('binary both ways stays binary (ArrayBuffer), empty and 4 KiB', async () => {
    const big = bytes(4096, 7);
    await a.sendBinaryMessage('p2p-b', big);
    const [from, got] = await b.events.wait('onBinaryMessageReceived');
    assert.equal(from, 'p2p-a');
    assert.ok(got instanceof ArrayBuffer);
    assert.ok(sameBytes(got, big));
    // A typed array view is accepted too.
    await b.sendBinaryMessage('p2p-a', new Uint8Array([0, 255, 1, 128]));
    const [, back] = await a.events.wait('onBinaryMessageReceived');
    assert.ok(sameBytes(back, new Uint8Array([0, 255, 1, 128])));
    assert.equal(b.events.named('onMessageReceived').filter(([, t]) => typeof t !== 'string').length, 0);
  });

  test('every message gets its own msgId; received messages are not repeated', async () => {
    const before = b.events.named('onMessageReceived').length;
    for (let i = 0; i < 5; i++) await a.sendMessage('p2p-b', `n${i}`);
    await b.events.wait('onMessageReceived', (f, t) => t === 'n4');
    assert.equal(b.events.named('onMessageReceived').length, before + 5);
    const mids = a.events.named('onMessageSendResult').map(([m]) => m);
    assert.equal(new Set(mids).size, mids.length);
  });

  test('failures reject with the RTM code and report it in onMessageSendResult', async () => {
    // To oneself: 200052.
    await assert.rejects(a.sendMessage('p2p-a', 'me'), (e) => e.code === 200052);
    assert.equal(a.events.named('onMessageSendResult').at(-1)[1], 200052);
    // An invalid user id: 200001.
    await assert.rejects(a.sendMessage('bad id!', 'x'), (e) => e.code === 200001);
    assert.equal(a.events.named('onMessageSendResult').at(-1)[1], 200001);
    // Not an ArrayBuffer.
    await assert.rejects(a.sendBinaryMessage('p2p-b', 'text'), (e) => e.code === ERROR_CODE.INVALID_PARAMETER);
  });

  test('a message to a user who is offline is accepted (stored)', async () => {
    await a.sendMessage('p2p-nobody', 'later');
    assert.equal(a.events.named('onMessageSendResult').at(-1)[1], 0);
  });

  test('a number-id sender arrives as its decimal uid', async () => {
    // The app server sends to the string-id user with its uid from getuserids.
    const ids = await ctx.app.call('getuserids', { ids: ['p2p-b'] });
    const to = ids.uids['p2p-b'];
    await ctx.app.call('sendmsg', { from: ctx.fpnn.int64(1234), to, mid: ctx.fpnn.int64(Date.now()), mtype: 30, msg: 'from server' });
    assert.deepEqual(await b.events.wait('onMessageReceived', (f, t) => t === 'from server'), ['1234', 'from server']);
  });
});
