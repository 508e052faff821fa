'use strict';
// Sensitive words (modules/moderation/): profanity and tcheck with the
// SDKs' payloads on both gates, answered from the project's list (200060
// without one); chat messages (mtype 30) masked before they are stored
// and pushed, on every send method and gate, or refused with 200054 under
// sensitive_words_policy = refuse, with nothing stored or pushed; SIGHUP
// reads the lists again (a bad file keeps the old list); a bad file at
// start stops rtmd naming the file and line. On a cluster every node
// reads the list, and SIGHUP goes to each.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { appServer, login, expectCode, writeProjectsConfig, stopChecked, pushText } = require('./lib/rtm');
const { startRtmd, withLogs, makeTempDir, run, rtmdBin, waitFor, sleep } = require('./lib/rtmd');

const I = fpnn.int64;
const num = (v) => fpnn.toNumber(v);
let midSeq = 0;
const freshMid = () => I(Date.now() * 1000 + (midSeq++ % 1000));

const WORDS = ['# the test list', '', 'badword', 'Bad Phrase', 'Привет', '傻瓜', 'σοφος'].join('\n');
const MASK = { pid: 84001, secret: 'moderation-mask-84001' };
const REFUSE = { pid: 84002, secret: 'moderation-refuse-84002', sensitive_words_policy: 'refuse' };
const NONE = { pid: 84003, secret: 'moderation-none-84003' };

