'use strict';
// Payloads shared by the transport tests: the 64-bit integer edge values,
// a mixed-type map for `*echo`, and a tiny hand-written msgpack encoder that
// puts integers in a chosen width (fixint, uint8..uint64, int8..int64), so
// that the server is checked against every width a sender may pick.

const assert = require('node:assert/strict');
const { int64, uint64, normalize } = require('./fpnn');

const P = (e) => 2n ** BigInt(e);

// The edge values of the brief, as BigInt.
const INT_VALUES = [
  0n, 1n, 127n, 128n, 255n, 256n, 65535n, 65536n, P(32) - 1n, P(32), P(53) + 1n, P(63) - 1n,
  -1n, -32n, -33n, -128n, -129n, -32768n, -P(31), -P(63),
];

const SAFE = (v) => v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER);

// A map exercising every payload type: int64 as Int64BE / Uint64BE / plain
// numbers, nil, bool, float, bin, str, nested maps and arrays.
function mixedPayload() {
  return {
    i64: INT_VALUES.map(int64),
    u64: INT_VALUES.filter((v) => v >= 0n).map(uint64),
    num: INT_VALUES.filter(SAFE).map(Number),
    nil: null,
    yes: true,
    no: false,
    half: 1.5,
    negq: -0.25,
    bin: Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]),
    emptyBin: Buffer.alloc(0),
    binAbc: Buffer.from('abc'),
    strAbc: 'abc',
    str: 'h\u00e9llo \u2713 \u{1F600}',
    emptyStr: '',
    nested: {
      a: [1, { b: [null, 'x', Buffer.from([9, 8, 7])], c: {} }, []],
      m: { deep: { deeper: { deepest: int64(P(62) + 7n) } } },
    },
    emptyMap: {},
    emptyArr: [],
  };
}

// Asserts that got is the echo of sent: same structure, same integer values
// whatever their width, bin stays Buffer, str stays string.
function assertEcho(got, sent, msg) {
  assert.deepStrictEqual(normalize(got), normalize(sent), msg);
}

// ---- hand-written msgpack for width-specific integers

const WIDTHS = {
  posfix: [0n, 127n],
  negfix: [-32n, -1n],
  u8: [0n, 255n],
  u16: [0n, 65535n],
  u32: [0n, P(32) - 1n],
  u64: [0n, P(63) - 1n], // IDs are signed 64-bit: stay within int64
  i8: [-128n, 127n],
  i16: [-32768n, 32767n],
  i32: [-P(31), P(31) - 1n],
  i64: [-P(63), P(63) - 1n],
};

function mpInt(v, width) {
  const [lo, hi] = WIDTHS[width];
  if (v < lo || v > hi) throw new RangeError(`${v} does not fit ${width}`);
  let b;
  switch (width) {
    case 'posfix':
      return Buffer.from([Number(v)]);
    case 'negfix':
      return Buffer.from([Number(v) & 0xff]);
    case 'u8':
      return Buffer.from([0xcc, Number(v)]);
    case 'u16':
      b = Buffer.alloc(3);
      b[0] = 0xcd;
      b.writeUInt16BE(Number(v), 1);
      return b;
    case 'u32':
      b = Buffer.alloc(5);
      b[0] = 0xce;
      b.writeUInt32BE(Number(v), 1);
      return b;
    case 'u64':
      b = Buffer.alloc(9);
      b[0] = 0xcf;
      b.writeBigUInt64BE(v, 1);
      return b;
    case 'i8':
      b = Buffer.alloc(2);
      b[0] = 0xd0;
      b.writeInt8(Number(v), 1);
      return b;
    case 'i16':
      b = Buffer.alloc(3);
      b[0] = 0xd1;
      b.writeInt16BE(Number(v), 1);
      return b;
    case 'i32':
      b = Buffer.alloc(5);
      b[0] = 0xd2;
      b.writeInt32BE(Number(v), 1);
      return b;
    case 'i64':
      b = Buffer.alloc(9);
      b[0] = 0xd3;
      b.writeBigInt64BE(v, 1);
      return b;
    default:
      throw new Error(`unknown width ${width}`);
  }
}

function mpStr(s) {
  const body = Buffer.from(s, 'utf8');
  if (body.length > 31) throw new RangeError('only fixstr here');
  return Buffer.concat([Buffer.from([0xa0 | body.length]), body]);
}

function mpArrayHeader(n) {
  if (n < 16) return Buffer.from([0x90 | n]);
  const b = Buffer.alloc(3);
  b[0] = 0xdc;
  b.writeUInt16BE(n, 1);
  return b;
}

// Every (value, width) pair of INT_VALUES that fits: returns the encoded
// payload {w: [ints...]} and the expected values as BigInt.
function widthPayload() {
  const items = [];
  const expected = [];
  for (const v of INT_VALUES) {
    for (const [width, [lo, hi]] of Object.entries(WIDTHS)) {
      if (v >= lo && v <= hi) {
        items.push(mpInt(v, width));
        expected.push(v);
      }
    }
  }
  const raw = Buffer.concat([Buffer.from([0x81]), mpStr('w'), mpArrayHeader(items.length), ...items]);
  return { raw, expected };
}

module.exports = { INT_VALUES, mixedPayload, assertEcho, widthPayload, mpInt, P };
