'use strict';
// More signed requests within the window than the replay guard keeps in
// memory (sign_salts_max) do not make a captured request valid again: once
// its salt is forgotten, nothing at or before its time is accepted (200006),
// so with a tiny limit even the rest of the flood's second is refused; the
// server SDKs' answer to 200006, signing again with a new salt and the
// current time, is accepted a second later.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { appServer, sign, expectCode } = require('../integration/lib/rtm');
const { startRtmd, sanitizerReports, sleep } = require('../integration/lib/rtmd');

let srv, app;

after(async () => {
  if (app) await app.close();
  assert.equal(await srv.stop('SIGTERM'), 0);
  await srv.cleanup();
  assert.deepEqual(sanitizerReports(), []);
});

test('a flood of signed requests does not evict a captured salt into validity', async () => {
  srv = await startRtmd({ args: ['--sign_salts_max=16'] });
  app = await appServer(srv);
  const captured = sign(app.project, 'gettoken', { uid: fpnn.int64(42) });
  await app.client.quest('gettoken', captured);
  let accepted = 0;
  for (let i = 0; i < 40; i++) {
    try {
      await app.call('getonlineusers', { uids: [] });
      accepted++;
    } catch (e) {
      assert.equal(e.code, 200006);
    }
  }
  assert.ok(accepted >= 15, `${accepted} of the flood accepted`);
  await expectCode(app.client.quest('gettoken', captured), 200006);
  // A fresh signature made a second later gets in.
  await sleep(1100);
  assert.equal(typeof (await app.client.quest('gettoken', sign(app.project, 'gettoken', { uid: fpnn.int64(42) }))).token, 'string');
});
