// P2Server through the SDK: setServerParams (accepted, refused by the
// allowlist, onServerParamsSetResult), sendServerMessage and
// sendServerBinaryMessage reaching a small HTTP app server and its reply
// coming back in onServerMessageSendResult (string body for text, an
// ArrayBuffer for binary and for a non-UTF-8 reply), and the server's
// codes passed through (no params 200090, URL not allowed 200021).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setup, sameBytes, bytes } from './helpers.mjs';

describe('sdk p2server', () => {
  let ctx, appHttp, port, a;
  const posts = [];
  before(async () => {
    appHttp = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (d) => chunks.push(d));
      req.on('end', () => {
        const json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        posts.push({ url: req.url, json });
        if (req.url === '/rtm/latin1') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.from([0xff, 0xfe, 0x41]));
        } else if (json.type === 'binary') {
          res.writeHead(201, { 'content-type': 'application/octet-stream' });
          res.end(Buffer.from(json.message, 'base64').reverse());
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ echo: json.message, user: json.userId }));
        }
      });
    });
    port = await new Promise((r) => appHttp.listen(0, '127.0.0.1', () => r(appHttp.address().port)));
    ctx = await setup({ p2serverAllow: `http://127.0.0.1:${port}/rtm/` });
    a = await ctx.user('p2s-a');
  });
  after(async () => {
    await ctx.teardown();
    await new Promise((r) => appHttp.close(r));
  });

  test('sendServerMessage before setServerParams: 200090', async () => {
    await assert.rejects(a.sendServerMessage('x'), (e) => e.code === 200090);
    const [mid, err, reply] = await a.events.wait('onServerMessageSendResult');
    assert.equal(typeof mid, 'number');
    assert.equal(err, 200090);
    assert.equal(reply, undefined);
  });

  test('setServerParams: a URL outside the allowlist is refused (200021), an allowed one accepted', async () => {
    await assert.rejects(a.setServerParams('sig', `http://127.0.0.1:${port}/other`), (e) => e.code === 200021);
    await a.setServerParams('sig-1', `http://127.0.0.1:${port}/rtm/hook`);
    assert.deepEqual(a.events.named('onServerParamsSetResult'), [[200021], [0]]);
  });

  test('text: the app server gets it and its reply comes back as a string', async () => {
    await a.sendServerMessage('hello app ✓');
    const [mid, err, reply] = await a.events.wait('onServerMessageSendResult', (m, e) => e === 0);
    assert.equal(err, 0);
    assert.deepEqual(reply, { status: 200, body: JSON.stringify({ echo: 'hello app ✓', user: 'p2s-a' }) });
    const post = posts.at(-1);
    assert.equal(post.url, '/rtm/hook');
    assert.equal(post.json.type, 'text');
    assert.equal(post.json.signature, 'sig-1');
    assert.equal(post.json.userId, 'p2s-a');
    assert.equal(String(post.json.mid), String(mid));
  });

  test('binary: sent as binary, the reply is an ArrayBuffer', async () => {
    const data = bytes(1000, 3);
    await a.sendServerBinaryMessage(data);
    const [, err, reply] = await a.events.wait('onServerMessageSendResult', (m, e, r) => e === 0 && r.status === 201);
    assert.equal(err, 0);
    assert.ok(reply.body instanceof ArrayBuffer);
    assert.ok(sameBytes(reply.body, Buffer.from(data).reverse()));
    assert.equal(posts.at(-1).json.type, 'binary');
  });

  test('a text send whose reply is not UTF-8 gets an ArrayBuffer', async () => {
    a.events.length = 0;
    await a.setServerParams('sig-2', `http://127.0.0.1:${port}/rtm/latin1`);
    await a.sendServerMessage('x');
    const [, , reply] = await a.events.wait('onServerMessageSendResult', (m, e, r) => e === 0 && r.body instanceof ArrayBuffer);
    assert.ok(sameBytes(reply.body, new Uint8Array([0xff, 0xfe, 0x41])));
  });
});
