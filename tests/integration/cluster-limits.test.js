'use strict';
// Per-user limits counted in the shared PostgreSQL store (docs/cluster.md,
// "Mirrors across nodes", limits counted in the store): friend and black
// list sizes, userdata keys, push options, devices and the RealTimeCat
// session and token caps of a project hold when adds for
// one user arrive through both nodes at once. Each node alone admits up to
// the limit from its own memory or its own transaction; the store's count
// under an advisory lock keeps the two together within it.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { sanitizerReports, waitFor, withLogs } = require('./lib/rtmd');
const { startCluster } = require('./lib/cluster');
const { sdk } = require('./lib/rtcat');

const PID = 7601;
const I = fpnn.int64;
const LIMIT = 6;
const ROUNDS = 5; // users per kind: each round is one burst through both nodes

describe('cluster limits', () => {
  let c;
  let apps = [];
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => (c ? c.nodes : []), fn));

  before(async () => {
    c = await startCluster({
      nodes: 2,
      redis: true, // the RealTimeCat session of the token case reaches node 2's mirror
      projects: [{ pid: PID, secret: 'cluster-limits-secret', max_friends: LIMIT, max_blacks: LIMIT,
        max_data_keys_per_user: LIMIT, max_push_options_per_user: LIMIT, max_devices_per_user: LIMIT,
        rtcat_apikey: 'limits-key', rtcat_secret: 'limits-secret', rtcat_max_sessions: 2 * LIMIT,
        rtcat_max_tokens: LIMIT }],
    });
    apps = await c.appServers(PID);
  });

  after(async () => {
    if (c) await c.stop();
    assert.deepEqual(sanitizerReports(), []);
  });

  const codeOf = (p) => p.then(() => 0, (e) => e.code);
  const stored = (sql) => Number(c.pg.psql(sql, c.url.slice(c.url.lastIndexOf('/') + 1)));

  // 2 * LIMIT adds for one user, alternating between the nodes, all at once:
  // every answer is OK or `refused`, what is stored is what was accepted
  // (per: rows one accepted add stores), and the user is at the limit.
  async function burst(uid, args, refused, table, per = 1) {
    const codes = await Promise.all(
      Array.from({ length: 2 * LIMIT }, (_, k) => codeOf(apps[k % 2].call(args.method, { uid: I(uid), ...args.of(k) }))));
    assert.ok(codes.every((x) => x === 0 || x === refused), `codes ${codes}`);
    const rows = stored(`SELECT count(*) FROM ${table} WHERE pid = ${PID} AND uid = ${uid}`);
    if (per) assert.equal(rows, per * codes.filter((x) => x === 0).length, 'each accepted add stored, no refused one');
    assert.equal(rows, LIMIT, `${table} of uid ${uid} at the limit, not past it`);
  }

  it('friend lists stay within max_friends', async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const uid = 1000 + r;
      await burst(uid, { method: 'addfriends', of: (k) => ({ friends: [I(5000 + k)] }) }, 200048, 'friends');
    }
  });

  it('blacklists stay within max_blacks', async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const uid = 2000 + r;
      await burst(uid, { method: 'addblacks', of: (k) => ({ blacks: [I(5000 + k)] }) }, 200032, 'blacklists');
    }
  });

  it('userdata stays within max_data_keys_per_user', async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const uid = 3000 + r;
      await burst(uid, { method: 'dataset', of: (k) => ({ key: `k${k}`, val: 'v' }) }, 200032, 'user_data');
    }
  });

  it('push options stay within max_push_options_per_user', async () => {
    for (let r = 0; r < ROUNDS; r++) {
      const uid = 4000 + r;
      await burst(uid, { method: 'addoption', of: (k) => ({ type: 0, xid: I(5000 + k) }) }, 200032, 'push_options');
    }
  });

  it('devices stay within max_devices_per_user (the oldest go)', async () => {
    // Without the store's lock this goes past the limit in about 1 round in 10.
    for (let r = 0; r < 6 * ROUNDS; r++) {
      const uid = 5000 + r;
      // Every add is accepted; past the limit the least recently added go.
      await burst(uid, { method: 'adddevice', of: (k) => ({ apptype: 'fcm', devicetoken: `t${uid}-${k}` }) }, -1,
        'user_devices', 0);
      const { devices } = await apps[r % 2].call('getdevices', { uid: I(uid) });
      assert.equal(devices.length, LIMIT);
    }
  });

  it('RealTimeCat sessions and tokens stay within rtcat_max_sessions and rtcat_max_tokens', async () => {
    const stored = (table) => Number(c.pg.psql(`SELECT count(*) FROM ${table} WHERE pid = ${PID}`,
      c.url.slice(c.url.lastIndexOf('/') + 1)));
    const cat = c.nodes.map((n) => sdk(n.ports.http, 'limits-key', 'limits-secret'));
    const statuses = (rs) => rs.map((r) => r.status);
    // Sessions: bursts through both nodes until the cap (2 * LIMIT) is hit.
    for (let r = 0; r < 2; r++) {
      const rs = await Promise.all(Array.from({ length: 2 * LIMIT }, (_, k) => cat[k % 2].createSession({ label: `s${r}-${k}` })));
      assert.ok(rs.every((x) => x.status === 201 || x.status === 429), `statuses ${statuses(rs)}`);
    }
    assert.equal(stored('rtcat_sessions'), 2 * LIMIT, 'sessions at the cap, not past it');
    // Tokens: two bursts of 2 * LIMIT into one session.
    const { uuid } = (await cat[0].sessions()).json[0];
    assert.ok(await waitFor(async () => (await cat[1].session(uuid)).status === 200, 5000), 'node 2 knows the session');
    for (let r = 0; r < 2; r++) {
      const rs = await Promise.all(Array.from({ length: 2 * LIMIT }, (_, k) => cat[k % 2].createToken({ session_id: uuid })));
      assert.ok(rs.every((x) => x.status === 201 || x.status === 429), `statuses ${statuses(rs)}`);
    }
    assert.equal(stored('rtcat_tokens'), LIMIT, 'tokens at the cap, not past it');
  });
});
