'use strict';
// Push registration: device tokens (adddevice, removedevice with the SDKs'
// {uid?, apptype, devicetoken}; rtmd's own getdevices to read them back on
// the server gate) and per-conversation push options (addoption,
// removeoption {uid?, type, xid, mtypes?}, getoption answering {p2p, group}
// keyed by the ids as text), on both gates with one JSON case per family;
// the limits (token and apptype sizes, empty fields, devices per user
// replacing the oldest, options per user 200032, mtype range 200005), the
// rights (a client touches only its own), project isolation and persistence
// across a restart.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, startWithProjects, stopChecked } = require('./lib/rtm');
const { startRtmd, withLogs } = require('./lib/rtmd');

describe('devices', () => {
  let srv, app, app2, p1, p2, conf;
  const logs = () => [srv];
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;
  const devices = async (a, uid) => (await a.call('getdevices', { uid: I(uid) })).devices;
  // getoption's answer with the mtypes as plain numbers.
  const options = (answer) => {
    const out = {};
    for (const kind of ['p2p', 'group']) {
      out[kind] = {};
      for (const [k, v] of Object.entries(answer[kind])) out[kind][k] = v.map(fpnn.toNumber);
    }
    return out;
  };

  before(async () => {
    ({ srv, conf, projects: [p1, p2], apps: [app, app2] } = await startWithProjects([
      { pid: 84001, secret: 'devices-secret-one' },
      { pid: 84002, secret: 'devices-secret-two', max_devices_per_user: 2, max_push_options_per_user: 3 },
    ]));
  });

  after(() => stopChecked(srv, [app, app2]));

  it('server gate: add, list, refresh, remove device tokens', async () => {
    // RTMServerClient.js addDevice / Go AddDevice: {uid, apptype, devicetoken}.
    assert.deepEqual(await app.call('adddevice', { uid: I(11), apptype: 'apns', devicetoken: 'a'.repeat(64) }), {});
    await app.call('adddevice', { uid: I(11), apptype: 'fcm', devicetoken: 'fcm-token-1' });
    assert.deepEqual(await devices(app, 11), [
      { apptype: 'apns', devicetoken: 'a'.repeat(64) },
      { apptype: 'fcm', devicetoken: 'fcm-token-1' },
    ]);
    // Adding a present token again refreshes it (and may change its apptype).
    await app.call('adddevice', { uid: I(11), apptype: 'apns-sandbox', devicetoken: 'a'.repeat(64) });
    assert.deepEqual(await devices(app, 11), [
      { apptype: 'fcm', devicetoken: 'fcm-token-1' },
      { apptype: 'apns-sandbox', devicetoken: 'a'.repeat(64) },
    ]);
    // removedevice {uid, devicetoken}; an unknown token is fine.
    assert.deepEqual(await app.call('removedevice', { uid: I(11), devicetoken: 'fcm-token-1' }), {});
    assert.deepEqual(await app.call('removedevice', { uid: I(11), devicetoken: 'never-added' }), {});
    assert.deepEqual(await devices(app, 11), [{ apptype: 'apns-sandbox', devicetoken: 'a'.repeat(64) }]);
    assert.deepEqual(await devices(app, 12), []);
  });

  it('a token belongs to the user who added it last', async () => {
    await app.call('adddevice', { uid: I(21), apptype: 'fcm', devicetoken: 'shared-phone' });
    await app.call('adddevice', { uid: I(22), apptype: 'fcm', devicetoken: 'shared-phone' });
    assert.deepEqual(await devices(app, 21), []);
    assert.deepEqual(await devices(app, 22), [{ apptype: 'fcm', devicetoken: 'shared-phone' }]);
  });

  it('device limits: sizes, empty fields, missing fields, devices per user', async () => {
    await app.call('adddevice', { uid: I(31), apptype: 'x'.repeat(32), devicetoken: 't'.repeat(4096) });
    await expectCode(app.call('adddevice', { uid: I(31), apptype: 'x'.repeat(33), devicetoken: 't' }), 200030);
    await expectCode(app.call('adddevice', { uid: I(31), apptype: 'fcm', devicetoken: 't'.repeat(4097) }), 200030);
    await expectCode(app.call('removedevice', { uid: I(31), devicetoken: 't'.repeat(4097) }), 200030);
    await expectCode(app.call('adddevice', { uid: I(31), apptype: '', devicetoken: 't' }), 200033);
    await expectCode(app.call('adddevice', { uid: I(31), apptype: 'fcm', devicetoken: '' }), 200033);
    await expectCode(app.call('removedevice', { uid: I(31), devicetoken: '' }), 200033);
    await expectCode(app.call('adddevice', { apptype: 'fcm', devicetoken: 't' }), 10009);
    await expectCode(app.call('adddevice', { uid: I(31), devicetoken: 't' }), 10009);
    await expectCode(app.call('adddevice', { uid: I(31), apptype: 'fcm' }), 10009);
    await expectCode(app.call('adddevice', { uid: I(31), apptype: 1, devicetoken: 't' }), 10010);
    await expectCode(app.call('removedevice', { uid: I(31) }), 10009);
    await expectCode(app.call('getdevices', {}), 10009);

    // Default: 10 devices per user; the 11th replaces the least recently added.
    for (let i = 0; i < 11; i++) await app.call('adddevice', { uid: I(32), apptype: 'fcm', devicetoken: `tok${i}` });
    let got = (await devices(app, 32)).map((d) => d.devicetoken);
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `tok${i + 1}`));
    // Project 2 keeps 2: re-adding refreshes a token, so the other one goes.
    await app2.call('adddevice', { uid: I(32), apptype: 'apns', devicetoken: 'one' });
    await app2.call('adddevice', { uid: I(32), apptype: 'apns', devicetoken: 'two' });
    await app2.call('adddevice', { uid: I(32), apptype: 'apns', devicetoken: 'one' });
    await app2.call('adddevice', { uid: I(32), apptype: 'apns', devicetoken: 'three' });
    got = (await devices(app2, 32)).map((d) => d.devicetoken);
    assert.deepEqual(got, ['one', 'three']);
  });

  it('server gate: push options add, merge, remove, list', async () => {
    // RTMServerClient.js / Go AddDevicePushOption: {uid, type, xid, mtypes?}.
    assert.deepEqual(await app.call('addoption', { uid: I(41), type: 0, xid: I(100), mtypes: [30, 31] }), {});
    await app.call('addoption', { uid: I(41), type: 0, xid: I(100), mtypes: [32, 30] });
    await app.call('addoption', { uid: I(41), type: 1, xid: I(200) });
    await app.call('addoption', { uid: I(41), type: 1, xid: I('9223372036854775807'), mtypes: [] });
    assert.deepEqual(options(await app.call('getoption', { uid: I(41) })), {
      p2p: { 100: [30, 31, 32] },
      group: { 200: [0], '9223372036854775807': [0] },
    });
    // The map keys are text (the Go SDK reads them as strings).
    const raw = await app.call('getoption', { uid: I(41) });
    assert.deepEqual(Object.keys(raw.group).sort(), ['200', '9223372036854775807']);
    // Types join an "every type" option without narrowing it; 0 means every type.
    await app.call('addoption', { uid: I(41), type: 1, xid: I(200), mtypes: [40] });
    await app.call('addoption', { uid: I(41), type: 0, xid: I(101), mtypes: [40, 0] });
    // Removing types narrows; removing the last one drops the option.
    await app.call('removeoption', { uid: I(41), type: 0, xid: I(100), mtypes: [31] });
    await app.call('removeoption', { uid: I(41), type: 1, xid: I(200), mtypes: [40] });
    assert.deepEqual(options(await app.call('getoption', { uid: I(41) })), {
      p2p: { 100: [30, 32], 101: [0] },
      group: { 200: [0], '9223372036854775807': [0] },
    });
    await app.call('removeoption', { uid: I(41), type: 0, xid: I(100), mtypes: [30, 32] });
    await app.call('removeoption', { uid: I(41), type: 1, xid: I(200) });
    await app.call('removeoption', { uid: I(41), type: 1, xid: I('9223372036854775807'), mtypes: [] });
    await app.call('removeoption', { uid: I(41), type: 1, xid: I(999) });
    assert.deepEqual(options(await app.call('getoption', { uid: I(41) })), { p2p: { 101: [0] }, group: {} });
    assert.deepEqual(await app.call('getoption', { uid: I(42) }), { p2p: {}, group: {} });
  });

  it('option limits: type 10010, mtype range 200005, mtypes count 200032, options per user 200032', async () => {
    await expectCode(app.call('addoption', { uid: I(51), type: 2, xid: I(1) }), 10010);
    await expectCode(app.call('addoption', { uid: I(51), type: 0 }), 10009);
    await expectCode(app.call('addoption', { uid: I(51), xid: I(1) }), 10009);
    await expectCode(app.call('addoption', { type: 0, xid: I(1) }), 10009);
    await expectCode(app.call('addoption', { uid: I(51), type: 0, xid: I(1), mtypes: 30 }), 10010);
    await expectCode(app.call('addoption', { uid: I(51), type: 0, xid: I(1), mtypes: ['a'] }), 10010);
    await expectCode(app.call('addoption', { uid: I(51), type: 0, xid: I(1), mtypes: [128] }), 200005);
    await expectCode(app.call('removeoption', { uid: I(51), type: 0, xid: I(1), mtypes: [-1] }), 200005);
    await expectCode(app.call('addoption', { uid: I(51), type: 0, xid: I(1), mtypes: Array(129).fill(30) }), 200032);
    await expectCode(app.call('getoption', {}), 10009);

    // Project 2 allows options for 3 conversations per user.
    const uid = I(52);
    await app2.call('addoption', { uid, type: 0, xid: I(1) });
    await app2.call('addoption', { uid, type: 0, xid: I(2) });
    const racing = await Promise.allSettled([
      app2.call('addoption', { uid, type: 1, xid: I(1) }),
      app2.call('addoption', { uid, type: 1, xid: I(2) }),
    ]);
    assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.equal(racing.find((r) => r.status === 'rejected').reason.code, 200032);
    // A present option may still change.
    await app2.call('addoption', { uid, type: 0, xid: I(1), mtypes: [30] });
    await app2.call('removeoption', { uid, type: 0, xid: I(2) });
    await app2.call('addoption', { uid, type: 0, xid: I(3) });
    const got = options(await app2.call('getoption', { uid }));
    assert.equal(Object.keys(got.p2p).length + Object.keys(got.group).length, 3);
  });

  for (const transport of ['tcp', 'ws']) {
    it(`client gate over ${transport}: a user manages only its own devices and options`, async () => {
      const base = transport === 'tcp' ? 5000 : 6000;
      const me = await login(srv, app, base + 1, { transport });
      const other = await login(srv, app, base + 2, { transport });
      // RTMClient.js addDevice / removeDevice: {apptype, devicetoken}, {devicetoken}.
      assert.deepEqual(await me.call('adddevice', { apptype: 'fcm', devicetoken: `me-${transport}` }), {});
      assert.deepEqual(await devices(app, base + 1), [{ apptype: 'fcm', devicetoken: `me-${transport}` }]);
      // A uid in a client's payload is ignored: the caller's own devices.
      await other.call('adddevice', { uid: I(base + 1), apptype: 'apns', devicetoken: `other-${transport}` });
      await other.call('removedevice', { uid: I(base + 1), devicetoken: `me-${transport}` });
      assert.deepEqual(await devices(app, base + 1), [{ apptype: 'fcm', devicetoken: `me-${transport}` }]);
      assert.deepEqual(await devices(app, base + 2), [{ apptype: 'apns', devicetoken: `other-${transport}` }]);
      assert.deepEqual(await me.call('removedevice', { devicetoken: `me-${transport}` }), {});
      assert.deepEqual(await devices(app, base + 1), []);
      // getdevices is the app server's.
      await expectCode(me.call('getdevices', {}), 20004);

      // RTMClient.js addDevicePushOption / removeDevicePushOption /
      // getDevicePushOption: {type, xid, mtypes?} and {}.
      assert.deepEqual(await me.call('addoption', { type: 0, xid: I(base + 2), mtypes: [30] }), {});
      assert.deepEqual(await me.call('addoption', { type: 1, xid: I(77) }), {});
      await other.call('addoption', { uid: I(base + 1), type: 1, xid: I(88) });
      await other.call('removeoption', { uid: I(base + 1), type: 1, xid: I(77) });
      const mine = { p2p: { [base + 2]: [30] }, group: { 77: [0] } };
      assert.deepEqual(options(await me.call('getoption', {})), mine);
      assert.deepEqual(options(await me.call('getoption', { uid: I(base + 2) })), mine);
      assert.deepEqual(options(await app.call('getoption', { uid: I(base + 1) })), mine);
      assert.deepEqual(options(await other.call('getoption', {})), { p2p: {}, group: { 88: [0] } });
      assert.deepEqual(await me.call('removeoption', { type: 0, xid: I(base + 2), mtypes: [30] }), {});
      assert.deepEqual(options(await me.call('getoption', {})), { p2p: {}, group: { 77: [0] } });
      await expectCode(me.call('addoption', { type: 0, xid: I(1), mtypes: [200] }), 200005);
      await expectCode(me.call('adddevice', { apptype: 'fcm', devicetoken: '' }), 200033);
      await me.close();
      await other.close();
    });
  }

  it('JSON quests on both gates', async () => {
    const j = { json: true };
    const call = (method, payload) => app.call(method, payload, j);
    assert.deepEqual(await call('adddevice', { uid: 61, apptype: 'fcm', devicetoken: 'json-token' }), {});
    assert.deepEqual(await call('getdevices', { uid: 61 }), { devices: [{ apptype: 'fcm', devicetoken: 'json-token' }] });
    assert.deepEqual(await call('removedevice', { uid: 61, devicetoken: 'json-token' }), {});
    assert.deepEqual(await call('addoption', { uid: 61, type: 0, xid: 5, mtypes: [30, 41] }), {});
    assert.deepEqual(await call('getoption', { uid: 61 }), { p2p: { 5: [30, 41] }, group: {} });
    assert.deepEqual(await call('removeoption', { uid: 61, type: 0, xid: 5 }), {});

    const u = await login(srv, app, 62);
    assert.deepEqual(await u.call('adddevice', { apptype: 'apns', devicetoken: 'json-client' }, j), {});
    assert.deepEqual(await u.call('addoption', { type: 1, xid: 9 }, j), {});
    assert.deepEqual(await u.call('getoption', {}, j), { p2p: {}, group: { 9: [0] } });
    assert.deepEqual(await u.call('removeoption', { type: 1, xid: 9 }, j), {});
    assert.deepEqual(await u.call('removedevice', { devicetoken: 'json-client' }, j), {});
    assert.deepEqual(await devices(app, 62), []);
    await u.close();
  });

  it('projects are isolated', async () => {
    await app.call('adddevice', { uid: I(71), apptype: 'fcm', devicetoken: 'iso' });
    await app.call('addoption', { uid: I(71), type: 0, xid: I(1) });
    assert.deepEqual(await devices(app2, 71), []);
    assert.deepEqual(await app2.call('getoption', { uid: I(71) }), { p2p: {}, group: {} });
    // The same token in another project does not move it.
    await app2.call('adddevice', { uid: I(72), apptype: 'fcm', devicetoken: 'iso' });
    assert.deepEqual(await devices(app, 71), [{ apptype: 'fcm', devicetoken: 'iso' }]);
  });

  it('devices and options survive a restart', async () => {
    await app.call('adddevice', { uid: I(81), apptype: 'apns', devicetoken: 'kept' });
    await app.call('adddevice', { uid: I(81), apptype: 'fcm', devicetoken: 'gone' });
    await app.call('removedevice', { uid: I(81), devicetoken: 'gone' });
    await app.call('addoption', { uid: I(81), type: 0, xid: I(3), mtypes: [30, 31] });
    await app.call('addoption', { uid: I(81), type: 1, xid: I(4) });
    await app.close();
    await app2.close();
    assert.equal(await srv.stop('SIGTERM'), 0);
    srv = await startRtmd({ dataDir: srv.dataDir, config: conf });
    app = await appServer(srv, { project: p1 });
    app2 = await appServer(srv, { project: p2 });
    assert.deepEqual(await devices(app, 81), [{ apptype: 'apns', devicetoken: 'kept' }]);
    assert.deepEqual(options(await app.call('getoption', { uid: I(81) })), { p2p: { 3: [30, 31] }, group: { 4: [0] } });
    assert.deepEqual(await devices(app2, 72), [{ apptype: 'fcm', devicetoken: 'iso' }]);
    const u = await login(srv, app, 81, { transport: 'ws' });
    assert.deepEqual(options(await u.call('getoption', {})), { p2p: { 3: [30, 31] }, group: { 4: [0] } });
    await u.close();
  });
});
