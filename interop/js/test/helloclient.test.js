'use strict';
// The other direction: the server's own Tars client calls a HelloObj that
// @tars/rpc serves. A browser sends hello|NAME and gets the text the Tars.js
// servant returned.

const test = require('node:test');
const assert = require('node:assert/strict');
const Tars = require('@tars/rpc');
const { helloImp } = require('../proxy/HelloImp.js');
const server = require('../lib/server.js');
const { WSClient } = require('../lib/ws.js');

const JS_HELLO = 'TestApp.JsServer.HelloObj';

test('hello|NAME through a Tars.js HelloObj', async (t) => {
  const calls = [];
  const port = await server.freePort();
  const js = Tars.server.createServer(helloImp((no, name) => {
    calls.push({ no, name });
    return `Tars.js greets ${name}`;
  }));
  let jsUp = true;
  const stopJs = () => { if (jsUp) { js.stop(); jsUp = false; } };
  let srv, ws;
  // Registered first: a server that fails to start must not leave the
  // Tars.js listener holding the process open.
  t.after(async () => {
    if (ws) await ws.close();
    if (srv) await srv.stop();
    stopJs();
  });
  js.start({ endpoint: `tcp -h 127.0.0.1 -p ${port} -t 60000`, servant: JS_HELLO, protocol: 'tars' });

  srv = await server.start({ websocket: `      hello=${JS_HELLO}@tcp -h 127.0.0.1 -p ${port} -t 3000` });
  ws = await WSClient.connect(srv.ports.http);

  await t.test('the reply is the servant\'s text', async () => {
    for (const name of ['browser', '浏览器', 'n'.repeat(300)]) {
      await ws.request(`hello|${name}`, `Tars.js greets ${name}`);
      assert.equal(calls.at(-1).name, name);
    }
    // The server numbers its hello calls from 1.
    assert.deepEqual(calls.map((c) => c.no), [1, 2, 3]);
  });

  await t.test('a servant that is gone gives an error reply, not a hang', async () => {
    stopJs();
    ws.send('hello|nobody');
    const reply = await ws.next();
    assert.match(reply, /^Error: hello: /);
    assert.equal(calls.length, 3);
    // The connection still works.
    await ws.request('ping', 'pong');
  });
});
