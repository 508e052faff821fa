'use strict';
// The write rates count stored messages: a sendmsgs to N receivers costs N
// (a group message 1), per user (user_msg_rate, user_msg_burst) and per
// project (project_msg_rate, project_msg_burst); past them a client-gate
// sender is refused with 200010 (RTM_EC_FREQUENCY_LIMITED). The app server
// is not rate limited. On a cluster each node enforces the project's limits
// divided by the number of nodes (docs/cluster.md "Rate limits"): the
// project's senders log in to one node (srv.node(0)) and spend its share.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { withLogs } = require('../integration/lib/rtmd');
const { startWithProjects, login, expectCode, stopChecked, int64s } = require('../integration/lib/rtm');

const USER = { pid: 73001, secret: 'quota-rows-user', user_msg_rate: 10, user_msg_burst: 20, user_byte_rate: 0, project_msg_rate: 0, project_byte_rate: 0 };
const PROJECT = { pid: 73002, secret: 'quota-rows-project', user_msg_rate: 0, user_byte_rate: 0, project_msg_rate: 10, project_msg_burst: 30, project_byte_rate: 0 };

let mid = 1;
const send = (u, to) => u.call('sendmsg', { to: fpnn.int64(to), mid: fpnn.int64(mid++), mtype: 30, msg: 'hi', attrs: '' });
const sendMany = (u, tos) => u.call('sendmsgs', { tos: int64s(tos), mid: fpnn.int64(mid++), mtype: 30, msg: 'hi', attrs: '' });
const range = (from, n) => Array.from({ length: n }, (_, i) => from + i);
// Sends count messages at once (all admitted within a few milliseconds,
// so the bucket refills by less than one) and checks that the first
// `burst` pass and the rest are refused with 200010.
async function burstOf(count, burst, sendOne) {
  const results = await Promise.allSettled(Array.from({ length: count }, () => sendOne()));
  results.forEach((r, i) => {
    if (i < burst) assert.equal(r.status, 'fulfilled', `message ${i} of the burst passes: ${r.reason && r.reason.message}`);
    else assert.equal(r.status === 'rejected' && r.reason.code, 200010, `message ${i} past the burst is refused`);
  });
}

describe('write rates in stored messages', () => {
  let srv;
  let apps;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => [srv], fn));

  before(async () => {
    ({ srv, apps } = await startWithProjects([USER, PROJECT]));
  });

  after(async () => {
    await stopChecked(srv, apps);
  });

  it('a sendmsgs to 50 receivers costs 50: the next message is refused with 200010', async () => {
    const u = await login(srv, apps[0], 1);
    await sendMany(u, range(100, 50)); // a full bucket admits it, and owes 30
    await expectCode(send(u, 2), 200010);
    await new Promise((r) => setTimeout(r, 1000)); // 10 back: still in debt
    await expectCode(send(u, 2), 200010);
    await u.close();
  });

  it('single messages pass up to the burst', async () => {
    const u = await login(srv, apps[0], 3);
    await burstOf(21, 20, () => send(u, 4));
    await u.close();
  });

  it('a group message costs one', async () => {
    await apps[0].call('addgroupmembers', { gid: fpnn.int64(9), uids: int64s(range(500, 100)) });
    const u = await login(srv, apps[0], 500);
    await burstOf(21, 20, () => u.call('sendgroupmsg', { gid: fpnn.int64(9), mid: fpnn.int64(mid++), mtype: 30, msg: 'g', attrs: '' }));
    await u.close();
  });

  it('the project rate counts every user of the project; the app server passes', async () => {
    const a = await login(srv.node(0), apps[1], 1);
    const b = await login(srv.node(0), apps[1], 2);
    // A full bucket admits 40 and owes 10, a second of the rate: b is
    // refused however long the commit of a's messages takes.
    await sendMany(a, range(100, 40 / srv.nodes.length));
    await expectCode(send(b, 3), 200010);
    await apps[1].call('sendmsgs', { from: fpnn.int64(1), tos: int64s(range(100, 30)), mid: fpnn.int64(mid++), mtype: 30, msg: 'srv', attrs: '' });
    await a.close();
    await b.close();
  });

  it('the app server is not rate limited by the user rate', async () => {
    for (let i = 0; i < 5; i++) {
      await apps[0].call('sendmsgs', { from: fpnn.int64(7), tos: int64s(range(100, 50)), mid: fpnn.int64(mid++), mtype: 30, msg: 'srv', attrs: '' });
    }
  });
});
