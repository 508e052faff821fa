'use strict';
// Translation (modules/translate.c): setlang and auth's lang store a
// user's language; translate on both gates, with the SDKs' payloads, goes
// to the project's LibreTranslate-API server (a small one in this test,
// speaking POST /translate) and answers {source, target, sourceText,
// targetText}; answers are cached; the backend's failures (down, slow,
// HTTP 500, not JSON, not its JSON) are errors of their own; requests in
// flight are bounded; without translate_url: 200060. Text chat pushed to
// number-id sessions carries msg as the map {source, target, sourceText,
// targetText} the Unity and Android SDKs read, translated into the
// receiver's language when it has one (and the project a backend);
// string-id (RTS) sessions, listeners and history keep the string.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const fpnn = require('./lib/fpnn');
const { login, expectCode, startWithProjects, stopChecked, chatMap, pushText, recordPushes, answerPushes, appServer } = require('./lib/rtm');
const { withLogs, waitFor, storeRows, sleep } = require('./lib/rtmd');
const { scrapeNodes } = require('./lib/http');

const I = fpnn.int64;
let midSeq = 0;
const freshMid = () => I(Date.now() * 1000 + (midSeq++ % 1000));
const RTS_APP_ID = 'TrnRtsApp0123456789abcde';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function closeServer(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

// A port nothing listens on.
async function deadPort() {
  const s = net.createServer();
  const port = await listen(s);
  await closeServer(s);
  return port;
}

describe('translate', () => {
  let srv, apps, backend, held;
  const requests = []; // the JSON bodies the backend got
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => [srv], fn));
  const ON = { pid: 85001, secret: 'translate-on-85001', translate_api_key: 'lt-key-1', translate_timeout_ms: 1000,
    translate_max_inflight: 2 };
  const OFF = { pid: 85002, secret: 'translate-off-85002', app_id: RTS_APP_ID, app_key: 'translate-rts-key' };
  const DOWN = { pid: 85003, secret: 'translate-down-85003' };

  before(async () => {
    held = [];
    // The LibreTranslate HTTP API, as far as rtmd speaks it: POST
    // /translate {q, source, target, format, api_key} -> {translatedText,
    // detectedLanguage: {language, confidence}}. Some texts ask for a
    // failure.
    backend = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        let body = null;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = null;
        }
        requests.push({ url: req.url, type: req.headers['content-type'], body });
        if (req.method !== 'POST' || req.url !== '/translate' || !body) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'bad request' }));
          return;
        }
        const q = body.q;
        if (q === 'http 500') {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'broken' }));
        } else if (q === 'not json') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('<html>surprise</html>');
        } else if (q === 'wrong json') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ translatedText: 42 }));
        } else if (q === 'slow') {
          // never answered: rtmd's timeout ends it
        } else if (q.startsWith('hold')) {
          held.push(() => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ translatedText: `held ${q}` }));
          });
        } else {
          const detected = body.source === 'auto' ? { language: 'en', confidence: 90 } : undefined;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ translatedText: `[${body.target}] ${q}`, ...(detected ? { detectedLanguage: detected } : {}) }));
        }
      });
    });
    const port = await listen(backend);
    ON.translate_url = `http://127.0.0.1:${port}/`;
    DOWN.translate_url = `http://127.0.0.1:${await deadPort()}`;
    const started = await startWithProjects([ON, OFF, DOWN]);
    srv = started.srv;
    apps = {};
    started.projects.forEach((p, i) => {
      apps[p.pid] = started.apps[i];
    });
  });

  after(async () => {
    for (const h of held) h();
    await stopChecked(srv, Object.values(apps));
    await closeServer(backend);
  });

  const app = (p) => apps[String(p.pid)];
  const storedLang = async (p, uid) => {
    const rows = await storeRows(srv.dataDir, `SELECT lang FROM user_langs WHERE pid = ${p.pid} AND uid = ${uid}`);
    return rows.length ? rows[0][0] : null;
  };

  it('setlang stores the language ("" clears it); a bad code is 10010, a missing one 10009', async () => {
    for (const transport of ['tcp', 'ws']) {
      const uid = transport === 'tcp' ? 101 : 102;
      const u = await login(srv, app(ON), uid, { transport });
      try {
        assert.deepEqual(await u.call('setlang', { lang: 'zh-CHS' }), {});
        assert.equal(await storedLang(ON, uid), 'zh-CHS');
        assert.deepEqual(await u.call('setlang', { lang: 'pt-BR' }), {});
        assert.equal(await storedLang(ON, uid), 'pt-BR');
        for (const bad of ['en us', 'e/n', '-en', 'x'.repeat(16), 'ünï', 'en\u0000']) {
          await expectCode(u.call('setlang', { lang: bad }), 10010);
        }
        await expectCode(u.call('setlang', { lang: 5 }), 10010);
        await expectCode(u.call('setlang', {}), 10009);
        assert.equal(await storedLang(ON, uid), 'pt-BR');
        assert.deepEqual(await u.call('setlang', { lang: '' }), {});
        assert.equal(await storedLang(ON, uid), null);
        // the JSON form
        assert.deepEqual(await u.client.quest('setlang', { lang: 'en' }, { json: true }), {});
        assert.equal(await storedLang(ON, uid), 'en');
      } finally {
        await u.close();
      }
    }
    // setlang is the client's own: the server gate does not have it
    await expectCode(app(ON).call('setlang', { lang: 'en' }), 20004);
  });

  it('auth with a valid lang stores it; an invalid one is ignored and the login goes on', async () => {
    const u = await login(srv, app(ON), 111, { lang: 'fr' });
    await u.close();
    assert.ok(await waitFor(async () => (await storedLang(ON, 111)) === 'fr', 5000), 'auth lang stored');
    const v = await login(srv, app(ON), 111, { lang: 'not a language' });
    await v.close();
    const w = await login(srv, app(ON), 111, { lang: '' });
    await w.close();
    const x = await login(srv, app(ON), 112, { lang: 'de' });
    await x.close();
    assert.ok(await waitFor(async () => (await storedLang(ON, 112)) === 'de', 5000));
    assert.equal(await storedLang(ON, 111), 'fr');
  });

  it('translate on the client gates (WebSocket SDK payloads) answers {source, target, sourceText, targetText}', async () => {
    for (const transport of ['tcp', 'ws']) {
      const u = await login(srv, app(ON), 121, { transport });
      try {
        let before = requests.length;
        const a = await u.call('translate', { text: `hello ${transport}`, dst: 'zh-CN' });
        assert.deepEqual(a, { source: 'en', target: 'zh-CN', sourceText: `hello ${transport}`, targetText: `[zh-CN] hello ${transport}` });
        assert.equal(requests.length, before + 1);
        const r = requests[before];
        assert.equal(r.url, '/translate');
        assert.equal(r.type, 'application/json');
        assert.deepEqual(r.body, { q: `hello ${transport}`, source: 'auto', target: 'zh-CN', format: 'text', api_key: 'lt-key-1' });

        before = requests.length;
        const b = await u.call('translate', { text: `你好 ${transport}`, dst: 'en', src: 'zh-CN', type: 'chat', profanity: 'censor' });
        assert.deepEqual(b, { source: 'zh-CN', target: 'en', sourceText: `你好 ${transport}`, targetText: `[en] 你好 ${transport}` });
        assert.equal(requests[before].body.source, 'zh-CN');

        // the JSON form
        const j = await u.client.quest('translate', { text: `json ${transport}`, dst: 'fr' }, { json: true });
        assert.deepEqual(j, { source: 'en', target: 'fr', sourceText: `json ${transport}`, targetText: `[fr] json ${transport}` });
      } finally {
        await u.close();
      }
    }
  });

  it('translate on the server gate (Go/Node SDK payloads) with uid', async () => {
    const a = await app(ON).call('translate', { text: 'from the app', dst: 'ja', src: 'en', type: 'mail', profanity: 'off',
      postProfanity: true, uid: I(6) });
    assert.deepEqual(a, { source: 'en', target: 'ja', sourceText: 'from the app', targetText: '[ja] from the app' });
    const b = await app(ON).call('translate', { text: 'no uid', dst: 'ko' }); // the Node SDK without uid
    assert.equal(b.targetText, '[ko] no uid');
    await expectCode(app(ON).call('translate', { text: 'x', dst: 'en', uid: 'me' }), 10010);
  });

  it('bad payloads: 10009 / 10010 before anything is sent', async () => {
    const u = await login(srv, app(ON), 131);
    const before = requests.length;
    try {
      await expectCode(u.call('translate', { dst: 'en' }), 10009);
      await expectCode(u.call('translate', { text: 'x' }), 10009);
      await expectCode(u.call('translate', { text: 1, dst: 'en' }), 10010);
      await expectCode(u.call('translate', { text: 'x', dst: 'en', src: 5 }), 10010);
      await expectCode(u.call('translate', { text: 'x', dst: 'e n' }), 10010);
      await expectCode(u.call('translate', { text: 'x', dst: '' }), 10010);
      await expectCode(u.call('translate', { text: 'x', dst: 'en', postProfanity: 'yes' }), 10010);
      await expectCode(u.call('translate', { text: Buffer.from([0xff, 0xfe]), dst: 'en' }), 10010);
      await expectCode(u.call('translate', { text: 'x'.repeat(16385), dst: 'en' }), 200030);
      assert.equal(requests.length, before);
    } finally {
      await u.close();
    }
  });

  it('answers are cached: the same (src, dst, text) again does not reach the backend', async () => {
    const u = await login(srv, app(ON), 141);
    try {
      const before = requests.length;
      const hits = await scrapeNodes(srv, 'rtmd_translate_cache_hits_total');
      const a = await u.call('translate', { text: 'cache me', dst: 'it' });
      const b = await u.call('translate', { text: 'cache me', dst: 'it' });
      assert.deepEqual(b, a);
      assert.equal(requests.length, before + 1);
      assert.equal(await scrapeNodes(srv, 'rtmd_translate_cache_hits_total'), hits + 1);
      assert.ok(await scrapeNodes(srv, 'rtmd_translate_cache_entries') >= 1);
      // another target, another source: other entries
      await u.call('translate', { text: 'cache me', dst: 'es' });
      await u.call('translate', { text: 'cache me', dst: 'it', src: 'en' });
      assert.equal(requests.length, before + 3);
    } finally {
      await u.close();
    }
  });

  it('backend failures: HTTP 500, not JSON, wrong JSON (200097), too slow (200095), down (200096)', async () => {
    const u = await login(srv, app(ON), 151);
    try {
      let e = await expectCode(u.call('translate', { text: 'http 500', dst: 'en' }), 200097);
      assert.match(e.ex, /HTTP 500/);
      e = await expectCode(u.call('translate', { text: 'not json', dst: 'en' }), 200097);
      await expectCode(u.call('translate', { text: 'wrong json', dst: 'en' }), 200097);
      await expectCode(u.call('translate', { text: 'slow', dst: 'en' }), 200095);
      // failures are not cached
      const before = requests.length;
      await expectCode(u.call('translate', { text: 'http 500', dst: 'en' }), 200097);
      assert.equal(requests.length, before + 1);
      // and the server goes on
      assert.equal((await u.call('translate', { text: 'after', dst: 'en' })).targetText, '[en] after');
    } finally {
      await u.close();
    }
    const d = await login(srv, app(DOWN), 152);
    try {
      await expectCode(d.call('translate', { text: 'x', dst: 'en' }), 200096);
    } finally {
      await d.close();
    }
  });

  it('at most translate_max_inflight requests of a project in flight: 200010 past it', async () => {
    const u = await login(srv, app(ON), 161);
    try {
      const first = u.call('translate', { text: 'hold 1', dst: 'en' });
      const second = u.call('translate', { text: 'hold 2', dst: 'en' });
      assert.ok(await waitFor(() => held.length >= 2, 5000), 'both reached the backend');
      await expectCode(u.call('translate', { text: 'third', dst: 'en' }), 200010);
      for (const h of held.splice(0)) h();
      assert.equal((await first).targetText, 'held hold 1');
      assert.equal((await second).targetText, 'held hold 2');
      assert.equal((await u.call('translate', { text: 'third', dst: 'en' })).targetText, '[en] third');
    } finally {
      await u.close();
    }
  });

  it('without translate_url: 200060 on both gates, after the payload checks', async () => {
    const u = await login(srv, app(OFF), 171);
    try {
      const e = await expectCode(u.call('translate', { text: 'hello', dst: 'zh-CN' }), 200060);
      assert.match(e.ex, /translate is not enabled/);
      await expectCode(u.call('translate', { text: 'hello' }), 10009);
      // setlang works without a backend: the language is the user's
      assert.deepEqual(await u.call('setlang', { lang: 'en' }), {});
    } finally {
      await u.close();
    }
    await expectCode(app(OFF).call('translate', { text: 'hello', dst: 'en', uid: I(1) }), 200060);
  });

  // ---- chat pushes ----

  const byMid = (method, mid) => (q) => q.method === method && fpnn.toBigInt(q.payload.mid) === fpnn.toBigInt(mid);
  const translated = (text, target, source = 'en') => ({ source, target, sourceText: text, targetText: `[${target}] ${text}` });
  const asked = (q) => requests.filter((r) => r.body && r.body.q === q).map((r) => r.body.target).sort();
  const nodes = () => (srv.nodes ? srv.nodes.length : 1);
  const deepEqualish = (x, y) => {
    try {
      assert.deepEqual(x, y);
      return true;
    } catch {
      return false;
    }
  };

  async function rtsLogin(app, uid) {
    const { token } = await app.call('getrtstoken', { uid });
    // one node for both: string ids across nodes are the cl.* runs of rts-*.test.js' subject
    const c = await fpnn.connect({ port: srv.nodes[0].ports.client_tcp, transport: 'tcp', timeoutMs: 5000 });
    answerPushes(c);
    recordPushes(c);
    assert.deepEqual(await c.quest('auth', { appid: RTS_APP_ID, uid, token }), { ok: true });
    return c;
  }

  it('text chat: number-id sessions get the map, RTS sessions, listeners and history the string', async () => {
    await app(OFF).call('addgroupmembers', { gid: I(2001), uids: [I(201), I(202)] });
    const a = await login(srv, app(OFF), 201);
    const b = await login(srv, app(OFF), 202, { transport: 'ws' });
    const l = await appServer(srv, { project: srv.projects.find((p) => p.pid === String(OFF.pid)) });
    answerPushes(l.client);
    recordPushes(l.client);
    try {
      await l.call('addlisten', { uids: [I(202)] });
      // the listen set reaches every node: a probe is heard
      const heard = async () => {
        const probe = freshMid();
        await a.call('sendmsg', { to: I(202), mid: probe, mtype: 7, msg: 'probe', attrs: '' });
        await sleep(50);
        return l.client.pushes.some(byMid('pushmsg', probe));
      };
      assert.ok(await waitFor(heard, 5000), 'the listener hears b');
      let mid = freshMid();
      await a.call('sendmsg', { to: I(202), mid, mtype: 30, msg: 'hello map', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushmsg', mid))).payload.msg, chatMap('hello map'));
      assert.equal((await l.client.waitPush(byMid('pushmsg', mid))).payload.msg, 'hello map', 'listeners keep the string');
      // other mtypes, and binary chat, as sent
      mid = freshMid();
      await a.call('sendmsg', { to: I(202), mid, mtype: 32, msg: 'a command', attrs: '' });
      assert.equal((await b.waitPush(byMid('pushmsg', mid))).payload.msg, 'a command');
      mid = freshMid();
      await a.call('sendmsg', { to: I(202), mid, mtype: 30, msg: Buffer.from([1, 2]), attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushmsg', mid))).payload.msg, Buffer.from([1, 2]));
      // group and broadcast: the map too
      mid = freshMid();
      await a.call('sendgroupmsg', { gid: I(2001), mid, mtype: 30, msg: 'to the group', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushgroupmsg', mid))).payload.msg, chatMap('to the group'));
      mid = freshMid();
      await app(OFF).call('broadcastmsg', { from: I(9), mid, mtype: 30, msg: 'to all', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushbroadcastmsg', mid))).payload.msg, chatMap('to all'));
      // history keeps the text
      const h = await app(OFF).call('getp2pmsg', { uid: I(201), ouid: I(202), desc: true, num: 10 });
      assert.ok(h.msgs.some((m) => m[5] === 'hello map'), 'history has the string');
    } finally {
      await a.close();
      await b.close();
      await l.close();
    }
    // RTS (string-id) sessions, as the RTS SDK sends chat (mtype 30): the string
    const x = await rtsLogin(app(OFF), 'trn.x');
    const y = await rtsLogin(app(OFF), 'trn.y');
    try {
      const mid = freshMid();
      await x.quest('sendmsg', { to: 'trn.y', mid, mtype: 30, msg: 'hi y' });
      const p = await y.waitPush(byMid('pushmsg', mid));
      assert.equal(p.payload.msg, 'hi y');
      assert.equal(p.payload.from, 'trn.x');
    } finally {
      await x.destroy();
      await y.destroy();
    }
  });

  it('chat pushed to receivers with a language is translated, once per message and language; the others at once', async () => {
    await app(ON).call('addgroupmembers', { gid: I(3001), uids: [301, 302, 303, 304, 305].map(I) });
    const a = await login(srv, app(ON), 301);
    const b = await login(srv, app(ON), 302); // setlang de
    const c = await login(srv, app(ON), 303); // no language
    const d = await login(srv, app(ON), 304, { lang: 'fr', transport: 'ws' }); // auth's lang
    const e = await login(srv, app(ON), 305); // setlang de too
    try {
      assert.deepEqual(await b.call('setlang', { lang: 'de' }), {});
      assert.deepEqual(await e.call('setlang', { lang: 'de' }), {});
      let mid = freshMid();
      await a.call('sendgroupmsg', { gid: I(3001), mid, mtype: 30, msg: 'good morning', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushgroupmsg', mid))).payload.msg, translated('good morning', 'de'));
      assert.deepEqual((await e.waitPush(byMid('pushgroupmsg', mid))).payload.msg, translated('good morning', 'de'));
      assert.deepEqual((await d.waitPush(byMid('pushgroupmsg', mid))).payload.msg, translated('good morning', 'fr'));
      assert.deepEqual((await c.waitPush(byMid('pushgroupmsg', mid))).payload.msg, chatMap('good morning'));
      // one request per language on each node that has such receivers
      const got = asked('good morning');
      assert.ok(got.filter((t) => t === 'de').length >= 1 && got.filter((t) => t === 'de').length <= nodes(), `de asked ${got}`);
      assert.ok(got.filter((t) => t === 'fr').length === 1, `fr asked ${got}`);
      assert.equal(got.length <= nodes() + 1, true, `asked ${got}`);
      // p2p: translated for the receiver; the same text again from the cache
      mid = freshMid();
      await a.call('sendmsg', { to: I(302), mid, mtype: 30, msg: 'good morning', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushmsg', mid))).payload.msg, translated('good morning', 'de'));

      // a translation on its way does not hold back receivers without a language
      mid = freshMid();
      const heldBefore = held.length;
      await a.call('sendgroupmsg', { gid: I(3001), mid, mtype: 30, msg: 'hold chat', attrs: '' });
      assert.deepEqual((await c.waitPush(byMid('pushgroupmsg', mid))).payload.msg, chatMap('hold chat'));
      assert.ok(await waitFor(() => held.length > heldBefore, 5000), 'the translation reached the backend');
      await sleep(100);
      assert.equal(b.pushes.filter(byMid('pushgroupmsg', mid)).length, 0, 'b waits for its translation');
      for (const h of held.splice(heldBefore)) h();
      const hb = await b.waitPush(byMid('pushgroupmsg', mid));
      assert.deepEqual(hb.payload.msg, { source: '', target: 'de', sourceText: 'hold chat', targetText: 'held hold chat' });

      // a failed translation is pushed untranslated
      mid = freshMid();
      await a.call('sendmsg', { to: I(302), mid, mtype: 30, msg: 'http 500', attrs: '' });
      assert.deepEqual((await b.waitPush(byMid('pushmsg', mid))).payload.msg, chatMap('http 500'));

      // setlang "" clears: untranslated again
      assert.deepEqual(await e.call('setlang', { lang: '' }), {});
      mid = freshMid();
      await a.call('sendmsg', { to: I(305), mid, mtype: 30, msg: 'cleared', attrs: '' });
      assert.deepEqual((await e.waitPush(byMid('pushmsg', mid))).payload.msg, chatMap('cleared'));
      assert.deepEqual(asked('cleared'), []);
    } finally {
      for (const u of [a, b, c, d, e]) await u.close();
    }
  });

  it('a login without lang takes the stored language; projects without a backend push untranslated', async () => {
    const first = await login(srv, app(ON), 401);
    assert.deepEqual(await first.call('setlang', { lang: 'ja' }), {});
    await first.close();
    const a = await login(srv, app(ON), 402);
    const b = await login(srv, app(ON), 401); // no lang: read from the store, in the background
    try {
      const welcomed = async () => {
        const mid = freshMid();
        await a.call('sendmsg', { to: I(401), mid, mtype: 30, msg: 'welcome back', attrs: '' });
        return deepEqualish((await b.waitPush(byMid('pushmsg', mid))).payload.msg, translated('welcome back', 'ja'));
      };
      assert.ok(await waitFor(welcomed, 5000), 'pushed in the stored language');
    } finally {
      await a.close();
      await b.close();
    }
    const x = await login(srv, app(OFF), 403, { lang: 'de' });
    const y = await login(srv, app(OFF), 404);
    try {
      const mid = freshMid();
      await y.call('sendmsg', { to: I(403), mid, mtype: 30, msg: 'no backend', attrs: '' });
      assert.deepEqual((await x.waitPush(byMid('pushmsg', mid))).payload.msg, chatMap('no backend'));
      assert.equal(pushText({ msg: chatMap('no backend') }), 'no backend');
    } finally {
      await x.close();
      await y.close();
    }
  });

  it("setlang reaches every session of the user (on a cluster, the user's sessions on the other node)", async () => {
    const a = await login(srv, app(ON), 501);
    const b1 = await login(srv, app(ON), 502);
    const b2 = await login(srv, app(ON), 502); // on a cluster: the other node
    try {
      assert.deepEqual(await b1.call('setlang', { lang: 'ko' }), {});
      // the record reaches the other node (at most a moment later)
      const both = async () => {
        const mid = freshMid();
        await a.call('sendmsg', { to: I(502), mid, mtype: 30, msg: 'to both', attrs: '' });
        const got = await Promise.all([b1, b2].map((b) => b.waitPush(byMid('pushmsg', mid))));
        assert.deepEqual(got[0].payload.msg, translated('to both', 'ko'));
        return deepEqualish(got[1].payload.msg, translated('to both', 'ko'));
      };
      assert.ok(await waitFor(both, 5000), "b's other session pushed in ko");
    } finally {
      for (const u of [a, b1, b2]) await u.close();
    }
  });
});

describe('a bad translate_url at start', () => {
  test('stops rtmd naming the project and why', { timeout: 20000 }, async () => {
    const { makeTempDir, run, rtmdBin } = require('./lib/rtmd');
    const { writeProjectsConfig } = require('./lib/rtm');
    const path = require('node:path');
    const dir = await makeTempDir();
    const args = [`--data_dir=${path.join(dir, 'data')}`, '--listen_host=127.0.0.1', '--client_tcp_port=0',
      '--client_ws_port=0', '--server_tcp_port=0', '--http_port=0'];
    for (const [url, why] of [['ftp://127.0.0.1/x', /only http and https/], ['http://user:pw@127.0.0.1:5000', /a user/],
      ['not a url', /one URL, without spaces or commas/], ['http://127.0.0.1:1, http://127.0.0.1:2', /one URL/],
      ['http://127.0.0.1:5000/?q=1', /a query/]]) {
      const conf = writeProjectsConfig(dir, [{ pid: 85101, secret: 'translate-bad-85101', translate_url: url }]);
      const r = await run(rtmdBin(), [...args, '--config', conf], { timeoutMs: 8000 });
      assert.equal(r.timedOut, false, 'rtmd must refuse to start');
      assert.notEqual(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /ready/);
      assert.match(r.stderr, /project 85101: translate_url: /);
      assert.match(r.stderr, why);
    }
  });
});
