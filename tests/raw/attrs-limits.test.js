'use strict';
// Session attributes are bounded per connection: at most max_session_attrs
// of them (200032), a key of at most 128 bytes and a value of at most
// max_attrs_bytes (200030), and at most max_session_attrs_bytes of keys and
// values in all (200030). addattrs sets all its pairs or none; auth with
// attrs is held to the same limits and does not log in when over them.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('../integration/lib/fpnn');
const { withLogs } = require('../integration/lib/rtmd');
const { startWithProjects, login, expectCode, stopChecked } = require('../integration/lib/rtm');

const SMALL = { pid: 71001, secret: 'attrs-small-secret', max_session_attrs: 4, max_session_attrs_bytes: 1000, max_attrs_bytes: 300 };
const DEFAULTS = { pid: 71002, secret: 'attrs-default-secret' };

function mine(answer) {
  return answer.attrs.find((a) => a.my === '1');
}

describe('session attribute limits', () => {
  let srv;
  let apps;
  const it = (name, fn) => test(name, { timeout: 30000 }, withLogs(() => [srv], fn));

  before(async () => {
    ({ srv, apps } = await startWithProjects([SMALL, DEFAULTS]));
  });

  after(async () => {
    await stopChecked(srv, apps);
  });

  it('more attributes than max_session_attrs are refused with 200032', async () => {
    const u = await login(srv, apps[0], 1);
    await expectCode(u.call('addattrs', { attrs: { a: '1', b: '2', c: '3', d: '4', e: '5' } }), 200032);
    await u.call('addattrs', { attrs: { a: '1', b: '2', c: '3', d: '4' } });
    await expectCode(u.call('addattrs', { attrs: { e: '5' } }), 200032);
    // Replacing an attribute adds none.
    await u.call('addattrs', { attrs: { a: 'one' } });
    const got = mine(await u.call('getattrs', {}));
    assert.equal(got.a, 'one');
    assert.equal(got.e, undefined);
    await u.close();
  });

  it('a key over 128 bytes or a value over max_attrs_bytes is refused with 200030', async () => {
    const u = await login(srv, apps[0], 2);
    await expectCode(u.call('addattrs', { attrs: { ['k'.repeat(129)]: 'v' } }), 200030);
    await expectCode(u.call('addattrs', { attrs: { k: 'v'.repeat(301) } }), 200030);
    await u.call('addattrs', { attrs: { ['k'.repeat(128)]: 'v'.repeat(300) } });
    await u.close();
  });

  it('keys and values over max_session_attrs_bytes in all are refused with 200030, nothing set', async () => {
    const u = await login(srv, apps[0], 3);
    await u.call('addattrs', { attrs: { a: 'x'.repeat(299), b: 'x'.repeat(299), c: 'x'.repeat(299) } }); // 900 bytes
    await expectCode(u.call('addattrs', { attrs: { a: 'q'.repeat(299), d: 'y'.repeat(100) } }), 200030); // 1001 bytes
    let got = mine(await u.call('getattrs', {}));
    assert.equal(got.a, 'x'.repeat(299), 'a refused addattrs sets none of its pairs');
    assert.equal(got.d, undefined);
    // Replacing a value frees the old one's bytes.
    await u.call('addattrs', { attrs: { a: 'z', d: 'y'.repeat(200) } });
    got = mine(await u.call('getattrs', {}));
    assert.equal(got.d, 'y'.repeat(200));
    await u.close();
  });

  it('keys and values of another type are refused with 10010', async () => {
    const u = await login(srv, apps[0], 4);
    await expectCode(u.call('addattrs', { attrs: { a: 5 } }), 10010);
    await expectCode(u.call('addattrs', { attrs: 'a' }), 10010);
    await u.close();
  });

  it('auth with attrs over the limits is refused and does not log in', async () => {
    const token = await apps[0].token(5);
    const c = await fpnn.connect({ port: srv.ports.client_tcp });
    const auth = (attrs) => c.quest('auth', { pid: fpnn.int64(SMALL.pid), uid: fpnn.int64(5), token, version: 't', attrs });
    await expectCode(auth({ a: '1', b: '2', c: '3', d: '4', e: '5' }), 200032);
    await expectCode(auth({ a: 'v'.repeat(301) }), 200030);
    await expectCode(c.quest('getattrs', {}), 200022);
    const ok = await auth({ a: 'v'.repeat(300) });
    assert.equal(ok.ok, true);
    assert.equal(mine(await c.quest('getattrs', {})).a, 'v'.repeat(300));
    await c.close();
  });

  it('with the default limits, 32 attributes of 2048 bytes at most and 16 KiB in all', async () => {
    const u = await login(srv, apps[1], 6);
    await expectCode(u.call('addattrs', { attrs: { big: 'x'.repeat(100000) } }), 200030);
    await expectCode(u.call('addattrs', { attrs: { big: 'x'.repeat(2049) } }), 200030);
    const attrs = {};
    for (let i = 0; i < 7; i++) attrs[`k${i}`] = 'x'.repeat(2048);
    await u.call('addattrs', { attrs });
    await expectCode(u.call('addattrs', { attrs: { k7: 'x'.repeat(2048) } }), 200030);
    const many = {};
    for (let i = 0; i < 26; i++) many[`m${i}`] = 'y';
    await expectCode(u.call('addattrs', { attrs: many }), 200032);
    await u.close();
  });
});
