// The chat pages over https:// and wss://: the server's HTTP adapter has an
// ssl endpoint with a certificate this test makes. Two pages chat, an HTTPS
// trigger reaches a page, and a page calls a Tars servant over wss://.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, watch } from './harness.mjs';

const WAIT = 30_000;
const HELLO = 'TestApp.WebsocketServer.HelloObj';

let server;
let browser;
const pages = {}; // room1, room2: { page, watch, sockets }

before(async () => {
  server = await Server.start({ tls: true, websocket: `      call-allow=${HELLO}:hello` });
  browser = await launchBrowser();
  // The certificate is the test's own: no browser trusts it.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  for (const [room, file] of [['room1', 'client1.html'], ['room2', 'client2.html']]) {
    const page = await context.newPage();
    const w = watch(page);
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${server.url}/${file}`);
    pages[room] = { page, watch: w, sockets };
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function entry(page, text) {
  return page.locator('#log li.entry', { has: page.locator('p.text', { hasText: text }) });
}

async function shows(page, text) {
  await entry(page, text).first().waitFor({ timeout: WAIT });
}

async function say(page, target, text) {
  await page.selectOption('#target', target);
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

test('the pages load over https:// and connect over wss://', async () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  for (const room of ['room1', 'room2']) {
    const { page, sockets } = pages[room];
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'online', null, { timeout: WAIT });
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    assert.deepEqual(sockets, [`wss://127.0.0.1:${server.port}/`]);
  }
});

test('two pages chat over wss://, and an HTTPS trigger reaches a room', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  await say(p1, 'room1', 'Room 1 over TLS');
  await shows(p1, 'Room 1 over TLS');
  await say(p2, '', 'Everyone, over TLS');
  await shows(p1, 'Everyone, over TLS');
  await shows(p2, 'Everyone, over TLS');
  assert.equal(await entry(p2, 'Room 1 over TLS').count(), 0);

  const body = await server.get(`/Index/pushByRoom?roomNum=room1&message=${encodeURIComponent('Pushed over HTTPS')}`);
  assert.match(body, /success/);
  await shows(p1, 'Pushed over HTTPS');
  for (const { watch } of Object.values(pages)) {
    assert.deepEqual(watch.errors, []);
    assert.deepEqual(watch.dialogs, []);
  }
});

test('a page calls a Tars servant over wss:// and gets its result', async () => {
  const result = await pages.room2.page.evaluate(({ servant, wait }) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${location.host}/`);
    const timer = setTimeout(() => reject(new Error('no answer to the call')), wait);
    ws.onopen = () => ws.send('call|' + JSON.stringify({ id: 9, servant, func: 'hello', args: { no: 1, name: 'ann' } }));
    ws.onerror = () => reject(new Error('the wss:// connection failed'));
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.id === 9) {
        clearTimeout(timer);
        ws.close();
        resolve(frame);
      }
    };
  }), { servant: HELLO, wait: WAIT });
  assert.deepEqual(result, { kind: 'result', id: 9, ret: 'hello ann, no 1, from TestApp.WebsocketServer', result: {} });
});
