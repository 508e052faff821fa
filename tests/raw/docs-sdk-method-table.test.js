'use strict';
// docs/rtm-methods.md's table of every method the RTM SDKs send ("Every SDK
// method") says, per gate, whether rtmd serves it. This file holds the
// table to the server: it starts rtmd, reads the method table from
// `*infos`, and fails when a row says `yes` or `refused` for a method the
// gate does not register, `no` for one it does, or when a gate registers a
// method that is neither in the table nor in the table's "Also served"
// line. So the table cannot drift from the code.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, withLogs } = require('../integration/lib/rtmd');

const DOC = path.join(__dirname, '..', '..', 'docs', 'rtm-methods.md');
// Table columns after the method: which gate each SDK sends to.
const COLUMNS = [
  { sdk: 'WebSocket client SDK', gates: ['client_tcp', 'client_ws'] },
  { sdk: 'Node server SDK', gates: ['server_tcp'] },
  { sdk: 'Go server SDK', gates: ['server_tcp'] },
];

function readTable() {
  const text = fs.readFileSync(DOC, 'utf8');
  const start = text.indexOf('## Every SDK method');
  assert.ok(start >= 0, 'docs/rtm-methods.md has a section "## Every SDK method"');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const rows = [];
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const cells = m[2].split('|').map((c) => c.trim());
    assert.equal(cells.length, COLUMNS.length, `row ${m[1]} has ${COLUMNS.length} gate cells`);
    for (const c of cells) assert.match(c, /^(|yes|refused: .+|no: .+)$/, `row ${m[1]}: cell "${c}"`);
    rows.push({ method: m[1], cells });
  }
  const also = /^Also served: (.*)$/m.exec(section);
  assert.ok(also, 'the section has an "Also served:" line');
  const extras = [...also[1].matchAll(/`([^`]+)`/g)].map((x) => x[1]);
  return { rows, extras };
}

describe('docs/rtm-methods.md: the SDK method table matches the server', () => {
  let srv;
  let registered; // method -> gate names
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => srv, fn));

  before(async () => {
    srv = await startRtmd();
    const c = await fpnn.connect({ port: srv.ports.client_tcp, transport: 'tcp', timeoutMs: 5000 });
    try {
      registered = (await c.quest('*infos', {}, { json: true })).methods;
    } finally {
      await c.destroy();
    }
  });

  after(async () => {
    if (srv) {
      await srv.stop('SIGTERM');
      await srv.cleanup();
    }
  });

  it('each row says what the gate registers', () => {
    const { rows } = readTable();
    assert.ok(rows.length > 100, `the table lists the SDKs' methods (${rows.length} rows)`);
    const wrong = [];
    for (const { method, cells } of rows) {
      cells.forEach((cell, i) => {
        if (cell === '') return;
        const gates = registered[method] || [];
        const served = COLUMNS[i].gates.every((g) => gates.includes(g));
        const expected = cell === 'yes' || cell.startsWith('refused');
        if (served !== expected) wrong.push(`${method} (${COLUMNS[i].sdk}): table says "${cell}", gates registered: [${gates}]`);
      });
    }
    assert.deepEqual(wrong, []);
  });

  it('every method a gate registers is in the table or in "Also served"', () => {
    const { rows, extras } = readTable();
    const listed = new Set([...rows.map((r) => r.method), ...extras]);
    const missing = Object.keys(registered).filter((m) => !listed.has(m));
    assert.deepEqual(missing, []);
  });
});
