'use strict';
// An FPNN client for the integration tests, written from the protocol
// description (shared docs, protocol.md sections 1-3) and deliberately
// independent of rtmd's own C codec, so that a bug shared by the server's
// encoder and decoder cannot hide behind a matching client.
//
// What it covers:
//   * packet encode/decode: "FPNN", version, flag (0x80 msgpack, 0x40 JSON),
//     mtype (0 oneway, 1 twoway, 2 answer), ss (method length or answer
//     status), psize and seq as u32 little-endian, then method, then payload;
//   * msgpack through msgpack-lite with the int64-buffer codec, so that 64-bit
//     integers round-trip exactly (decoded as Int64BE/Uint64BE objects);
//   * transports: plain TCP, WebSocket (one packet per binary message) and
//     encrypted TCP (the `*key` handshake, AES-CFB in package or stream mode).
//
// The client is strict about what it receives: a malformed packet from the
// server is reported as a 'protocolError' event and closes the link, so that
// tests notice it instead of silently resynchronising.

const net = require('node:net');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const msgpack = require('msgpack-lite');
const { Int64BE, Uint64BE } = require('int64-buffer');
const WebSocket = require('ws');

const MAGIC = Buffer.from('FPNN', 'ascii');
const VERSION = 1;
const FLAG_JSON = 0x40;
const FLAG_MSGPACK = 0x80;
const MTYPE_ONEWAY = 0;
const MTYPE_TWOWAY = 1;
const MTYPE_ANSWER = 2;
const HEADER_SIZE = 12;
const DEFAULT_TIMEOUT_MS = 5000;
// The client refuses to buffer more than this for one incoming packet.
const CLIENT_MAX_PACKET = 64 * 1024 * 1024;

const codec = msgpack.createCodec({ int64: true });

function encodeMsgpack(value) {
  return msgpack.encode(value, { codec });
}

function decodeMsgpack(buf) {
  return msgpack.decode(buf, { codec });
}

class FpnnProtocolError extends Error {}

// Error answer (status != 0): carries the FPNN error fields.
class FpnnAnswerError extends Error {
  constructor(packet) {
    const p = packet.payload && typeof packet.payload === 'object' ? packet.payload : {};
    const code = p.code !== undefined ? toNumber(p.code) : undefined;
    super(`FPNN error answer status=${packet.ss} code=${code} ex=${p.ex} raised=${p.raised}`);
    this.status = packet.ss;
    this.code = code;
    this.ex = p.ex;
    this.raised = p.raised;
    this.packet = packet;
  }
}

// ---------------------------------------------------------------- packets

function payloadBytes(payload, json) {
  if (Buffer.isBuffer(payload)) return payload; // already encoded by the caller
  if (payload === undefined) payload = {};
  if (json) return Buffer.from(JSON.stringify(payload), 'utf8');
  return encodeMsgpack(payload);
}

// Encodes one packet. Fields: mtype, method (quests), seq (twoway/answer),
// status (answers), payload (object, or a Buffer taken as already encoded),
// json (bool) or flag (raw byte), version (raw byte, default 1); method may
// be a Buffer of raw bytes.
function encodePacket({ mtype, method = '', seq = 0, status = 0, payload, json = false, flag, version = VERSION }) {
  const body = payloadBytes(payload, json);
  // A Buffer method is sent as its bytes (e.g. a name that is not UTF-8).
  const methodBuf = mtype === MTYPE_ANSWER ? Buffer.alloc(0) : Buffer.isBuffer(method) ? method : Buffer.from(method, 'utf8');
  if (methodBuf.length > 255) throw new RangeError('method name longer than 255 bytes');
  const hasSeq = mtype !== MTYPE_ONEWAY;
  const head = Buffer.alloc(hasSeq ? 16 : 12);
  MAGIC.copy(head, 0);
  head[4] = version;
  head[5] = flag !== undefined ? flag : json ? FLAG_JSON : FLAG_MSGPACK;
  head[6] = mtype;
  head[7] = mtype === MTYPE_ANSWER ? status : methodBuf.length;
  head.writeUInt32LE(body.length, 8);
  if (hasSeq) head.writeUInt32LE(seq >>> 0, 12);
  return Buffer.concat([head, methodBuf, body]);
}

