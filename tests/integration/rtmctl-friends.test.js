'use strict';
// rtmctl friends against a real rtmd: one user's friend list and, with
// --black, its blacklist, through signed server-gate calls: list, add, del,
// check, each printed as one line of JSON and checked with an independent
// app-server client; error answers exit 2, bad options exit 1.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer, ids, int64s } = require('./lib/rtm');
const { sanitizerReports, startRtmd, withLogs, run, rtmctlBin } = require('./lib/rtmd');

const rtmctl = (args, opts = {}) => run(rtmctlBin(), args, { timeoutMs: 10000, ...opts });

describe('rtmctl friends', () => {
  let srv, app;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv], fn));
  const addr = () => `127.0.0.1:${srv.ports.server_tcp}`;
  const show = (r) => `exit=${r.code} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  const project = () => srv.projects[0];
  const signed = () => ['--pid', project().pid, '--secret', project().secret];
  const friends = async (args) => {
    const r = await rtmctl(['friends', addr(), ...signed(), ...args]);
    assert.equal(r.code, 0, show(r));
    return JSON.parse(r.stdout);
  };

  before(async () => {
    srv = await startRtmd();
    app = await appServer(srv);
  });

  after(async () => {
    if (app) await app.close();
    const alive = srv.alive;
    await srv.cleanup();
    assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  it('add, list, check and del a friend list, with exact 64-bit uids', async () => {
    assert.deepEqual(await friends(['--uid', '10', 'add', '11', '12', '9007199254740993']), {});
    assert.deepEqual(ids((await app.call('getfriends', { uid: fpnn.int64(10) })).uids), [11, 12, 9007199254740992]);
    const r = await rtmctl(['friends', addr(), ...signed(), '--uid', '10', 'list']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '{"uids":[11,12,9007199254740993]}\n', show(r));
    assert.deepEqual(await friends(['--uid', '10', 'check', '12', '13']), { fuids: [12] });
    assert.deepEqual(await friends(['--uid', '10', 'del', '11']), {});
    assert.deepEqual(await friends(['--uid', '10', 'list']), { uids: [12, 9007199254740993] });
  });

  it('--black works on the blacklist; check names those who blocked the uid', async () => {
    assert.deepEqual(await friends(['--uid', '20', '--black', 'add', '21', '22']), {});
    assert.equal((await app.call('isblack', { uid: fpnn.int64(21), buid: fpnn.int64(20) })).ok, true);
    assert.deepEqual(await friends(['--black', '--uid', '20', 'list']), { uids: [21, 22] });
    assert.deepEqual(await friends(['--uid', '21', '--black', 'check', '20', '23']), { buids: [20] });
    assert.deepEqual(await friends(['--uid', '20', '--black', 'del', '21']), {});
    assert.deepEqual(ids((await app.call('getblacks', { uid: fpnn.int64(20) })).uids), [22]);
    // The friend list of the same user is untouched.
    assert.deepEqual(await friends(['--uid', '20', 'list']), { uids: [] });
    await app.call('addfriends', { uid: fpnn.int64(20), friends: int64s([30]) });
    assert.deepEqual(await friends(['--uid', '20', 'list']), { uids: [30] });
  });

  it('an error answer exits 2 with its code; bad options exit 1 without connecting', async () => {
    const many = Array.from({ length: 101 }, (_, i) => String(100 + i));
    const r = await rtmctl(['friends', addr(), ...signed(), '--uid', '40', 'add', ...many]);
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /200032/, show(r));
    const env = { RTM_PID: '', RTM_SECRET: '' };
    const cases = [
      [['friends', addr(), ...signed(), 'list'], /--uid/],
      [['friends', addr(), '--uid', '1', 'list'], /--pid/],
      [['friends', addr(), ...signed(), '--uid', '1'], /usage/],
      [['friends', addr(), ...signed(), '--uid', '1', 'befriend', '2'], /unknown friends action/],
      [['friends', addr(), ...signed(), '--uid', '1', 'add'], /at least one UID/],
      [['friends', addr(), ...signed(), '--uid', '1', 'list', '2'], /no UID/],
      [['friends', addr(), ...signed(), '--uid', '1', 'add', 'x'], /integer/],
      [['friends', addr(), ...signed(), '--uid', '1', '--to', '2', 'list'], /not an option/],
      [['send', addr(), ...signed(), '--from', '1', '--to', '2', '--black', 'hi'], /not an option/],
    ];
    for (const [args, re] of cases) {
      const x = await rtmctl(args, { env });
      assert.equal(x.code, 1, `${args.join(' ')}\n${show(x)}`);
      assert.match(x.stderr, re, `${args.join(' ')}\n${show(x)}`);
    }
  });
});
