'use strict';
// The admin page end to end in Chromium: rtmd serves admin/dist (built by
// `npm run build` in admin/, which scripts/test.sh runs; this test builds
// nothing) at /admin/ with admin_token set. Without the token the API
// answers 401 and the page, given a wrong token, shows "refused" and no
// figures; with the token it shows the projects and sessions of users the
// test logs in, the messages/s figure and chart move while the test sends
// messages through the app server, the top rooms list a room the test
// filled, and a warning the test provokes appears among the recent errors.
// The page runs under the CSP rtmd sends: any violation fails the test.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('./lib/fpnn');
const { get } = require('./lib/http');
const { AppServer, appServer, login, writeProjectsConfig } = require('./lib/rtm');
const { makeTempDir, startRtmd, withLogs } = require('./lib/rtmd');
const { launch, openWatchedPage, closeBrowserTest } = require('./lib/browser');

const ADMIN_DIR = path.resolve(__dirname, '../../admin/dist');
const TOKEN = 'admin-browser-token-0123456789';
const STEP_MS = 10000;
const I = (v) => fpnn.int64(String(v));
let nextMid = 7400000000n;

let srv, browser;

after(() => closeBrowserTest(browser, srv));

const text = (page, id) => page.textContent(`#${id}`);

async function openWith(url, label, token) {
  const page = await openWatchedPage(browser, url, { label, timeoutMs: STEP_MS });
  await page.fill('#token-input', token);
  await page.click('#login-button');
  return page;
}

test('the admin page: refused without the token; live figures, charts, rooms and errors with it',
  { timeout: 120000 }, withLogs(() => (srv ? [srv] : []), async () => {
    assert.ok(fs.existsSync(path.join(ADMIN_DIR, 'index.html')) && fs.existsSync(path.join(ADMIN_DIR, 'admin.js')),
      `${ADMIN_DIR} has no index.html and admin.js: build the admin page first ` +
      '(scripts/test.sh does: npm ci && npm run build in admin)');
    const dir = await makeTempDir();
    const conf = writeProjectsConfig(dir, [{ pid: 741, secret: 'admin-browser-secret' }]);
    srv = await startRtmd({ config: conf, args: [`--admin_token=${TOKEN}`, `--admin_dir=${ADMIN_DIR}`, '--sign_fail_max=2'] });
    const port = srv.ports.http;

    // Without the token, from Node: 401; the page itself is served under its CSP.
    const refused = await get(port, '/admin/api/stats');
    assert.equal(refused.status, 401);
    assert.match(refused.headers['www-authenticate'], /^Bearer/);
    const redirect = await get(port, '/admin');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/admin/');
    const index = await get(port, '/admin/');
    assert.equal(index.status, 200);
    assert.match(index.headers['content-security-policy'], /script-src 'self'/);
    assert.match(index.headers['content-security-policy'], /connect-src 'self'/);

    browser = await launch();
    const url = `http://127.0.0.1:${port}/admin/`;

    // A wrong token: refused, no figures.
    const wrong = await openWith(url, 'wrong', 'not-the-admin-token-at-all');
    await wrong.waitForSelector('body[data-state="refused"]');
    assert.match(await text(wrong, 'status'), /refused/);
    assert.equal(await wrong.isVisible('#figures'), false);
    assert.equal(await text(wrong, 'sessions'), '');
    assert.deepEqual(wrong.problems.filter((p) => !/status of 401/.test(p)), []);

    // The token: live figures.
    const page = await openWith(url, 'admin', TOKEN);
    await page.waitForSelector('body[data-state="live"]');
    assert.equal(await page.isVisible('#figures'), true);
    assert.equal(await text(page, 'sessions'), '0');

    // Users log in: the projects and the sessions follow.
    const project = srv.projects.find((p) => p.pid === '741');
    const app = await appServer(srv, { project });
    const users = [];
    for (const uid of [1, 2, 3]) users.push(await login(srv, app, uid, { ports: srv.node(0).ports }));
    await page.waitForFunction(() => document.getElementById('sessions').textContent === '3');
    await page.waitForSelector('#projects tr:has(td:text-is("741")):has(td:text-is("3"))');
    await page.waitForSelector('#connections tr:has(td:text-is("client_tcp")):has(td:text-is("3"))');
    await page.waitForFunction(() => document.getElementById('logins-total').textContent === '3 / 0 / 0');

    // A room of three: the top rooms list it.
    for (const u of users) await u.call('enterroom', { rid: I(77) });
    await page.waitForSelector('#top-rooms tr:has(td:text-is("77")):has(td:text-is("3"))');

    // Messages for a few seconds: messages/s and its chart move.
    assert.equal(Number(await text(page, 'messages-total')), 0);
    const pointsBefore = Number(await page.getAttribute('body', 'data-points'));
    const until = Date.now() + 4000;
    let sent = 0;
    const sending = (async () => {
      while (Date.now() < until) {
        await app.call('sendmsg', { from: I(1), to: I(2), mid: I(nextMid++), mtype: 30, msg: 'm', attrs: '' });
        sent++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // While they go: the rate and the chart's last point are above zero.
    await page.waitForFunction(() => Number(document.getElementById('messages-rate').textContent) > 0 &&
      Number(document.getElementById('chart-messages').dataset.last) > 0);
    await sending;
    await page.waitForFunction((n) => Number(document.getElementById('messages-total').textContent) === n, sent);
    assert.ok(Number(await page.getAttribute('body', 'data-points')) > pointsBefore, 'the charts got points');
    assert.equal(await page.locator('#chart-messages canvas').count(), 1, 'uPlot drew the messages chart');
    assert.match(await text(page, 'write-latency'), /^\d+\.\d\d ms$|^idle$/);
    assert.match(await text(page, 'store-bytes'), /B|KiB|MiB|n\/a/);

    // A warning: an app-server link whose signatures fail is closed.
    const forger = new AppServer((await appServer(srv, { project })).client, { ...project, secret: 'not-the-secret' });
    for (let i = 0; i < 2; i++) await assert.rejects(forger.call('getonlineusers', { uids: [I(1)] }));
    await page.waitForSelector('#recent-errors li:has-text("failed signatures in a row, closing the link")');

    assert.deepEqual(page.problems, []);
    forger.client.destroy();
    for (const u of users) u.client.destroy();
    await app.close();
  }));