function decodePayload(flag, buf) {
  if (flag === FLAG_MSGPACK) {
    if (buf.length === 0) throw new FpnnProtocolError('empty msgpack payload');
    return decodeMsgpack(buf);
  }
  if (flag === FLAG_JSON) {
    const text = buf.toString('utf8');
    return JSON.parse(text);
  }
  throw new FpnnProtocolError(`unknown payload flag 0x${flag.toString(16)}`);
}

// Incremental parser: push() bytes, get back complete packets.
class PacketParser {
  constructor({ maxPacket = CLIENT_MAX_PACKET } = {}) {
    this.maxPacket = maxPacket;
    this.chunks = [];
    this.length = 0;
  }

  push(chunk) {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const out = [];
    for (;;) {
      if (this.length < HEADER_SIZE) break;
      const buf = this._peek(Math.min(this.length, 16));
      if (!buf.subarray(0, 4).equals(MAGIC)) {
        throw new FpnnProtocolError(`bad magic ${JSON.stringify(buf.subarray(0, 4).toString('latin1'))}`);
      }
      const mtype = buf[6];
      if (mtype > MTYPE_ANSWER) throw new FpnnProtocolError(`bad mtype ${mtype}`);
      const ss = buf[7];
      const psize = buf.readUInt32LE(8);
      const headLen = mtype === MTYPE_ONEWAY ? 12 : 16;
      const total = headLen + (mtype === MTYPE_ANSWER ? 0 : ss) + psize;
      if (total > this.maxPacket) throw new FpnnProtocolError(`packet of ${total} bytes is too large`);
      if (this.length < total) break;
      const whole = this._take(total);
      out.push(parsePacketBuffer(whole));
    }
    return out;
  }

  get pending() {
    return this.length;
  }

  _peek(n) {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const merged = Buffer.concat(this.chunks);
    this.chunks = [merged];
    return merged.subarray(0, n);
  }

  _take(n) {
    const merged = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = merged.subarray(0, n);
    const rest = merged.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.length = rest.length;
    return out;
  }
}

// Parses exactly one complete packet (throws when the buffer holds more or less).
function parsePacketBuffer(buf) {
  if (buf.length < HEADER_SIZE) throw new FpnnProtocolError(`packet of ${buf.length} bytes is shorter than a header`);
  if (!buf.subarray(0, 4).equals(MAGIC)) throw new FpnnProtocolError('bad magic');
  const version = buf[4];
  const flag = buf[5];
  const mtype = buf[6];
  const ss = buf[7];
  const psize = buf.readUInt32LE(8);
  if (mtype > MTYPE_ANSWER) throw new FpnnProtocolError(`bad mtype ${mtype}`);
  let off = 12;
  let seq;
  if (mtype !== MTYPE_ONEWAY) {
    if (buf.length < 16) throw new FpnnProtocolError('truncated header');
    seq = buf.readUInt32LE(12);
    off = 16;
  }
  let method;
  if (mtype !== MTYPE_ANSWER) {
    if (buf.length < off + ss) throw new FpnnProtocolError('truncated method');
    method = buf.subarray(off, off + ss).toString('utf8');
    off += ss;
  }
  if (buf.length !== off + psize) {
    throw new FpnnProtocolError(`packet length ${buf.length} does not match header (${off + psize})`);
  }
  const raw = Buffer.from(buf.subarray(off, off + psize));
  const payload = decodePayload(flag, raw);
  return { version, flag, mtype, ss, status: mtype === MTYPE_ANSWER ? ss : undefined, psize, seq, method, raw, payload };
}

// ---------------------------------------------------------------- int64 helpers

function isInt64(v) {
  return Int64BE.isInt64BE(v) || Uint64BE.isUint64BE(v);
}

function toBigInt(v) {
  if (typeof v === 'bigint') return v;
  if (Int64BE.isInt64BE(v)) return BigInt(v.toString(10));
  if (Uint64BE.isUint64BE(v)) return BigInt(v.toString(10));
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new TypeError(`not an integer: ${String(v)}`);
}

function toNumber(v) {
  if (typeof v === 'number') return v;
  if (isInt64(v)) return v.toNumber();
  if (typeof v === 'bigint') return Number(v);
  return v;
}

