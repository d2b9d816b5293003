// The chat page against a server that answers in plain text, as the original
// TarsPHP demo did. The page is loaded from the real binary; its WebSocket is
// answered by the test, which plays the demo's side of the protocol and
// records every frame the page sends. A fake clock drives pings and back-off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launchBrowser, watch } from './harness.mjs';

const WAIT = 30_000;

let server;
let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// demo answers one frame the way the TarsPHP demo does.
function demo(ws, frame) {
  const bar = frame.indexOf('|');
  const cmd = bar < 0 ? frame : frame.slice(0, bar);
  const data = bar < 0 ? '' : frame.slice(bar + 1);
  switch (cmd) {
    case 'subscribe': return ws.send(`Subscribe roomNum:${data} success!`);
    case 'unsubscribe': return ws.send(`Unsubscribe roomNum:${data} success!`);
    case 'sendByRoom': ws.send(JSON.parse(data).message); return ws.send('SendByRoom success!');
    case 'broadcast': ws.send(JSON.parse(data).message); return ws.send('Broadcast success!');
    case 'ping': return ws.send('pong');
    default: return ws.send('Rsp from server: this is server');
  }
}

// stopTime installs a fake clock in the page that moves only when the test
// runs it forward, so each timer fires exactly when the test says.
async function stopTime(page) {
  await page.clock.install({ time: new Date('2026-11-24T12:00:00Z') });
  await page.clock.pauseAt(new Date('2026-11-24T12:00:01Z'));
}

// eventually polls cond until it holds: frames reach the test asynchronously.
async function eventually(cond, what) {
  const deadline = Date.now() + WAIT;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function texts(page, kind) {
  return page.$$eval(`#log li[data-kind="${kind}"] p.text`, (ps) => ps.map((p) => p.textContent));
}

test('a page works against a server that never answers in JSON', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const w = watch(page);
    await stopTime(page);

    const connections = []; // one array of received frames per connection
    const sockets = [];
    const wsURL = `ws://127.0.0.1:${server.port}/`;
    await page.routeWebSocket(wsURL, (ws) => {
      const frames = [];
      connections.push(frames);
      sockets.push(ws);
      ws.onMessage((frame) => { frames.push(frame); demo(ws, String(frame)); });
    });

    await page.goto(`${server.url}/client1.html`);
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'online', null, { timeout: WAIT });
    await page.locator('#log li[data-kind="plain"]', { hasText: 'Subscribe roomNum:room1 success!' }).waitFor({ timeout: WAIT });
    assert.deepEqual(connections[0], ['format|json', 'subscribe|room1', 'history|room1']);
    assert.equal(await page.textContent('#my-id'), '');

    // Plain frames are shown as they are, markup included, as text.
    await page.fill('#message', 'hi <b>there</b>');
    await page.press('#message', 'Enter');
    await page.locator('#log li[data-kind="plain"]', { hasText: 'SendByRoom success!' }).waitFor({ timeout: WAIT });
    assert.equal(connections[0][3], 'sendByRoom|{"roomNum":"room1","message":"hi <b>there</b>"}');
    assert.deepEqual(await texts(page, 'plain'), [
      'Rsp from server: this is server',
      'Subscribe roomNum:room1 success!',
      'Rsp from server: this is server',
      'hi <b>there</b>',
      'SendByRoom success!',
    ]);
    assert.equal(await page.locator('#log b').count(), 0);

    // A ping every 10 s; its pong is not shown.
    const pings = () => connections[0].filter((f) => f === 'ping').length;
    await page.clock.runFor(10_000);
    await eventually(() => pings() === 1, 'the first ping');
    await page.clock.runFor(10_000);
    await eventually(() => pings() === 2, 'the second ping');
    assert.equal((await texts(page, 'plain')).filter((t) => t === 'pong').length, 0);

    // Join a second room, then lose the connection: the page counts down,
    // reconnects and subscribes again to both rooms.
    await page.fill('#join-room', 'lobby');
    await page.press('#join-room', 'Enter');
    await page.locator('#log li[data-kind="plain"]', { hasText: 'Subscribe roomNum:lobby success!' }).waitFor({ timeout: WAIT });
    await sockets[0].close({ code: 1001, reason: 'going away' });
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'reconnecting', null, { timeout: WAIT });
    assert.match(await page.textContent('#status-text'), /^Reconnecting in 1s$/);
    assert.equal(await page.isVisible('#retry-now'), true);
    await page.clock.runFor(1_000);
    await page.waitForFunction(() => document.getElementById('status').dataset.state === 'online', null, { timeout: WAIT });
    assert.equal(connections.length, 2);
    await eventually(() => connections[1].length >= 5, 'the frames of the second connection');
    assert.deepEqual(connections[1], ['format|json', 'subscribe|room1', 'history|room1', 'subscribe|lobby', 'history|lobby']);

    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.dialogs, []);
  } finally {
    await context.close();
  }
});

test('failed connections back off exponentially, capped, with jitter', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await stopTime(page);
    // Every connection attempt fails before it opens.
    let attempts = 0;
    await page.routeWebSocket(`ws://127.0.0.1:${server.port}/`, (ws) => {
      attempts++;
      ws.close({ code: 1011, reason: 'refused' });
    });
    await page.goto(`${server.url}/client2.html`);

    // The countdown shows the delay drawn for each retry: within the upper
    // half of 1 s, 2 s, 4 s, ... 30 s.
    const ceilings = [1, 2, 4, 8, 16, 30, 30];
    const shown = [];
    for (let i = 0; i < ceilings.length; i++) {
      await eventually(() => attempts === i + 1, `attempt ${i + 1}`);
      await page.waitForFunction(() => document.getElementById('status').dataset.state === 'reconnecting', null, { timeout: WAIT });
      shown.push(Number((await page.textContent('#status-text')).match(/\d+/)[0]));
      await page.clock.fastForward(ceilings[i] * 1000); // a jump: the next delay starts from a still clock
    }
    shown.forEach((s, i) => {
      assert.ok(s >= Math.ceil(ceilings[i] / 2) && s <= ceilings[i], `retry ${i}: ${s}s not in [${ceilings[i] / 2}, ${ceilings[i]}]`);
    });
  } finally {
    await context.close();
  }
});