describe('sensitive words', () => {
  let srv, apps;
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => [srv], fn));
  const app = (p) => apps[String(p.pid)];

  before(async () => {
    const dir = await makeTempDir();
    const list = path.join(dir, 'words.txt');
    fs.writeFileSync(list, WORDS);
    const conf = writeProjectsConfig(dir, [{ ...MASK, sensitive_words: list }, { ...REFUSE, sensitive_words: list }, NONE]);
    srv = await startRtmd({ config: conf });
    apps = {};
    for (const p of [MASK, REFUSE, NONE]) {
      apps[String(p.pid)] = await appServer(srv, { project: srv.projects.find((x) => x.pid === String(p.pid)) });
    }
  });

  after(async () => {
    await stopChecked(srv, Object.values(apps));
  });

  it('profanity (WebSocket/Unity client payloads, Go/Java server payloads) answers the masked text', async () => {
    for (const transport of ['tcp', 'ws']) {
      const u = await login(srv, app(MASK), 501, { transport });
      try {
        assert.deepEqual(await u.call('profanity', { text: 'a BADWORD and a bad phrase, ПРИВЕТ 傻瓜!' }),
          { text: 'a ******* and a **********, ****** **!', classification: [] });
        assert.deepEqual(await u.call('profanity', { text: 'all clean', classify: true }),
          { text: 'all clean', classification: [] });
        await expectCode(u.call('profanity', {}), 10009);
        await expectCode(u.call('profanity', { text: 'x', classify: 'yes' }), 10010);
      } finally {
        await u.close();
      }
    }
    assert.deepEqual(await app(MASK).call('profanity', { text: 'ΣΟΦΟΣ badword', classify: false, uid: I(6) }),
      { text: '***** *******', classification: [] });
    await expectCode(app(MASK).call('profanity', { text: 'x', uid: 'me' }), 10010);
    // the JSON form, signed as a JSON client does
    assert.deepEqual(await app(MASK).call('profanity', { text: 'BadWord' }, { json: true }),
      { text: '*******', classification: [] });
  });

  it('tcheck answers result 0, or 2 with the masked text and the words as written in the list', async () => {
    for (const transport of ['tcp', 'ws']) {
      const u = await login(srv, app(MASK), 502, { transport });
      try {
        assert.deepEqual(await u.call('tcheck', { text: 'nothing to see' }), { result: 0 });
        const r = await u.call('tcheck', { text: 'привет, BAD PHRASE badword 傻瓜' });
        assert.deepEqual(r, { result: 2, text: '******, ********** ******* **',
          wlist: ['Привет', 'Bad Phrase', 'badword', '傻瓜'] });
        await expectCode(u.call('tcheck', {}), 10009);
        await expectCode(u.call('tcheck', { text: 5 }), 10010);
      } finally {
        await u.close();
      }
    }
    assert.deepEqual(await app(MASK).call('tcheck', { text: 'xbadwordx', uid: I(6) }),
      { result: 2, text: 'x*******x', wlist: ['badword'] });
    assert.deepEqual(await app(MASK).call('tcheck', { text: 'fine', uid: I(6) }), { result: 0 });
    await expectCode(app(MASK).call('tcheck', { text: 'x', uid: 1.5 }), 10010);
    // the policy is for messages: the checks answer the same under refuse
    assert.equal(num((await app(REFUSE).call('tcheck', { text: 'badword' })).result), 2);
  });

  it('a project without a list answers 200060 on both gates, after the payload checks', async () => {
    const u = await login(srv, app(NONE), 503);
    try {
      await expectCode(u.call('profanity', { text: 'badword' }), 200060);
      await expectCode(u.call('tcheck', { text: 'badword' }), 200060);
      await expectCode(u.call('tcheck', {}), 10009);
    } finally {
      await u.close();
    }
    await expectCode(app(NONE).call('profanity', { text: 'badword', uid: I(6) }), 200060);
    await expectCode(app(NONE).call('tcheck', { text: 'badword', uid: I(6) }), 200060);
    // and its chat passes as sent
    await app(NONE).call('sendmsg', { from: I(504), to: I(505), mid: freshMid(), mtype: 30, msg: 'badword', attrs: '' });
    const h = await app(NONE).call('getp2pmsg', { uid: I(504), ouid: I(505), desc: true, num: 10 });
    assert.equal(h.msgs[0][5], 'badword');
  });

  it('chat is masked in pushes and history on every send method and gate; other mtypes are not', async () => {
    const a = await login(srv, app(MASK), 511);
    const b = await login(srv, app(MASK), 512, { transport: 'ws' });
    const c = await login(srv, app(MASK), 513);
    const gid = I(84101), rid = I(84102);
    try {
      await app(MASK).call('addgroupmembers', { gid, uids: [I(511), I(512), I(513)] });
      for (const u of [a, b, c]) await u.call('enterroom', { rid });
      const pushed = (u, method, mid) => u.waitPush((q) => q.method === method && fpnn.toBigInt(q.payload.mid) === fpnn.toBigInt(mid));
      const check = async (method, mid, receivers) => {
        for (const u of receivers) assert.equal(pushText((await pushed(u, method, mid)).payload), 'x ******* ******', method);
      };
      const text = 'x BadWord привет';
      let mid = freshMid();
      await a.call('sendmsg', { to: I(512), mid, mtype: 30, msg: text, attrs: '' });
      await check('pushmsg', mid, [b]);
      mid = freshMid();
      await app(MASK).call('sendmsg', { from: I(513), to: I(512), mid, mtype: 30, msg: text, attrs: '' });
      await check('pushmsg', mid, [b]);
      mid = freshMid();
      await a.call('sendmsgs', { tos: [I(512), I(513)], mid, mtype: 30, msg: text, attrs: '' });
      await check('pushmsg', mid, [b, c]);
      mid = freshMid();
      await app(MASK).call('sendmsgs', { from: I(511), tos: [I(512), I(513)], mid, mtype: 30, msg: text, attrs: '' });
      await check('pushmsg', mid, [b, c]);
      mid = freshMid();
      await a.call('sendgroupmsg', { gid, mid, mtype: 30, msg: text, attrs: '' });
      await check('pushgroupmsg', mid, [b, c]);
      mid = freshMid();
      await app(MASK).call('sendgroupmsg', { from: I(511), gid, mid, mtype: 30, msg: text, attrs: '' });
      await check('pushgroupmsg', mid, [b, c]);
      mid = freshMid();
      await a.call('sendroommsg', { rid, mid, mtype: 30, msg: text, attrs: '' });
      await check('pushroommsg', mid, [b, c]);
      mid = freshMid();
      await app(MASK).call('sendroommsg', { from: I(511), rid, mid, mtype: 30, msg: text, attrs: '' });
      await check('pushroommsg', mid, [b, c]);
      mid = freshMid();
      await app(MASK).call('broadcastmsg', { from: I(511), mid, mtype: 30, msg: text, attrs: '' });
      await check('pushbroadcastmsg', mid, [b, c]);
      // a binary chat body is masked the same, and stays binary
      mid = freshMid();
      await a.call('sendmsg', { to: I(512), mid, mtype: 30, msg: Buffer.from('傻瓜!'), attrs: '' });
      const bin = await pushed(b, 'pushmsg', mid);
      assert.ok(Buffer.isBuffer(bin.payload.msg));
      assert.equal(bin.payload.msg.toString(), '**!');
      // bytes that are not UTF-8 are kept; the words around them are masked
      mid = freshMid();
      await a.call('sendmsg', { to: I(512), mid, mtype: 30, msg: Buffer.concat([Buffer.from([0xff]), Buffer.from('badword'), Buffer.from([0xe5, 0x82])]), attrs: '' });
      const odd = await pushed(b, 'pushmsg', mid);
      assert.deepEqual(odd.payload.msg, Buffer.concat([Buffer.from([0xff]), Buffer.from('*******'), Buffer.from([0xe5, 0x82])]));
      // a custom mtype and a cmd (32) are not chat text: untouched
      for (const mtype of [32, 51]) {
        mid = freshMid();
        await a.call('sendmsg', { to: I(512), mid, mtype, msg: text, attrs: '' });
        assert.equal(pushText((await pushed(b, 'pushmsg', mid)).payload), text);
      }

      // History holds what was pushed.
      const p2p = await app(MASK).call('getp2pmsg', { uid: I(511), ouid: I(512), desc: false, num: 20, mtypes: [30] });
      // 511 -> 512: sendmsg, both sendmsgs, the two binary ones
      assert.deepEqual(p2p.msgs.slice(0, 4).map((m) => m[5].toString()), ['x ******* ******', 'x ******* ******', 'x ******* ******', '**!']);
      assert.deepEqual(p2p.msgs[4][5], Buffer.from([0xff, ...Buffer.from('*******'), 0xe5, 0x82]));
      const grp = await app(MASK).call('getgroupmsg', { gid, desc: false, num: 20 });
      assert.deepEqual(grp.msgs.map((m) => m[5]), ['x ******* ******', 'x ******* ******']);
      const room = await app(MASK).call('getroommsg', { rid, desc: false, num: 20 });
      assert.deepEqual(room.msgs.map((m) => m[5]), ['x ******* ******', 'x ******* ******']);
      const bc = await app(MASK).call('getbroadcastmsg', { desc: false, num: 20 });
      assert.deepEqual(bc.msgs.map((m) => m[5]), ['x ******* ******']);
      const other = await app(MASK).call('getp2pmsg', { uid: I(511), ouid: I(512), desc: false, num: 20, mtypes: [32, 51] });
      assert.deepEqual(other.msgs.map((m) => m[5]), [text, text]);
    } finally {
      for (const u of [a, b, c]) await u.close();
    }
  });

  it('under refuse a chat message with a word is answered 200054, and neither stored nor pushed', async () => {
    const a = await login(srv, app(REFUSE), 521);
    const b = await login(srv, app(REFUSE), 522, { transport: 'ws' });
    const gid = I(84201), rid = I(84202);
    try {
      await app(REFUSE).call('addgroupmembers', { gid, uids: [I(521), I(522)] });
      for (const u of [a, b]) await u.call('enterroom', { rid });
      const text = 'hello 傻瓜';
      const m = () => ({ mid: freshMid(), mtype: 30, msg: text, attrs: '' });
      await expectCode(a.call('sendmsg', { to: I(522), ...m() }), 200054);
      await expectCode(app(REFUSE).call('sendmsg', { from: I(521), to: I(522), ...m() }), 200054);
      await expectCode(a.call('sendmsgs', { tos: [I(522), I(523)], ...m() }), 200054);
      await expectCode(app(REFUSE).call('sendmsgs', { from: I(521), tos: [I(522)], ...m() }), 200054);
      await expectCode(a.call('sendgroupmsg', { gid, ...m() }), 200054);
      await expectCode(app(REFUSE).call('sendgroupmsg', { from: I(521), gid, ...m() }), 200054);
      await expectCode(a.call('sendroommsg', { rid, ...m() }), 200054);
      await expectCode(app(REFUSE).call('sendroommsg', { from: I(521), rid, ...m() }), 200054);
      await expectCode(app(REFUSE).call('broadcastmsg', { from: I(521), ...m() }), 200054);
      // clean chat and other mtypes go through
      await a.call('sendmsg', { to: I(522), mid: freshMid(), mtype: 30, msg: 'hello', attrs: '' });
      await a.call('sendmsg', { to: I(522), mid: freshMid(), mtype: 51, msg: text, attrs: '' });
      await b.waitPush((q) => q.method === 'pushmsg' && pushText(q.payload) === text);
      await sleep(200);
      const msgs = b.pushes.filter((q) => q.method.startsWith('push')).map((q) => pushText(q.payload));
      assert.deepEqual(msgs, ['hello', text], 'nothing refused was pushed');
      const p2p = await app(REFUSE).call('getp2pmsg', { uid: I(521), ouid: I(522), desc: false, num: 20 });
      assert.deepEqual(p2p.msgs.map((x) => x[5]), ['hello', text]);
      for (const [method, arg] of [['getgroupmsg', { gid }], ['getroommsg', { rid }], ['getbroadcastmsg', {}]]) {
        const h = await app(REFUSE).call(method, { ...arg, desc: false, num: 20 });
        assert.equal(h.msgs.length, 0, method);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('sensitive words reloaded on SIGHUP', () => {
  let srv, app, dir, list;
  const it = (name, fn) => test(name, { timeout: 60000 }, withLogs(() => [srv], fn));
  const hup = async (pattern) => {
    const marks = srv.nodes.map((n) => n.stderr.length);
    for (const n of srv.nodes) n.proc.kill('SIGHUP');
    for (const [i, n] of srv.nodes.entries()) {
      assert.ok(await waitFor(() => pattern.test(n.stderr.slice(marks[i])), 5000), `node ${i}: ${pattern}\n${n.diagnostics()}`);
    }
  };

  before(async () => {
    dir = await makeTempDir();
    list = path.join(dir, 'words.txt');
    fs.writeFileSync(list, 'alpha\nbeta\n');
    srv = await startRtmd({ config: writeProjectsConfig(dir, [{ ...MASK, sensitive_words: list }]) });
    app = await appServer(srv, { project: srv.projects[0] });
  });

  after(async () => {
    await stopChecked(srv, [app]);
  });

  it('a new file changes the outcome; a bad one keeps the list loaded before', async () => {
    assert.deepEqual(await app.call('tcheck', { text: 'alpha gamma' }), { result: 2, text: '***** gamma', wlist: ['alpha'] });
    fs.writeFileSync(list, '# now\nbeta\ngamma\nδέλτα\n');
    await hup(/moderation: project 84001: 3 sensitive words from .*words\.txt \(2 added, 1 removed\)/);
    assert.deepEqual(await app.call('tcheck', { text: 'alpha gamma' }), { result: 2, text: 'alpha *****', wlist: ['gamma'] });
    const u = await login(srv, app, 531);
    const v = await login(srv, app, 532);
    try {
      const mid = freshMid();
      await u.call('sendmsg', { to: I(532), mid, mtype: 30, msg: 'ΔΈΛΤΑ alpha', attrs: '' });
      const p = await v.waitPush((q) => q.method === 'pushmsg' && fpnn.toBigInt(q.payload.mid) === fpnn.toBigInt(mid));
      assert.equal(pushText(p.payload), '***** alpha');
    } finally {
      await u.close();
      await v.close();
    }
    // line 3 is not UTF-8: logged with the path and line, the old list stays
    fs.writeFileSync(list, Buffer.concat([Buffer.from('alpha\nepsilon\nbad'), Buffer.from([0xff, 0x0a])]));
    await hup(/moderation: project 84001: keeping its 3 sensitive words: .*words\.txt:3: invalid UTF-8/);
    assert.match(srv.stderr, /SIGHUP: module moderation kept what it had/);
    assert.deepEqual(await app.call('tcheck', { text: 'alpha gamma epsilon' }),
      { result: 2, text: 'alpha ***** epsilon', wlist: ['gamma'] });
    // and rtmd still serves
    assert.deepEqual(await app.call('tcheck', { text: 'fine' }), { result: 0 });
  });

  it('the policy and the file follow the configuration; without a file the list goes', async () => {
    fs.writeFileSync(list, 'gamma\n');
    writeProjectsConfig(dir, [{ ...MASK, sensitive_words: list, sensitive_words_policy: 'refuse' }]);
    await hup(/moderation: project 84001: 1 sensitive words from .*words\.txt \(.*\), chat messages refused/);
    const u = await login(srv, app, 541);
    try {
      await expectCode(u.call('sendmsg', { to: I(542), mid: freshMid(), mtype: 30, msg: 'say gamma', attrs: '' }), 200054);
    } finally {
      await u.close();
    }
    const other = path.join(dir, 'words2.txt');
    fs.writeFileSync(other, 'delta\n');
    writeProjectsConfig(dir, [{ ...MASK, sensitive_words: other }]);
    await hup(/moderation: project 84001: 1 sensitive words from .*words2\.txt \(1 added, 1 removed\), chat messages masked/);
    assert.deepEqual(await app.call('tcheck', { text: 'gamma delta' }), { result: 2, text: 'gamma *****', wlist: ['delta'] });
    writeProjectsConfig(dir, [MASK]);
    await hup(/moderation: project 84001: no sensitive-word list any more/);
    await expectCode(app.call('tcheck', { text: 'gamma delta' }), 200060);
  });
});

describe('a bad sensitive-word file at start', () => {
  test('stops rtmd with the project, the file and the line', { timeout: 20000 }, async () => {
    const dir = await makeTempDir();
    const list = path.join(dir, 'words.txt');
    const args = [`--data_dir=${path.join(dir, 'data')}`, '--listen_host=127.0.0.1', '--client_tcp_port=0',
      '--client_ws_port=0', '--server_tcp_port=0', '--http_port=0', '--file_tcp_port=0', '--file_ws_port=0'];
    fs.writeFileSync(list, 'ok\n\n# fine\n' + 'x'.repeat(65) + '\n');
    const conf = writeProjectsConfig(dir, [{ ...MASK, sensitive_words: list }]);
    let r = await run(rtmdBin(), [...args, '--config', conf], { timeoutMs: 8000 });
    assert.equal(r.timedOut, false, 'rtmd must refuse to start');
    assert.notEqual(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /ready/);
    assert.match(r.stderr, /project 84001: sensitive_words: .*words\.txt:4: word longer than 64 characters/);
    // a missing file too
    fs.rmSync(list);
    r = await run(rtmdBin(), [...args, '--config', conf], { timeoutMs: 8000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /project 84001: sensitive_words: .*words\.txt: cannot open/);
    // and a policy that is neither mask nor refuse, at its line
    fs.writeFileSync(list, 'ok\n');
    fs.writeFileSync(conf, `[project]\npid = 84001\nsecret = "${MASK.secret}"\nsensitive_words = "${list}"\nsensitive_words_policy = drop\n`);
    r = await run(rtmdBin(), [...args, '--config', conf], { timeoutMs: 8000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /rtmd\.conf:5: sensitive_words_policy: 'drop' must be mask or refuse/);
  });
});
