'use strict';
// With legacy_sign = 1 a project also accepts the older signature form
// md5(pid:secret:salt), but only with salts made as the old server SDKs make
// them (milliseconds since 1970 x 1000 + a counter) whose time lies within
// sign_window (200008 otherwise), and never twice (200006), whatever method
// the replay names.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startWithProjects, stopChecked, sign, expectCode } = require('../integration/lib/rtm');

const P = { pid: 81002, secret: 'sign-legacy-81002', legacy_sign: 1 };
let srv, app;
let counter = 0;
const timeSalt = (ms = Date.now()) => fpnn.int64(`${ms}${String(++counter % 1000).padStart(3, '0')}`);

after(() => stopChecked(srv, [app]));

test('older-form signatures carry their time in the salt', async () => {
  ({ srv, apps: [app] } = await startWithProjects([P]));
  const p = app.project;
  const legacy = (method, payload, salt) => sign(p, method, payload, { oldStyle: true, salt });

  const first = legacy('getonlineusers', { uids: [] }, timeSalt());
  assert.deepEqual((await app.client.quest('getonlineusers', first)).uids, []);
  // Replayed as the same method or as another: the salt was seen.
  await expectCode(app.client.quest('getonlineusers', first), 200006);
  await expectCode(app.client.quest('gettoken', { ...first, uid: fpnn.int64(42) }), 200006);

  // A random salt has no time within the window.
  await expectCode(app.client.quest('getonlineusers', legacy('getonlineusers', { uids: [] }, fpnn.int64('123456789'))), 200008);
  // A salt from ten minutes ago (default window 300 s) or ten minutes ahead.
  await expectCode(app.client.quest('getonlineusers', legacy('getonlineusers', { uids: [] }, timeSalt(Date.now() - 600000))), 200008);
  const ok = legacy('getonlineusers', { uids: [] }, timeSalt());
  await app.client.quest('getonlineusers', ok); // resets the failure count
  await expectCode(app.client.quest('getonlineusers', legacy('getonlineusers', { uids: [] }, timeSalt(Date.now() + 600000))), 200008);

  // The current form keeps working beside it.
  assert.deepEqual((await app.client.quest('getonlineusers', sign(p, 'getonlineusers', { uids: [] }))).uids, []);
});
