'use strict';
// @tars/rpc calls HelloObj `string hello(int no, string name)`, TARS and TUP.

const test = require('node:test');
const assert = require('node:assert/strict');
const Tars = require('@tars/rpc');
const TarsStream = require('@tars/stream');
const { TestApp } = require('../proxy/HelloProxy.js');
const server = require('../lib/server.js');
const { call, closeNow } = require('../lib/rpc.js');

test('HelloObj through @tars/rpc', async (t) => {
  const srv = await server.start();
  const comms = [Tars.Communicator.New(), Tars.Communicator.New()];
  t.after(async () => {
    await Promise.all(comms.map(closeNow));
    await srv.stop();
  });
  const tars = comms[0].stringToProxy(TestApp.HelloProxy, srv.helloProxy);
  const tup = comms[1].stringToProxy(TestApp.HelloProxy, srv.helloProxy);
  tup.setVersion(TarsStream.Tup.TUP_SIMPLE);

  for (const [proto, p] of [['tars', tars], ['tup', tup]]) {
    await t.test(`${proto}: hello answers with the name and number`, async () => {
      for (const [no, name] of [[7, 'tars.js'], [0, 'zero'], [-40000, '世界'], [2147483647, 'x'.repeat(300)]]) {
        const rsp = await call(p.hello(no, name));
        // The answer servants.go documents: it names the caller and the server.
        assert.equal(rsp.return, `hello ${name}, no ${no}, from TestApp.WebsocketServer`);
      }
    });
  }
});
