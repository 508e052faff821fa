// FPNN over WebSocket: one binary WebSocket message per FPNN packet, msgpack
// payloads. Owns the framing (12/16-byte header, little-endian), sequence
// ids, matching answers to quests with a timeout, answering the server's
// quests (pushes), and the keepalive (`ping` when the link has been idle).
// It knows nothing about RTM: the RTS layer (rts.js) sits on top.

import { encode, decode } from '@msgpack/msgpack';

const MAGIC = [0x46, 0x50, 0x4e, 0x4e]; // "FPNN"
const VERSION = 1;
const FLAG_MSGPACK = 0x80;
const FLAG_JSON = 0x40;
const MTYPE_ONEWAY = 0;
const MTYPE_TWOWAY = 1;
const MTYPE_ANSWER = 2;

// FPNN core error codes the SDK raises itself.
export const FPNN_EC = {
  UNKNOWN_ERROR: 20000,
  CONNECTION_CLOSED: 20001,
  INVALID_CONNECTION: 20002,
  TIMEOUT: 20003,
};

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function rtsError(code, message, extra) {
  const e = new Error(message);
  e.code = code;
  if (extra) Object.assign(e, extra);
  return e;
}

export function encodePayload(value) {
  return encode(value, { useBigInt64: true });
}

export function decodePayload(flag, bytes) {
  if (flag === FLAG_JSON) return JSON.parse(textDecoder.decode(bytes));
  return decode(bytes, { useBigInt64: true });
}

export function encodePacket(mtype, method, seq, payload, status = 0) {
  const body = encodePayload(payload === undefined ? {} : payload);
  const name = mtype === MTYPE_ANSWER ? new Uint8Array(0) : textEncoder.encode(method);
  if (name.length > 255) throw new RangeError('FPNN method name longer than 255 bytes');
  const head = mtype === MTYPE_ONEWAY ? 12 : 16;
  const buf = new Uint8Array(head + name.length + body.length);
  const dv = new DataView(buf.buffer);
  buf.set(MAGIC, 0);
  buf[4] = VERSION;
  buf[5] = FLAG_MSGPACK;
  buf[6] = mtype;
  buf[7] = mtype === MTYPE_ANSWER ? status : name.length;
  dv.setUint32(8, body.length, true);
  if (mtype !== MTYPE_ONEWAY) dv.setUint32(12, seq >>> 0, true);
  buf.set(name, head);
  buf.set(body, head + name.length);
  return buf;
}

// Parses one whole packet (one WebSocket message). Throws on anything malformed.
export function parsePacket(bytes) {
  if (bytes.length < 12) throw new Error('FPNN packet shorter than its header');
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) throw new Error('bad FPNN magic');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flag = bytes[5];
  const mtype = bytes[6];
  const ss = bytes[7];
  const psize = dv.getUint32(8, true);
  if (mtype > MTYPE_ANSWER) throw new Error(`bad FPNN mtype ${mtype}`);
  let off = 12;
  let seq = 0;
  if (mtype !== MTYPE_ONEWAY) {
    if (bytes.length < 16) throw new Error('truncated FPNN header');
    seq = dv.getUint32(12, true);
    off = 16;
  }
  let method;
  if (mtype !== MTYPE_ANSWER) {
    method = textDecoder.decode(bytes.subarray(off, off + ss));
    off += ss;
  }
  if (bytes.length !== off + psize) throw new Error('FPNN packet length does not match its header');
  const payload = psize ? decodePayload(flag, bytes.subarray(off)) : {};
  return { flag, mtype, ss, seq, method, payload };
}

function toNumber(v) {
  return typeof v === 'bigint' ? Number(v) : v;
}

// One FPNN link over one WebSocket. Callbacks (all optional):
//   onQuest(method, payload) -> answer payload (or undefined for {})
//   onClose({code, reason, byUs})
export class FpnnConnection {
  constructor({ url, WebSocket: WS, connectTimeoutMs = 10000, requestTimeoutMs = 10000, keepaliveMs = 20000, onQuest, onClose }) {
    this.url = url;
    this.WS = WS;
    this.connectTimeoutMs = connectTimeoutMs;
    this.requestTimeoutMs = requestTimeoutMs;
    this.keepaliveMs = keepaliveMs;
    this.onQuest = onQuest;
    this.onClose = onClose;
    this.nextSeq = 1;
    this.pending = new Map();
    this.ws = null;
    this.open = false;
    this.closed = false;
    this.closingByUs = false;
    this.lastReceived = Date.now();
    this.keepaliveTimer = null;
  }

