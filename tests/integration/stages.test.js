'use strict';
// Per-stage latency histograms of the message path in /metrics
// (rtmd_stage_seconds, rtmd_stage_count: src/core/lathist.h): stored
// messages add a sample to every stage they pass, the buckets are
// cumulative on fixed bounds (the same series at every scrape), and
// +Inf equals _count. Metrics count one process: on a cluster the app
// server is pinned to the node scraped.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { appServer } = require('./lib/rtm');
const { get, metric } = require('./lib/http');
const { sanitizerReports, startRtmd, withLogs } = require('./lib/rtmd');

// The bucket lines of one histogram stage, in order: [[le, value], ...].
function buckets(text, name, stage) {
  const out = [];
  const re = new RegExp(`^${name}_bucket\\{stage="${stage}",le="([^"]+)"\\} (\\d+)$`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (m) out.push([m[1], Number(m[2])]);
  }
  return out;
}

describe('per-stage histograms', () => {
  let srv;
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(() => srv, fn));

  before(async () => {
    srv = await startRtmd();
  });

  after(async () => {
    if (srv) {
      const code = await srv.stop('SIGTERM');
      await srv.cleanup();
      assert.equal(code, 0, `rtmd exit code after SIGTERM\n${srv.diagnostics()}`);
    }
    const reports = sanitizerReports();
    assert.equal(reports.length, 0, `sanitizer reports from rtmd:\n${reports.join('\n')}`);
  });

  it('stored messages are counted in every stage of their path, on fixed buckets', async () => {
    const node = srv.node(0);
    const scrape = async () => (await get(node.ports.http, '/metrics')).body;
    const count = (text, stage) => metric(text, 'rtmd_stage_seconds_count', { stage }) ?? 0;
    const before = await scrape();
    const app = await appServer(node, { project: srv.projects[0] });
    const N = 40;
    try {
      await Promise.all(Array.from({ length: N }, (_, i) => app.call('sendmsg', {
        from: fpnn.int64(7001), to: fpnn.int64(7002), mid: fpnn.int64(String(9100000 + i)), mtype: 30, msg: `m${i}`, attrs: '',
      })));
    } finally {
      await app.close();
    }
    const text = await scrape();
    // Per message: from the quest to its written answer.
    for (const stage of ['handler', 'deliver', 'flush', 'server']) {
      assert.ok(count(text, stage) - count(before, stage) >= N, `stage ${stage}: ${count(before, stage)} -> ${count(text, stage)} after ${N} messages`);
    }
    // Per store write (messages and anything else written).
    for (const stage of ['queue', 'apply', 'wake']) {
      assert.ok(count(text, stage) - count(before, stage) >= N, `stage ${stage} counts every write`);
    }
    // Per batch and per fdatasync (the default store_fsync = 1).
    for (const stage of ['batch_apply', 'batch_commit']) assert.ok(count(text, stage) > count(before, stage), `stage ${stage} counted`);
    if ((process.env.RTMD_TEST_STORE || 'sqlite') === 'sqlite') assert.ok(count(text, 'fdatasync') > count(before, 'fdatasync'), 'fdatasync counted');
    const sizes = metric(text, 'rtmd_stage_count_sum', { stage: 'batch_size' }) - (metric(before, 'rtmd_stage_count_sum', { stage: 'batch_size' }) ?? 0);
    assert.ok(sizes >= N, `writes per batch add up to at least the ${N} messages (got ${sizes})`);

    for (const [name, stage] of [['rtmd_stage_seconds', 'server'], ['rtmd_stage_count', 'batch_size']]) {
      const b = buckets(text, name, stage);
      assert.ok(b.length > 5, `${name} ${stage} has buckets`);
      assert.equal(b[b.length - 1][0], '+Inf');
      for (let i = 1; i < b.length; i++) assert.ok(b[i][1] >= b[i - 1][1], `${name} ${stage} buckets are cumulative at le=${b[i][0]}`);
      assert.equal(b[b.length - 1][1], metric(text, `${name}_count`, { stage }), '+Inf holds every sample');
      // The same bounds whatever the samples: compare with the first scrape.
      assert.deepEqual(b.map(([le]) => le), buckets(before, name, stage).map(([le]) => le), `${name} ${stage}: fixed bucket bounds`);
    }
    assert.ok(text.includes('# TYPE rtmd_stage_seconds histogram'), 'typed as a histogram');
  });
});
