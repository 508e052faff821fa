'use strict';
// FPNN over plain TCP on the client gate: framing, msgpack/JSON payloads,
// 64-bit integers, pipelining, error answers, server pings, idle timeout and
// the defensive limits (bad bytes, oversized packets, slow readers,
// connection cap).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fpnn = require('./lib/fpnn');
const { mixedPayload, assertEcho, widthPayload, INT_VALUES } = require('./lib/payloads');
const { sanitizerReports, startRtmd, withLogs, sleep, waitFor } = require('./lib/rtmd');

const MAX_PACKET = 1048576;

describe('FPNN over TCP (client gate)', () => {
  let srv;
  const extra = []; // servers started inside a test, for diagnostics
  const logs = () => [srv, ...extra];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));
  const conn = (opts = {}) => fpnn.connect({ port: srv.ports.client_tcp, ...opts });

  before(async () => {
    // Large packets without logging in: the pre-login packet bound is raised
    // to max_packet (tests/raw/prelogin-* test it).
    srv = await startRtmd({ args: [`--max_packet=${MAX_PACKET}`, `--prelogin_max_packet=${MAX_PACKET}`] });
  });

  after(async () => {
    for (const s of extra) await s.cleanup();
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

  it('prints its listeners and a version', async () => {
    assert.ok(srv.ports.client_tcp > 0);
    assert.ok(srv.ports.client_ws > 0);
    assert.ok(srv.ports.server_tcp > 0);
    assert.ok(srv.ports.http > 0);
    assert.equal(srv.listens.client_ws.path, '/service/websocket');
    assert.match(srv.version, /^\d+\.\d+\.\d+/);
    assert.ok(srv.projects.length >= 1, 'first start prints the demo project');
  });

  it('answers twoway ping and *ping with an empty map', async () => {
    const c = await conn();
    try {
      for (const m of ['ping', '*ping']) {
        const p = await c.quest(m, {}, { full: true });
        assert.equal(p.mtype, fpnn.MTYPE_ANSWER);
        assert.equal(p.version, 1, 'answers carry FPNN version 1');
        assert.equal(p.flag, fpnn.FLAG_MSGPACK, 'a msgpack quest is answered in msgpack');
        assert.equal(p.ss, 0);
        assert.deepStrictEqual(p.payload, {});
      }
    } finally {
      await c.close();
    }
  });

  it('a oneway quest gets no answer and does not break the link', async () => {
    const c = await conn();
    try {
      c.oneway('ping', {});
      c.oneway('*ping', {});
      c.oneway('*echo', { a: 1 });
      c.oneway('no.such.method', {});
      assert.deepStrictEqual(await c.quest('*echo', { after: 'oneways' }), { after: 'oneways' });
      await sleep(200);
      assert.equal(c.unmatchedAnswers.length, 0, 'no answer may be sent for a oneway quest');
      assert.equal(c.receivedPackets, 1, 'only the twoway quest was answered');
      assert.equal(c.isClosed, false);
    } finally {
      await c.close();
    }
  });

  it('*echo returns int64 edge values exactly (Int64, Uint64, plain numbers)', async () => {
    const c = await conn();
    try {
      const sent = mixedPayload();
      const got = await c.quest('*echo', sent);
      assertEcho(got, sent);
      // Spelled out for the 64-bit values, so a failure names the value.
      got.i64.forEach((v, i) => assert.equal(fpnn.toBigInt(v), INT_VALUES[i], `int64 #${i}`));
      assert.ok(Buffer.isBuffer(got.bin), 'bin stays bin');
      assert.ok(Buffer.isBuffer(got.emptyBin), 'empty bin stays bin');
      assert.ok(Buffer.isBuffer(got.binAbc), 'bin "abc" stays bin');
      assert.equal(typeof got.strAbc, 'string', 'str stays str');
      assert.equal(got.str, sent.str);
      assert.equal(got.nil, null);
      assert.equal(got.yes, true);
      assert.equal(got.no, false);
      assert.equal(got.half, 1.5);
    } finally {
      await c.close();
    }
  });

  it('*echo keeps the value of integers in every msgpack width', async () => {
    const c = await conn();
    try {
      const { raw, expected } = widthPayload();
      const got = await c.quest('*echo', raw);
      assert.deepStrictEqual(got.w.map(fpnn.toBigInt), expected);
    } finally {
      await c.close();
    }
  });

  it('*echo of a payload close to max_packet and of a large string', async () => {
    const c = await conn({ timeoutMs: 10000 });
    try {
      const big = { s: 'x'.repeat(MAX_PACKET - 1024), b: Buffer.alloc(100, 7) };
      const got = await c.quest('*echo', big);
      assert.equal(got.s.length, big.s.length);
      assert.ok(got.s === big.s);
      assert.deepStrictEqual(got.b, big.b);
    } finally {
      await c.close();
    }
  });

  it('a JSON quest is answered in JSON', async () => {
    const c = await conn();
    try {
      const sent = { a: 1, s: 'x\u00e9', arr: [1, 2, { b: null }], t: true, f: false, n: -5, big: 4294967296, nested: { x: {} } };
      const p = await c.quest('*echo', sent, { json: true, full: true });
      assert.equal(p.flag, fpnn.FLAG_JSON, 'answer flag is JSON');
      assert.equal(p.ss, 0);
      assert.deepStrictEqual(p.payload, sent);
      // 64-bit integers in JSON text keep every digit.
      const text = '{"a":9007199254740993,"b":-9223372036854775808,"c":9223372036854775807}';
      const exact = await c.quest('*echo', Buffer.from(text), { flag: fpnn.FLAG_JSON, full: true });
      assert.equal(exact.flag, fpnn.FLAG_JSON);
      const answerText = exact.raw.toString('utf8');
      assert.match(answerText, /"a"\s*:\s*9007199254740993(?![\d.eE])/, answerText);
      assert.match(answerText, /"b"\s*:\s*-9223372036854775808(?![\d.eE])/, answerText);
      assert.match(answerText, /"c"\s*:\s*9223372036854775807(?![\d.eE])/, answerText);
      const ping = await c.quest('ping', {}, { json: true, full: true });
      assert.equal(ping.flag, fpnn.FLAG_JSON);
      assert.deepStrictEqual(ping.payload, {});
    } finally {
      await c.close();
    }
  });

  it('1000 pipelined quests in one write are all answered with their seq', async () => {
    // Seqs end at 0xFFFFFFFF: the server must treat seq as an unsigned u32.
    const c = await conn({ firstSeq: 0xffffffff - 999, timeoutMs: 20000 });
    try {
      const qs = [];
      for (let i = 0; i < 1000; i++) {
        const method = i % 10 === 0 ? 'ping' : '*echo';
        const payload = method === 'ping' ? {} : { i, s: 'y'.repeat(i % 37), id: fpnn.int64(BigInt(i) * 4294967311n) };
        qs.push({ i, method, payload, ...c.prepareQuest(method, payload, { full: true }) });
      }
      assert.equal(qs[999].seq, 0xffffffff);
      c.writePackets(qs.map((q) => q.packet));
      const answers = await Promise.all(qs.map((q) => q.answer));
      answers.forEach((p, k) => {
        const q = qs[k];
        assert.equal(p.seq, q.seq);
        assert.equal(p.ss, 0);
        if (q.method === 'ping') assert.deepStrictEqual(p.payload, {});
        else assertEcho(p.payload, q.payload, `answer for seq ${q.seq}`);
      });
      assert.equal(c.unmatchedAnswers.length, 0);
    } finally {
      await c.close();
    }
  });

  it('an unknown method gets an error answer with code 20004', async () => {
    const c = await conn();
    try {
      for (const json of [false, true]) {
        const q = c.quest('no.such.method', { x: 1 }, { json });
        const err = await q.then(
          () => assert.fail('unknown method must not succeed'),
          (e) => e,
        );
        assert.ok(err instanceof fpnn.FpnnAnswerError, String(err));
        assert.notEqual(err.status, 0);
        assert.equal(err.packet.flag, json ? fpnn.FLAG_JSON : fpnn.FLAG_MSGPACK);
        assert.equal(err.code, 20004);
        assert.equal(typeof err.ex, 'string');
        assert.equal(typeof err.raised, 'string');
      }
      // The link survives an error answer.
      assert.deepStrictEqual(await c.quest('ping', {}), {});
    } finally {
      await c.close();
    }
  });

  it('a packet sent one byte per write is still parsed', async () => {
    const c = await conn();
    try {
      const q = c.prepareQuest('*echo', { split: 'bytes', id: fpnn.int64(2n ** 40n + 3n) });
      for (const b of q.packet) {
        c.rawWrite(Buffer.from([b]));
        await sleep(2);
      }
      assertEcho(await q.answer, { split: 'bytes', id: 2n ** 40n + 3n });
      // Two packets split across one write boundary.
      const a = c.prepareQuest('*echo', { n: 1 });
      const b = c.prepareQuest('*echo', { n: 2 });
      const both = Buffer.concat([a.packet, b.packet]);
      const cut = a.packet.length + 5;
      c.rawWrite(both.subarray(0, cut));
      await sleep(50);
      c.rawWrite(both.subarray(cut));
      assertEcho(await a.answer, { n: 1 });
      assertEcho(await b.answer, { n: 2 });
    } finally {
      await c.close();
    }
  });

  it('garbage bytes close the connection and the server goes on', async () => {
    const c = await conn();
    c.rawWrite(Buffer.from('GARBAGE!GARBAGE!'));
    assert.ok(await c.waitClose(3000), 'link closed after garbage');
    // An HTTP-looking or wrong-version header is not a valid FPNN packet either.
    const v = await conn();
    const bad = fpnn.encodePacket({ mtype: 1, method: 'ping', seq: 1, payload: {}, version: 99 });
    v.rawWrite(bad);
    const closedOrAnswered = await Promise.race([v.waitClose(3000), sleep(3000).then(() => false)]);
    if (!closedOrAnswered) assert.ok(v.receivedPackets > 0, 'a bad version is answered with an error or closed');
    v.destroy();
    const d = await conn();
    try {
      assert.deepStrictEqual(await d.quest('ping', {}), {});
    } finally {
      await d.close();
    }
  });

  it('a header announcing more than max_packet closes the connection', async () => {
    for (const psize of [MAX_PACKET * 4, 0xffffffff]) {
      const c = await conn();
      const head = Buffer.alloc(16);
      head.write('FPNN', 0, 'ascii');
      head[4] = 1;
      head[5] = fpnn.FLAG_MSGPACK;
      head[6] = fpnn.MTYPE_TWOWAY;
      head[7] = 4;
      head.writeUInt32LE(psize, 8);
      head.writeUInt32LE(1, 12);
      c.rawWrite(Buffer.concat([head, Buffer.from('ping'), Buffer.alloc(1000, 0x80)]));
      assert.ok(await c.waitClose(3000), `closed on psize=${psize} without waiting for the payload`);
    }
    const d = await conn();
    try {
      assert.deepStrictEqual(await d.quest('ping', {}), {});
    } finally {
      await d.close();
    }
  });

  it('bye is answered and then the server closes the link', async () => {
    const c = await conn();
    const p = await c.quest('bye', {}, { full: true });
    assert.equal(p.ss, 0);
    assert.equal(typeof p.payload, 'object');
    assert.ok(await c.waitClose(3000), 'server closes the link after bye');
  });

  it('sends ping quests; answering keeps the link past idle_timeout, silence closes it', async () => {
    const s = await startRtmd({ args: ['--ping_interval=1', '--idle_timeout=4', '--handshake_timeout=3'] });
    extra.push(s);
    const port = s.ports.client_tcp;
    // Real clients open with a quest (auth); the server pings from then on.
    const alive = await fpnn.connect({ port });
    const silent = await fpnn.connect({ port, autoAnswer: false });
    const mute = await fpnn.connect({ port, autoAnswer: false });
    const t0 = Date.now();
    try {
      let pings = 0;
      alive.onQuest('ping', (payload) => {
        assert.equal(typeof payload, 'object');
        pings++;
        return {};
      });
      assert.deepStrictEqual(await alive.quest('ping', {}), {});
      assert.deepStrictEqual(await silent.quest('ping', {}), {});
      const tSilent = Date.now(); // the silent client's last byte sent
      const ping = await alive.waitQuest('ping', 3000);
      assert.equal(ping.mtype, fpnn.MTYPE_TWOWAY, 'server ping is a twoway quest');
      assert.equal(ping.version, 1);
      assert.ok(ping.payload && typeof ping.payload === 'object' && !Array.isArray(ping.payload), 'ping payload is a map');

      // A client that never sends a byte is dropped after handshake_timeout.
      assert.ok(await mute.waitClose(8000), 'a client that sends nothing is closed');
      const muteFor = mute.closedAt - t0;
      assert.ok(muteFor >= 2000 && muteFor <= 6000, `mute client closed after ${muteFor} ms, expected about handshake_timeout (3 s)`);

      // A client that stops answering pings and sends nothing: idle_timeout.
      assert.ok(await silent.waitClose(10000), 'silent client closed');
      const silentFor = silent.closedAt - tSilent;
      assert.ok(silentFor >= 3000, `silent client closed after ${silentFor} ms, expected about idle_timeout (4 s)`);
      assert.ok(silentFor <= 8000, `silent client closed after ${silentFor} ms, expected about idle_timeout (4 s)`);
      assert.ok(silent.quests.some((q) => q.method === 'ping'), 'silent client got pings too');

      // The answering client has now been open longer than idle_timeout.
      await sleep(Math.max(0, 7000 - (Date.now() - t0)));
      assert.equal(alive.isClosed, false, 'answering pings keeps the link open');
      assert.ok(pings >= 4, `got ${pings} pings in ${Date.now() - t0} ms with ping_interval=1`);
      assert.deepStrictEqual(await alive.quest('ping', {}), {});
    } finally {
      alive.destroy();
      silent.destroy();
      mute.destroy();
      await s.cleanup();
    }
  });

  it('a peer that stops reading is dropped once its output queue is full; others are served', async (t) => {
    const s = await startRtmd({ args: ['--max_output_queue=65536'] });
    extra.push(s);
    const port = s.ports.client_tcp;
    const slow = await fpnn.connect({ port, timeoutMs: 60000 });
    const other = await fpnn.connect({ port });
    try {
      const sock = slow.transport.socket;
      sock.pause(); // stop reading: the answers pile up on the server
      const payload = { s: 'z'.repeat(48 * 1024) };
      const total = 600; // ~29 MB of answers, far more than socket buffers hold
      let answered = 0;
      const deadline = Date.now() + 30000;
      for (let i = 0; i < total && !slow.isClosed && Date.now() < deadline; i++) {
        const q = slow.prepareQuest('*echo', payload);
        q.answer.then(
          () => answered++,
          () => {},
        );
        if (!slow.writePackets([q.packet])) {
          // Wait for the kernel to take our bytes, or for the link to die.
          const drained = await Promise.race([
            new Promise((r) => sock.once('drain', () => r(true))),
            slow.closed.then(() => false),
            sleep(5000).then(() => false),
          ]);
          if (!drained) break;
        }
      }
      // The server serves others meanwhile.
      assert.deepStrictEqual(await other.quest('ping', {}), {});
      sock.resume();
      assert.ok(await slow.waitClose(20000), 'slow reader was disconnected');
      assert.ok(answered < total, `server buffered all ${total} answers for a peer that did not read`);
      t.diagnostic(`slow reader: ${answered} of ${total} answers arrived before the server dropped it`);
      assert.deepStrictEqual(await other.quest('*echo', { still: 'served' }), { still: 'served' });
      const fresh = await fpnn.connect({ port });
      assert.deepStrictEqual(await fresh.quest('ping', {}), {});
      await fresh.close();
      assert.ok(s.alive);
    } finally {
      slow.destroy();
      other.destroy();
      await s.cleanup();
    }
  }, 60000);

  it('max_connections=5: the 6th connection is closed at once, the first five work', async () => {
    const s = await startRtmd({ args: ['--max_connections=5'] });
    extra.push(s);
    const port = s.ports.client_tcp;
    const five = [];
    try {
      for (let i = 0; i < 5; i++) five.push(await fpnn.connect({ port }));
      for (const c of five) assert.deepStrictEqual(await c.quest('ping', {}), {});
      let sixth = null;
      try {
        sixth = await fpnn.connect({ port });
      } catch {
        sixth = null; // refused or reset while connecting: also fine
      }
      if (sixth) {
        const q = sixth.quest('ping', {}, { timeoutMs: 3000 }).then(
          () => 'answered',
          (e) => (e.closed ? 'closed' : 'timeout'),
        );
        assert.ok(await sixth.waitClose(2000), 'the 6th connection is closed at once');
        assert.equal(await q, 'closed');
      }
      for (const c of five) assert.deepStrictEqual(await c.quest('ping', {}), {}, 'the first five still work');
      // A slot freed by a closed connection can be used again.
      await five.shift().close();
      const again = await waitFor(async () => {
        let c;
        try {
          c = await fpnn.connect({ port });
          await c.quest('ping', {}, { timeoutMs: 1000 });
          return c;
        } catch {
          if (c) c.destroy();
          return null;
        }
      }, 3000, 100);
      assert.ok(again, 'a new connection works once one of the five closed');
      five.push(again);
    } finally {
      for (const c of five) c.destroy();
      await s.cleanup();
    }
  });

  it('malformed quests get an error answer or a close, and the server goes on', async () => {
    const raw = (b) => Buffer.from(b);
    const cases = [
      ['payload is a msgpack array', { method: '*echo', payload: raw([0x92, 1, 2]) }],
      ['payload is a msgpack int', { method: '*echo', payload: raw([0x05]) }],
      ['payload is invalid msgpack (0xc1)', { method: '*echo', payload: raw([0xc1]) }],
      ['payload is a truncated map', { method: '*echo', payload: raw([0x83, 0xa1, 0x61]) }],
      ['payload has trailing bytes', { method: '*echo', payload: raw([0x80, 0x80]) }],
      ['payload is a str32 claiming 4 GB', { method: '*echo', payload: raw([0x81, 0xa1, 0x61, 0xdb, 0xff, 0xff, 0xff, 0xff]) }],
      ['JSON payload is not JSON', { method: '*echo', payload: Buffer.from('{"a":'), flag: fpnn.FLAG_JSON }],
      ['JSON payload is an array', { method: '*echo', payload: Buffer.from('[1,2]'), flag: fpnn.FLAG_JSON }],
      ['unknown flag 0x00', { method: 'ping', payload: raw([0x80]), flag: 0 }],
      ['both flags 0xC0', { method: 'ping', payload: raw([0x80]), flag: 0xc0 }],
      ['empty method name', { method: '', payload: raw([0x80]) }],
      ['deeply nested arrays', { method: '*echo', payload: Buffer.concat([raw([0x81, 0xa1, 0x61]), Buffer.alloc(100000, 0x91), raw([0x80])]) }],
    ];
    // A dedicated server, restarted after a crash, so that every case is tried.
    let s = null;
    const problems = [];
    try {
      for (const [name, q] of cases) {
        if (!s || !s.alive) {
          if (s) await s.cleanup();
          s = await startRtmd();
          extra.push(s);
        }
        const c = await fpnn.connect({ port: s.ports.client_tcp, timeoutMs: 3000, autoAnswer: false });
        const seq = 77;
        const answered = new Promise((resolve) => c.once('answer', resolve));
        c.rawWrite(fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, seq, ...q }));
        const outcome = await Promise.race([answered.then((p) => ({ p })), c.closed.then(() => ({ closed: true })), sleep(3000).then(() => ({}))]);
        c.destroy();
        await sleep(50);
        if (!s.alive) {
          problems.push(`${name}: rtmd died (signal ${s.exitSignal}, code ${s.exitCode})`);
          continue;
        }
        if (!outcome.p && !outcome.closed) {
          problems.push(`${name}: neither an answer nor a close within 3 s`);
        } else if (outcome.p) {
          if (outcome.p.seq !== seq) problems.push(`${name}: answer seq ${outcome.p.seq} instead of ${seq}`);
          else if (outcome.p.ss === 0) problems.push(`${name}: answered as a success`);
          else if (typeof fpnn.toNumber(outcome.p.payload.code) !== 'number') problems.push(`${name}: error answer without a code`);
        }
      }
      if (!s.alive) {
        await s.cleanup();
        s = await startRtmd();
        extra.push(s);
      }
      const d = await fpnn.connect({ port: s.ports.client_tcp });
      assert.deepStrictEqual(await d.quest('ping', {}), {});
      await d.close();
      assert.deepStrictEqual(problems, [], `malformed quests handled badly:\n  ${problems.join('\n  ')}`);
    } finally {
      if (s) await s.cleanup();
    }
  }, 90000);

  it('an answer nobody asked for does not break the server', async () => {
    const c = await conn();
    try {
      c.rawWrite(fpnn.encodePacket({ mtype: fpnn.MTYPE_ANSWER, seq: 123456, payload: { stray: true } }));
      c.rawWrite(fpnn.encodePacket({ mtype: fpnn.MTYPE_ANSWER, seq: 123457, status: 1, payload: { code: 20000, ex: 'x', raised: 'y' } }));
      const r = await c.quest('ping', {}).then(
        (v) => v,
        (e) => e,
      );
      if (!(r instanceof Error)) assert.deepStrictEqual(r, {});
    } finally {
      c.destroy();
    }
    assert.ok(srv.alive);
    const d = await conn();
    try {
      assert.deepStrictEqual(await d.quest('ping', {}), {});
    } finally {
      await d.close();
    }
  });

  it('survives a client that disconnects with quests in flight', async () => {
    for (let k = 0; k < 20; k++) {
      const socket = net.connect({ host: '127.0.0.1', port: srv.ports.client_tcp });
      await new Promise((r, j) => socket.once('connect', r).once('error', j));
      const packets = [];
      for (let i = 0; i < 50; i++) packets.push(fpnn.encodePacket({ mtype: 1, method: '*echo', seq: i + 1, payload: { i, s: 'q'.repeat(2000) } }));
      socket.write(Buffer.concat(packets));
      socket.destroy();
    }
    await sleep(200);
    assert.ok(srv.alive);
    const c = await conn();
    try {
      assert.deepStrictEqual(await c.quest('ping', {}), {});
    } finally {
      await c.close();
    }
  });
});
