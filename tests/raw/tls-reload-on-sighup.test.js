'use strict';
// SIGHUP loads tls_cert and tls_key again: new TLS connections get the new
// certificate, connections already open keep theirs and go on working, and
// files that do not load leave the current certificate in place (logged).

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const fpnn = require('../integration/lib/fpnn');
const { appServer, login } = require('../integration/lib/rtm');
const { startRtmd, makeTempDir, removeTempDir, sanitizerReports, waitFor } = require('../integration/lib/rtmd');
const { makeCa, makeServerCert } = require('../integration/lib/tls');

let srv, dir;
const links = [];

after(async () => {
  for (const l of links) if (!l.client.isClosed) await l.close();
  if (srv) {
    assert.equal(await srv.stop('SIGTERM'), 0, srv.diagnostics());
    await srv.cleanup();
  }
  if (dir) await removeTempDir(dir);
  assert.deepEqual(sanitizerReports(), []);
});

function servedSerial(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

test('a reload swaps the certificate for new connections only', async () => {
  dir = await makeTempDir();
  const ca = makeCa(dir);
  const first = makeServerCert(dir, ca, 'first');
  const second = makeServerCert(dir, ca, 'second');
  const live = { cert: path.join(dir, 'live.pem'), key: path.join(dir, 'live.key') };
  fs.copyFileSync(first.cert, live.cert);
  fs.copyFileSync(first.key, live.key);
  srv = await startRtmd({ args: [`--tls_cert=${live.cert}`, `--tls_key=${live.key}`, '--client_wss_port=0', '--https_port=0'] });
  assert.equal(await servedSerial(srv.ports.client_wss, ca.pem), first.serial);

  const app = await appServer(srv);
  links.push(app);
  const before = await login(srv, app, 7101, { transport: 'wss', ca: ca.pem });
  links.push(before);

  fs.copyFileSync(second.cert, live.cert);
  fs.copyFileSync(second.key, live.key);
  srv.proc.kill('SIGHUP');
  await waitFor(() => /TLS certificate reloaded/.test(srv.stderr), 5000);
  assert.equal(await servedSerial(srv.ports.client_wss, ca.pem), second.serial);
  assert.equal(await servedSerial(srv.ports.https, ca.pem), second.serial);

  // The connection made before the reload still works, both ways.
  const after = await login(srv, app, 7102, { transport: 'wss', ca: ca.pem });
  links.push(after);
  await after.call('sendmsg', { to: fpnn.int64(7101), mid: fpnn.int64(1), mtype: 51, msg: 'after reload', attrs: '' });
  assert.equal((await before.waitPush((q) => q.method === 'pushmsg')).payload.msg, 'after reload');
  await before.call('sendmsg', { to: fpnn.int64(7102), mid: fpnn.int64(2), mtype: 51, msg: 'from before', attrs: '' });
  assert.equal((await after.waitPush((q) => q.method === 'pushmsg')).payload.msg, 'from before');

  // A key that does not match: logged, the current certificate stays.
  fs.copyFileSync(first.key, live.key);
  srv.proc.kill('SIGHUP');
  await waitFor(() => /keeping the current TLS certificate/.test(srv.stderr), 5000);
  assert.equal(await servedSerial(srv.ports.client_wss, ca.pem), second.serial);
});
