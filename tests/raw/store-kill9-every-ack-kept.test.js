'use strict';
// Nothing acknowledged is lost, and nothing is stored twice, when rtmd is
// killed with SIGKILL under load, again and again. Senders on the client
// gate (TCP and WebSocket) and on the server gate keep many sendmsg in
// flight, and one more sendroommsg (pushed before its commit, so a patient
// write: docs/performance.md, "Patient writes"); rtmd is killed at a random moment and restarted on the same data
// directory, RTM_KILL9_CYCLES times (4 by default; scripts/kill9.sh runs a
// long campaign). Sends whose answer was lost are retried after the last
// restart with the same mid, as the SDKs retry: each then answers with the
// first mtime if it was stored. At the end every acknowledged message is in
// the store exactly once with the mtime of its answer, and one
// conversation's history, paged through getp2pmsg, holds each exactly once.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fpnn = require('../integration/lib/fpnn');
const { appServer, login, sign, writeProjectsConfig } = require('../integration/lib/rtm');
const { startRtmd, storeRows, makeTempDir, removeTempDir, sleep, sanitizerReports } = require('../integration/lib/rtmd');

const CYCLES = Number(process.env.RTM_KILL9_CYCLES || 4);
const WINDOW = 32; // sends in flight per sender
const P = {
  pid: 82001, secret: 'kill9-loop-82001', history_days: 0, history_max_per_conversation: 0,
  user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0,
};

let dir;
const servers = [];

after(async () => {
  for (const s of servers) await s.cleanup();
  if (dir && !process.env.RTM_KILL9_KEEP) await removeTempDir(dir);
  assert.deepEqual(sanitizerReports(), []);
});

// One sender: a user on a client gate, or the app server on the server gate
// speaking for `from`, or a user sending to room `to`. Mids are its own
// counter, so (from, mid) is unique.
class Sender {
  constructor(kind, from, to) {
    this.kind = kind; // 'tcp' | 'ws' | 'server' | 'room' (over TCP)
    this.from = from;
    this.to = to;
    this.nextMid = 1;
    this.acked = new Map(); // mid -> mtime (BigInt)
    this.unknown = new Set(); // mids whose answer was lost with the link
  }

  payload(mid) {
    const p = { mid: fpnn.int64(mid), mtype: 60, msg: `m${this.from}-${mid}`, attrs: '' };
    p[this.kind === 'room' ? 'rid' : 'to'] = fpnn.int64(this.to);
    if (this.kind === 'server') p.from = fpnn.int64(this.from);
    return p;
  }

  async connect(srv, app) {
    this.app = app;
    this.link = this.kind === 'server' ? app : await login(srv, app, this.from, { transport: this.kind === 'ws' ? 'ws' : 'tcp' });
    if (this.kind === 'room') await this.link.call('enterroom', { rid: fpnn.int64(this.to) });
  }

  // Sends one message (a fresh mid, or a retry of mid); resolves once its
  // outcome is known or the link is gone.
  async sendOnce(mid, quest = this.kind === 'server' ? sign(this.app.project, 'sendmsg', this.payload(mid)) : this.payload(mid)) {
    try {
      const answer = await this.link.client.quest(this.kind === 'room' ? 'sendroommsg' : 'sendmsg', quest, { timeoutMs: 20000 });
      this.acked.set(mid, BigInt(fpnn.toBigInt(answer.mtime)));
      this.unknown.delete(mid);
    } catch (e) {
      if (!(e instanceof fpnn.FpnnAnswerError)) {
        this.unknown.add(mid);
        return;
      }
      // An identical resend whose salt rtmd already stored: sign again.
      if (e.code === 200006 && this.kind === 'server') return this.sendOnce(mid);
      throw e;
    }
  }

  // Keeps WINDOW sends in flight until the link closes.
  async pump() {
    const lanes = Array.from({ length: WINDOW }, async () => {
      while (!this.link.client.isClosed) await this.sendOnce(this.nextMid++);
    });
    await Promise.all(lanes);
  }
}

