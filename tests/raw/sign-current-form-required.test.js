'use strict';
// By default only the current signature form md5(pid:secret:salt:method:ts)
// is accepted: the older md5(pid:secret:salt), which covers neither the
// method nor a time, is refused with 200002, and a current-form signature
// made for one method does not run another.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startWithProjects, stopChecked, sign, expectCode } = require('../integration/lib/rtm');

const P = { pid: 81001, secret: 'sign-current-81001' };
let srv, app;

after(() => stopChecked(srv, [app]));

test('the older form is refused unless the project allows it', async () => {
  ({ srv, apps: [app] } = await startWithProjects([P]));
  const p = app.project;
  const old = sign(p, 'getonlineusers', { uids: [] }, { oldStyle: true, salt: fpnn.int64(`${Date.now()}001`) });
  await expectCode(app.client.quest('getonlineusers', old), 200002);
  // A captured current-form getonlineusers (never delivered) cannot run gettoken.
  const captured = sign(p, 'getonlineusers', { uids: [] });
  await expectCode(app.client.quest('gettoken', { ...captured, uid: fpnn.int64(42) }), 200002);
  // The same signature still works for the method it was made for.
  const ok = await app.client.quest('getonlineusers', captured);
  assert.deepEqual(ok.uids, []);
});
