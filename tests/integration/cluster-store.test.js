'use strict';
// Two nodes on one PostgreSQL store, no Redis: what the database alone
// keeps right. Message ids handed out by both nodes at once are unique and
// in commit order (id order = mtime order); string ids allocated on both
// nodes at once get distinct uids, and the same new string on both gets
// one; storage_usage counts every byte stored by either node once, exact
// when the send is answered; history retention runs on one node at a time.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fpnn = require('./lib/fpnn');
const { startCluster } = require('./lib/cluster');
const { appServer, recordPushes } = require('./lib/rtm');
const { sanitizerReports, withLogs, waitFor, sleep } = require('./lib/rtmd');

const APP_ID = 'Clstore0123456789abcdefG';
const APP_KEY = 'clstore-app-key';
const PID = 7301;
const BASE = 2n ** 62n;
const I = fpnn.int64;
const big = (v) => fpnn.toBigInt(v);

describe('two nodes sharing one PostgreSQL store (ids, uids, storage usage, jobs)', () => {
  let c;
  const apps = [];
  const clients = [];
  const it = (name, fn, timeout = 120000) => test(name, { timeout }, withLogs(() => (c ? c.nodes : []), fn));
  const sql = (q) => c.pg.psql(q, c.url.slice(c.url.lastIndexOf('/') + 1));
  let mid = 1;

  // Logs a string-id user in on node n with a token from getrtstoken.
  const rtsLogin = async (n, uid) => {
    const { token } = await apps[n].call('getrtstoken', { uid });
    const link = await fpnn.connect({ host: '127.0.0.1', port: c.nodes[n].ports.client_tcp });
    recordPushes(link);
    clients.push(link);
    return link.quest('auth', { appid: APP_ID, uid, token, version: 'cluster-tests' });
  };

  before(async () => {
    c = await startCluster({
      nodes: 2,
      // No per-conversation limit: retention (every second here) must not trim
      // the 1000-message conversation while a test counts it.
      projects: [{ pid: PID, secret: 'clstore-project-secret', app_id: APP_ID, app_key: APP_KEY, history_max_per_conversation: 0 }],
      extra: 'retention_interval = 1\n',
    });
    for (const n of c.nodes) apps.push(await appServer(n, { project: n.projects.find((p) => p.pid === String(PID)) }));
  });

  after(async () => {
    for (const l of clients) l.destroy();
    for (const a of apps) await a.close().catch(() => {});
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  it('p2p messages sent on both nodes at once into one conversation: all stored, ids unique, id order = mtime order', async () => {
    const N = 500;
    const send = (n, from, to) =>
      apps[n].call('sendmsg', { from: I(from), to: I(to), mid: I(mid++), mtype: 30, msg: `m${n}`, attrs: 'a' });
    const sends = [];
    for (let i = 0; i < N; i++) {
      sends.push(send(0, 101, 102));
      sends.push(send(1, 102, 101));
    }
    const answers = await Promise.all(sends);
    for (const a of answers) assert.ok(big(a.mtime) > 0n);
    const rows = sql(`SELECT id, mtime FROM messages WHERE pid = ${PID} AND conv_type = 1 ORDER BY id`)
      .split('\n')
      .map((l) => l.split('|').map(BigInt));
    assert.equal(rows.length, 2 * N);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i][1] >= rows[i - 1][1], `mtime of id ${rows[i][0]} < of id ${rows[i - 1][0]}`);
    // The same through history, on both nodes: newest first, mtime never
    // going up as ids go down.
    for (const app of apps) {
      const seen = [];
      let lastid = 0n;
      for (;;) {
        const a = await app.call('getp2pmsg', { uid: I(101), ouid: I(102), desc: true, num: 20, begin: I(0), end: I(0), lastid: I(lastid) });
        seen.push(...a.msgs.map((m) => [big(m[0]), big(m[m.length - 1])]));
        if (a.msgs.length < 20) break;
        lastid = big(a.lastid);
      }
      assert.equal(seen.length, 2 * N);
      assert.equal(new Set(seen.map(([id]) => id)).size, 2 * N, 'ids unique');
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i][0] < seen[i - 1][0]);
        assert.ok(seen[i][1] <= seen[i - 1][1], 'mtime order = id order');
      }
    }
    // A retry on the other node is a duplicate: answered with the first mtime, not stored again.
    const first = await apps[0].call('sendmsg', { from: I(101), to: I(102), mid: I(999999), mtype: 30, msg: 'once' });
    const again = await apps[1].call('sendmsg', { from: I(101), to: I(102), mid: I(999999), mtype: 30, msg: 'once' });
    assert.equal(big(again.mtime), big(first.mtime));
    assert.equal(sql(`SELECT count(*) FROM messages WHERE pid = ${PID} AND mid = 999999`), '1');
  });

  it('string ids logging in on both nodes at once: distinct new ones get distinct uids, the same new one gets one uid', async () => {
    const logins = [];
    for (let i = 0; i < 50; i++) {
      logins.push(rtsLogin(0, `n0.user${i}`));
      logins.push(rtsLogin(1, `n1.user${i}`));
    }
    // The same new names on both nodes at once.
    for (let i = 0; i < 20; i++) {
      logins.push(rtsLogin(0, `both.user${i}`));
      logins.push(rtsLogin(1, `both.user${i}`));
    }
    // And the app servers' translation, which allocates too: many new
    // strings per quest, so both nodes' writers insert at the same time.
    const fresh = (tag) => Array.from({ length: 100 }, (_, i) => `${tag}.name${i}`);
    const translated = Promise.all(
      ['a', 'b', 'c'].flatMap((q) => [
        apps[0].call('getuserids', { ids: [...fresh(`t0${q}`), ...fresh(`tboth${q}`)] }),
        apps[1].call('getuserids', { ids: [...fresh(`t1${q}`), ...fresh(`tboth${q}`)] }),
      ]),
    );
    for (const a of await Promise.all(logins)) assert.deepEqual(a, { ok: true });
    for (const a of await translated) assert.equal(Object.keys(a.uids).length, 200);
    const names = ['a', 'b', 'c'].flatMap((q) => [...fresh(`t0${q}`), ...fresh(`t1${q}`), ...fresh(`tboth${q}`)]);
    for (let i = 0; i < 50; i++) names.push(`n0.user${i}`, `n1.user${i}`);
    for (let i = 0; i < 20; i++) names.push(`both.user${i}`);
    const maps = [];
    for (const app of apps) {
      const map = {};
      for (let i = 0; i < names.length; i += 200) {
        const { uids } = await app.call('getuserids', { ids: names.slice(i, i + 200) });
        for (const [k, v] of Object.entries(uids)) map[k] = big(v);
      }
      assert.equal(Object.keys(map).length, names.length);
      maps.push(map);
    }
    assert.deepEqual(maps[0], maps[1], 'both nodes agree');
    const uids = Object.values(maps[0]);
    for (const u of uids) assert.ok(u >= BASE);
    assert.equal(new Set(uids).size, names.length, 'one uid per string');
    assert.equal(sql(`SELECT count(*) FROM users WHERE pid = ${PID} AND string_id IS NOT NULL`), String(names.length));
  });

  it('storage usage is exact when the sends of both nodes are answered, duplicates counted once', async () => {
    const exact = () => sql(`SELECT SUM(length(msg) + length(attrs)) FROM messages WHERE pid = ${PID}`);
    const usage = () => sql(`SELECT bytes FROM storage_usage WHERE pid = ${PID}`);
    for (let round = 0; round < 3; round++) {
      const base = mid;
      mid += 20;
      // Each message is sent on both nodes at once: one stores it, the
      // other answers it as a duplicate and must count nothing.
      const send = (n, i) =>
        apps[n].call('sendmsg', { from: I(201), to: I(300 + i), mid: I(base + i), mtype: 30, msg: 'x'.repeat(100 + i + round), attrs: 'y'.repeat(i) });
      await Promise.all([0, 1].flatMap((n) => Array.from({ length: 20 }, (_, i) => send(n, i))));
      assert.equal(usage(), exact(), `round ${round}`);
    }
    assert.equal(sql("SELECT count(*) FROM counters WHERE name = 'storage_usage_upto'"), '0');
  });

  it('retention runs on one node at a time, and another node takes it over when the holder stops', async () => {
    // Each node asks for the job's advisory lock every retention run (1 s).
    const holders = () =>
      sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1920232804 AND objid = 1 AND granted")
        .split('\n')
        .filter(Boolean);
    await sleep(2500);
    const before = holders();
    assert.equal(before.length, 1, 'one holder');
    await sleep(1500);
    assert.deepEqual(holders(), before, 'kept by its holder');
    // The node holding it: the rtmd process owning the backend's client port.
    const port = sql(`SELECT client_port FROM pg_stat_activity WHERE pid = ${before[0]}`);
    const owner = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
    const k = c.nodes.findIndex((n) => owner.includes(`pid=${n.proc.pid},`));
    assert.ok(k >= 0, `no node owns port ${port}: ${owner}`);
    await apps[k].close();
    assert.equal(await c.nodes[k].stop('SIGTERM'), 0);
    await c.nodes[k].cleanup();
    const live = (pid) => sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`) === '1';
    assert.ok(await waitFor(() => { const h = holders(); return h.length === 1 && live(h[0]); }, 5000), 'a holder after the stop');
    assert.notEqual(holders()[0], before[0], 'taken over by the other node');
    assert.equal(holders().length, 1, 'one holder after the stop');
  });
});
