'use strict';
// The partial input of links that have not authenticated (an unfinished
// packet, an unfinished WebSocket message) is bounded in total by
// prelogin_buffer_budget: a link whose buffers grow while the total is over
// it is closed, and the server's buffers and RSS stay bounded however many
// such links there are. The budget is one process's: on a cluster the links
// go to one node (srv.node(0)), whose /metrics and RSS are read.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs, sleep, waitFor } = require('../integration/lib/rtmd');
const { stopChecked } = require('../integration/lib/rtm');
const { scrapeMetric } = require('../integration/lib/http');
const { rawConnect, wsUpgrade, wsBinaryHeader } = require('../integration/lib/rawsock');

const BUDGET = 256 * 1024;
const PRELOGIN_MAX = 64 * 1024;
let srv;

before(async () => {
  srv = await startRtmd({
    args: [`--prelogin_buffer_budget=${BUDGET}`, `--prelogin_max_packet=${PRELOGIN_MAX}`, '--handshake_timeout=60', '--login_timeout=60'],
  });
});

after(() => stopChecked(srv));

// A TCP link holding most of a 60 KB quest: under prelogin_max_packet.
async function partialQuest() {
  const s = await rawConnect(srv.node(0).ports.client_tcp);
  const packet = fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*echo', seq: 1, payload: Buffer.alloc(60000, 0xc0) });
  s.write(packet.subarray(0, 56000));
  return s;
}

// A WebSocket link holding most of a 60 KB binary message.
async function partialMessage() {
  const s = await rawConnect(srv.node(0).ports.client_ws);
  s.write(wsUpgrade(srv.listens.client_ws.path));
  s.write(Buffer.concat([wsBinaryHeader(60000), Buffer.alloc(56000, 1)]));
  return s;
}

function rssBytes() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

test('partial packets and messages beyond the budget close their links', { timeout: 20000 }, withLogs(() => srv, async () => {
  const links = [];
  for (let i = 0; i < 8; i++) links.push(await partialQuest());
  for (let i = 0; i < 4; i++) links.push(await partialMessage());
  // At most BUDGET / 64 KiB of them fit; wait until the others are closed.
  await waitFor(() => links.filter((s) => !s.closedByServer).length <= BUDGET / PRELOGIN_MAX, 3000);
  await sleep(200);
  try {
    const prelogin = await scrapeMetric(srv.ports.http, 'rtmd_prelogin_buffer_bytes');
    const buffers = await scrapeMetric(srv.ports.http, 'rtmd_connection_buffer_bytes');
    assert.ok(prelogin <= BUDGET, `pre-login buffers ${prelogin} over the budget ${BUDGET}`);
    assert.ok(prelogin >= 2 * 56000, `pre-login buffers ${prelogin}: the links within the budget keep theirs`);
    assert.ok(buffers <= BUDGET, `connection buffers ${buffers} over the budget ${BUDGET}`);
    const open = links.filter((s) => !s.closedByServer).length;
    assert.ok(open >= 2 && open <= BUDGET / 56000, `${open} of ${links.length} links kept their partial input`);
    // Closing the holders gives the budget back.
    for (const s of links) s.destroy();
    assert.equal(await waitFor(async () => (await scrapeMetric(srv.ports.http, 'rtmd_prelogin_buffer_bytes')) === 0, 3000), true);
  } finally {
    for (const s of links) s.destroy();
  }
}));

test('100 links sending 1 MiB partial packets before login: RSS stays bounded', { timeout: 30000 }, withLogs(() => srv, async () => {
  const before = rssBytes();
  const packet = fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*echo', seq: 1, payload: Buffer.alloc(1024 * 1024 + 4096, 0xc0) });
  const part = packet.subarray(0, 1024 * 1024);
  const links = [];
  try {
    for (let i = 0; i < 100; i++) {
      const s = await rawConnect(srv.node(0).ports.client_tcp);
      s.write(part);
      links.push(s);
    }
    await sleep(1000);
    const grown = rssBytes() - before;
    const buffers = await scrapeMetric(srv.ports.http, 'rtmd_connection_buffer_bytes');
    assert.ok(buffers <= BUDGET, `connection buffers ${buffers} over the budget ${BUDGET}`);
    assert.ok(grown < 32 * 1024 * 1024, `RSS grew by ${grown} bytes for 100 links that never logged in`);
    assert.ok(links.every((s) => s.closedByServer), 'every link announcing more than prelogin_max_packet is closed');
  } finally {
    for (const s of links) s.destroy();
  }
}));
