'use strict';
// @tars/rpc calls PushObj, TARS and TUP; browsers in the rooms (WebSocket
// clients) must get the text and `delivered` must count them.

const test = require('node:test');
const assert = require('node:assert/strict');
const Tars = require('@tars/rpc');
const TarsStream = require('@tars/stream');
const { TestApp } = require('../proxy/PushProxy.js');
const server = require('../lib/server.js');
const { WSClient } = require('../lib/ws.js');
const { call, closeNow } = require('../lib/rpc.js');

async function subscribe(ws, room) {
  await ws.request(`subscribe|${room}`, `Subscribe roomNum:${room} success!`);
}

// Each protocol gets its own communicator: a communicator shares one worker
// (and so one protocol version) between proxies of the same object.
function proxies(srv) {
  const tarsComm = Tars.client;
  const tupComm = Tars.Communicator.New();
  const tars = tarsComm.stringToProxy(TestApp.PushProxy, srv.pushProxy);
  const tup = tupComm.stringToProxy(TestApp.PushProxy, srv.pushProxy);
  tup.setVersion(TarsStream.Tup.TUP_SIMPLE);
  tars.setTimeout(5000);
  tup.setTimeout(5000);
  return { tars, tup, destroy: () => Promise.all([closeNow(tarsComm), closeNow(tupComm)]) };
}

test('PushObj through @tars/rpc', async (t) => {
  const srv = await server.start();
  const prx = proxies(srv);
  const clients = [];
  t.after(async () => {
    await prx.destroy();
    await Promise.all(clients.map((c) => c.close()));
    await srv.stop();
  });
  const open = async () => {
    const c = await WSClient.connect(srv.ports.http);
    clients.push(c);
    return c;
  };

  // a1, a2 in room-a; b in room-b.
  const a1 = await open();
  const a2 = await open();
  const b = await open();
  await subscribe(a1, 'room-a');
  await subscribe(a2, 'room-a');
  await subscribe(b, 'room-b');

  for (const [proto, p] of [['tars', prx.tars], ['tup', prx.tup]]) {
    await t.test(`${proto}: pushByRoom reaches the room only`, async () => {
      const text = `hello room-a over ${proto}`;
      const rsp = await call(p.pushByRoom('room-a', text));
      assert.equal(rsp.return, 0);
      assert.equal(rsp.arguments.delivered, 2);
      await a1.until(text);
      await a2.until(text);

      // b is not in room-a: by the time the later broadcast reaches it, the
      // room message would have come first.
      const marker = `marker after room-a over ${proto}`;
      const all = await call(p.pushAll(marker));
      assert.equal(all.return, 0);
      assert.equal(all.arguments.delivered, 3);
      const seen = await b.until(marker);
      assert.ok(!seen.includes(text), `room-b member got the room-a message: ${JSON.stringify(seen)}`);
      await a1.until(marker);
      await a2.until(marker);
    });

    await t.test(`${proto}: an empty room delivers to nobody`, async () => {
      const rsp = await call(p.pushByRoom(`nobody-here-${proto}`, 'lost'));
      assert.equal(rsp.return, 0);
      assert.equal(rsp.arguments.delivered, 0);
    });

    await t.test(`${proto}: long and non-ASCII text arrives intact`, async () => {
      // Over 255 bytes: the string travels as STRING4.
      const text = `${proto} 房间 ✓ ` + 'é'.repeat(300);
      const rsp = await call(p.pushByRoom('room-b', text));
      assert.equal(rsp.return, 0);
      assert.equal(rsp.arguments.delivered, 1);
      await b.until(text);
    });
  }

  await t.test('a closed connection stops counting', async () => {
    const gone = await open();
    await subscribe(gone, 'room-c');
    const stay = await open();
    await subscribe(stay, 'room-c');
    assert.equal((await call(prx.tars.pushByRoom('room-c', 'two'))).arguments.delivered, 2);
    await gone.close();
    // The server notices the close on its own schedule: ask until it has.
    let delivered;
    for (let i = 0; i < 100; i++) {
      delivered = (await call(prx.tup.pushByRoom('room-c', `after close ${i}`))).arguments.delivered;
      if (delivered === 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(delivered, 1);
  });
});
