'use strict';
// By hand, not in CI: the real highras WebSocket client SDK sends a file to
// rtmd from Chromium, as a browser app would (docs/reliability.md, "The
// WebSocket client SDK"). The SDK is not published on npm, so it comes from
// a checkout of github.com/highras/rtm-client-sdk-websocket given as the
// argument; nothing of it is kept.
//
//   RTMD_BIN=build/rtmd RTMCTL_BIN=build/rtmctl \
//     node tests/manual/ws-sdk-file-upload.js /path/to/rtm-client-sdk-websocket
//
// rtmd runs on a fresh data directory with its WebSocket file gate on 13461
// (the SDK derives ws://fileproxy-<gate host>:13461 itself; the port must be
// free) and Chromium maps fileproxy-* to 127.0.0.1. User 1001 logs in
// through the SDK on the WebSocket gate as "localhost:<port>" (a gate
// address that is an IP makes the SDK's fileproxy-<ip> no valid URL host)
// and calls sendFile to user 1002, who listens with rtmctl. It passes when
// sendFile answers, 1002 gets the file message, and the URL in it serves
// the same bytes.

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { chromium } = require('../integration/node_modules/playwright-core');

const SDK_FILES = ['libs/md5.min.js', 'libs/int64.min.js', 'libs/msgpack.min.js', 'libs/fpnn.min.js', 'dist/rtm.min.js'];
const PAGE = `<!doctype html><meta charset="utf-8">${SDK_FILES.map((f) => `<script src="${f}"></script>`).join('')}`;

async function main(sdkDir) {
  const rtmdBin = process.env.RTMD_BIN || 'build/rtmd';
  const rtmctlBin = process.env.RTMCTL_BIN || 'build/rtmctl';
  for (const f of SDK_FILES) if (!fs.existsSync(path.join(sdkDir, f))) throw new Error(`${sdkDir} has no ${f}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtmd-ws-sdk-'));
  const rtmd = spawn(rtmdBin, [`--data_dir=${dataDir}`, '--listen_host=127.0.0.1', '--client_tcp_port=0', '--client_ws_port=0',
    '--server_tcp_port=0', '--http_port=0', '--file_tcp_port=0', '--file_ws_port=13461'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const cleanup = [() => rtmd.kill(), () => fs.rmSync(dataDir, { recursive: true, force: true })];
  try {
    let banner = '';
    rtmd.stdout.on('data', (d) => (banner += d));
    rtmd.stderr.resume();
    for (let i = 0; i < 100 && !/ ready$/m.test(banner); i++) await new Promise((r) => setTimeout(r, 50));
    if (!/ ready$/m.test(banner)) throw new Error(`rtmd did not start:\n${banner}`);
    const port = (gate) => Number(new RegExp(`^listen ${gate} [^:]+:(\\d+)`, 'm').exec(banner)[1]);
    const [, pid, secret] = /^project pid=(\d+) secret=(\S+)/m.exec(banner);
    const env = { ...process.env, RTM_PID: pid, RTM_SECRET: secret };
    const token = (uid) => execFileSync(rtmctlBin, ['token', `127.0.0.1:${port('server_tcp')}`, '--uid', String(uid)], { env }).toString().trim();

    const listener = spawn(rtmctlBin, ['listen', `127.0.0.1:${port('client_tcp')}`, '--uid', '1002', '--token', token(1002),
      '--count', '1', '--seconds', '30'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let pushes = '';
    listener.stdout.on('data', (d) => (pushes += d));
    const listened = new Promise((r) => listener.on('close', r));
    await new Promise((r) => listener.stderr.on('data', (d) => /listening as uid/.test(d) && r()));

    const page = http.createServer((req, res) => {
      const name = req.url === '/' ? null : req.url.slice(1);
      if (name && !SDK_FILES.includes(name)) return res.writeHead(404).end();
      res.end(name ? fs.readFileSync(path.join(sdkDir, name)) : PAGE);
    });
    await new Promise((r) => page.listen(0, '127.0.0.1', r));
    cleanup.push(() => page.close());
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--host-resolver-rules=MAP fileproxy-* 127.0.0.1'] });
    cleanup.push(() => browser.close());
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.1:${page.address().port}/`);
    const content = `sent by the highras WebSocket client SDK ${new Date().toISOString()}\n${'x'.repeat(5000)}`;
    const result = await tab.evaluate(async ({ endpoint, pid, token, content }) => {
      const client = new rtm.RTMClient({ endpoint, pid: Number(pid), uid: new rtm.RTMConfig.Int64(1001), token, autoReconnect: false });
      const login = await new Promise((resolve) => client.login(new rtm.RTMConfig.Int64(1001), token, (ok, code) => resolve({ ok, code })));
      const file = new File([content], 'hello.txt', { type: 'text/plain' });
      const sent = await new Promise((resolve) => client.sendFile(41, new rtm.RTMConfig.Int64(1002), file, new rtm.RTMConfig.Int64(0), 20000,
        (err, data) => resolve(err ? { error: String(err.error && err.error.message ? err.error.message : err.error) } : { mtime: String(data.payload.mtime) })));
      return { sdk: rtm.RTMConfig.SDK_VERSION, login, sent };
    }, { endpoint: `localhost:${port('client_ws')}`, pid, token: token(1001), content });
    console.log(`SDK ${result.sdk}: login ${JSON.stringify(result.login)}, sendFile ${JSON.stringify(result.sent)}`);
    if (!result.login.ok || !result.sent.mtime) throw new Error('the SDK could not log in or send the file');

    await listened;
    const push = JSON.parse(pushes.trim().split('\n')[0]);
    console.log(`1002 got ${push.method} mtype ${push.payload.mtype}: ${push.payload.msg}`);
    const info = JSON.parse(push.payload.msg);
    const body = await new Promise((resolve, reject) => http.get(info.url, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], bytes: Buffer.concat(parts) }));
    }).on('error', reject));
    const same = body.bytes.equals(Buffer.from(content));
    console.log(`GET ${info.url}: ${body.status} ${body.type}, ${body.bytes.length} bytes, the same bytes: ${same}`);
    if (body.status !== 200 || !same || info.size !== body.bytes.length) throw new Error('the download differs from the upload');
    console.log('ok');
  } finally {
    for (const f of cleanup.reverse()) await Promise.resolve().then(f).catch(() => {});
  }
}

if (process.argv.length !== 3) {
  console.error('usage: node tests/manual/ws-sdk-file-upload.js RTM_CLIENT_SDK_WEBSOCKET_DIR');
  process.exit(2);
}
main(process.argv[2]).catch((e) => {
  console.error(`FAILED: ${e.message}`);
  process.exit(1);
});
