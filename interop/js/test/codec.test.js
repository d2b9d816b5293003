'use strict';
// @tars/stream against the encodings TarsGo v1.4.5 produced
// (testdata/tars-vectors.json, the vectors the Go codec is tested with): what
// one writes the other reads, so the Go codec that matches the vectors
// matches Tars.js too. No server needed.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const P = require('../lib/packets.js');

const { TarsStream, RequestF } = P;

// int64 values past 2^53 stay exact as strings.
const raw = fs.readFileSync(path.join(__dirname, '..', 'testdata', 'tars-vectors.json'), 'utf8')
  .replace(/("value": )(-?\d{16,})\b/g, '$1"$2"');
const { vectors } = JSON.parse(raw);

function encode(write) {
  const os = new TarsStream.TarsOutputStream();
  write(os);
  return os.getBinBuffer().toNodeBuffer().toString('hex');
}
function input(hex) {
  return new TarsStream.TarsInputStream(new TarsStream.BinBuffer(Buffer.from(hex, 'hex')));
}

// A struct as tars2node generates it: {0 int a = 7; 1 string b = "x"}.
function S() { this.a = 0; this.b = ''; }
S._classname = 'interop.S';
S._write = (os, tag, v) => os.writeStruct(tag, v);
S._read = (is, tag, def) => is.readStruct(tag, true, def);
S._readFrom = (is) => { const s = new S(); s.a = is.readInt32(0, true, 0); s.b = is.readString(1, true, ''); return s; };
S.prototype._writeTo = function (os) { os.writeInt32(0, this.a); os.writeString(1, this.b); };

const kinds = {
  long: {
    write: (os, t, v) => os.writeInt64(t, v, typeof v === 'string'),
    read: (is, t, v) => is.readInt64(t, true, 0, typeof v === 'string'),
  },
  int: { write: (os, t, v) => os.writeInt32(t, v), read: (is, t) => is.readInt32(t, true, 0) },
  bool: { write: (os, t, v) => os.writeBoolean(t, v), read: (is, t) => is.readBoolean(t, true, false) },
  // @tars/stream writes 0.0 as ZERO_TAG where TarsGo writes the 4/8 bytes:
  // both are valid Tars and both sides read either.
  float: { write: (os, t, v) => os.writeFloat(t, v), read: (is, t) => is.readFloat(t, true, 0), zeroTag: true },
  double: { write: (os, t, v) => os.writeDouble(t, v), read: (is, t) => is.readDouble(t, true, 0), zeroTag: true },
  string: { write: (os, t, v) => os.writeString(t, v), read: (is, t) => is.readString(t, true, '') },
  'vector<byte>': {
    write: (os, t, v) => os.writeBytes(t, new TarsStream.BinBuffer(Buffer.from(v, 'hex'))),
    read: (is, t) => is.readBytes(t, true, TarsStream.BinBuffer).toNodeBuffer().toString('hex'),
  },
  'map<string,string>': {
    write: (os, t, v) => os.writeMap(t, P.stringMap(v)),
    read: (is, t) => is.readMap(t, true, TarsStream.Map(TarsStream.String, TarsStream.String)).toObject(),
  },
  'vector<int>': {
    write: (os, t, v) => { const l = new TarsStream.List(TarsStream.Int32); for (const x of v) l.push(x); os.writeList(t, l); },
    read: (is, t) => is.readList(t, true, TarsStream.List(TarsStream.Int32)).toObject(),
  },
  'struct{0 int a=7; 1 string b="x"}': {
    write: (os, t, v) => { const s = new S(); s.a = v.a; s.b = v.b; os.writeStruct(t, s); },
    read: (is, t) => { const s = is.readStruct(t, true, S); return { a: s.a, b: s.b }; },
  },
};

// Float vectors are exact in float32, so they compare equal after a round trip.
test('@tars/stream writes and reads the TarsGo vectors', async (t) => {
  const byKind = new Map();
  for (const v of vectors) {
    if (!kinds[v.type]) continue;
    if (!byKind.has(v.type)) byKind.set(v.type, []);
    byKind.get(v.type).push(v);
  }
  assert.ok(byKind.size >= 9, `vector kinds found: ${[...byKind.keys()]}`);
  for (const [type, list] of byKind) {
    await t.test(type, () => {
      const k = kinds[type];
      for (const v of list) {
        const where = `${type} ${JSON.stringify(v.value).slice(0, 40)} at tag ${v.tag}`;
        assert.deepEqual(k.read(input(v.hex), v.tag, v.value), v.value, `read ${where}`);
        const got = encode((os) => k.write(os, v.tag, v.value));
        if (k.zeroTag && Number(v.value) === 0) {
          assert.deepEqual(k.read(input(got), v.tag, v.value), v.value, `zero ${where}`);
        } else {
          assert.equal(got, v.hex, `write ${where}`);
        }
      }
    });
  }
});

test('@tars/stream skips the fields it does not know', () => {
  const v = vectors.find((x) => x.name === 'struct-with-unknown-fields');
  assert.ok(v, 'vector struct-with-unknown-fields');
  const is = input(v.hex + '4602' + Buffer.from('ok').toString('hex'));
  const s = is.readStruct(v.tag, true, S);
  assert.deepEqual({ a: s.a, b: s.b }, v.value);
  assert.equal(is.readString(4, true, ''), 'ok', 'the field after the struct');
});

test('RequestPacket and ResponsePacket match TarsGo', () => {
  const rq = vectors.find((x) => x.name === 'RequestPacket');
  const got = RequestF.RequestPacket._readFrom(input(rq.hex));
  assert.equal(got.iVersion, rq.value.iVersion);
  assert.equal(got.iRequestId, rq.value.iRequestId);
  assert.equal(got.sServantName, rq.value.sServantName);
  assert.equal(got.sFuncName, rq.value.sFuncName);
  assert.equal(got.iTimeout, rq.value.iTimeout);
  assert.equal(got.sBuffer.toNodeBuffer().toString('hex'), rq.value.sBufferHex);
  const built = P.request({
    requestId: rq.value.iRequestId, servant: rq.value.sServantName, func: rq.value.sFuncName,
    timeout: rq.value.iTimeout, buffer: new TarsStream.BinBuffer(Buffer.from(rq.value.sBufferHex, 'hex')),
  });
  assert.equal(built.subarray(4).toString('hex'), rq.hex);

  const rs = vectors.find((x) => x.name === 'ResponsePacket');
  const framed = Buffer.concat([Buffer.alloc(4), Buffer.from(rs.hex, 'hex')]);
  framed.writeUInt32BE(framed.length, 0);
  const rsp = P.response(framed);
  assert.equal(rsp.iVersion, rs.value.iVersion);
  assert.equal(rsp.iRequestId, rs.value.iRequestId);
  assert.equal(rsp.iRet, rs.value.iRet);
  assert.equal(rsp.sBuffer.toNodeBuffer().toString('hex'), rs.value.sBufferHex);
  const is = P.results(rsp);
  assert.equal(is.readInt32(0, true, -1), 0);
  assert.equal(is.readInt32(3, true, -1), 1);
});
