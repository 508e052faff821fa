'use strict';
// A free TCP port on 127.0.0.1 for a server that cannot pick its own (port
// 0): the kernel picks one for a probe listener, which is closed again. A
// later bind may still lose the port to another process; callers retry.

const net = require('node:net');

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

module.exports = { freePort };
