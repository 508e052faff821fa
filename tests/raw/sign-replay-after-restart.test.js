'use strict';
// The salts of the signature window are kept in the store: a signed request
// captured before a restart, graceful or kill -9, is refused with 200006
// afterwards. For kill -9 the request's answer is what proves the salt
// durable: a request that stores nothing (getonlineusers) is answered only
// once its salt committed.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { appServer, writeProjectsConfig, sign, expectCode } = require('../integration/lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, sanitizerReports } = require('../integration/lib/rtmd');

const P = { pid: 81003, secret: 'sign-restart-81003' };
const servers = [];
let dir;

after(async () => {
  for (const s of servers) await s.cleanup();
  if (dir) await removeTempDir(dir);
  assert.deepEqual(sanitizerReports(), []);
});

async function start(conf, dataDir) {
  const srv = await startRtmd({ config: conf, dataDir });
  servers.push(srv);
  const app = await appServer(srv, { project: srv.projects.find((p) => p.pid === String(P.pid)) });
  return { srv, app };
}

test('captured requests stay refused across restarts', async () => {
  dir = await makeTempDir();
  const conf = writeProjectsConfig(dir, [P]);
  const dataDir = `${dir}/data`;

  let { srv, app } = await start(conf, dataDir);
  const token = sign(app.project, 'gettoken', { uid: fpnn.int64(42) });
  assert.equal(typeof (await app.client.quest('gettoken', token)).token, 'string');
  const query = sign(app.project, 'getonlineusers', { uids: [] });
  await app.client.quest('getonlineusers', query);
  await app.close();
  assert.equal(await srv.stop('SIGTERM'), 0);

  ({ srv, app } = await start(conf, dataDir));
  await expectCode(app.client.quest('gettoken', token), 200006);
  await expectCode(app.client.quest('getonlineusers', query), 200006);

  // Answered, then killed at once: the salt was durable before the answer.
  const quick = sign(app.project, 'getonlineusers', { uids: [] });
  await app.client.quest('getonlineusers', quick);
  await srv.stop('SIGKILL');

  ({ srv, app } = await start(conf, dataDir));
  await expectCode(app.client.quest('getonlineusers', quick), 200006);
  await expectCode(app.client.quest('gettoken', token), 200006);
  await app.close();
  assert.equal(await srv.stop('SIGTERM'), 0);
});
