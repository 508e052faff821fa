'use strict';
// rtmd under a Type=notify systemd unit: with NOTIFY_SOCKET set it sends
// READY=1 once it printed its ready banner (not before), RELOADING=1 then
// READY=1 around a SIGHUP reload, and STOPPING=1 when a stop begins. The
// socket is a real AF_UNIX datagram socket, bound by a small python3
// process (Node has no datagram sockets of that family), as systemd's is.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startRtmd, makeTempDir, removeTempDir, waitFor } = require('./lib/rtmd');

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(4096).decode().replace("\\n", "|"), flush=True)
`;

function notifyListener(socketPath) {
  const p = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const l = { proc: p, lines: [] };
  let partial = '';
  p.stdout.setEncoding('utf8');
  l.bound = new Promise((resolve) => {
    p.stdout.on('data', (d) => {
      partial += d;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line === 'bound') resolve();
        else l.lines.push(line);
      }
    });
  });
  return l;
}

test('READY=1 after the banner, RELOADING=1 and READY=1 on SIGHUP, STOPPING=1 on SIGTERM', async () => {
  const dir = await makeTempDir('rtmd-notify-');
  const listener = notifyListener(path.join(dir, 'notify.sock'));
  let srv;
  try {
    await listener.bound;
    srv = await startRtmd({ env: { NOTIFY_SOCKET: path.join(dir, 'notify.sock') } });
    // startRtmd resolved on the banner's ready line; READY=1 follows it.
    await waitFor(() => listener.lines.length >= 1, 5000);
    assert.deepEqual(listener.lines, ['READY=1']);

    srv.proc.kill('SIGHUP');
    await waitFor(() => listener.lines.length >= 3, 5000);
    assert.deepEqual(listener.lines.slice(1), ['RELOADING=1', 'READY=1']);
    assert.ok(srv.alive, 'a reload keeps rtmd running');

    assert.equal(await srv.stop(), 0);
    await waitFor(() => listener.lines.length >= 4, 5000);
    assert.deepEqual(listener.lines.slice(3), ['STOPPING=1']);
  } finally {
    listener.proc.kill();
    if (srv) await srv.cleanup();
    await removeTempDir(dir);
  }
});