  // Resolves once the WebSocket is open; rejects (code 20001/20003) otherwise.
  connect() {
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws;
      try {
        ws = new this.WS(this.url);
      } catch (e) {
        reject(rtsError(FPNN_EC.CONNECTION_CLOSED, `cannot open ${this.url}: ${e.message}`));
        return;
      }
      this.ws = ws;
      ws.binaryType = 'arraybuffer';
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this._shutdown(false);
        reject(rtsError(FPNN_EC.TIMEOUT, `connecting to ${this.url} timed out`));
      }, this.connectTimeoutMs);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.open = true;
        this.lastReceived = Date.now();
        this._startKeepalive();
        resolve();
      };
      ws.onmessage = (ev) => this._onMessage(ev.data);
      ws.onerror = () => {
        /* the close event follows */
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          this.closed = true;
          reject(rtsError(FPNN_EC.CONNECTION_CLOSED, `connection to ${this.url} failed`));
          return;
        }
        this._closed(ev && ev.code, ev && ev.reason);
      };
    });
  }

  // Twoway quest: resolves with the answer payload, rejects with an Error
  // carrying `code` (the server's code, or 20001 closed / 20003 timeout).
  quest(method, payload, timeoutMs = this.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (!this.open || this.closed) {
        reject(rtsError(FPNN_EC.CONNECTION_CLOSED, `not connected (${method})`));
        return;
      }
      const seq = this.nextSeq;
      this.nextSeq = (this.nextSeq + 1) >>> 0 || 1;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(rtsError(FPNN_EC.TIMEOUT, `${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer, method });
      try {
        this.ws.send(encodePacket(MTYPE_TWOWAY, method, seq, payload));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(rtsError(FPNN_EC.CONNECTION_CLOSED, `${method}: ${e.message}`));
      }
    });
  }

  // Closes the link; onClose is called with byUs = true.
  close() {
    this.closingByUs = true;
    this._shutdown(true);
  }

  _shutdown(graceful) {
    const ws = this.ws;
    if (ws) {
      try {
        if (graceful && typeof ws.close === 'function') ws.close(1000);
        else if (typeof ws.terminate === 'function') ws.terminate();
        else ws.close();
      } catch (e) {
        /* already closed */
      }
    }
    // Do not wait for the close handshake to tell the layer above.
    if (this.open) this._closed(1000, 'closed by the client');
  }

  _startKeepalive() {
    if (!this.keepaliveMs) return;
    const step = Math.max(250, Math.floor(this.keepaliveMs / 4));
    this.keepaliveTimer = setInterval(() => {
      if (!this.open || this.pinging) return;
      if (Date.now() - this.lastReceived < this.keepaliveMs) return;
      this.pinging = true;
      this.quest('ping', {}, Math.min(this.requestTimeoutMs, this.keepaliveMs)).then(
        () => {
          this.pinging = false;
        },
        () => {
          this.pinging = false;
          // A link that does not answer a ping is dead: drop it.
          if (this.open) this._shutdownDead();
        },
      );
    }, step);
    if (typeof this.keepaliveTimer.unref === 'function') this.keepaliveTimer.unref();
  }

  _shutdownDead() {
    this._shutdown(false);
  }

  _closed(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    for (const [, w] of this.pending) {
      clearTimeout(w.timer);
      w.reject(rtsError(FPNN_EC.CONNECTION_CLOSED, `connection closed before the answer to ${w.method}`));
    }
    this.pending.clear();
    if (this.ws) {
      this.ws.onmessage = null;
      this.ws.onclose = null;
    }
    if (this.onClose) this.onClose({ code, reason, byUs: this.closingByUs });
  }

  _onMessage(data) {
    if (this.closed) return;
    this.lastReceived = Date.now();
    if (typeof data === 'string') return; // FPNN speaks binary frames only
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let p;
    try {
      p = parsePacket(bytes);
    } catch (e) {
      this._shutdown(false); // a broken stream cannot be resynchronised
      return;
    }
    if (p.mtype === MTYPE_ANSWER) {
      const w = this.pending.get(p.seq);
      if (!w) return;
      this.pending.delete(p.seq);
      clearTimeout(w.timer);
      if (p.ss !== 0) {
        const pl = p.payload && typeof p.payload === 'object' ? p.payload : {};
        const code = pl.code !== undefined ? toNumber(pl.code) : FPNN_EC.UNKNOWN_ERROR;
        w.reject(rtsError(code, `${w.method}: error ${code}${pl.ex ? `: ${pl.ex}` : ''}`, { ex: pl.ex, raised: pl.raised }));
      } else {
        w.resolve(p.payload);
      }
      return;
    }
    let answer;
    try {
      answer = this.onQuest ? this.onQuest(p.method, p.payload) : undefined;
    } catch (e) {
      answer = undefined;
    }
    if (p.mtype === MTYPE_TWOWAY && this.open) {
      try {
        this.ws.send(encodePacket(MTYPE_ANSWER, '', p.seq, answer === undefined ? {} : answer));
      } catch (e) {
        /* the close event follows */
      }
    }
  }
}
