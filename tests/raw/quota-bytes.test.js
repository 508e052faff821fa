'use strict';
// The write rates count stored bytes too (msg and attrs, times the stored
// messages), per user (user_byte_rate, user_byte_burst) and per project
// (project_byte_rate, project_byte_burst): 200010 past them. On a cluster
// each node enforces the project's limits divided by the number of nodes
// (docs/cluster.md "Rate limits"): the project's senders log in to one
// node (srv.node(0)) and spend its share.

const { describe, test, before, after } = require('node:test');
const fpnn = require('../integration/lib/fpnn');
const { withLogs } = require('../integration/lib/rtmd');
const { startWithProjects, login, expectCode, stopChecked, int64s } = require('../integration/lib/rtm');

const OFF = { user_msg_rate: 0, project_msg_rate: 0 };
const USER = { pid: 74001, secret: 'quota-bytes-user', ...OFF, user_byte_rate: 1000, user_byte_burst: 10000, project_byte_rate: 0 };
const PROJECT = { pid: 74002, secret: 'quota-bytes-project', ...OFF, user_byte_rate: 0, project_byte_rate: 1000, project_byte_burst: 10000 };

let mid = 1;
const send = (u, to, bytes) => u.call('sendmsg', { to: fpnn.int64(to), mid: fpnn.int64(mid++), mtype: 30, msg: 'x'.repeat(bytes), attrs: '' });

describe('write rates in stored bytes', () => {
  let srv;
  let apps;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => [srv], fn));

  before(async () => {
    ({ srv, apps } = await startWithProjects([USER, PROJECT]));
  });

  after(async () => {
    await stopChecked(srv, apps);
  });

  it('one user: 10000 bytes at once, then 200010', async () => {
    const u = await login(srv, apps[0], 1);
    await send(u, 2, 4000);
    await send(u, 2, 4000);
    await expectCode(send(u, 2, 4000), 200010);
    await u.close();
  });

  it('a sendmsgs is charged its bytes once per receiver', async () => {
    const u = await login(srv, apps[0], 3);
    await u.call('sendmsgs', { tos: int64s([10, 11, 12, 13, 14]), mid: fpnn.int64(mid++), mtype: 30, msg: 'x'.repeat(2000), attrs: 'y'.repeat(100) });
    await expectCode(send(u, 10, 100), 200010);
    await u.close();
  });

  it('the project: all users together, then 200010', async () => {
    const share = (bytes) => bytes / srv.nodes.length;
    const a = await login(srv.node(0), apps[1], 1);
    const b = await login(srv.node(0), apps[1], 2);
    await send(a, 3, share(9000));
    await expectCode(send(b, 3, share(2000)), 200010);
    await a.close();
    await b.close();
  });
});