// Deep copy in which every integer (number, Int64BE, Uint64BE) becomes a
// BigInt, so that two payloads compare equal whatever integer width each
// side chose. Floats stay numbers, Buffers stay Buffers, strings stay strings.
function normalize(v) {
  if (v === null || v === undefined) return v;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (isInt64(v)) return toBigInt(v);
  if (Buffer.isBuffer(v)) return Buffer.from(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = normalize(v[k]);
    return o;
  }
  return v;
}

function int64(v) {
  return new Int64BE(String(v), 10);
}

function uint64(v) {
  return new Uint64BE(String(v), 10);
}

// ---------------------------------------------------------------- encryption

// Server public key in any of: Buffer of 65 bytes (0x04 x y), Buffer of 64
// bytes (x y), or a PEM string/Buffer of a public or private EC key.
function serverPublicPoint(key) {
  if (Buffer.isBuffer(key) && key.length === 65 && key[0] === 4) return key;
  if (Buffer.isBuffer(key) && key.length === 64) return Buffer.concat([Buffer.from([4]), key]);
  const text = Buffer.isBuffer(key) ? key.toString('utf8') : String(key);
  let pub;
  if (text.includes('PRIVATE KEY')) pub = crypto.createPublicKey(crypto.createPrivateKey(text));
  else pub = crypto.createPublicKey(text);
  const der = pub.export({ type: 'spki', format: 'der' });
  const point = der.subarray(der.length - 65);
  if (point[0] !== 4) throw new Error('server public key is not an uncompressed EC point');
  return Buffer.from(point);
}

function deriveKeys(ecdh, serverPoint, bits) {
  const secret = ecdh.computeSecret(serverPoint);
  const iv = crypto.createHash('md5').update(secret).digest();
  let key;
  if (bits === 128) key = secret.subarray(0, 16);
  else if (bits === 256) key = secret.length === 32 ? secret : crypto.createHash('sha256').update(secret).digest();
  else throw new RangeError('bits must be 128 or 256');
  return { key: Buffer.from(key), iv, algorithm: bits === 128 ? 'aes-128-cfb' : 'aes-256-cfb', secret };
}

// Outgoing/incoming byte transformation after the `*key` handshake.
class PackageCrypto {
  constructor({ key, iv, algorithm }) {
    this.key = key;
    this.iv = iv;
    this.algorithm = algorithm;
    this.inbuf = Buffer.alloc(0);
  }

  // One plaintext packet -> length-prefixed ciphertext.
  seal(packet) {
    const c = crypto.createCipheriv(this.algorithm, this.key, this.iv);
    const body = Buffer.concat([c.update(packet), c.final()]);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length, 0);
    return Buffer.concat([len, body]);
  }

  // Received bytes -> list of plaintext packets (each one whole packet).
  open(chunk) {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, chunk]) : chunk;
    const out = [];
    while (this.inbuf.length >= 4) {
      const n = this.inbuf.readUInt32LE(0);
      if (n > CLIENT_MAX_PACKET) throw new FpnnProtocolError(`encrypted package of ${n} bytes is too large`);
      if (this.inbuf.length < 4 + n) break;
      const d = crypto.createDecipheriv(this.algorithm, this.key, this.iv);
      out.push(Buffer.concat([d.update(this.inbuf.subarray(4, 4 + n)), d.final()]));
      this.inbuf = this.inbuf.subarray(4 + n);
    }
    return out;
  }
}

class StreamCrypto {
  constructor({ key, iv, algorithm }) {
    this.enc = crypto.createCipheriv(algorithm, key, iv);
    this.dec = crypto.createDecipheriv(algorithm, key, iv);
  }

  seal(bytes) {
    return this.enc.update(bytes);
  }

  decrypt(chunk) {
    return this.dec.update(chunk);
  }
}

// ---------------------------------------------------------------- client

