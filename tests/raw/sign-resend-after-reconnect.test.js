'use strict';
// A server SDK that lost its connection resends the identical quest (same
// salt) on a new one: the retry of something already done comes back as
// 200006, not 200002, and is not done twice.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { appServer, sign, expectCode, login } = require('../integration/lib/rtm');
const { startRtmd, sanitizerReports } = require('../integration/lib/rtmd');

let srv;
const links = [];

after(async () => {
  for (const l of links) if (!l.client.isClosed) await l.close();
  assert.equal(await srv.stop('SIGTERM'), 0);
  await srv.cleanup();
  assert.deepEqual(sanitizerReports(), []);
});

test('an identical resend is answered 200006', async () => {
  srv = await startRtmd();
  const first = await appServer(srv);
  links.push(first);
  const receiver = await login(srv, first, 2002);
  links.push(receiver);
  const quest = sign(first.project, 'sendmsg', { from: fpnn.int64(2001), to: fpnn.int64(2002), mid: fpnn.int64(77), mtype: 51, msg: 'once', attrs: '' });
  await first.client.quest('sendmsg', quest);
  await first.close();

  const second = await appServer(srv);
  links.push(second);
  await expectCode(second.client.quest('sendmsg', quest), 200006);
  const history = await second.call('getp2pmsg', { uid: fpnn.int64(2001), ouid: fpnn.int64(2002), desc: true, num: 10 });
  assert.equal(history.msgs.length, 1);
});
