'use strict';
// RTS access tokens in the vendor's published format, built here with no
// help from rtmd, for the tests that need tokens rtmd would not mint
// (expired, for another app, signed with a wrong key):
//   "001" + app id + base64(u16 len + msg, u16 len + HMAC-SHA256(key, msg)),
//   msg = u32 nonce, issued, expire, u16-prefixed room and user, u16 count
//   of privileges then (u16 key, u32 expiry) each; all little-endian.

const crypto = require('node:crypto');

function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function prefixed(s) {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([u16(b.length), b]);
}

// privileges: [[key, expiry], ...] (default: one, key 4 "login", no expiry).
function buildRtsToken({ appId, key, user, room = '', issued, expire, privileges = [[4, 0]] }) {
  const head = Buffer.alloc(12);
  head.writeUInt32LE(crypto.randomInt(1, 99999999), 0);
  head.writeUInt32LE(issued, 4);
  head.writeUInt32LE(expire, 8);
  const privs = Buffer.alloc(2 + 6 * privileges.length);
  privs.writeUInt16LE(privileges.length, 0);
  privileges.forEach(([k, e], i) => {
    privs.writeUInt16LE(k, 2 + 6 * i);
    privs.writeUInt32LE(e, 4 + 6 * i);
  });
  const msg = Buffer.concat([head, prefixed(room), prefixed(user), privs]);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'utf8')).update(msg).digest();
  return `001${appId}${Buffer.concat([u16(msg.length), msg, u16(sig.length), sig]).toString('base64')}`;
}

module.exports = { buildRtsToken };
