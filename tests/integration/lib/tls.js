'use strict';
// A throw-away certificate authority for the TLS tests, made with the
// openssl command: a CA, and server certificates it signs for localhost and
// 127.0.0.1. Node clients trust the CA through `ca`, Chromium through the
// certificate store of browser.js's homeTrusting.

const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

// Creates ca.pem and ca.key in dir; returns their paths.
function makeCa(dir, name = 'rtmd test CA') {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', 'ca.key', '-out', 'ca.pem'], dir);
  return { cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca.key'), pem: fs.readFileSync(path.join(dir, 'ca.pem')) };
}

// Creates <name>.pem (leaf then CA, as a chain file) and <name>.key signed
// by ca, valid for localhost and 127.0.0.1; returns paths and the serial.
function makeServerCert(dir, ca, name = 'server') {
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, 'subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = serverAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2',
    '-extfile', ext, '-out', `${name}.leaf.pem`], dir);
  const leaf = fs.readFileSync(path.join(dir, `${name}.leaf.pem`));
  fs.writeFileSync(path.join(dir, `${name}.pem`), Buffer.concat([leaf, ca.pem]));
  const x509 = new crypto.X509Certificate(leaf);
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`), serial: x509.serialNumber, x509 };
}

module.exports = { makeCa, makeServerCert };
