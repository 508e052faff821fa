'use strict';
// An app-server link whose signatures fail sign_fail_max times in a row
// (200002 or 200008) is closed after the last answer; a valid signature
// in between starts the count again. A replayed salt (200006) is not a
// failure: the server SDKs sign again after it.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { appServer, sign, expectCode } = require('../integration/lib/rtm');
const { startRtmd, sanitizerReports } = require('../integration/lib/rtmd');

let srv;
const links = [];

after(async () => {
  for (const l of links) if (!l.client.isClosed) await l.close();
  assert.equal(await srv.stop('SIGTERM'), 0);
  await srv.cleanup();
  assert.deepEqual(sanitizerReports(), []);
});

test('three failures in a row close the link', async () => {
  srv = await startRtmd({ args: ['--sign_fail_max=3'] });
  const bad = (app) => sign({ ...app.project, secret: 'not-the-secret' }, 'getonlineusers', { uids: [] });
  const stale = (app) => sign(app.project, 'getonlineusers', { uids: [] }, { ts: Math.floor(Date.now() / 1000) - 3600 });

  const patient = await appServer(srv);
  links.push(patient);
  await expectCode(patient.client.quest('getonlineusers', bad(patient)), 200002);
  await expectCode(patient.client.quest('getonlineusers', stale(patient)), 200008);
  await patient.call('getonlineusers', { uids: [] });
  const once = sign(patient.project, 'getonlineusers', { uids: [] });
  await patient.client.quest('getonlineusers', once);
  await expectCode(patient.client.quest('getonlineusers', once), 200006);
  await expectCode(patient.client.quest('getonlineusers', bad(patient)), 200002);
  await expectCode(patient.client.quest('getonlineusers', bad(patient)), 200002);
  assert.equal(patient.client.isClosed, false);
  await patient.call('getonlineusers', { uids: [] });

  const guesser = await appServer(srv);
  links.push(guesser);
  for (let i = 0; i < 3; i++) await expectCode(guesser.client.quest('getonlineusers', bad(guesser)), 200002);
  await guesser.client.waitClose(2000);
  assert.equal(guesser.client.isClosed, true);
});
