'use strict';
// Quests with the JSON flag: every twoway quest gets an answer packet with
// the JSON flag whose payload is valid UTF-8 JSON, whatever the data behind
// it. Bytes that are not UTF-8 text (a binary message, an attribute, a
// method name) cross into JSON as {"$base64": "..."} and decode back to the
// same bytes; an answer with no JSON form at all is error 20005, itself
// JSON. The walk takes the method list from `*infos` and asks every method
// on every gate that serves it, with binary data stored beforehand, so a
// method that goes silent fails this file.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const rtm = require('../integration/lib/rtm');
const { FPNN_GATES, makeTempDir, startRtmd, withLogs } = require('../integration/lib/rtmd');

const A = 7001;
const B = 7002;
const GID = 8001;
const RID = 9001;
const BIN = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x0a, 0xc3]); // not UTF-8
const BAD_TEXT = Buffer.from([0x68, 0x69, 0xed, 0xa0, 0x80]); // a str with a surrogate: not UTF-8
// Session attributes are kept as C strings (cut at a NUL): no NUL in them.
const ATTR_BIN = Buffer.from([0xff, 0xfe, 0x80, 0x0a, 0xc3]);
const BAD_METHOD = Buffer.from([0x6d, 0xff, 0x0a, 0x6e, 0xc3]);

const utf8 = new TextDecoder('utf-8', { fatal: true });
const mp = (v) => fpnn.encodeMsgpack(v);
const i64 = (v) => mp(fpnn.int64(v));

// msgpack str (or bin) of raw bytes: msgpack-lite only encodes JS strings,
// which are always valid UTF-8.
function mpBytes(bytes, bin = false) {
  assert.ok(bytes.length < 256);
  return Buffer.concat([Buffer.from([bin ? 0xc4 : 0xd9, bytes.length]), bytes]);
}

// A msgpack map of [key, encoded value] entries; a Buffer key is raw str bytes.
function mpMap(entries) {
  const head = Buffer.from([0xde, 0, 0]);
  head.writeUInt16BE(entries.length, 1);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [Buffer.isBuffer(k) ? mpBytes(k) : mp(k), v])]);
}

// The bytes of a {"$base64": ...} value.
function fromBase64(v) {
  assert.ok(v && typeof v === 'object', `expected a {"$base64"} object, got ${JSON.stringify(v)}`);
  assert.deepEqual(Object.keys(v), ['$base64']);
  return Buffer.from(v.$base64, 'base64');
}

// The answer packet of a quest sent with {full: true}, error answers included.
async function answerOf(promise) {
  try {
    return await promise;
  } catch (e) {
    if (e instanceof fpnn.FpnnAnswerError) return e.packet;
    throw e;
  }
}

function assertJsonAnswer(p, what) {
  assert.equal(p.mtype, fpnn.MTYPE_ANSWER, what);
  assert.equal(p.flag, fpnn.FLAG_JSON, `${what}: answer flag`);
  const text = utf8.decode(p.raw); // throws on invalid UTF-8
  assert.equal(typeof JSON.parse(text), 'object', `${what}: answer is not a JSON object`);
}

