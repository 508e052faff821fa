'use strict';
// Debian's Chromium, driven by playwright-core, for the tests that need a
// real browser. Started headless with the flags this machine's closed
// network needs (no background traffic to the vendor), in a fresh profile.

const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Resolves with a Browser; args are extra command-line flags.
function launch(args = []) {
  return chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...args],
  });
}

module.exports = { launch, EXECUTABLE };
