'use strict';
// Housekeeping visits the connections in slices, ten ticks a second, so a
// tick's work does not grow with their number. With a few thousand idle
// client links (not logged in, within login_timeout): every one is pinged
// every ping_interval, at most two seconds late (the bound of
// docs/architecture.md); the pings are spread over the second instead of
// leaving in one burst; and once the links stop answering, idle_timeout
// closes every one of them, at most two seconds late. Housekeeping is one
// process's: on a cluster every link goes to one node (srv.node(0)), whose
// /metrics counts the timeouts.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs, sleep } = require('../integration/lib/rtmd');
const { stopChecked } = require('../integration/lib/rtm');
const { scrapeMetric } = require('../integration/lib/http');

const LINKS = 3000;
const PING_INTERVAL_S = 1;
const IDLE_TIMEOUT_S = 4;
const LATE_BOUND_MS = 2000; // a deadline is seen at most this late
const SLACK_MS = 1500; // a loaded test machine
const WATCH_MS = 5000;
const BURST_WINDOW_MS = 200; // two ticks

let srv;
const links = [];

before(async () => {
  srv = await startRtmd({
    args: [`--ping_interval=${PING_INTERVAL_S}`, `--idle_timeout=${IDLE_TIMEOUT_S}`, '--login_timeout=3600',
      '--handshake_timeout=60', '--max_connections_per_address=0'],
  });
});

after(async () => {
  for (const c of links) c.destroy();
  await stopChecked(srv);
});

// Opens LINKS client links, a batch at a time; each sends one ping so that
// it counts as handshaken, then only answers the server's quests. Every
// server ping's arrival time is recorded on the link.
async function openLinks() {
  const BATCH = 100;
  for (let i = 0; i < LINKS; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, LINKS - i) }, async () => {
      const c = await fpnn.connect({ port: srv.node(0).ports.client_tcp, timeoutMs: 20000 });
      c.pingTimes = [];
      c.on('quest', (p) => {
        if (p.method === 'ping') c.pingTimes.push(Date.now());
      });
      await c.quest('ping', {});
      return c;
    }));
    links.push(...batch);
  }
}

test(`${LINKS} idle links: each pinged every ping_interval, pings spread over the second, idle ones closed`,
  { timeout: 120000 }, withLogs(() => srv, async () => {
    await openLinks();

    // Pings reach every link, each within ping_interval + the bound.
    const from = Date.now();
    await sleep(WATCH_MS);
    const to = Date.now();
    const all = [];
    let worstGap = 0;
    for (const [i, c] of links.entries()) {
      assert.equal(c.isClosed, false, `link ${i} is still open while it answers pings`);
      const times = c.pingTimes.filter((t) => t >= from && t <= to);
      assert.ok(times.length >= 2, `link ${i}: ${times.length} pings in ${WATCH_MS} ms`);
      const gaps = [times[0] - from, ...times.slice(1).map((t, k) => t - times[k]), to - times[times.length - 1]];
      worstGap = Math.max(worstGap, ...gaps);
      all.push(...times);
    }
    assert.ok(worstGap <= PING_INTERVAL_S * 1000 + LATE_BOUND_MS + SLACK_MS,
      `longest wait for a ping: ${worstGap} ms`);

    // Spread: a tick pings a tenth of the links, so no two ticks carry most
    // of them (a walk over all links at once pings every one together).
    all.sort((a, b) => a - b);
    let burst = 0;
    for (let lo = 0, hi = 0; hi < all.length; hi++) {
      while (all[hi] - all[lo] >= BURST_WINDOW_MS) lo++;
      burst = Math.max(burst, hi - lo + 1);
    }
    assert.ok(burst < 0.6 * LINKS, `${burst} pings to ${LINKS} links arrived within ${BURST_WINDOW_MS} ms`);

    // Links that stop answering are closed by idle_timeout, every one.
    const timeoutsBefore = await scrapeMetric(srv.ports.http, 'rtmd_timeouts_total');
    const stoppedAt = Date.now();
    for (const c of links) c.autoAnswer = false;
    const limit = IDLE_TIMEOUT_S * 1000 + LATE_BOUND_MS + SLACK_MS;
    const closed = await Promise.all(links.map((c) => c.waitClose(limit + 5000)));
    assert.equal(closed.filter(Boolean).length, LINKS, 'links closed by idle_timeout');
    const latest = Math.max(...links.map((c) => c.closedAt - stoppedAt));
    const earliest = Math.min(...links.map((c) => c.closedAt - stoppedAt));
    assert.ok(latest <= limit, `last link closed ${latest} ms after it stopped answering`);
    assert.ok(earliest >= (IDLE_TIMEOUT_S - PING_INTERVAL_S) * 1000 - LATE_BOUND_MS,
      `first link closed ${earliest} ms after it stopped answering`);
    const timeoutsAfter = await scrapeMetric(srv.ports.http, 'rtmd_timeouts_total');
    assert.ok(timeoutsAfter >= timeoutsBefore + LINKS, 'every close is counted as a timeout');
  }));