describe('JSON-flag quests are always answered', () => {
  let srv;
  let app;
  let project;
  const keep = []; // msgpack links that hold the stored state (room, attrs)
  const it = (name, fn) => test(name, { timeout: 120000 }, withLogs(() => srv, fn));

  const connect = (gate, transport) => fpnn.connect({ port: srv.ports[gate], transport, timeoutMs: 5000 });

  async function jsonLogin(c, uid) {
    const token = await app.token(uid);
    const answer = await c.quest('auth', { pid: Number(project.pid), uid, token, version: 'json-walk' }, { json: true });
    assert.equal(answer.ok, true);
  }

  function signJson(method, payload) {
    return rtm.sign(project, method, payload, { json: true });
  }

  // A signed msgpack quest of raw entries on the app-server link.
  function signedRaw(method, entries) {
    const signed = rtm.sign(project, method, {});
    return app.client.quest(method, mpMap([...entries, ...Object.entries(signed).map(([k, v]) => [k, mp(v)])]));
  }

  before(async () => {
    // A project without app_id: several connections per user (multi_login 1).
    srv = await startRtmd({ config: rtm.writeProjectsConfig(await makeTempDir(), [{ pid: 7100, secret: 'json-every-method-secret' }]) });
    project = srv.projects[0];
    app = await rtm.appServer(srv);
    await app.call('addgroupmembers', { gid: fpnn.int64(GID), uids: [fpnn.int64(A), fpnn.int64(B)] });
    const a = await rtm.login(srv, app, A);
    const b = await rtm.login(srv, app, B);
    keep.push(a, b);
    await a.call('enterroom', { rid: fpnn.int64(RID) });
    await b.call('enterroom', { rid: fpnn.int64(RID) });
    const body = (mid) => [['mid', i64(mid)], ['mtype', mp(30)], ['msg', mpBytes(BIN, true)], ['attrs', mpBytes(BAD_TEXT)]];
    await a.call('sendmsg', mpMap([['to', i64(B)], ...body(1)]));
    await a.call('sendgroupmsg', mpMap([['gid', i64(GID)], ...body(2)]));
    await a.call('sendroommsg', mpMap([['rid', i64(RID)], ...body(3)]));
    await signedRaw('broadcastmsg', [['from', i64(A)], ...body(4)]);
    await b.call('addattrs', mpMap([['attrs', mpMap([['bin', mpBytes(ATTR_BIN, true)], ['text', mpBytes(BAD_TEXT)]])]]));
  });

  after(async () => {
    for (const u of keep) if (!u.client.isClosed) await u.close();
    if (srv) await rtm.stopChecked(srv, [app]);
  });

  it('binary messages read back with the JSON flag come as base64 objects, byte for byte', async () => {
    for (const [gate, transport] of FPNN_GATES.filter(([g]) => g !== 'server_tcp')) {
      const c = await connect(gate, transport);
      try {
        await jsonLogin(c, B);
        const one = await c.quest('getmsg', { mid: 1, from: A, xid: B, type: 1 }, { json: true });
        assert.deepEqual(fromBase64(one.msg), BIN);
        assert.deepEqual(fromBase64(one.attrs), BAD_TEXT);
        const reads = [
          ['getp2pmsg', { ouid: A }],
          ['getgroupmsg', { gid: GID }],
          ['getroommsg', { rid: RID }],
          ['getbroadcastmsg', {}],
        ];
        for (const [method, args] of reads) {
          const h = await c.quest(method, { ...args, num: 10, desc: true }, { json: true });
          assert.ok(h.msgs.length >= 1, `${gate} ${method}: no message`);
          assert.deepEqual(fromBase64(h.msgs[0][5]), BIN, `${gate} ${method}: msg`);
          assert.deepEqual(fromBase64(h.msgs[0][6]), BAD_TEXT, `${gate} ${method}: attrs`);
        }
        const attrs = await c.quest('getattrs', {}, { json: true });
        const withBin = attrs.attrs.find((s) => s.bin !== undefined);
        assert.ok(withBin, 'the session with binary attributes is listed');
        assert.deepEqual(fromBase64(withBin.bin), ATTR_BIN);
        assert.deepEqual(fromBase64(withBin.text), BAD_TEXT);
      } finally {
        await c.destroy();
      }
    }
    const s = await connect('server_tcp', 'tcp');
    try {
      const one = await s.quest('getmsg', signJson('getmsg', { mid: 1, from: A, xid: B, type: 1 }), { json: true });
      assert.deepEqual(fromBase64(one.msg), BIN);
    } finally {
      await s.destroy();
    }
  });

  it('an answer with no JSON form is error 20005 in JSON, and the link lives on', async () => {
    // Both sessions on one node: on a cluster getattrs lists another
    // node's sessions only once that node's presence of the user arrived.
    const node = srv.node(0);
    const other = await rtm.login(node, app, B);
    const c = await fpnn.connect({ port: node.ports.client_tcp, transport: 'tcp', timeoutMs: 5000 });
    try {
      // An attribute name that is not UTF-8 text has no JSON name.
      await other.call('addattrs', mpMap([['attrs', mpMap([[Buffer.from([0x6b, 0xff]), mp('v')]])]]));
      await jsonLogin(c, B);
      const p = await answerOf(c.quest('getattrs', {}, { json: true, full: true }));
      assertJsonAnswer(p, 'getattrs');
      assert.equal(p.ss, 1);
      assert.equal(p.payload.code, 20005);
      assert.equal(p.payload.raised, 'getattrs');
      assert.deepEqual(await c.quest('*ping', {}, { json: true }), {});
    } finally {
      await c.destroy();
      await other.close();
    }
  });

  for (const [gate, transport] of FPNN_GATES) {
    it(`${gate}: a method name that is not UTF-8 is answered 20004 in JSON, raised as base64`, async () => {
      const c = await connect(gate, transport);
      try {
        const p = await answerOf(c.quest(BAD_METHOD, {}, { json: true, full: true }));
        assertJsonAnswer(p, 'bad method name');
        assert.equal(p.ss, 1);
        assert.equal(p.payload.code, 20004);
        assert.deepEqual(fromBase64(p.payload.raised), BAD_METHOD);
      } finally {
        await c.destroy();
      }
    });

    it(`${gate}: a JSON-flag quest whose payload is not JSON closes the link (malformed input)`, async () => {
      const c = await connect(gate, transport);
      try {
        c.rawWrite(fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*ping', seq: 1, flag: fpnn.FLAG_JSON, payload: Buffer.from('{"a":') }));
        assert.equal(await c.waitClose(3000), true);
        assert.equal(c.receivedPackets, 0);
      } finally {
        await c.destroy();
      }
    });
  }

  it('every registered method answers a JSON quest on every gate that serves it', async () => {
    const info = await connect('client_tcp', 'tcp');
    const { methods } = await info.quest('*infos', {}, { json: true });
    await info.destroy();
    const names = Object.keys(methods).sort();
    for (const known of ['auth', 'sendmsg', 'getmsg', 'getattrs', 'gettoken', '*echo']) {
      assert.ok(names.includes(known), `*infos lists ${known}`);
    }
    // Arguments most methods understand, pointing at the stored binary data.
    const args = {
      uid: B, ouid: A, to: A, tos: [A], from: A, gid: GID, rid: RID, uids: [A], gids: [GID], rids: [RID],
      mid: 1, xid: B, type: 1, num: 10, desc: true, mtype: 30, msg: 'walk', attrs: '', btime: 60,
      online: true, clear: false, ce: 1, p2p: true, group: true, room: true, ev: true, events: ['login'],
    };
    const silent = [];
    // The client gates first: the server gate's walk blacklists and kicks B.
    for (const [gate, transport] of FPNN_GATES) {
      const served = names.filter((n) => methods[n].includes(gate));
      assert.ok(served.length > 0, `${gate} serves methods`);
      for (const name of served) {
        const c = await connect(gate, transport);
        try {
          let payload = args;
          if (gate === 'server_tcp') payload = signJson(name, args);
          else if (name === 'auth') payload = { pid: Number(project.pid), uid: B, token: await app.token(B), version: 'json-walk' };
          else await jsonLogin(c, B);
          const p = await answerOf(c.quest(name, payload, { json: true, full: true }));
          assertJsonAnswer(p, `${gate} ${name}`);
        } catch (e) {
          silent.push(`${gate} ${name}: ${e.message}`);
        } finally {
          await c.destroy();
        }
      }
    }
    assert.deepEqual(silent, [], `quests without a JSON answer:\n${silent.join('\n')}`);
  });
});
