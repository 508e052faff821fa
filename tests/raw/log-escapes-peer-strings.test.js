'use strict';
// Peer strings in the log: a method name carrying a newline, a carriage
// return and bytes that are not UTF-8 is logged (at debug level, as an
// unknown method) escaped on one line: no forged line, no invalid bytes.
// Each process writes its own log: on a cluster every node is checked with
// its own links (srv.nodes, lib/rtmd.js).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const rtm = require('../integration/lib/rtm');
const { FPNN_GATES, startRtmd, withLogs, waitFor } = require('../integration/lib/rtmd');

const FORGED = '2026-01-01T00:00:00.000Z error FORGED';
const METHOD = Buffer.concat([Buffer.from(`evil\n${FORGED}\r`), Buffer.from([0xff, 0xc3, 0x5c])]);
const ESCAPED = `evil\\n${FORGED}\\r\\xff\\xc3\\\\`;

describe('peer strings in the log', () => {
  let srv;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => srv, fn));

  before(async () => {
    srv = await startRtmd({ args: ['--log_level=debug'] });
  });

  after(async () => {
    if (srv) await rtm.stopChecked(srv);
  });

  for (const [gate, transport] of FPNN_GATES) {
    for (const json of [false, true]) {
      it(`${gate}${json ? ' (JSON)' : ''}: a method name with a newline and invalid UTF-8 is logged escaped`, async () => {
        for (const node of srv.nodes) {
          const before = node.stderr.length;
          const c = await fpnn.connect({ port: node.ports[gate], transport });
          try {
            await assert.rejects(c.quest(METHOD, {}, { json }), (e) => e.code === 20004);
          } finally {
            await c.destroy();
          }
          const logged = await waitFor(() => node.stderr.slice(before).includes(ESCAPED), 3000);
          const text = node.stderr.slice(before);
          assert.ok(logged, `the unknown method is logged escaped:\n${text}`);
          // rtmd's stderr is read as UTF-8: an invalid byte would show as U+FFFD.
          assert.ok(!text.includes('\uFFFD'), 'no invalid UTF-8 in the log');
          assert.ok(!text.includes('\r'), 'no raw carriage return in the log');
          for (const line of text.split('\n')) {
            assert.ok(!line.startsWith(FORGED), `a forged line made it into the log: ${JSON.stringify(line)}`);
            if (line) assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info |warn |error) /);
          }
        }
      });
    }
  }
});
