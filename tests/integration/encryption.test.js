'use strict';
// Encrypted FPNN: the `*key` handshake (client ECDH secp256k1 key against the
// server's configured key), AES-128/256-CFB in package mode (4-byte LE length
// + ciphertext per packet, fresh cipher each) and stream mode (one CFB stream
// per direction), on the client and the server TCP gates.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const fpnn = require('./lib/fpnn');
const { mixedPayload, assertEcho } = require('./lib/payloads');
const { sanitizerReports, startRtmd, withLogs, run, makeTempDir, removeTempDir, sleep } = require('./lib/rtmd');

describe('encrypted FPNN over TCP', () => {
  let srv;
  let dir;
  let keyPem;
  let pubPem;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => srv, fn));

  before(async () => {
    dir = await makeTempDir('rtmd-it-key-');
    keyPem = path.join(dir, 'key.pem');
    let r = await run('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', keyPem]);
    assert.equal(r.code, 0, `openssl ecparam failed: ${r.stderr}`);
    r = await run('openssl', ['ec', '-in', keyPem, '-pubout']);
    assert.equal(r.code, 0, `openssl ec -pubout failed: ${r.stderr}`);
    pubPem = r.stdout;
    // Large quests without logging in: the pre-login packet bound is raised
    // to max_packet (tests/raw/prelogin-* test it).
    srv = await startRtmd({ args: [`--key_pem=${keyPem}`, '--ping_interval=1', '--prelogin_max_packet=2097152'] });
  });

  after(async () => {
    if (srv) {
      const alive = srv.alive;
      const code = await srv.stop('SIGTERM');
      await srv.cleanup();
      assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    }
    if (dir) await removeTempDir(dir);
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('the public key from openssl matches the one Node derives from the private key', async () => {
    const fromPub = fpnn.serverPublicPoint(pubPem);
    const fromPriv = fpnn.serverPublicPoint(fs.readFileSync(keyPem));
    assert.equal(fromPub.length, 65);
    assert.ok(fromPub.equals(fromPriv));
  });

  const connectEnc = async (gate, streamMode, bits, extra = {}) => {
    const c = await fpnn.connect({
      port: srv.ports[gate],
      transport: 'tls-key',
      serverPublicKey: pubPem,
      streamMode,
      bits,
      timeoutMs: 10000,
      ...extra,
    });
    c.onQuest('ping', () => ({}));
    return c;
  };

  for (const gate of ['client_tcp', 'server_tcp']) {
    for (const streamMode of [false, true]) {
      for (const bits of [128, 256]) {
        const mode = streamMode ? 'stream' : 'package';
        it(`${gate}: ${mode} mode, AES-${bits}: ping, *echo, pipelined quests`, async () => {
          const c = await connectEnc(gate, streamMode, bits);
          try {
            assert.deepStrictEqual(await c.quest('ping', {}), {});
            assert.deepStrictEqual(await c.quest('*ping', {}), {});
            const sent = mixedPayload();
            assertEcho(await c.quest('*echo', sent), sent);
            // Pipelined, in one write.
            const qs = [];
            for (let i = 0; i < 40; i++) {
              const payload = { i, id: fpnn.int64(2n ** 62n + BigInt(i)), b: crypto.randomBytes(i * 13), s: 'e'.repeat(i * 50) };
              qs.push({ payload, ...c.prepareQuest(i % 5 === 0 ? 'ping' : '*echo', i % 5 === 0 ? {} : payload, { full: true }) });
            }
            c.writePackets(qs.map((q) => q.packet));
            const answers = await Promise.all(qs.map((q) => q.answer));
            answers.forEach((p, k) => {
              assert.equal(p.seq, qs[k].seq);
              if (k % 5 === 0) assert.deepStrictEqual(p.payload, {});
              else assertEcho(p.payload, qs[k].payload);
            });
            // A packet larger than a socket read, then an error answer.
            const big = { b: crypto.randomBytes(300 * 1024) };
            const got = await c.quest('*echo', big);
            assert.ok(big.b.equals(got.b));
            const err = await c.quest('no.such.method', {}).then(
              () => null,
              (e) => e,
            );
            assert.ok(err && err.code === 20004, `unknown method over an encrypted link: ${err}`);
            assert.deepStrictEqual(await c.quest('ping', {}), {});
            assert.equal(c.errors.length, 0, String(c.errors));
          } finally {
            await c.close();
          }
        });
      }
    }
  }

  it('server pings arrive encrypted and are answered', async () => {
    const c = await connectEnc('client_tcp', true, 256);
    try {
      const p = await c.waitQuest('ping', 3000);
      assert.equal(p.mtype, fpnn.MTYPE_TWOWAY);
      await sleep(1200);
      assert.equal(c.isClosed, false);
      assert.deepStrictEqual(await c.quest('ping', {}), {});
    } finally {
      await c.close();
    }
  });

  it('*key may be sent as a oneway quest', async () => {
    for (const streamMode of [false, true]) {
      const c = await connectEnc('client_tcp', streamMode, 128, { keyOneway: true });
      try {
        assert.deepStrictEqual(await c.quest('ping', {}), {});
        assertEcho(await c.quest('*echo', { one: 'way' }), { one: 'way' });
      } finally {
        await c.close();
      }
    }
  });

  it('a garbage or wrong publicKey closes the link', async () => {
    const bad = [
      Buffer.alloc(64, 1), // not a point on the curve
      Buffer.alloc(10, 4), // wrong length
      Buffer.alloc(0),
    ];
    for (const publicKey of bad) {
      const c = await fpnn.connect({ port: srv.ports.client_tcp });
      c.quest('*key', { publicKey, streamMode: false, bits: 128 }).catch(() => {});
      assert.ok(await c.waitClose(3000), `closed after publicKey of ${publicKey.length} bytes`);
    }
    // publicKey given as a string instead of bin.
    const s = await fpnn.connect({ port: srv.ports.client_tcp });
    s.quest('*key', { publicKey: 'A'.repeat(64), streamMode: false, bits: 128 }).catch(() => {});
    assert.ok(await s.waitClose(3000), 'closed after a str publicKey');
  });

  it('garbage ciphertext after the handshake closes the link', async () => {
    const c = await connectEnc('client_tcp', false, 128);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(64, 0);
    c.rawWrite(Buffer.concat([len, crypto.randomBytes(64)]));
    assert.ok(await c.waitClose(3000), 'closed after undecryptable package');
    const d = await connectEnc('server_tcp', true, 128);
    d.rawWrite(crypto.randomBytes(64));
    assert.ok(await d.waitClose(3000), 'closed after garbage in stream mode');
  });

  it('plain and encrypted clients share the server', async () => {
    const plain = await fpnn.connect({ port: srv.ports.client_tcp });
    const enc = await connectEnc('client_tcp', false, 256);
    try {
      const [a, b] = await Promise.all([plain.quest('*echo', { p: 1 }), enc.quest('*echo', { e: 2 })]);
      assert.deepStrictEqual(a, { p: 1 });
      assert.deepStrictEqual(b, { e: 2 });
    } finally {
      await plain.close();
      await enc.close();
    }
  });
});
