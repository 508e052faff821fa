// Sizes and duplicate login (wire contract, branch rts-misc): a 64 KiB
// binary message goes through both ways intact, 65,537 bytes are refused
// with 200030 (promise and onMessageSendResult); a second login of the same
// user logs the first out with onLogout(RTM_DUPLICATE_LOGIN) and no
// reconnect.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTION_STATE as S, RTM_DUPLICATE_LOGIN, LOGOUT_REASON, CONNECTION_CHANGE_REASON as WHY } from '../src/index.js';
import { setup, bytes, sameBytes, sleep } from './helpers.mjs';

const KB64 = 65536;

describe('sdk limits and duplicate login', () => {
  let ctx, a, b;
  before(async () => {
    ctx = await setup();
    a = await ctx.user('lim-a');
    b = await ctx.user('lim-b');
  });
  after(async () => {
    await ctx.teardown();
  });
  const it = (name, fn) => test(name, { timeout: 30000 }, fn);

  it('64 KiB binary both ways, intact; 64 KiB of text', async () => {
    const big = bytes(KB64, 9);
    await a.sendBinaryMessage('lim-b', big);
    const [, got] = await b.events.wait('onBinaryMessageReceived', (f, d) => d.byteLength === KB64 && sameBytes(d, big));
    assert.equal(got.byteLength, KB64);
    await b.sendBinaryMessage('lim-a', big);
    await a.events.wait('onBinaryMessageReceived', (f, d) => sameBytes(d, big));
    await a.sendMessage('lim-b', 'x'.repeat(KB64));
    await b.events.wait('onMessageReceived', (f, t) => t.length === KB64);
  });

  it('65,537 bytes: 200030', async () => {
    await assert.rejects(a.sendBinaryMessage('lim-b', bytes(KB64 + 1, 2)), (e) => e.code === 200030);
    assert.equal(a.events.named('onMessageSendResult').at(-1)[1], 200030);
    await assert.rejects(a.sendMessage('lim-b', 'y'.repeat(KB64 + 1)), (e) => e.code === 200030);
  });

  it('a second login of the same user: the first gets onLogout(RTM_DUPLICATE_LOGIN), no reconnect', async () => {
    const first = await ctx.user('dup-user');
    const second = await ctx.user('dup-user');
    assert.deepEqual(await first.events.wait('onLogout'), [RTM_DUPLICATE_LOGIN]);
    assert.equal(RTM_DUPLICATE_LOGIN, LOGOUT_REASON.DUPLICATE_LOGIN);
    assert.deepEqual(await first.events.wait('onConnectionStateChanged', (s) => s === S.DISCONNECTED), [S.DISCONNECTED, WHY.DUPLICATE_LOGIN]);
    await sleep(1500);
    assert.equal(first.state, S.DISCONNECTED);
    assert.ok(!first.events.named('onConnectionStateChanged').some(([s]) => s === S.RECONNECTING));
    // The second one is the user now.
    await a.sendMessage('dup-user', 'to the second');
    await second.events.wait('onMessageReceived', (f, t) => t === 'to the second');
    assert.equal(first.events.named('onMessageReceived').length, 0);
  });
});