async function startServer(conf, dataDir) {
  const srv = await startRtmd({ config: conf, dataDir, args: ['--log_level=warn'] });
  servers.push(srv);
  const project = srv.projects.find((p) => p.pid === String(P.pid));
  const app = await appServer(srv, { project });
  return { srv, app };
}


test(`every acknowledged message survives ${CYCLES} kill -9 cycles exactly once`, { timeout: 60000 + CYCLES * 30000 }, async () => {
  dir = await makeTempDir();
  const conf = writeProjectsConfig(dir, [P]);
  const dataDir = path.join(dir, 'data');
  const senders = [new Sender('tcp', 5001, 6001), new Sender('tcp', 5002, 6002), new Sender('ws', 5003, 6003),
    new Sender('server', 5004, 6004), new Sender('room', 5005, 7005)];

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const { srv, app } = await startServer(conf, dataDir);
    for (const s of senders) await s.connect(srv, app);
    const pumps = senders.map((s) => s.pump());
    await sleep(300 + Math.floor(Math.random() * 900));
    assert.equal(await srv.stop('SIGKILL'), 'SIGKILL');
    await Promise.all(pumps);
    for (const s of senders) if (s.link !== app) await s.link.client.destroy();
    await app.client.destroy();
  }

  // The last start: every send whose outcome was lost is retried.
  const { srv, app } = await startServer(conf, dataDir);
  for (const s of senders) {
    await s.connect(srv, app);
    for (const mid of [...s.unknown]) await s.sendOnce(mid);
    assert.equal(s.unknown.size, 0, `sender ${s.from}: every retry answered`);
  }

  // History through the protocol: the server-gate conversation, page by page.
  const server = senders[3];
  const seen = new Map();
  let lastid;
  for (;;) {
    const q = { uid: fpnn.int64(server.from), ouid: fpnn.int64(server.to), desc: false, num: 20 };
    if (lastid !== undefined) q.lastid = lastid;
    const page = await app.call('getp2pmsg', q);
    for (const m of page.msgs) {
      const mid = Number(fpnn.toBigInt(m[3]));
      assert.equal(seen.has(mid), false, `mid ${mid} twice in history`);
      seen.set(mid, BigInt(fpnn.toBigInt(m[7])));
    }
    if (page.msgs.length < 20) break;
    lastid = page.lastid;
  }
  for (const [mid, mtime] of server.acked) assert.equal(seen.get(mid), mtime, `history has mid ${mid} with its mtime`);
  assert.equal(seen.size, server.acked.size, 'history holds the acknowledged messages and no others');

  for (const s of senders) if (s.link !== app) await s.link.close();
  await app.close();
  assert.equal(await srv.stop('SIGTERM'), 0, srv.diagnostics());

  // Every acknowledged message in the store, once, with its mtime.
  const rows = await storeRows(dataDir, `SELECT from_uid, mid, mtime FROM messages WHERE pid = ${P.pid}`);
  const stored = new Map();
  for (const [from, mid, mtime] of rows) {
    const key = `${from}/${mid}`;
    assert.equal(stored.has(key), false, `${key} stored twice`);
    stored.set(key, BigInt(mtime));
  }
  let total = 0;
  for (const s of senders) {
    assert.ok(s.acked.size > 0, `sender ${s.from} (${s.kind}) had messages acknowledged`);
    total += s.acked.size;
    for (const [mid, mtime] of s.acked) assert.equal(stored.get(`${s.from}/${mid}`), mtime, `${s.from}/${mid} kept`);
  }
  assert.equal(stored.size, total, 'nothing stored that was not acknowledged in the end');
  assert.ok(total > CYCLES * 100, `${total} messages acknowledged`);
  console.log(`kill -9 cycles: ${CYCLES}, acknowledged messages: ${total}, all stored exactly once`);
});
