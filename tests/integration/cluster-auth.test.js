'use strict';
// Two rtmd nodes on one PostgreSQL store, no Redis (issue 13): login tokens
// and the replay guard of signed requests are the database's, so they hold
// across nodes. A token minted through one node logs in on the other, and
// removetoken through one node refuses the token on the other. A signed
// request runs once in the whole cluster: the same bytes sent to a second
// node, later or at the same moment, are answered 200006 there.
// Starts its own servers (lib/cluster.js), so it is not part of the pg.*
// run of the suite.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { startCluster } = require('./lib/cluster');
const { withLogs, sleep } = require('./lib/rtmd');
const { appServer, sign, expectCode } = require('./lib/rtm');

const I = fpnn.int64;
const PROJECT = { pid: 7301, secret: 'cluster-auth-secret' };
const SAME_SIGN = 200006;
// Short, so that a salt's row expires within a test; the rows are purged
// only every retention_interval (60 s), so an expired one is still there.
const SIGN_WINDOW = 2;

describe('cluster: tokens and signed requests on a shared store', () => {
  let c, apps = [];
  const project = { pid: String(PROJECT.pid), secret: PROJECT.secret };
  const db = () => c.url.split('/').pop();
  const tokensOf = (uid) => Number(c.pg.psql(`SELECT count(*) FROM tokens WHERE pid = ${PROJECT.pid} AND uid = ${uid}`, db()));

  // A client-gate login on node n with a token; resolves with the answer's ok.
  async function auth(n, uid, token) {
    const client = await fpnn.connect({ port: c.nodes[n].ports.client_tcp });
    try {
      const answer = await client.quest('auth', { pid: I(PROJECT.pid), uid: I(uid), token, version: 'rtmd-tests' });
      return answer.ok;
    } finally {
      client.destroy();
    }
  }

  before(async () => {
    c = await startCluster({ nodes: 2, projects: [PROJECT], extra: `sign_window = ${SIGN_WINDOW}\n` });
    for (const n of c.nodes) apps.push(await appServer(n, { project }));
  });
  after(async () => {
    for (const a of apps) if (!a.client.isClosed) await a.close();
    if (c) await c.stop();
  });

  it('a token minted through node 1 logs in on node 2', withLogs(() => c && c.nodes, async () => {
    const token = await apps[0].token(9101);
    assert.equal(await auth(1, 9101, token), true);
    assert.equal(await auth(0, 9101, token), true);
    // The row is the token's owner: another uid, or another token, is refused.
    assert.equal(await auth(1, 9102, token), false);
    assert.equal(await auth(1, 9101, 'f'.repeat(32)), false);
    assert.equal(await auth(1, 9101, 'short'), false);
  }));

  it('removetoken through node 2 refuses the token on node 1, which minted it', withLogs(() => c && c.nodes, async () => {
    const token = await apps[0].token(9111);
    assert.equal(await auth(0, 9111, token), true);
    await apps[1].call('removetoken', { uid: I(9111) });
    assert.equal(await auth(0, 9111, token), false);
    assert.equal(await auth(1, 9111, token), false);
    // A new token works again on both.
    const again = await apps[1].token(9111);
    assert.equal(await auth(0, 9111, again), true);
  }));

  it('a signed request replayed to the other node is refused with 200006', withLogs(() => c && c.nodes, async () => {
    const payload = sign(project, 'gettoken', { uid: I(9121) });
    const first = await apps[0].client.quest('gettoken', payload);
    assert.equal(typeof first.token, 'string');
    await expectCode(apps[1].client.quest('gettoken', payload), SAME_SIGN);
    // And on the node that ran it, as before.
    await expectCode(apps[0].client.quest('gettoken', payload), SAME_SIGN);
    assert.equal(tokensOf(9121), 1, 'the request ran once');
  }));

  it('the same signed request sent to both nodes at once runs exactly once', withLogs(() => c && c.nodes, async () => {
    for (let round = 0; round < 20; round++) {
      const uid = 9200 + round;
      const payload = sign(project, 'gettoken', { uid: I(uid) });
      const answers = await Promise.allSettled(apps.map((a) => a.client.quest('gettoken', payload)));
      const ok = answers.filter((r) => r.status === 'fulfilled');
      const refused = answers.filter((r) => r.status === 'rejected');
      assert.equal(ok.length, 1, `round ${round}: ${JSON.stringify(answers.map((r) => r.reason?.code ?? 'ok'))}`);
      assert.equal(refused[0].reason.code, SAME_SIGN);
      assert.equal(tokensOf(uid), 1, `round ${round}: the request ran once`);
    }
  }));

  it('a salt whose row has expired, not yet purged, signs a new request', withLogs(() => c && c.nodes, async () => {
    const salt = fpnn.int64('777000111222');
    const ts = Math.floor(Date.now() / 1000);
    await apps[0].client.quest('gettoken', sign(project, 'gettoken', { uid: I(9141) }, { salt, ts }));
    // The row lives until ts + window + 1.
    while (Math.floor(Date.now() / 1000) < ts + SIGN_WINDOW + 1) await sleep(200);
    assert.equal(c.pg.psql(`SELECT count(*) FROM signed_salts WHERE salt = 777000111222`, db()), '1');
    const later = sign(project, 'gettoken', { uid: I(9141) }, { salt, ts: Math.floor(Date.now() / 1000) });
    assert.equal(typeof (await apps[1].client.quest('gettoken', later)).token, 'string');
    await expectCode(apps[0].client.quest('gettoken', later), SAME_SIGN);
    assert.equal(tokensOf(9141), 2);
  }));

  it('a fresh signature still works on both nodes, and a wrong one is refused before the store', withLogs(() => c && c.nodes, async () => {
    assert.equal(typeof (await apps[1].token(9131)), 'string');
    const bad = { ...sign(project, 'gettoken', { uid: I(9131) }), sign: '0'.repeat(32) };
    await expectCode(apps[0].client.quest('gettoken', bad), 200002);
    assert.equal(tokensOf(9131), 1);
  }));
});
