'use strict';
// rtmctl against a real rtmd: ping, raw calls with exact 64-bit integers,
// error reporting, and encrypted links with --key.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { sanitizerReports, startRtmd, withLogs, run, rtmctlBin, makeTempDir, removeTempDir } = require('./lib/rtmd');

const rtmctl = (args, opts = {}) => run(rtmctlBin(), args, { timeoutMs: 10000, ...opts });

// rtmd_connections_accepted_total from /metrics, all gates summed (the
// scrape itself is one more HTTP connection).
function accepted(s) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: s.ports.http, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          let sum = 0;
          for (const line of body.split('\n')) {
            const m = /^rtmd_connections_accepted_total(\{[^}]*\})?\s+(\S+)/.exec(line);
            if (m) sum += Number(m[2]);
          }
          resolve(sum);
        });
      })
      .on('error', reject);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('rtmctl', () => {
  let srv;
  let enc;
  let dir;
  let pubPem;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => [srv, enc], fn));
  const addr = (s, gate = 'client_tcp') => `127.0.0.1:${s.ports[gate]}`;
  const show = (r) => `exit=${r.code} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

  before(async () => {
    dir = await makeTempDir('rtmd-it-ctl-');
    const keyPem = path.join(dir, 'key.pem');
    pubPem = path.join(dir, 'pub.pem');
    let r = await run('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', keyPem]);
    assert.equal(r.code, 0, r.stderr);
    r = await run('openssl', ['ec', '-in', keyPem, '-pubout', '-out', pubPem]);
    assert.equal(r.code, 0, r.stderr);
    srv = await startRtmd();
    enc = await startRtmd({ args: [`--key_pem=${keyPem}`] });
  });

  after(async () => {
    for (const s of [srv, enc]) {
      if (!s) continue;
      const alive = s.alive;
      await s.cleanup();
      assert.ok(alive, `rtmd died during the tests\n${s.diagnostics()}`);
    }
    if (dir) await removeTempDir(dir);
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('rtmctl ping exits 0', async () => {
    for (const gate of ['client_tcp', 'server_tcp']) {
      const before = await accepted(srv);
      const r = await rtmctl(['ping', addr(srv, gate)]);
      assert.equal(r.code, 0, show(r));
      // It really talked to the server.
      // +1 for the next scrape's own connection, +1 for rtmctl.
      assert.ok((await accepted(srv)) >= before + 2, `rtmctl ping connected to rtmd's ${gate}`);
    }
  });

  it('rtmctl call *echo prints JSON with exact 64-bit integers', async () => {
    let r = await rtmctl(['call', addr(srv), '*echo', '{"a":9007199254740993}']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /"a"\s*:\s*9007199254740993(?![\d.eE])/, show(r));
    r = await rtmctl(['call', addr(srv), '*echo', '{"min":-9223372036854775808,"max":9223372036854775807,"s":"x","l":[1,true,null]}']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /"min"\s*:\s*-9223372036854775808(?![\d.eE])/, show(r));
    assert.match(r.stdout, /"max"\s*:\s*9223372036854775807(?![\d.eE])/, show(r));
    assert.match(r.stdout, /"s"\s*:\s*"x"/, show(r));
  });

  it('rtmctl call of an unknown method exits non-zero and prints code 20004', async () => {
    const r = await rtmctl(['call', addr(srv), 'no.such.method', '{}']);
    assert.notEqual(r.code, 0, show(r));
    assert.equal(r.timedOut, false);
    assert.match(r.stderr, /20004/, show(r));
  });

  it('rtmctl fails cleanly when nobody listens', async () => {
    const port = await freePort();
    const r = await rtmctl(['ping', `127.0.0.1:${port}`]);
    assert.equal(r.timedOut, false, 'does not hang');
    assert.notEqual(r.code, 0, show(r));
    assert.ok(r.stderr.length > 0, 'says why on stderr');
  });

  it('rtmctl --key PUBPEM talks to an encrypted rtmd', async () => {
    for (const gate of ['client_tcp', 'server_tcp']) {
      let r = await rtmctl(['--key', pubPem, 'ping', addr(enc, gate)]);
      assert.equal(r.code, 0, show(r));
      r = await rtmctl(['--key', pubPem, 'call', addr(enc, gate), '*echo', '{"a":9007199254740993,"b":"enc"}']);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /"a"\s*:\s*9007199254740993(?![\d.eE])/, show(r));
      assert.match(r.stdout, /"b"\s*:\s*"enc"/, show(r));
    }
  });

  it('rtmctl --key with --bits 256 and --stream', async () => {
    for (const extra of [['--bits', '256'], ['--stream'], ['--stream', '--bits', '256']]) {
      const r = await rtmctl(['--key', pubPem, ...extra, 'call', addr(enc), '*echo', '{"m":-9223372036854775808}']);
      assert.equal(r.code, 0, `${extra.join(' ')}\n${show(r)}`);
      assert.match(r.stdout, /"m"\s*:\s*-9223372036854775808(?![\d.eE])/, show(r));
    }
  });

  it('rtmctl --key with the wrong server key fails instead of hanging', async () => {
    const otherKey = path.join(dir, 'other.pem');
    const otherPub = path.join(dir, 'other-pub.pem');
    let r = await run('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', otherKey]);
    assert.equal(r.code, 0, r.stderr);
    r = await run('openssl', ['ec', '-in', otherKey, '-pubout', '-out', otherPub]);
    assert.equal(r.code, 0, r.stderr);
    r = await rtmctl(['--timeout', '3', '--key', otherPub, 'ping', addr(enc)], { timeoutMs: 10000 });
    assert.equal(r.timedOut, false, 'rtmctl gives up on its own');
    assert.notEqual(r.code, 0, show(r));
  });
});
