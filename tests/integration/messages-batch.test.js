'use strict';
// Many messages in flight at once, as the store's writer takes them in
// runs (on PostgreSQL one run of messages is stored by a few statements
// for all of them): retries mixed in, inside a run and across runs, bodies
// and attrs with every byte, sendmsgs with several receivers. Every answer
// carries the stored row's mtime (a retry the first one's), each message
// is stored once with its bytes as sent, ids are unique and in mtime
// order, p2p_peers holds both directions of every conversation, and no
// retry is pushed again. sendmsgs to thousands of receivers at once makes
// runs longer than one statement takes (4096 rows on PostgreSQL), with a
// retry whose rows fall in both statements. Runs on SQLite here and on PostgreSQL as
// pg.integration.messages-batch.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login } = require('./lib/rtm');
const { sanitizerReports, startRtmd, storeRows, withLogs, sleep, makeTempDir } = require('./lib/rtmd');

const P = { pid: '82001', secret: 'messages-batch-secret-82001' };
const big = (v) => fpnn.toBigInt(v);
const hex = (v) => Buffer.from(v).toString('hex').toUpperCase();

describe('messages in batches', () => {
  let srv;
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => [srv], fn));

  before(async () => {
    const dir = await makeTempDir();
    const conf = path.join(dir, 'rtmd.conf');
    fs.writeFileSync(conf, `[project]\npid = ${P.pid}\nsecret = "${P.secret}"\nuser_msg_rate = 0\n` +
      'user_byte_rate = 0\nproject_msg_rate = 0\nproject_byte_rate = 0\nmax_receivers = 3000\n');
    srv = await startRtmd({ config: conf });
  });

  after(async () => {
    const code = await srv.stop('SIGTERM');
    await srv.cleanup();
    assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    assert.deepEqual(sanitizerReports(), []);
  });

  it('concurrent senders with retries: right mtimes, one row each, ids in mtime order, p2p_peers right', async () => {
    const links = await Promise.all([0, 1, 2, 3].map(() => appServer(srv, { project: P })));
    const senders = [700001, 700002, 700003, 700004, 700005];
    const receivers = [700101, 700102, 700103, 700104, 700105, 700106];
    const online = await login(srv, links[0], receivers[0], { project: P });
    let mid = 9000000000n;
    let n = 0;
    // Bodies and attrs with quotes, backslashes, braces, commas, NUL and
    // invalid UTF-8 (binary), or plain text.
    const body = (k) => (k % 3 === 0 ? Buffer.from([k & 255, 0, 0x22, 0x5c, 0x7b, 0x7d, 0x2c, 255, 0xc3])
      : k % 3 === 1 ? `text "${k}" \\ {a,b} ünï` : '');
    const attrs = (k) => (k % 2 ? `{"k":"${k}\\\\,}"}` : '');
    const make = () => {
      const k = n++;
      const from = senders[k % senders.length];
      const many = k % 7 === 0;
      const tos = many ? receivers.slice(k % 3, (k % 3) + 3) : [receivers[k % receivers.length]];
      return { k, from, tos, many, mid: mid++, msg: body(k), attrs: attrs(k) };
    };
    const send = (m, link) => link.call(m.many ? 'sendmsgs' : 'sendmsg', {
      from: fpnn.int64(m.from),
      ...(m.many ? { tos: m.tos.map(fpnn.int64) } : { to: fpnn.int64(m.tos[0]) }),
      mid: fpnn.int64(m.mid.toString()), mtype: 30, msg: m.msg, attrs: m.attrs,
    }).then((a) => big(a.mtime));

    // Phase 1: originals, each sent twice at once (a retry in the same run
    // or the next one).
    const first = Array.from({ length: 400 }, make);
    const phase1 = await Promise.all(first.flatMap((m, i) => [send(m, links[i % 4]), send(m, links[(i + 1) % 4])]));
    first.forEach((m, i) => {
      m.mtime = phase1[2 * i];
      assert.equal(phase1[2 * i + 1], m.mtime, `message ${m.k}: the retry in flight gets the first mtime`);
    });
    await sleep(5);
    // Phase 2: new messages mixed with retries of stored ones (found by a
    // later run), all at once.
    const second = Array.from({ length: 400 }, make);
    const phase2 = await Promise.all(second.flatMap((m, i) => [send(m, links[i % 4]), send(first[i], links[(i + 2) % 4])]));
    second.forEach((m, i) => {
      m.mtime = phase2[2 * i];
      assert.equal(phase2[2 * i + 1], first[i].mtime, `message ${first[i].k}: a later retry gets the stored mtime`);
      assert.ok(m.mtime >= first[first.length - 1].mtime, 'mtimes do not go back');
    });

    const all = [...first, ...second];
    const rows = await storeRows(srv.dataDir,
      `SELECT id, from_uid, conv_a, conv_b, mid, mtime, hex(msg), hex(attrs), is_binary FROM messages WHERE pid=${P.pid} ORDER BY id`,
      `SELECT id, from_uid, conv_a, conv_b, mid, mtime, upper(encode(msg, 'hex')), upper(encode(attrs, 'hex')), is_binary` +
      ` FROM messages WHERE pid=${P.pid} ORDER BY id`);
    const expected = new Map();
    for (const m of all) {
      for (const to of m.tos) {
        const [a, b] = m.from < to ? [m.from, to] : [to, m.from];
        expected.set(`${m.from}/${a}/${b}/${m.mid}`, m);
      }
    }
    assert.equal(rows.length, expected.size, 'one row per message and receiver, retries not stored');
    let lastId = 0n;
    let lastMtime = 0n;
    for (const r of rows) {
      const id = BigInt(r[0]);
      const mtime = BigInt(r[5]);
      assert.ok(id > lastId, 'ids unique');
      assert.ok(mtime >= lastMtime, 'id order is mtime order');
      lastId = id;
      lastMtime = mtime;
      const m = expected.get(`${r[1]}/${r[2]}/${r[3]}/${r[4]}`);
      assert.ok(m, `row ${r[0]} is a sent message`);
      expected.delete(`${r[1]}/${r[2]}/${r[3]}/${r[4]}`);
      assert.equal(mtime, m.mtime, `message ${m.k}: the answer has the stored mtime`);
      assert.equal(r[6], hex(m.msg), `message ${m.k}: body stored as sent`);
      assert.equal(r[7], hex(m.attrs), `message ${m.k}: attrs stored as sent`);
      assert.equal(r[8], Buffer.isBuffer(m.msg) ? '1' : '0');
    }

    const peers = await storeRows(srv.dataDir, `SELECT uid, peer FROM p2p_peers WHERE pid=${P.pid} ORDER BY uid, peer`);
    const want = new Set();
    for (const m of all) for (const to of m.tos) { want.add(`${m.from}|${to}`); want.add(`${to}|${m.from}`); }
    assert.deepEqual(peers.map((r) => r.join('|')).sort(), [...want].sort(), 'p2p_peers: both directions of every conversation');

    // The online receiver got each of its messages once, retries never.
    const mine = all.filter((m) => m.tos.includes(receivers[0]));
    const pushed = () => online.pushes.filter((q) => q.method === 'pushmsg').map((q) => big(q.payload.mid));
    for (let i = 0; i < 50 && pushed().length < mine.length; i++) await sleep(100);
    await sleep(200); // a copy too many would arrive now
    const got = pushed();
    assert.deepEqual(got.slice().sort(), mine.map((m) => m.mid).sort(), 'each message pushed once');
    await online.close();
    for (const l of links) await l.close();
  });

  it('sendmsgs to thousands at once: rows beyond one statement, retries across them', async () => {
    const app = await appServer(srv, { project: P });
    const from = 710001;
    const tos = Array.from({ length: 3000 }, (_, i) => 720000 + i);
    // Job 3 retries job 2 (same mid, one receiver fewer): while the writer
    // stores the first jobs, jobs 2 to 5 queue into one run, where job 3's
    // rows follow job 2's and fall in its statement and the next. Job 5
    // retries job 0, stored by an earlier batch.
    const retryOf = { 3: 2, 5: 0 };
    const jobs = [0, 1, 2, 3, 4, 5].map((i) => {
      const o = retryOf[i] ?? i;
      return { mid: 9100000000n + BigInt(o), msg: `wide ${o}`, tos: tos.slice(0, 3000 - i) };
    });
    const answers = await Promise.all(jobs.map((j) => app.call('sendmsgs', {
      from: fpnn.int64(from), tos: j.tos.map(fpnn.int64), mid: fpnn.int64(j.mid.toString()), mtype: 30, msg: j.msg, attrs: '',
    }).then((a) => big(a.mtime))));
    for (const [r, o] of Object.entries(retryOf)) assert.equal(answers[r], answers[o], `job ${r}: the retry gets the first mtime`);
    const rows = await storeRows(srv.dataDir,
      `SELECT mid, count(*), min(mtime), max(mtime), count(DISTINCT id) FROM messages WHERE pid=${P.pid} AND from_uid=${from} GROUP BY mid ORDER BY mid`);
    assert.deepEqual(rows.map((r) => r.map(String)), [0, 1, 2, 4].map((i) =>
      [String(jobs[i].mid), String(jobs[i].tos.length), String(answers[i]), String(answers[i]), String(jobs[i].tos.length)]));
    const peers = await storeRows(srv.dataDir, `SELECT count(*) FROM p2p_peers WHERE pid=${P.pid} AND (uid=${from} OR peer=${from})`);
    assert.equal(peers[0][0], String(2 * tos.length));
    await app.close();
  });
});
