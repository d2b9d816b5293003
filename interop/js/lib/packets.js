'use strict';
// Request and response packets built and read with @tars/stream alone: the
// same calls Tars.js makes, without its client around them.

const TarsStream = require('@tars/stream');
// ResponsePacket as tars2node generated it from RequestF.tars, shipped by
// @tars/rpc and built on @tars/stream.
const RequestF = require('@tars/rpc/core/rpc-tars/RequestF.js').tars;

function stringMap(obj = {}) {
  const m = new TarsStream.Map(TarsStream.String, TarsStream.String);
  for (const [k, v] of Object.entries(obj)) m.insert(k, v);
  return m;
}

// args encodes TARS (version 1) arguments: write(os) puts each at its tag.
function args(write) {
  const os = new TarsStream.TarsOutputStream();
  write(os);
  return os.getBinBuffer();
}

// request frames a RequestPacket: 4-byte length, then fields 1..10.
function request(p) {
  const os = new TarsStream.TarsOutputStream();
  os.setHeaderLength(0);
  os.writeInt16(1, p.version === undefined ? 1 : p.version);
  os.writeInt8(2, p.packetType || 0);
  os.writeInt32(3, p.messageType || 0);
  os.writeInt32(4, p.requestId);
  os.writeString(5, p.servant);
  os.writeString(6, p.func);
  os.writeBytes(7, p.buffer || new TarsStream.BinBuffer());
  os.writeInt32(8, p.timeout === undefined ? 3000 : p.timeout);
  os.writeMap(9, stringMap(p.context));
  os.writeMap(10, stringMap(p.status));
  os.setHeaderLength(os.getBinBuffer().length);
  return os.getBinBuffer().toNodeBuffer();
}

// tupRequest frames a TUP call through TarsStream.Tup; set(tup) writes the
// named arguments.
function tupRequest(p, set) {
  const tup = new TarsStream.Tup();
  tup.tupVersion = p.version === undefined ? TarsStream.Tup.TUP_SIMPLE : p.version;
  tup.servantName = p.servant;
  tup.funcName = p.func;
  tup.requestId = p.requestId;
  tup._iTimeout = p.timeout === undefined ? 3000 : p.timeout;
  set(tup);
  return tup.encode().toNodeBuffer();
}

function body(pkt) {
  const len = pkt.readUInt32BE(0);
  if (len !== pkt.length) throw new Error(`length prefix ${len}, packet ${pkt.length} bytes`);
  return new TarsStream.TarsInputStream(new TarsStream.BinBuffer(pkt.subarray(4)));
}

// response decodes a framed ResponsePacket (version 1 replies).
function response(pkt) {
  return RequestF.ResponsePacket._readFrom(body(pkt));
}

// tupResponse decodes a framed TUP reply (laid out as a RequestPacket).
function tupResponse(pkt) {
  const tup = new TarsStream.Tup();
  tup.decode(new TarsStream.BinBuffer(Buffer.from(pkt)));
  return tup;
}

// results opens a version 1 response's sBuffer for reading by tag.
function results(rsp) {
  return new TarsStream.TarsInputStream(rsp.sBuffer);
}

module.exports = { TarsStream, RequestF, args, request, tupRequest, response, tupResponse, results, stringMap };