// Events: 'close' (hadError), 'quest' (packet), 'answer' (packet),
// 'protocolError' (err), 'error' is never emitted (errors are recorded in
// client.errors and end the link).
class FpnnClient extends EventEmitter {
  constructor({ transport, timeoutMs = DEFAULT_TIMEOUT_MS, firstSeq = 1, autoAnswer = true } = {}) {
    super();
    this.transport = transport;
    this.timeoutMs = timeoutMs;
    this.nextSeq = firstSeq >>> 0;
    this.autoAnswer = autoAnswer; // answer unknown server quests with an error
    this.pending = new Map(); // seq -> {resolve, reject, timer, method, full}
    this.handlers = new Map();
    this.quests = []; // every quest received from the server
    this.unmatchedAnswers = []; // answers whose seq we did not send
    this.errors = [];
    this.isClosed = false;
    this.receivedPackets = 0;
    this.parser = new PacketParser();
    this.crypto = null; // PackageCrypto | StreamCrypto once the handshake is on
    this.closed = new Promise((resolve) => {
      this._resolveClosed = resolve;
    });
    this.setMaxListeners(100);
  }

  allocSeq() {
    const s = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) >>> 0;
    return s;
  }

  // Registers a twoway quest and returns {seq, packet, answer} without
  // sending it; send the packet with writePackets() (useful for pipelining).
  prepareQuest(method, payload, { json = false, timeoutMs, full = false, flag } = {}) {
    const seq = this.allocSeq();
    const packet = encodePacket({ mtype: MTYPE_TWOWAY, method, seq, payload, json, flag });
    const answer = this._expect(seq, method, timeoutMs, full);
    return { seq, packet, answer };
  }

  _expect(seq, method, timeoutMs, full) {
    return new Promise((resolve, reject) => {
      if (this.isClosed) {
        reject(this._closedError(method));
        return;
      }
      const ms = timeoutMs === undefined ? this.timeoutMs : timeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        const e = new Error(`quest ${method} seq=${seq} timed out after ${ms} ms`);
        e.timeout = true;
        reject(e);
      }, ms);
      this.pending.set(seq, { resolve, reject, timer, method, full });
    });
  }

  // Twoway quest. Resolves with the answer payload (or the whole packet with
  // {full: true}); rejects with FpnnAnswerError for status != 0.
  quest(method, payload, opts = {}) {
    const q = this.prepareQuest(method, payload, opts);
    this.writePackets([q.packet]);
    return q.answer;
  }

  oneway(method, payload, { json = false } = {}) {
    this.writePackets([encodePacket({ mtype: MTYPE_ONEWAY, method, payload, json })]);
  }

  answer(seq, payload, { json = false, status = 0 } = {}) {
    this.writePackets([encodePacket({ mtype: MTYPE_ANSWER, seq, status, payload, json })]);
  }

  // handler(payload, packet) -> answer payload (or a Promise of it); a thrown
  // error with .code becomes an error answer.
  onQuest(method, handler) {
    this.handlers.set(method, handler);
    return this;
  }

  // Writes whole packets, through the encryption layer when it is on, in one
  // transport write (one WebSocket message per packet).
  writePackets(packets) {
    if (this.isClosed) return false;
    if (this.transport.kind === 'ws') {
      for (const p of packets) this.transport.send(p);
      return true;
    }
    let bytes;
    if (this.crypto instanceof PackageCrypto) bytes = Buffer.concat(packets.map((p) => this.crypto.seal(p)));
    else if (this.crypto instanceof StreamCrypto) bytes = this.crypto.seal(Buffer.concat(packets));
    else bytes = packets.length === 1 ? packets[0] : Buffer.concat(packets);
    return this.transport.send(bytes);
  }

  // Raw bytes straight to the transport, bypassing framing and encryption
  // (over WebSocket: one binary message, or a text message with {text: true}).
  rawWrite(buf, opts = {}) {
    if (this.isClosed) return false;
    return this.transport.send(buf, opts);
  }

  // Resolves true when the link closes within ms, false otherwise.
  waitClose(ms) {
    if (this.isClosed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.closed.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  // Resolves with the next quest (method given) received from the server.
  waitQuest(method, ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('quest', onQuest);
        reject(new Error(`no ${method} quest from the server within ${ms} ms`));
      }, ms);
      const onQuest = (packet) => {
        if (packet.method !== method) return;
        clearTimeout(timer);
        this.off('quest', onQuest);
        resolve(packet);
      };
      this.on('quest', onQuest);
    });
  }

  close() {
    if (!this.isClosed) this.transport.close();
    return this.closed;
  }

  destroy() {
    if (!this.isClosed) this.transport.destroy();
    return this.closed;
  }

  // ---- internals, called by the transports

  _onBytes(chunk) {
    if (this.isClosed) return;
    try {
      let packets;
      if (this.crypto instanceof PackageCrypto) {
        packets = this.crypto.open(chunk).map(parsePacketBuffer);
      } else if (this.crypto instanceof StreamCrypto) {
        packets = this.parser.push(this.crypto.decrypt(chunk));
      } else {
        packets = this.parser.push(chunk);
      }
      for (const p of packets) this._onPacket(p);
    } catch (e) {
      this._protocolError(e);
    }
  }

  _onMessage(buf) {
    if (this.isClosed) return;
    try {
      this._onPacket(parsePacketBuffer(buf));
    } catch (e) {
      this._protocolError(e);
    }
  }

  _protocolError(e) {
    this.errors.push(e);
    this.emit('protocolError', e);
    this.transport.destroy();
  }

  _onPacket(p) {
    this.receivedPackets++;
    if (p.mtype === MTYPE_ANSWER) {
      this.emit('answer', p);
      const w = this.pending.get(p.seq);
      if (!w) {
        this.unmatchedAnswers.push(p);
        return;
      }
      this.pending.delete(p.seq);
      clearTimeout(w.timer);
      if (p.ss !== 0) w.reject(new FpnnAnswerError(p));
      else w.resolve(w.full ? p : p.payload);
      return;
    }
    this.quests.push(p);
    this.emit('quest', p);
    const h = this.handlers.get(p.method);
    const json = p.flag === FLAG_JSON;
    if (!h) {
      if (p.mtype === MTYPE_TWOWAY && this.autoAnswer) {
        this.answer(p.seq, { code: 20004, ex: `client has no handler for ${p.method}`, raised: 'test client' }, { json, status: 1 });
      }
      return;
    }
    Promise.resolve()
      .then(() => h(p.payload, p))
      .then(
        (res) => {
          if (p.mtype === MTYPE_TWOWAY && res !== undefined && res !== false) this.answer(p.seq, res, { json });
        },
        (err) => {
          if (p.mtype === MTYPE_TWOWAY) {
            this.answer(p.seq, { code: err.code || 20000, ex: String(err.message), raised: 'test client' }, { json, status: 1 });
          }
        },
      );
  }

  _closedError(method) {
    const e = new Error(`connection closed before the answer to ${method}`);
    e.closed = true;
    return e;
  }

  _onClose(hadError) {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedAt = Date.now();
    for (const [, w] of this.pending) {
      clearTimeout(w.timer);
      w.reject(this._closedError(w.method));
    }
    this.pending.clear();
    this.emit('close', hadError);
    this._resolveClosed(hadError);
  }
}

