// The built bundles (npm run build): dist/rts.iife.js evaluated as a
// browser <script> would be defines the global RTS with createRTS and the
// enums, and needs no module system; dist/rts.mjs imports with msgpack
// bundled in and logs in to a real rtmd.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { setup, APP_ID } from './helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('sdk bundles', () => {
  let ctx;
  before(async () => {
    ctx = await setup();
  });
  after(async () => {
    await ctx.teardown();
  });

  test('dist/rts.iife.js defines the global RTS', () => {
    const file = path.join(root, 'dist/rts.iife.js');
    assert.ok(fs.existsSync(file), 'run npm run build first');
    assert.ok(fs.existsSync(`${file}.map`));
    const code = fs.readFileSync(file, 'utf8');
    assert.ok(!/\brequire\(|\bimport\s*\(|^import /m.test(code), 'the iife bundle must not load modules');
    // A page: location on https, no WebSocket needed until login.
    class FakeWebSocket {}
    const sandbox = { location: { protocol: 'https:', hostname: 'chat.example' }, WebSocket: FakeWebSocket, TextEncoder, TextDecoder, URL, setTimeout, clearTimeout, setInterval, clearInterval, console };
    sandbox.globalThis = sandbox;
    sandbox.window = sandbox;
    vm.createContext(sandbox);
    vm.runInContext(code, sandbox, { filename: 'rts.iife.js' });
    const RTS = sandbox.RTS;
    assert.equal(typeof RTS.createRTS, 'function');
    assert.equal(typeof RTS.destroyRTS, 'function');
    assert.equal(RTS.getSdkVersion(), '0.1.0');
    assert.equal(RTS.CONNECTION_STATE.RECONNECTING, 4);
    assert.equal(RTS.RTM_DUPLICATE_LOGIN, 1);
    const rts = RTS.createRTS(APP_ID);
    assert.equal(rts.url, 'wss://chat.example:13322/service/websocket');
    sandbox.location = { protocol: 'http:', hostname: 'chat.example' };
    assert.equal(RTS.createRTS(APP_ID).url, 'ws://chat.example:13321/service/websocket');
  });

  test('dist/rts.mjs logs in and sends with msgpack bundled in', async () => {
    const mod = await import(path.join(root, 'dist/rts.mjs'));
    const a = mod.createRTS(APP_ID, { endpoint: ctx.endpoint(), WebSocket });
    const b = mod.createRTS(APP_ID, { endpoint: ctx.endpoint(), WebSocket });
    await a.login(await ctx.token('bundle-a'), 'bundle-a');
    await b.login(await ctx.token('bundle-b'), 'bundle-b');
    const got = new Promise((resolve) => b.on('onBinaryMessageReceived', (from, data) => resolve([from, new Uint8Array(data)])));
    await a.sendBinaryMessage('bundle-b', new Uint8Array([1, 2, 3]).buffer);
    const [from, data] = await got;
    assert.equal(from, 'bundle-a');
    assert.deepEqual([...data], [1, 2, 3]);
    mod.destroyRTS(a);
    mod.destroyRTS(b);
  });
});
