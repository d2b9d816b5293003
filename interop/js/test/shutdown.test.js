'use strict';
// What a Tars.js client receives while the server stops gracefully. Every
// packet on a connection goes through @tars/rpc's own client decoder, set up
// as its transceiver sets it up for the proxy's protocol version: TARS
// connections read ResponsePackets, TUP connections read RequestPacket-shaped
// replies. A packet that decoder cannot read throws inside the socket's data
// handler, which crashes the client process.

const test = require('node:test');
const assert = require('node:assert/strict');
const ClientStream = require('@tars/rpc').rpcTars.client;
const P = require('../lib/packets.js');
const server = require('../lib/server.js');
const { TarsConn } = require('../lib/tarsconn.js');

const { TarsStream } = P;

// decoder feeds packets to Tars.js's client protocol and collects messages.
function decoder(version) {
  const s = new ClientStream();
  s._version = version;
  const got = [];
  s.on('message', (m) => got.push(m));
  return { got, feed: (pkt) => s.feed(pkt) };
}

// drain reads packets until the server closes the connection.
async function drain(conn) {
  const pkts = [];
  for (;;) {
    try {
      pkts.push(await conn.next());
    } catch (e) {
      if (/closed by the server/.test(e.message)) return pkts;
      throw e;
    }
  }
}

test('Tars.js clients read everything a stopping server sends', async (t) => {
  const srv = await server.start();
  let stopped = false;
  const conns = [];
  t.after(async () => {
    for (const c of conns) c.close();
    if (!stopped) await srv.stop();
  });

  const tarsConn = await TarsConn.connect(srv.ports.push);
  const tupConn = await TarsConn.connect(srv.ports.push);
  conns.push(tarsConn, tupConn);
  const tars = decoder(1);
  const tup = decoder(TarsStream.Tup.TUP_SIMPLE);

  tarsConn.write(P.request({
    requestId: 11, servant: server.PUSH_OBJ, func: 'pushAll',
    buffer: P.args((os) => os.writeString(1, 'before stop')),
  }));
  tars.feed(await tarsConn.next());
  assert.equal(tars.got.length, 1);
  assert.equal(tars.got[0].iRequestId, 11);
  assert.equal(tars.got[0].iResultCode, 0);

  tupConn.write(P.tupRequest({ requestId: 12, servant: server.PUSH_OBJ, func: 'pushAll' },
    (u) => u.writeString('message', 'before stop')));
  tup.feed(await tupConn.next());
  assert.equal(tup.got.length, 1);
  assert.equal(tup.got[0].iRequestId, 12);
  assert.equal(tup.got[0].iResultCode, 0);
  assert.equal(tup.got[0].origin.tup.readInt32('delivered'), 0);

  const stop = srv.stop();
  stopped = true;
  const [tarsRest, tupRest] = await Promise.all([drain(tarsConn), drain(tupConn)]);
  assert.deepEqual(await stop, { code: 0, signal: null }, 'a graceful stop exits 0');

  await t.test('TARS connection', () => {
    for (const pkt of tarsRest) tars.feed(pkt);
    for (const m of tars.got.slice(1)) assert.equal(m.iRequestId, 0, 'only pushes (request id 0) after the last reply');
  });

  // Tars.js reads every packet on a TUP connection as a RequestPacket, so
  // the server's _reconnect_ push must come in the TUP layout there.
  await t.test('TUP connection', () => {
    for (const [i, pkt] of tupRest.entries()) {
      assert.doesNotThrow(() => tup.feed(pkt),
        `packet ${i + 1} of ${tupRest.length} after the last reply (${pkt.subarray(0, 24).toString('hex')}...) ` +
        'does not decode as a TUP reply, and Tars.js throws on it');
    }
    for (const m of tup.got.slice(1)) assert.equal(m.iRequestId, 0, 'only pushes (request id 0) after the last reply');
  });
});