// ---------------------------------------------------------------- transports

function tcpTransport(client, socket) {
  socket.setNoDelay(true);
  socket.on('data', (d) => client._onBytes(d));
  socket.on('error', (e) => client.errors.push(e));
  socket.on('close', (hadError) => client._onClose(hadError));
  return {
    kind: 'tcp',
    socket,
    send(buf) {
      if (socket.destroyed) return false;
      return socket.write(buf);
    },
    close() {
      socket.end();
      // A peer that never closes its side must not keep the test waiting.
      setTimeout(() => socket.destroy(), 1000).unref();
    },
    destroy() {
      socket.destroy();
    },
  };
}

function connectTcp(host, port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TCP connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function connectWs(url, timeoutMs, tlsOptions = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false, ...tlsOptions });
    ws.binaryType = 'nodebuffer';
    const fail = (e) => {
      ws.removeAllListeners('open');
      reject(e);
    };
    ws.once('open', () => {
      ws.removeListener('error', fail);
      ws.removeListener('unexpected-response', onUnexpected);
      resolve(ws);
    });
    ws.once('error', fail);
    const onUnexpected = (req, res) => {
      const e = new Error(`WebSocket upgrade refused with HTTP ${res.statusCode}`);
      e.statusCode = res.statusCode;
      res.resume();
      req.destroy();
      reject(e);
    };
    ws.once('unexpected-response', onUnexpected);
  });
}

