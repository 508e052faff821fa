'use strict';
// The 1v1 call demo page end to end in Chromium: rtmd serves sdk/js/dist/demo
// (built by `npm run build` in sdk/js, which scripts/test.sh runs; this test
// builds nothing) at /demo/, the call page at /demo/call/, for a project with
// demo = 1 and the RealTimeCat demo backend (rtcat_demo = 1). Two browser
// contexts with fake camera and microphone join the same session name: each
// page gets a token from /tokens/<name>, joins the session, and the two set
// up an RTCPeerConnection through the session's room messages; both reach
// `connected`, each shows the other's video, and a data-channel message
// crosses each way. Then one leaves and the other sees the call end. The
// pages run under the CSP rtmd sends: any violation fails the test.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, startRtmd } = require('./lib/rtmd');
const { launch, openWatchedPage, closeBrowserTest } = require('./lib/browser');

const DEMO_DIR = path.resolve(__dirname, '../../sdk/js/dist/demo');
const APP_ID = 'DemoCall0123456789abcdef';
const STEP_MS = 15000;

let srv, browser;

after(() => closeBrowserTest(browser, srv));

const openPage = (url, label) => openWatchedPage(browser, url, { label, timeoutMs: STEP_MS });

async function joinAs(page, session) {
  await page.fill('#session-name', session);
  await page.click('#join-button');
  await page.waitForSelector('body[data-state="joined"]');
  assert.equal(await page.isVisible('#call'), true);
  assert.equal(await page.isVisible('#join-form'), false);
  return { uid: await page.getAttribute('body', 'data-uid'), session: await page.getAttribute('body', 'data-session') };
}

// True once the video element plays frames of a stream.
const playing = (page, id) => page.waitForFunction((vid) => {
  const v = document.getElementById(vid);
  return v && v.srcObject && v.readyState >= 2 && v.videoWidth > 0;
}, id);

async function say(page, text) {
  await page.fill('#dc-input', text);
  await page.click('#dc-send');
  await page.waitForSelector(`#dc-log li[data-from="me"]:has-text("${text}")`);
}

test('two browsers call each other through the demo page: signalling in the session, media and data peer to peer',
  { timeout: 120000 }, async () => {
    assert.ok(fs.existsSync(path.join(DEMO_DIR, 'call', 'index.html')) && fs.existsSync(path.join(DEMO_DIR, 'rts.mjs')),
      `${DEMO_DIR} has no call/index.html and rts.mjs: build the SDK and its demo first ` +
      '(scripts/test.sh does: npm ci && npm run build in sdk/js)');
    const dir = await makeTempDir();
    const conf = writeProjectsConfig(dir, [{ pid: 92, secret: 'demo-call-secret', app_id: APP_ID,
      app_key: 'demo-call-key', demo: 1, rtcat_apikey: 'demo-call-apikey', rtcat_secret: 'demo-call-apisecret',
      rtcat_demo: 1 }]);
    srv = await startRtmd({ config: conf, args: [`--demo_dir=${DEMO_DIR}`] });
    const url = `http://127.0.0.1:${srv.ports.http}/demo/call/`;
    const cfg = await (await fetch(`http://127.0.0.1:${srv.ports.http}/demo/config.json`)).json();
    assert.equal(cfg.rtcat_demo, true);
    browser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']);
    const pages = [];
    try {
      const alice = await openPage(url, 'alice');
      const bob = await openPage(url, 'bob');
      pages.push(alice, bob);

      const a = await joinAs(alice, 'call-test');
      await playing(alice, 'local-video');
      assert.equal(await alice.getAttribute('#pc-state', 'data-state'), 'new', 'alone: no call yet');
      const b = await joinAs(bob, 'call-test');
      assert.equal(a.session, b.session, 'one session for one name');
      assert.notEqual(a.uid, b.uid, 'a token each');
      assert.match(a.session, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

      // Both peer connections connect; each plays the other's camera.
      for (const [page, peer] of [[alice, b.uid], [bob, a.uid]]) {
        await page.waitForSelector('#pc-state[data-state="connected"]');
        assert.equal(await page.getAttribute('body', 'data-peer'), peer);
        await page.waitForSelector('#dc-state[data-state="open"]');
        await playing(page, 'remote-video');
      }

      // The data channel, both ways.
      await say(alice, 'hello bob, over the data channel');
      await bob.waitForSelector('#dc-log li[data-from="peer"]:has-text("hello bob, over the data channel")');
      await say(bob, 'hi alice <b>not bold</b>');
      await alice.waitForSelector('#dc-log li[data-from="peer"]:has-text("hi alice <b>not bold</b>")');
      assert.equal(await alice.locator('#dc-log b').count(), 0, 'text is shown as text');

      // Another session name is another session.
      const carol = await openPage(url, 'carol');
      pages.push(carol);
      const c = await joinAs(carol, 'call-test-2');
      assert.notEqual(c.session, a.session);

      // bob leaves: alice's call ends and she waits for the next one.
      await bob.click('#leave-button');
      await bob.waitForSelector('body[data-state="idle"]');
      await alice.waitForSelector('#pc-state[data-state="closed"]');
      await alice.waitForSelector(`#dc-log li[data-from="system"]:has-text("${b.uid} left")`);
      assert.equal(await alice.getAttribute('body', 'data-peer'), null);

      for (const page of pages) assert.deepEqual(page.problems, []);
    } catch (e) {
      for (const page of pages) {
        const shown = await page.evaluate(() => ({
          status: document.getElementById('status').textContent,
          error: document.getElementById('error').textContent,
          pc: document.getElementById('pc-state').textContent,
          log: document.getElementById('dc-log').textContent,
        })).catch(() => ({}));
        process.stderr.write(`page ${page.label}: ${JSON.stringify(shown)}\n${page.problems.join('\n')}\n`);
      }
      process.stderr.write(`${srv.diagnostics()}\n`);
      throw e;
    }
  });
