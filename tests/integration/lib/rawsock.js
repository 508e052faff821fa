'use strict';
// Plain sockets for tests that send bytes no well-behaved client would (a
// partial packet, a partial WebSocket frame) or that only hold a link open:
// a TCP link that records when the server closes it, and the bytes of a
// WebSocket upgrade and of a masked binary frame header.

const crypto = require('node:crypto');
const net = require('node:net');

// Connects to 127.0.0.1:port (from localAddress if given). The socket reads
// and discards what arrives (kept in .received), ignores errors, and sets
// .closedByServer once it closes.
function rawConnect(port, { localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => {
      s.removeListener('error', reject);
      s.on('error', () => {});
      s.on('close', () => (s.closedByServer = true));
      s.received = Buffer.alloc(0);
      s.on('data', (d) => (s.received = Buffer.concat([s.received, d])));
      resolve(s);
    });
    s.once('error', reject);
  });
}

// Resolves true if the socket closes within ms.
function closedWithin(socket, ms) {
  if (socket.closedByServer || socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

// An HTTP upgrade request to a WebSocket path.
function wsUpgrade(path) {
  const key = crypto.randomBytes(16).toString('base64');
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

// The header of a masked binary frame with FIN announcing length bytes of
// payload (the payload that follows may be anything: the server unmasks it).
function wsBinaryHeader(length) {
  let head;
  if (length < 126) {
    head = Buffer.alloc(6);
    head[1] = 0x80 | length;
  } else if (length < 65536) {
    head = Buffer.alloc(8);
    head[1] = 0x80 | 126;
    head.writeUInt16BE(length, 2);
  } else {
    head = Buffer.alloc(14);
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  head[0] = 0x82;
  crypto.randomBytes(4).copy(head, head.length - 4);
  return head;
}

module.exports = { rawConnect, closedWithin, wsUpgrade, wsBinaryHeader };
