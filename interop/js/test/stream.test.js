'use strict';
// Raw packets over TCP, built and read with @tars/stream: what the server
// writes must decode as Tars.js decodes it, and what Tars.js encodes must be
// accepted, including the error replies the protocol defines.

const test = require('node:test');
const assert = require('node:assert/strict');
const P = require('../lib/packets.js');
const server = require('../lib/server.js');
const { TarsConn } = require('../lib/tarsconn.js');
const { WSClient } = require('../lib/ws.js');

const { TarsStream } = P;

test('PushObj over raw @tars/stream packets', async (t) => {
  const srv = await server.start();
  const conns = [];
  let ws;
  t.after(async () => {
    for (const c of conns) c.close();
    if (ws) await ws.close();
    await srv.stop();
  });
  const dial = async () => {
    const c = await TarsConn.connect(srv.ports.push);
    conns.push(c);
    return c;
  };
  ws = await WSClient.connect(srv.ports.http);
  await ws.request('subscribe|raw', 'Subscribe roomNum:raw success!');

  await t.test('TARS request, ResponsePacket reply', async () => {
    const c = await dial();
    c.write(P.request({
      requestId: 77, servant: server.PUSH_OBJ, func: 'pushByRoom',
      // The current value of the out parameter travels too; it must be ignored.
      buffer: P.args((os) => { os.writeString(1, 'raw'); os.writeString(2, 'raw tars'); os.writeInt32(3, 99); }),
    }));
    const rsp = P.response(await c.next());
    assert.equal(rsp.iVersion, 1);
    assert.equal(rsp.cPacketType, 0);
    assert.equal(rsp.iRequestId, 77);
    assert.equal(rsp.iRet, 0, rsp.sResultDesc);
    const is = P.results(rsp);
    assert.equal(is.readInt32(0, true, 0), 0);
    assert.equal(is.readInt32(3, true, 0), 1);
    await ws.until('raw tars');
  });

  await t.test('TUP request, TUP reply echoing names', async () => {
    const c = await dial();
    c.write(P.tupRequest({ requestId: 78, servant: server.PUSH_OBJ, func: 'pushAll' },
      (tup) => tup.writeString('message', 'raw tup')));
    const tup = P.tupResponse(await c.next());
    assert.equal(tup._iVersion, TarsStream.Tup.TUP_SIMPLE);
    assert.equal(tup.requestId, 78);
    assert.equal(tup.servantName, server.PUSH_OBJ);
    assert.equal(tup.funcName, 'pushAll');
    assert.equal(tup.getTarsResultCode(), 0, tup.getTarsResultDesc());
    assert.equal(tup.readInt32(''), 0);
    assert.equal(tup.readInt32('tars_ret'), 0);
    assert.equal(tup.readInt32('delivered'), 1);
    await ws.until('raw tup');
  });

  await t.test('pipelined requests get one reply each, by request id', async () => {
    const c = await dial();
    const ids = [101, 102, 103];
    c.write(Buffer.concat(ids.map((id) => P.request({
      requestId: id, servant: server.PUSH_OBJ, func: 'pushByRoom',
      buffer: P.args((os) => { os.writeString(1, 'nobody'); os.writeString(2, `pipelined ${id}`); }),
    }))));
    const got = [];
    for (const _ of ids) {
      const rsp = P.response(await c.next());
      assert.equal(rsp.iRet, 0, rsp.sResultDesc);
      assert.equal(P.results(rsp).readInt32(3, true, 0), 0);
      got.push(rsp.iRequestId);
    }
    assert.deepEqual(got.sort((x, y) => x - y), ids);
  });

  await t.test('one-way requests are carried out and get no reply', async () => {
    const c = await dial();
    c.write(P.request({
      requestId: 200, packetType: 1, servant: server.PUSH_OBJ, func: 'pushAll',
      buffer: P.args((os) => os.writeString(1, 'one-way')),
    }));
    c.write(P.request({ requestId: 201, servant: server.PUSH_OBJ, func: 'tars_ping' }));
    const rsp = P.response(await c.next());
    assert.equal(rsp.iRequestId, 201, 'the first reply must answer the ping, not the one-way call');
    await ws.until('one-way');
  });

  await t.test('tars_ping answers 0 with an empty buffer', async () => {
    const c = await dial();
    c.write(P.request({ requestId: 300, servant: server.PUSH_OBJ, func: 'tars_ping' }));
    const rsp = P.response(await c.next());
    assert.equal(rsp.iRequestId, 300);
    assert.equal(rsp.iRet, 0);
    assert.equal(rsp.sBuffer.length, 0);
  });

  await t.test('protocol errors get their codes and the connection lives on', async () => {
    const c = await dial();
    const cases = [
      { requestId: 401, servant: server.PUSH_OBJ, func: 'noSuchFunction', want: -3 },
      { requestId: 402, servant: 'TestApp.WebsocketServer.NoSuchObj', func: 'pushAll', want: -4 },
      // pushAll without its required message argument.
      { requestId: 403, servant: server.PUSH_OBJ, func: 'pushAll', want: -1 },
      // message present but an int where a string belongs.
      { requestId: 404, servant: server.PUSH_OBJ, func: 'pushAll', want: -1, buffer: P.args((os) => os.writeInt32(1, 5)) },
    ];
    for (const k of cases) {
      c.write(P.request(k));
      const rsp = P.response(await c.next());
      assert.equal(rsp.iRequestId, k.requestId);
      assert.equal(rsp.iRet, k.want, `${k.servant}.${k.func}: iRet ${rsp.iRet} (${rsp.sResultDesc})`);
    }
    c.write(P.request({
      requestId: 405, servant: server.PUSH_OBJ, func: 'pushAll',
      buffer: P.args((os) => os.writeString(1, 'after errors')),
    }));
    const ok = P.response(await c.next());
    assert.equal(ok.iRequestId, 405);
    assert.equal(ok.iRet, 0, ok.sResultDesc);
    await ws.until('after errors');
  });

  await t.test('TUP errors go into status', async () => {
    const c = await dial();
    c.write(P.tupRequest({ requestId: 501, servant: server.PUSH_OBJ, func: 'noSuchFunction' }, () => {}));
    const tup = P.tupResponse(await c.next());
    assert.equal(tup.requestId, 501);
    assert.equal(tup.getTarsResultCode(), -3, tup.getTarsResultDesc());
  });

  await t.test('a bad length prefix closes the connection, the server stays up', async () => {
    const c = await dial();
    c.write(Buffer.from([0, 0, 0, 2]));
    await c.closed();
    const again = await dial();
    again.write(P.request({ requestId: 601, servant: server.PUSH_OBJ, func: 'tars_ping' }));
    assert.equal(P.response(await again.next()).iRequestId, 601);
  });
});
