'use strict';
// Per-user key-value data: dataset, dataget and datadel with the payloads
// the SDKs send (server gate {uid, key, val}; client gate {key, val}, the
// caller's own data), an absent key answered {}, str and bin values, one
// JSON case per gate, the limits (key and value size 200030, empty key
// 200033, keys per user 200032, per-project settings), the rights (a client
// touches only its own data), project isolation and persistence across a
// restart.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs } = require('./lib/rtmd');

describe('userdata', () => {
  let srv, app, app2, p1, p2, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 83001, secret: 'userdata-secret-one' },
      { pid: 83002, secret: 'userdata-secret-two', max_data_key_bytes: 8, max_data_value_bytes: 16, max_data_keys_per_user: 3 },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  it('server gate: set, get, replace, delete; an absent key answers {}', async () => {
    // RTMServerClient.js dataSet / Go SetData: {uid, key, val}.
    assert.deepEqual(await app.call('dataset', { uid: I(11), key: 'profile', val: 'v1' }), {});
    assert.deepEqual(await app.call('dataget', { uid: I(11), key: 'profile' }), { val: 'v1' });
    await app.call('dataset', { uid: I(11), key: 'profile', val: 'v2 ünïcode' });
    assert.deepEqual(await app.call('dataget', { uid: I(11), key: 'profile' }), { val: 'v2 ünïcode' });
    // Keys are per user.
    assert.deepEqual(await app.call('dataget', { uid: I(12), key: 'profile' }), {});
    // An empty value is a value.
    await app.call('dataset', { uid: I(11), key: 'empty', val: '' });
    assert.deepEqual(await app.call('dataget', { uid: I(11), key: 'empty' }), { val: '' });
    assert.deepEqual(await app.call('datadel', { uid: I(11), key: 'profile' }), {});
    assert.deepEqual(await app.call('dataget', { uid: I(11), key: 'profile' }), {});
    // Deleting an absent key is fine.
    assert.deepEqual(await app.call('datadel', { uid: I(11), key: 'profile' }), {});
  });

  it('a value sent as bin comes back as bin, exactly; 64-bit uids', async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 0x80]);
    const uid = I('9223372036854775807');
    await app.call('dataset', { uid, key: 'blob', val: bytes });
    const got = await app.call('dataget', { uid, key: 'blob' });
    assert.ok(Buffer.isBuffer(got.val));
    assert.deepEqual(got.val, bytes);
    assert.deepEqual(await app.call('dataget', { uid: I(-1), key: 'blob' }), {});
  });

  it('JSON quests on the server gate', async () => {
    const j = { json: true };
    // Signed with plain JSON numbers (pid and salt too), by app.call.
    assert.deepEqual(await app.call('dataset', { uid: 21, key: 'k', val: 'json' }, j), {});
    assert.deepEqual(await app.call('dataget', { uid: 21, key: 'k' }, j), { val: 'json' });
    assert.deepEqual(await app.call('dataget', { uid: 21, key: 'none' }, j), {});
    assert.deepEqual(await app.call('datadel', { uid: 21, key: 'k' }, j), {});
    assert.deepEqual(await app.call('dataget', { uid: I(21), key: 'k' }), {});
  });

  it('bad arguments: missing 10009, wrong type 10010, empty key 200033', async () => {
    await expectCode(app.call('dataset', { key: 'k', val: 'v' }), 10009);
    await expectCode(app.call('dataset', { uid: I(1), val: 'v' }), 10009);
    await expectCode(app.call('dataset', { uid: I(1), key: 'k' }), 10009);
    await expectCode(app.call('dataset', { uid: I(1), key: 'k', val: null }), 10009);
    await expectCode(app.call('dataset', { uid: I(1), key: 7, val: 'v' }), 10010);
    await expectCode(app.call('dataset', { uid: I(1), key: 'k', val: 7 }), 10010);
    await expectCode(app.call('dataset', { uid: 'one', key: 'k', val: 'v' }), 10010);
    await expectCode(app.call('dataget', { uid: I(1) }), 10009);
    await expectCode(app.call('datadel', { uid: I(1) }), 10009);
    await expectCode(app.call('dataset', { uid: I(1), key: '', val: 'v' }), 200033);
    await expectCode(app.call('dataget', { uid: I(1), key: '' }), 200033);
    await expectCode(app.call('datadel', { uid: I(1), key: '' }), 200033);
  });

  it('default limits: key 128 bytes, value 65535 bytes (200030), 1000 keys per user (200032)', async () => {
    const k128 = 'k'.repeat(128);
    await app.call('dataset', { uid: I(31), key: k128, val: 'x' });
    assert.deepEqual(await app.call('dataget', { uid: I(31), key: k128 }), { val: 'x' });
    await expectCode(app.call('dataset', { uid: I(31), key: k128 + 'k', val: 'x' }), 200030);
    await expectCode(app.call('dataget', { uid: I(31), key: k128 + 'k' }), 200030);
    await expectCode(app.call('datadel', { uid: I(31), key: k128 + 'k' }), 200030);
    const big = 'v'.repeat(65535);
    await app.call('dataset', { uid: I(31), key: 'big', val: big });
    assert.equal((await app.call('dataget', { uid: I(31), key: 'big' })).val, big);
    await expectCode(app.call('dataset', { uid: I(31), key: 'big', val: big + 'v' }), 200030);
    await expectCode(app.call('dataset', { uid: I(31), key: 'big', val: Buffer.alloc(65536) }), 200030);

    const uid = I(32);
    const pending = [];
    for (let i = 0; i < 1000; i++) pending.push(app.call('dataset', { uid, key: `key${i}`, val: String(i) }));
    await Promise.all(pending);
    await expectCode(app.call('dataset', { uid, key: 'one-more', val: 'x' }), 200032);
    // Present keys may still be replaced, and a deleted key frees a place.
    await app.call('dataset', { uid, key: 'key7', val: 'seven' });
    assert.deepEqual(await app.call('dataget', { uid, key: 'key7' }), { val: 'seven' });
    await app.call('datadel', { uid, key: 'key0' });
    await app.call('dataset', { uid, key: 'one-more', val: 'x' });
    await expectCode(app.call('dataset', { uid, key: 'two-more', val: 'x' }), 200032);
  });

  it('per-project settings: max_data_key_bytes, max_data_value_bytes, max_data_keys_per_user', async () => {
    const uid = I(41);
    await app2.call('dataset', { uid, key: '12345678', val: '0123456789abcdef' });
    await expectCode(app2.call('dataset', { uid, key: '123456789', val: 'x' }), 200030);
    await expectCode(app2.call('dataset', { uid, key: 'k', val: '0123456789abcdefg' }), 200030);
    await app2.call('dataset', { uid, key: 'a', val: '1' });
    await app2.call('dataset', { uid, key: 'b', val: '2' });
    // Concurrent sets of new keys cannot pass the limit together.
    const racing = await Promise.allSettled([
      app2.call('dataset', { uid, key: 'c', val: '3' }),
      app2.call('dataset', { uid, key: 'd', val: '4' }),
    ]);
    assert.deepEqual(racing.map((r) => r.status), ['rejected', 'rejected']);
    assert.deepEqual(racing.map((r) => r.reason.code), [200032, 200032]);
    await app2.call('datadel', { uid, key: 'a' });
    const again = await Promise.allSettled([
      app2.call('dataset', { uid, key: 'c', val: '3' }),
      app2.call('dataset', { uid, key: 'd', val: '4' }),
    ]);
    assert.deepEqual(again.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(again.find((r) => r.status === 'rejected').reason.code, 200032);
    // The limits hold on the client gate too.
    const u = await login(srv, app2, 42);
    await expectCode(u.call('dataset', { key: '123456789', val: 'x' }), 200030);
    await expectCode(u.call('dataset', { key: 'k', val: '0123456789abcdefg' }), 200030);
    await u.close();
  });

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: a user reads and writes only its own data`, async () => {
      const base = transport === 'tcp' ? 5000 : 6000;
      const me = await login(srv, app, base + 1, { transport });
      const other = await login(srv, app, base + 2, { transport });
      // RTMClient.js dataSet / dataGet / dataDelete: {key, val} and {key}.
      assert.deepEqual(await me.call('dataset', { key: 'theme', val: 'dark' }), {});
      assert.deepEqual(await me.call('dataget', { key: 'theme' }), { val: 'dark' });
      // The app server sees it as the user's data.
      assert.deepEqual(await app.call('dataget', { uid: I(base + 1), key: 'theme' }), { val: 'dark' });
      await app.call('dataset', { uid: I(base + 1), key: 'plan', val: 'gold' });
      assert.deepEqual(await me.call('dataget', { key: 'plan' }), { val: 'gold' });

      // Another user sees none of it, and a uid it names is ignored.
      assert.deepEqual(await other.call('dataget', { key: 'theme' }), {});
      assert.deepEqual(await other.call('dataget', { key: 'theme', uid: I(base + 1) }), {});
      await other.call('dataset', { key: 'theme', val: 'light', uid: I(base + 1) });
      await other.call('datadel', { key: 'plan', uid: I(base + 1) });
      assert.deepEqual(await me.call('dataget', { key: 'theme' }), { val: 'dark' });
      assert.deepEqual(await me.call('dataget', { key: 'plan' }), { val: 'gold' });
      assert.deepEqual(await app.call('dataget', { uid: I(base + 2), key: 'theme' }), { val: 'light' });

      assert.deepEqual(await me.call('datadel', { key: 'theme' }), {});
      assert.deepEqual(await me.call('dataget', { key: 'theme' }), {});
      await expectCode(me.call('dataset', { key: 'k'.repeat(129), val: 'x' }), 200030);
      await expectCode(me.call('dataset', { key: 'k', val: 'v'.repeat(65536) }), 200030);
      await expectCode(me.call('dataset', { key: '', val: 'x' }), 200033);
      await expectCode(me.call('dataget', {}), 10009);
      await me.close();
      await other.close();
    });
  }

  it('JSON quests on the client gate', async () => {
    const u = await login(srv, app, 7001);
    assert.deepEqual(await u.call('dataset', { key: 'j', val: 'son' }, { json: true }), {});
    assert.deepEqual(await u.call('dataget', { key: 'j' }, { json: true }), { val: 'son' });
    assert.deepEqual(await u.call('datadel', { key: 'j' }, { json: true }), {});
    assert.deepEqual(await u.call('dataget', { key: 'j' }, { json: true }), {});
    await u.close();
  });

  it('projects are isolated', async () => {
    await app.call('dataset', { uid: I(51), key: 'k', val: 'one' });
    assert.deepEqual(await app2.call('dataget', { uid: I(51), key: 'k' }), {});
    await app2.call('dataset', { uid: I(51), key: 'k', val: 'two' });
    assert.deepEqual(await app.call('dataget', { uid: I(51), key: 'k' }), { val: 'one' });
  });

  it('data survives a restart', async () => {
    await app.call('dataset', { uid: I(61), key: 'kept', val: 'yes' });
    await app.call('dataset', { uid: I(61), key: 'gone', val: 'no' });
    await app.call('datadel', { uid: I(61), key: 'gone' });
    await app.call('dataset', { uid: I(61), key: 'bin', val: Buffer.from([1, 2, 3]) });
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    assert.deepEqual(await app.call('dataget', { uid: I(61), key: 'kept' }), { val: 'yes' });
    assert.deepEqual(await app.call('dataget', { uid: I(61), key: 'gone' }), {});
    assert.deepEqual((await app.call('dataget', { uid: I(61), key: 'bin' })).val, Buffer.from([1, 2, 3]));
    assert.deepEqual(await app2.call('dataget', { uid: I(51), key: 'k' }), { val: 'two' });
    // The per-user count is the stored one: 1000 keys of uid 32 are still there.
    await expectCode(app.call('dataset', { uid: I(32), key: 'after-restart', val: 'x' }), 200032);
    const u = await login(srv, app, 61, { transport: 'ws' });
    assert.deepEqual(await u.call('dataget', { key: 'kept' }), { val: 'yes' });
    await u.close();
  });
});
