'use strict';
// Graceful stop with a logged-in receiver that never reads: its pushes fill
// the kernel's buffers and rtmd's output queue, and cannot drain. On SIGTERM
// rtmd stops waiting for it once its output no longer moves, exits 0 within
// the 5 s drain limit, and logs how many connections and bytes it dropped.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { startRtmd, makeTempDir, sanitizerReports, withLogs, waitFor } = require('../integration/lib/rtmd');
const { appServer, login, writeProjectsConfig } = require('../integration/lib/rtm');
const { scrapeMetric } = require('../integration/lib/http');

const DRAIN_LIMIT_MS = 5000;
const MSG_BYTES = 512 * 1024;
const MESSAGES = 40; // 20 MiB: far more than the socket buffers of a link hold
let srv;

after(async () => {
  if (srv) await srv.cleanup();
  assert.deepEqual(sanitizerReports(), []);
});

test('SIGTERM with a receiver that never reads: exit 0 within the limit, the drop is logged', { timeout: 60000 }, withLogs(() => srv, async () => {
  const conf = writeProjectsConfig(await makeTempDir(), [
    { pid: 4100001, secret: 'stop-test-secret', user_msg_rate: 0, max_msg_bytes: MSG_BYTES },
  ]);
  // An output queue large enough that the receiver is not dropped as a slow
  // reader before the stop.
  srv = await startRtmd({ config: conf, args: ['--max_output_queue=268435456'] });
  const app = await appServer(srv);
  const receiver = await login(srv, app, 501);
  receiver.client.transport.socket.pause(); // never reads again

  const msg = Buffer.alloc(MSG_BYTES, 0x61).toString('latin1');
  for (let i = 0; i < MESSAGES; i++) {
    await app.call('sendmsg', { from: fpnn.int64(500), to: fpnn.int64(501), mid: fpnn.int64(1000 + i), mtype: 30, msg, attrs: '' }, { timeoutMs: 10000 });
  }
  // rtmd holds what the kernel would not take.
  const queued = await waitFor(async () => (await scrapeMetric(srv.ports.http, 'rtmd_connection_buffer_bytes')) > 4 * MSG_BYTES, 5000);
  assert.ok(queued, 'pushes pile up in rtmd for the receiver that does not read');

  const t0 = Date.now();
  const code = await srv.stop('SIGTERM', 15000);
  const took = Date.now() - t0;
  assert.equal(code, 0, 'exit code after SIGTERM');
  assert.ok(took < DRAIN_LIMIT_MS, `rtmd took ${took} ms to stop, the drain limit is ${DRAIN_LIMIT_MS} ms`);
  const m = /dropped (\d+) connection\(s\) that could not drain, (\d+) bytes undelivered/.exec(srv.stderr);
  assert.ok(m, 'the log names what was dropped');
  assert.equal(Number(m[1]), 1, 'one connection: the receiver');
  assert.ok(Number(m[2]) >= 4 * MSG_BYTES, `${m[2]} bytes undelivered`);
  receiver.client.destroy();
  app.client.destroy();
}));
