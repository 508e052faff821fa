'use strict';
// FPNN over WebSocket on the client gate: one packet per binary message on
// ws://host:port/service/websocket, the same core checks as over TCP, and the
// WebSocket-specific failures (text frames, garbage frames, wrong path).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const fpnn = require('./lib/fpnn');
const { mixedPayload, assertEcho, widthPayload, INT_VALUES } = require('./lib/payloads');
const { sanitizerReports, startRtmd, withLogs, sleep } = require('./lib/rtmd');

describe('FPNN over WebSocket (client gate)', () => {
  let srv;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => srv, fn));
  const conn = (opts = {}) => fpnn.connect({ port: srv.ports.client_ws, transport: 'ws', ...opts });

  before(async () => {
    // These tests send large packets without logging in: the pre-login
    // packet bound is raised to max_packet (tests/raw/prelogin-* test it).
    srv = await startRtmd({ args: ['--ping_interval=1', '--idle_timeout=30', '--prelogin_max_packet=2097152'] });
  });

  after(async () => {
    if (srv) {
      const alive = srv.alive;
      const code = await srv.stop('SIGTERM');
      await srv.cleanup();
      assert.ok(alive, `rtmd died during the tests\n${srv.diagnostics()}`);
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    }
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('answers ping and *ping with an empty map', async () => {
    const c = await conn();
    try {
      for (const m of ['ping', '*ping']) {
        const p = await c.quest(m, {}, { full: true });
        assert.equal(p.ss, 0);
        assert.equal(p.flag, fpnn.FLAG_MSGPACK);
        assert.deepStrictEqual(p.payload, {});
      }
    } finally {
      await c.close();
    }
  });

  it('*echo returns int64 edge values, bin and str unchanged', async () => {
    const c = await conn();
    try {
      const sent = mixedPayload();
      const got = await c.quest('*echo', sent);
      assertEcho(got, sent);
      got.i64.forEach((v, i) => assert.equal(fpnn.toBigInt(v), INT_VALUES[i], `int64 #${i}`));
      assert.ok(Buffer.isBuffer(got.bin), 'bin stays bin');
      assert.equal(typeof got.strAbc, 'string', 'str stays str');
      const { raw, expected } = widthPayload();
      const w = await c.quest('*echo', raw);
      assert.deepStrictEqual(w.w.map(fpnn.toBigInt), expected);
    } finally {
      await c.close();
    }
  });

  it('a JSON quest is answered in JSON', async () => {
    const c = await conn();
    try {
      const sent = { a: 1, s: 'text', arr: [true, null, 2.5] };
      const p = await c.quest('*echo', sent, { json: true, full: true });
      assert.equal(p.flag, fpnn.FLAG_JSON);
      assert.deepStrictEqual(p.payload, sent);
    } finally {
      await c.close();
    }
  });

  it('pipelined quests (one message each, sent without waiting) are all answered', async () => {
    const c = await conn({ timeoutMs: 15000, firstSeq: 0xffffffff - 299 });
    try {
      const qs = [];
      for (let i = 0; i < 300; i++) {
        const payload = { i, id: fpnn.int64(-(BigInt(i) << 33n)), b: Buffer.from([i & 0xff]) };
        qs.push({ payload, ...c.prepareQuest('*echo', payload, { full: true }) });
      }
      c.writePackets(qs.map((q) => q.packet));
      const answers = await Promise.all(qs.map((q) => q.answer));
      answers.forEach((p, k) => {
        assert.equal(p.seq, qs[k].seq);
        assertEcho(p.payload, qs[k].payload);
      });
      assert.equal(c.unmatchedAnswers.length, 0);
    } finally {
      await c.close();
    }
  });

  it('a large packet in one message is echoed', async () => {
    const c = await conn({ timeoutMs: 10000 });
    try {
      const sent = { s: 'w'.repeat(300 * 1024), b: crypto.randomBytes(100 * 1024) };
      const got = await c.quest('*echo', sent);
      assert.ok(got.s === sent.s);
      assert.ok(sent.b.equals(got.b));
    } finally {
      await c.close();
    }
  });

  it('an unknown method gets an error answer with code 20004', async () => {
    const c = await conn();
    try {
      const err = await c.quest('no.such.method', {}).then(
        () => assert.fail('must not succeed'),
        (e) => e,
      );
      assert.ok(err instanceof fpnn.FpnnAnswerError, String(err));
      assert.notEqual(err.status, 0);
      assert.equal(err.code, 20004);
      assert.equal(typeof err.ex, 'string');
      assert.equal(typeof err.raised, 'string');
      assert.deepStrictEqual(await c.quest('ping', {}), {});
    } finally {
      await c.close();
    }
  });

  it('a oneway quest gets no answer', async () => {
    const c = await conn();
    try {
      c.oneway('*echo', { x: 1 });
      c.oneway('ping', {});
      assert.deepStrictEqual(await c.quest('*echo', { y: 2 }), { y: 2 });
      await sleep(200);
      assert.equal(c.unmatchedAnswers.length, 0);
    } finally {
      await c.close();
    }
  });

  it('the server sends ping quests, one packet per binary message', async () => {
    const c = await conn();
    try {
      c.onQuest('ping', () => ({}));
      const p = await c.waitQuest('ping', 3000);
      assert.equal(p.mtype, fpnn.MTYPE_TWOWAY);
      assert.ok(p.payload && typeof p.payload === 'object');
      await sleep(1500);
      assert.equal(c.isClosed, false);
      assert.deepStrictEqual(await c.quest('ping', {}), {});
    } finally {
      await c.close();
    }
  });

  it('a packet split over continuation frames is reassembled', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.ports.client_ws}/service/websocket`, { perMessageDeflate: false });
    try {
      await new Promise((r, j) => ws.once('open', r).once('error', j));
      const packet = fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*echo', seq: 5, payload: { frag: 'mented', n: fpnn.int64(-(2n ** 40n)) } });
      const got = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer to a fragmented message')), 5000);
        ws.on('message', (data, isBinary) => {
          if (!isBinary) return;
          const p = fpnn.parsePacketBuffer(data);
          if (p.mtype !== fpnn.MTYPE_ANSWER) return; // e.g. a server ping
          clearTimeout(timer);
          resolve(p);
        });
      });
      const cuts = [0, 3, 17, packet.length];
      for (let i = 0; i < cuts.length - 1; i++) {
        ws.send(packet.subarray(cuts[i], cuts[i + 1]), { binary: true, fin: i === cuts.length - 2 });
      }
      const p = await got;
      assert.equal(p.seq, 5);
      assertEcho(p.payload, { frag: 'mented', n: -(2n ** 40n) });
    } finally {
      ws.terminate();
    }
  });

  it('WebSocket ping frames get pong frames, and a close is answered with a close', async () => {
    const c = await conn();
    const ws = c.transport.ws;
    const data = Buffer.from('are-you-there');
    const pong = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), 3000);
      ws.once('pong', (d) => {
        clearTimeout(timer);
        resolve(d);
      });
    });
    ws.ping(data);
    assert.ok((await pong).equals(data), 'pong carries the ping data');
    assert.deepStrictEqual(await c.quest('ping', {}), {});
    await c.close();
    assert.ok([1000, 1005].includes(c.wsCloseCode), `server answers the close frame (got code ${c.wsCloseCode})`);
  });

  it('a text frame closes the link', async () => {
    const c = await conn();
    const packet = fpnn.encodePacket({ mtype: 1, method: 'ping', seq: 1, payload: {}, json: true });
    c.rawWrite(packet, { text: true });
    assert.ok(await c.waitClose(3000), 'closed after a text frame');
  });

  it('a garbage binary frame closes the link', async () => {
    const c = await conn();
    c.rawWrite(Buffer.from('GARBAGE!GARBAGE!'));
    assert.ok(await c.waitClose(3000), 'closed after garbage');
  });

  it('a binary frame holding a truncated packet closes the link', async () => {
    const c = await conn();
    const packet = fpnn.encodePacket({ mtype: 1, method: '*echo', seq: 1, payload: { a: 'b'.repeat(100) } });
    c.rawWrite(packet.subarray(0, packet.length - 10));
    const closed = await c.waitClose(3000);
    assert.ok(closed, 'a message must hold exactly one whole packet');
  });

  it('a wrong path gets HTTP 404 and no upgrade', async () => {
    const status = await new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: srv.ports.client_ws,
        path: '/no/such/path',
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        },
        timeout: 5000,
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve(`upgraded ${res.statusCode}`);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 404);
    // And through the ws client library.
    const err = await fpnn.connect({ port: srv.ports.client_ws, transport: 'ws', wsPath: '/service/websocketX' }).then(
      (c) => {
        c.destroy();
        return null;
      },
      (e) => e,
    );
    assert.ok(err, 'no upgrade on a wrong path');
    assert.equal(err.statusCode, 404);
  });

  it('the server still serves new WebSocket clients after the bad ones', async () => {
    const c = await conn();
    try {
      assert.deepStrictEqual(await c.quest('*echo', { ok: true }), { ok: true });
    } finally {
      await c.close();
    }
    const ws = new WebSocket(`ws://127.0.0.1:${srv.ports.client_ws}/service/websocket`);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.close(1000);
    await new Promise((r) => ws.once('close', r));
  });
});
