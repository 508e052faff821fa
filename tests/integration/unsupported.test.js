'use strict';
// Services rtmd does not offer: the Go server SDK's audio/video room
// methods (RTC) and its IM library methods (imserver_*), sent with the
// payloads that SDK sends, are answered 200060 with an ex that names the
// method and says this server does not support the service; only when
// signed (200002 otherwise), only on the server gate (20004 on the client
// gates), in msgpack and in JSON.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fpnn = require('./lib/fpnn');
const { login, expectCode, startWithProjects, stopChecked } = require('./lib/rtm');
const { withLogs } = require('./lib/rtmd');

describe('RTC and IM library methods: not supported (200060)', () => {
  let srv, app;
  const logs = () => [srv];
  const it = (name, fn, timeout = 30000) => test(name, { timeout }, withLogs(logs, fn));
  const I = fpnn.int64;
  const ids = (...v) => v.map(I);

  // What the Go SDK (rtmServerInterface.RTC.go, rtmServerInterface.IMlib.go) sends.
  const rtc = {
    inviteUserIntoRTCRoom: { rid: I(7), toUids: ids(1, 2), fromUid: I(3) },
    closeRTCRoom: { rid: I(7) },
    kickoutFromRTCRoom: { rid: I(7), fromUid: I(3), uid: I(1) },
    getRTCRoomList: {},
    getRTCRoomMembers: { rid: I(7) },
    getRTCRoomMemberCount: { rid: I(7) },
    setRTCRoomMicStatus: { rid: I(7), status: true },
    pullIntoRTCRoom: { rid: I(7), toUids: ids(1), type: 1, voiceRange: 100, maxReceiveStreams: 4 },
    adminCommand: { rid: I(7), uids: ids(1, 2), command: 1 },
  };
  const imlib = {
    imserver_setuserinfos: { uid: I(1), infos: { name: 'a' } },
    imserver_setgroupinfos: { gid: I(9), infos: { name: 'g' } },
    imserver_setapplygrant: { type: 1, xid: I(9), grant_type: 0, extra: 'x' },
    imserver_setinvitegrant: { type: 1, xid: I(9), invite_type: 0, invite_manage_type: 1 },
    imserver_creategroup: { gid: I(9), owner_uid: I(1), infos: {}, permissions: {} },
    imserver_dismissgroup: { gid: I(9) },
    imserver_getapplygrant: { type: 1, xid: I(9) },
    imserver_getinvitegrant: { type: 1, xid: I(9) },
    imserver_getuserinfos: { uids: ids(1, 2) },
    imserver_getgroupinfos: { gids: ids(9) },
    imserver_addgroupmembers: { gid: I(9), uids: ids(1) },
  };

  before(async () => {
    ({ srv, apps: [app] } = await startWithProjects([{ pid: 86001, secret: 'unsupported-secret' }]));
  });

  after(() => stopChecked(srv, [app]));

  it('every RTC method answers 200060 naming the method and RTC', async () => {
    for (const [method, payload] of Object.entries(rtc)) {
      const e = await expectCode(app.call(method, payload), 200060);
      assert.match(e.ex, new RegExp(`^${method}: audio/video rooms \\(RTC\\) are not supported by this server`), method);
    }
    // Whatever the payload: nothing is read from it.
    await expectCode(app.call('closeRTCRoom', { rid: 'not a number' }), 200060);
  });

  it('every imserver_ method answers 200060 naming the method and the IM library', async () => {
    for (const [method, payload] of Object.entries(imlib)) {
      const e = await expectCode(app.call(method, payload), 200060);
      assert.match(e.ex, new RegExp(`^${method}: the IM library service is not supported by this server`), method);
    }
  });

  it('unsigned requests get 200002; client gates do not have them (20004)', async () => {
    await expectCode(app.client.quest('closeRTCRoom', { pid: I(86001), rid: I(7) }), 200002);
    await expectCode(app.client.quest('imserver_dismissgroup', { pid: I(86001), gid: I(9) }), 200002);
    for (const transport of ['tcp', 'ws']) {
      const u = await login(srv, app, 5, { transport });
      await expectCode(u.call('getRTCRoomList', {}), 20004);
      await expectCode(u.call('imserver_getuserinfos', { uids: ids(1) }), 20004);
      await u.close();
    }
  });

  it('JSON: the same answer', async () => {
    for (const method of ['getRTCRoomMembers', 'imserver_getgroupinfos']) {
      const e = await expectCode(app.call(method, { rid: 7, gids: [9] }, { json: true }), 200060);
      assert.match(e.ex, /not supported by this server/);
    }
  });
});
