'use strict';
// bench/history-reads.js: the server's CPU time per history page. Starts
// one rtmd (RTMD_BIN) on a fresh data directory, stores 200 p2p messages,
// then asks getp2pmsg pages of 20 through the server gate, 8 in flight,
// N per round (default 3000) for R rounds (default 5), and prints rtmd's
// CPU time (utime + stime from /proc, all threads) per page and the median.
//   RTMD_BIN=build-bench-release/rtmd node bench/history-reads.js
const fs = require('node:fs');
const path = require('node:path');
const fpnn = require('../tests/integration/lib/fpnn');
const { appServer } = require('../tests/integration/lib/rtm');
const { startRtmd, makeTempDir } = require('../tests/integration/lib/rtmd');
const P = { pid: '82001', secret: 'history-secret-82001' };
const I = (v) => fpnn.int64(String(v));
(async () => {
  const dir = await makeTempDir();
  const conf = path.join(dir, 'rtmd.conf');
  fs.writeFileSync(conf, `[project]\npid = ${P.pid}\nsecret = "${P.secret}"\nuser_msg_burst = 100000\nuser_msg_rate = 100000\n`);
  const srv = await startRtmd({ config: conf });
  const app = await appServer(srv, { project: P });
  let mid = 9000000000n;
  for (let i = 0; i < 200; i++)
    await app.call('sendmsg', { from: I(1), to: I(2), mid: fpnn.int64((mid++).toString()), mtype: 30, msg: 'hello ' + i, attrs: '' });
  const N = Number(process.env.N || 3000), C = 8;
  const cpu = () => { const f = fs.readFileSync(`/proc/${srv.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; }; // utime + stime, ms (100 Hz)
  const rounds = [];
  for (let round = 0; round < Number(process.env.R || 5); round++) {
    const c0 = cpu();
    const t0 = process.hrtime.bigint();
    let left = N;
    await Promise.all(Array.from({ length: C }, async () => {
      while (left-- > 0)
        await app.call('getp2pmsg', { uid: I(1), ouid: I(2), desc: true, num: 20, lastid: I(0), begin: I(0), end: I(0) });
    }));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const c = cpu() - c0;
    rounds.push(c * 1000 / N);
    console.log(`rtmd cpu ${c} ms = ${(c * 1000 / N).toFixed(1)} us/req; round ${round}: ${N} getp2pmsg in ${ms.toFixed(0)} ms, ${(N / ms * 1000).toFixed(0)}/s, ${(ms * 1000 / N).toFixed(0)} us each`);
  }
  rounds.sort((a, b) => a - b);
  console.log(`median rtmd cpu ${rounds[rounds.length >> 1].toFixed(1)} us per getp2pmsg`);
  await app.close();
  await srv.stop('SIGTERM');
  await srv.cleanup();
})();
