'use strict';
// The demo chat page end to end in Chromium: rtmd serves sdk/js/dist/demo
// (the page and the SDK bundle, built by `npm run build` in sdk/js, which
// scripts/test.sh runs; this test builds nothing) for a project with
// demo = 1. Two browser contexts, alice and bob, log in with tokens from
// /demo/token, see each other online (the lobby room), chat peer to peer
// both ways, join a room and chat there, and alice sends a file that bob
// downloads with the same bytes; then a third context logs in as alice
// and the first alice page shows it was logged out by a duplicate login.
// The page runs under the CSP rtmd sends: any violation fails the test.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, startRtmd } = require('./lib/rtmd');
const { launch, openWatchedPage, closeBrowserTest } = require('./lib/browser');

const DEMO_DIR = path.resolve(__dirname, '../../sdk/js/dist/demo');
const APP_ID = 'DemoBrowser0123456789abc';
const STEP_MS = 10000;

let srv, browser;

after(() => closeBrowserTest(browser, srv));

const openPage = (url, label) => openWatchedPage(browser, url, { label, contextOptions: { acceptDownloads: true }, timeoutMs: STEP_MS });

async function loginAs(page, name) {
  await page.fill('#login-name', name);
  await page.click('#login-button');
  await page.waitForSelector(`body[data-state="logged-in"][data-user="${name}"]`);
  assert.equal(await page.textContent('[data-testid="status"]'), `Logged in as ${name}.`);
}

const onlineUser = (name) => `[data-testid="online-user"][data-user="${name}"]`;
const conversation = (key) => `[data-testid="conversation"][data-conv="${key}"]`;
const message = (from, text) => `#messages li[data-kind="text"][data-from="${from}"]:has-text("${text}")`;

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.click('#send-button');
  await page.waitForSelector(message(await page.getAttribute('body', 'data-user'), text));
}

test('two users chat on the demo page: presence, p2p, a room, a file, a duplicate login', { timeout: 120000 },
  async () => {
    assert.ok(fs.existsSync(path.join(DEMO_DIR, 'index.html')) && fs.existsSync(path.join(DEMO_DIR, 'rts.mjs')),
      `${DEMO_DIR} has no index.html and rts.mjs: build the SDK and its demo first ` +
      '(scripts/test.sh does: npm ci && npm run build in sdk/js)');
    const dir = await makeTempDir();
    const conf = writeProjectsConfig(dir, [{ pid: 91, secret: 'demo-browser-secret', app_id: APP_ID,
      app_key: 'demo-browser-key', multi_login: 0, demo: 1 }]);
    srv = await startRtmd({ config: conf, args: [`--demo_dir=${DEMO_DIR}`] });
    const url = `http://127.0.0.1:${srv.ports.http}/demo/`;
    browser = await launch();
    const pages = [];
    try {
      const alice = await openPage(url, 'alice');
      const bob = await openPage(url, 'bob');
      pages.push(alice, bob);

      // Both log in and see each other online.
      await loginAs(alice, 'alice');
      await loginAs(bob, 'bob');
      await alice.waitForSelector(onlineUser('bob'));
      await bob.waitForSelector(onlineUser('alice'));
      assert.equal(await alice.locator(onlineUser('alice')).count(), 0, 'one does not list oneself');

      // Peer to peer, both ways.
      await alice.click(onlineUser('bob'));
      assert.equal(await alice.getAttribute('#conv-title', 'data-conv'), 'user:bob');
      await send(alice, 'hello bob');
      await bob.click(conversation('user:alice'));
      await bob.waitForSelector(message('alice', 'hello bob'));
      await send(bob, 'hi alice <b>not bold</b>');
      await alice.waitForSelector(message('bob', 'hi alice <b>not bold</b>'));
      assert.equal(await alice.locator('#messages b').count(), 0, 'text is shown as text');

      // A room: both join, see each other there, and chat.
      for (const page of [alice, bob]) {
        await page.fill('#room-name', 'demo-room');
        await page.click('#room-join');
        await page.waitForSelector('#conv-title[data-conv="room:demo-room"]');
      }
      await alice.waitForSelector('#messages li[data-kind="system"]:has-text("bob joined")');
      await alice.waitForSelector('#room-members:has-text("bob")');
      await bob.waitForSelector('#room-members:has-text("alice")');
      await send(bob, 'hello room');
      await alice.waitForSelector(message('bob', 'hello room'));
      await send(alice, 'hello from alice in the room');
      await bob.waitForSelector(message('alice', 'hello from alice in the room'));

      // A file, peer to peer: bob downloads the same bytes.
      const bytes = crypto.randomBytes(20000);
      await alice.click(conversation('user:bob'));
      await alice.setInputFiles('#file-input', { name: 'notes.bin', mimeType: 'application/octet-stream', buffer: bytes });
      await alice.click('#send-file-button');
      await alice.waitForSelector('#messages li[data-kind="file"][data-from="alice"]');
      await bob.click(conversation('user:alice'));
      const link = bob.locator('#messages li[data-kind="file"][data-from="alice"] [data-testid="file-link"]');
      await link.waitFor();
      const [download] = await Promise.all([bob.waitForEvent('download'), link.click()]);
      assert.equal(download.suggestedFilename(), 'notes.bin');
      const got = fs.readFileSync(await download.path());
      assert.ok(got.equals(bytes), `downloaded ${got.length} bytes, sent ${bytes.length}`);

      // alice logs in elsewhere: the first alice page is logged out, and says why.
      const alice2 = await openPage(url, 'alice (second)');
      pages.push(alice2);
      await loginAs(alice2, 'alice');
      await alice.waitForSelector('[data-testid="status"][data-reason]');
      assert.equal(await alice.isVisible('#login-form'), true);
      assert.equal(await alice.isVisible('#app'), false);
      assert.equal(await alice2.getAttribute('body', 'data-state'), 'logged-in');
      await alice2.waitForSelector(onlineUser('bob'));
      const reason = await alice.getAttribute('[data-testid="status"]', 'data-reason');
      assert.equal(reason, 'duplicate_login');
      assert.match(await alice.textContent('[data-testid="status"]'), /duplicate login/);

      for (const page of pages) assert.deepEqual(page.problems, []);
    } catch (e) {
      for (const page of pages) {
        const shown = await page.evaluate(() => ({
          status: document.getElementById('status').textContent,
          error: document.getElementById('error').textContent,
        })).catch(() => ({}));
        process.stderr.write(`page ${page.label}: ${JSON.stringify(shown)}\n${page.problems.join('\n')}\n`);
      }
      process.stderr.write(`${srv.diagnostics()}\n`);
      throw e;
    }
  });
