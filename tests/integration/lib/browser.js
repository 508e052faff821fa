'use strict';
// Debian's Chromium, driven by playwright-core, for the tests that need a
// real browser. Started headless with the flags this machine's closed
// network needs (no background traffic to the vendor), in a fresh profile,
// optionally with a HOME whose certificate store trusts a test CA.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Makes home/.pki/nssdb, the certificate store Chromium reads on Linux,
// trusting the CA in caFile for servers; returns home.
function homeTrusting(home, caFile) {
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password'], { stdio: 'ignore' });
  execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', 'rtmd test CA', '-t', 'C,,', '-i', caFile], { stdio: 'ignore' });
  return home;
}

// Resolves with a Browser; args are extra command-line flags, home the
// HOME it runs with (see homeTrusting; default: this process's).
function launch(args = [], { home } = {}) {
  return chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    env: home ? { ...process.env, HOME: home } : process.env,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...args],
  });
}

// Opens url in a page of its own browser context (contextOptions for
// newContext), keeping the console errors and page errors it reports in
// page.problems (a test asserts it empty), with timeoutMs for every step,
// and waits for the page to say <body data-ready="true">.
async function openWatchedPage(browser, url, { label, timeoutMs, contextOptions = {} }) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.problems = [];
  page.label = label;
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push(`${label} console: ${m.text()}`);
  });
  page.on('pageerror', (e) => page.problems.push(`${label} page error: ${e.message}`));
  page.setDefaultTimeout(timeoutMs);
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

// The end of a browser test file: closes the browser and the rtmd it
// started (either may be undefined), then asserts that rtmd stayed up and
// that no sanitizer reported. Use as after(() => closeBrowserTest(browser, srv)).
async function closeBrowserTest(browser, srv) {
  const assert = require('node:assert/strict');
  const { sanitizerReports } = require('./rtmd');
  if (browser) await browser.close();
  if (srv) {
    const alive = srv.alive;
    await srv.cleanup();
    assert.ok(alive, `rtmd died during the test\n${srv.diagnostics()}`);
  }
  assert.deepEqual(sanitizerReports(), []);
}

module.exports = { launch, homeTrusting, openWatchedPage, closeBrowserTest, EXECUTABLE };
