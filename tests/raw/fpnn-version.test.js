'use strict';
// FPNN version byte: every SDK sends 1 and the reference server declares 1
// as the oldest version it supports, so rtmd speaks version 1 only. A packet
// with any other version byte (0 included) is not an FPNN 1 packet: the link
// is closed and nothing is answered, on every FPNN gate.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const rtm = require('../integration/lib/rtm');
const { FPNN_GATES, startRtmd, withLogs } = require('../integration/lib/rtmd');


describe('FPNN version byte', () => {
  let srv;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => srv, fn));

  before(async () => {
    srv = await startRtmd();
  });

  after(async () => {
    if (srv) await rtm.stopChecked(srv);
  });

  const ping = (version, seq) => fpnn.encodePacket({ mtype: fpnn.MTYPE_TWOWAY, method: '*ping', seq, payload: {}, version });

  for (const [gate, transport] of FPNN_GATES) {
    it(`${gate}: version 1 is answered with version 1`, async () => {
      const c = await fpnn.connect({ port: srv.ports[gate], transport });
      try {
        const answer = await c.quest('*ping', {}, { full: true });
        assert.equal(answer.version, 1);
        assert.equal(answer.ss, 0);
      } finally {
        await c.destroy();
      }
    });

    for (const version of [0, 2, 255]) {
      it(`${gate}: version ${version} closes the link unanswered`, async () => {
        const c = await fpnn.connect({ port: srv.ports[gate], transport });
        try {
          c.rawWrite(ping(version, 7));
          assert.equal(await c.waitClose(3000), true, `link still open after a version ${version} packet`);
          assert.equal(c.receivedPackets, 0, 'a packet of another version was answered');
        } finally {
          await c.destroy();
        }
      });
    }
  }
});
