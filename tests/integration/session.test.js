'use strict';
// The README's "First session", run as written: the section's first shell
// block must start rtmd with scripts/start.sh (replaced here by a real rtmd
// on free ports whose banner goes to rtmd.out, as `tee` would), the second
// block runs in bash unchanged except for the default ports, which become
// the test server's. build/rtmctl is the rtmctl under test.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { sanitizerReports, startRtmd, withLogs, run, rtmctlBin, makeTempDir, removeTempDir } = require('./lib/rtmd');
const { pushText } = require('./lib/rtm');

const README = path.join(__dirname, '..', '..', 'README.md');
const START_SH = path.join(__dirname, '..', '..', 'scripts', 'start.sh');

// The shell blocks of the README section titled `title`.
function shellBlocks(title) {
  const text = fs.readFileSync(README, 'utf8');
  const start = text.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const rest = text.slice(start + title.length + 5);
  const end = rest.search(/\n## /);
  const section = end >= 0 ? rest.slice(0, end) : rest;
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

describe('README first session', () => {
  let srv;
  let dir;
  const it = (name, fn, timeout = 60000) => test(name, { timeout }, withLogs(() => [srv], fn));

  before(async () => {
    srv = await startRtmd();
    dir = await makeTempDir('rtmd-it-session-');
    fs.mkdirSync(path.join(dir, 'build'));
    fs.symlinkSync(rtmctlBin(), path.join(dir, 'build', 'rtmctl'));
    fs.writeFileSync(path.join(dir, 'rtmd.out'), srv.stdout);
  });

  after(async () => {
    const alive = srv && srv.alive;
    const code = srv ? await srv.stop('SIGTERM') : 0;
    if (srv) await srv.cleanup();
    if (dir) await removeTempDir(dir);
    assert.ok(alive, `rtmd died during the test\n${srv && srv.diagnostics()}`);
    assert.equal(code, 0, 'rtmd exit code after SIGTERM');
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('the first-session commands work as written', async () => {
    const blocks = shellBlocks('First session');
    assert.equal(blocks.length, 2, 'two shell blocks: start rtmd, then the session');
    assert.equal(blocks[0].trim(), 'scripts/start.sh | tee rtmd.out');
    // What start.sh runs, which this test stands in for.
    assert.match(fs.readFileSync(START_SH, 'utf8'), /exec build\/rtmd --data_dir=\.\/data "\$@"/);

    const session = blocks[1];
    for (const port of ['127.0.0.1:13315', '127.0.0.1:13325']) {
      assert.ok(session.includes(port), `the README uses the default address ${port}`);
    }
    const script = session
      .replaceAll('127.0.0.1:13315', `127.0.0.1:${srv.ports.server_tcp}`)
      .replaceAll('127.0.0.1:13325', `127.0.0.1:${srv.ports.client_tcp}`);
    // -e: a failing command fails the test; the trap stops listeners left
    // behind by a failure, so that bash's output closes.
    const harness = `set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${script}`;
    const env = { ...process.env };
    delete env.RTM_PID;
    delete env.RTM_SECRET;
    const r = await run('bash', ['-c', harness], { cwd: dir, env, timeoutMs: 40000 });
    const show = `exit=${r.code} signal=${r.signal}\n--- script ---\n${script}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
    assert.equal(r.timedOut, false, show);
    assert.equal(r.code, 0, show);

    // Both users logged in.
    assert.match(r.stderr, /listening as uid 1001 /, show);
    assert.match(r.stderr, /listening as uid 1002 /, show);
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        assert.fail(`stdout line is not JSON: ${l}\n${show}`);
      }
      return null;
    });
    // send printed its answer.
    const answer = lines.find((l) => l.mtime !== undefined && l.method === undefined && l.msgs === undefined);
    assert.ok(answer, `send printed {mid, mtime}\n${show}`);
    assert.ok(Number(answer.mtime) > 1.6e12, show);
    // 1002's listener printed the push.
    const push = lines.find((l) => l.method && l.payload && pushText(l.payload) === 'hello 1002');
    assert.ok(push, `a push line with the message\n${show}`);
    assert.equal(push.payload.from, 1001, show);
    assert.equal(push.payload.mtime, answer.mtime, show);
    // history printed the conversation with the message in it.
    const history = lines.find((l) => Array.isArray(l.msgs));
    assert.ok(history, `history printed {msgs: [...]}\n${show}`);
    assert.ok(JSON.stringify(history.msgs).includes('hello 1002'), show);
  });
});