function wsTransport(client, ws) {
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      client._protocolError(new FpnnProtocolError('text WebSocket message from the server'));
      return;
    }
    client._onMessage(Buffer.isBuffer(data) ? data : Buffer.concat(data));
  });
  ws.on('error', (e) => client.errors.push(e));
  ws.on('close', (code, reason) => {
    client.wsCloseCode = code;
    client.wsCloseReason = reason ? reason.toString() : '';
    client._onClose(code !== 1000);
  });
  return {
    kind: 'ws',
    ws,
    send(buf, { text = false } = {}) {
      if (ws.readyState !== WebSocket.OPEN) return false;
      ws.send(text ? buf.toString() : buf, { binary: !text });
      return true;
    },
    close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
      setTimeout(() => ws.terminate(), 1000).unref();
    },
    destroy() {
      ws.terminate();
    },
  };
}

// Connects and returns an FpnnClient.
//   transport: 'tcp' | 'ws' | 'wss' (WebSocket over TLS) | 'tls-key' (encrypted
//              TCP with the `*key` handshake)
//   wsPath: for 'ws' and 'wss', default '/service/websocket'
//   ca, servername: for 'wss', the CA to trust and the name to check
//   serverPublicKey, streamMode, bits, keyOneway: for 'tls-key'
//   timeoutMs: default timeout of quests (and of connecting)
//   firstSeq, autoAnswer: see FpnnClient
async function connect(opts = {}) {
  const {
    host = '127.0.0.1',
    port,
    transport = 'tcp',
    wsPath = '/service/websocket',
    timeoutMs = DEFAULT_TIMEOUT_MS,
    serverPublicKey,
    streamMode = false,
    bits = 128,
    keyOneway = false,
  } = opts;
  if (!port) throw new Error('connect: port is required');
  const client = new FpnnClient({ timeoutMs, firstSeq: opts.firstSeq, autoAnswer: opts.autoAnswer });
  if (transport === 'ws' || transport === 'wss') {
    const tlsOptions = transport === 'wss' ? { ca: opts.ca, servername: opts.servername } : {};
    const ws = await connectWs(`${transport}://${host}:${port}${wsPath}`, timeoutMs, tlsOptions);
    client.transport = wsTransport(client, ws);
    return client;
  }
  if (transport !== 'tcp' && transport !== 'tls-key') throw new Error(`unknown transport ${transport}`);
  const socket = await connectTcp(host, port, timeoutMs);
  client.transport = tcpTransport(client, socket);
  if (transport === 'tls-key') {
    try {
      await keyHandshake(client, { serverPublicKey, streamMode, bits, keyOneway, timeoutMs });
    } catch (e) {
      client.destroy();
      throw e;
    }
  }
  return client;
}

// The `*key` handshake: a plaintext quest carrying our ECDH public key; every
// byte after it is encrypted in both directions (the answer included).
async function keyHandshake(client, { serverPublicKey, streamMode, bits, keyOneway, timeoutMs }) {
  if (!serverPublicKey) throw new Error('tls-key transport needs serverPublicKey');
  const ecdh = crypto.createECDH('secp256k1');
  ecdh.generateKeys();
  const ours = ecdh.getPublicKey(); // 65 bytes, 0x04 x y
  const keys = deriveKeys(ecdh, serverPublicPoint(serverPublicKey), bits);
  const payload = { publicKey: ours.subarray(1), streamMode: !!streamMode, bits };
  client.cipherKeys = keys;
  if (keyOneway) {
    client.writePackets([encodePacket({ mtype: MTYPE_ONEWAY, method: '*key', payload })]);
    client.crypto = streamMode ? new StreamCrypto(keys) : new PackageCrypto(keys);
    return;
  }
  const q = client.prepareQuest('*key', payload, { timeoutMs });
  client.writePackets([q.packet]);
  client.crypto = streamMode ? new StreamCrypto(keys) : new PackageCrypto(keys);
  await q.answer;
}

module.exports = {
  connect,
  encodePacket,
  parsePacketBuffer,
  PacketParser,
  FpnnClient,
  FpnnAnswerError,
  FpnnProtocolError,
  encodeMsgpack,
  decodeMsgpack,
  codec,
  Int64BE,
  Uint64BE,
  int64,
  uint64,
  toBigInt,
  toNumber,
  normalize,
  isInt64,
  serverPublicPoint,
  deriveKeys,
  FLAG_JSON,
  FLAG_MSGPACK,
  MTYPE_ONEWAY,
  MTYPE_TWOWAY,
  MTYPE_ANSWER,
};
