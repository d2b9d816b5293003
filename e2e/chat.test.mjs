// The chat pages in headless Chromium against the real server binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Server, launchBrowser, watch, repoRoot } from './harness.mjs';

const WAIT = 30_000; // upper bound for anything to show up; reached only on failure

let server;
let browser;
const pages = {}; // room1, room2: { context, page, watch }

before(async () => {
  // As the demo's default.conf: the page calls HelloObj, which is also the hook.
  server = await Server.start({ websocket: '      call-allow=TestApp.WebsocketServer.HelloObj:hello\n      hook=TestApp.WebsocketServer.HelloObj' });
  browser = await launchBrowser();
  for (const [room, file] of [['room1', 'client1.html'], ['room2', 'client2.html']]) {
    // One context per page: separate cookies and network state, like two people.
    const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    const page = await context.newPage();
    const w = watch(page);
    const sockets = []; // the frames the page sent, one array per WebSocket
    page.on('websocket', (ws) => {
      const frames = [];
      sockets.push(frames);
      ws.on('framesent', (f) => frames.push(String(f.payload)));
    });
    await page.goto(`${server.url}/${file}`);
    pages[room] = { context, page, watch: w, sockets };
  }
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// ---- helpers ---------------------------------------------------------------

// A message entry in a page's log (live or from history) whose text is exactly text.
function entry(page, text) {
  return page.locator('#log li.entry', { has: page.locator('p.text', { hasText: exact(text) }) });
}

function exact(text) {
  return new RegExp('^' + text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$');
}

async function shows(page, text) {
  await entry(page, text).first().waitFor({ timeout: WAIT });
}

async function lacks(page, text) {
  assert.equal(await entry(page, text).count(), 0, `page should not show ${JSON.stringify(text)}`);
}

async function say(page, target, text) {
  await page.selectOption('#target', target);
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

async function state(page) {
  return page.getAttribute('#status', 'data-state');
}

async function waitState(page, want) {
  await page.waitForFunction(
    (s) => document.getElementById('status').dataset.state === s, want, { timeout: WAIT });
}

async function myId(page) {
  await page.waitForFunction(() => /^You are c\d+\.[0-9a-z]+$/.test(document.getElementById('my-id').textContent),
    null, { timeout: WAIT });
  return (await page.textContent('#my-id')).replace('You are ', '');
}

async function joinedRooms(page) {
  return page.$$eval('#rooms li[data-room]', (lis) => lis.map((li) => li.dataset.room));
}

// The conversation shown in the screenshots.
const CHAT = {
  room1: 'Morning, room 1! Stand-up in five minutes.',
  ask: 'Room 2 here: lunch at one, anyone?',
  answer: 'Count room 1 in, booking a table for six.',
  push: 'Build 1432 deployed to staging',
  room2: 'Design review moved to three o\'clock.',
};

// helloAnswered waits for the Hello box to show an answer (or an error).
async function helloAnswered(page) {
  await page.waitForFunction(() => {
    const t = document.getElementById('hello-reply').textContent;
    return t !== '' && t !== 'Calling…';
  }, null, { timeout: WAIT });
}

let seq = 0;
function unique(text) {
  return `${text} #${++seq}`;
}

// ---- tests -----------------------------------------------------------------

test('both pages connect, show their id and are in their own room', async () => {
  for (const room of ['room1', 'room2']) {
    const { page } = pages[room];
    await waitState(page, 'online');
    assert.match(await myId(page), /^c\d+\.[0-9a-z]+$/);
    assert.deepEqual(await joinedRooms(page), [room]);
    assert.equal(await page.inputValue('#target'), room);
    await page.locator('#log li.notice', { hasText: `Subscribe roomNum:${room} success!` }).waitFor({ timeout: WAIT });
  }
});

test('every control has a label and is reachable from the keyboard', async () => {
  const page = pages.room1.page;
  for (const label of ['To', 'Message', 'Join a room', 'Your name']) {
    assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
  }
  assert.equal(await page.getByRole('button', { name: 'Leave room1' }).count(), 1);
  assert.equal(await page.getByRole('log').count(), 1);
  assert.equal(await page.getByRole('status').count(), 1);

  // Tab walks from the message box to Send and on through the side panel.
  await page.focus('#message');
  const order = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent));
  }
  assert.deepEqual(order, ['Send', 'Leave', 'join-room', 'Join', 'hello-name', 'Call']);
});

test('screenshots of a short conversation between the two rooms', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  await say(p1, 'room1', CHAT.room1);
  await shows(p1, CHAT.room1);
  await say(p2, '', CHAT.ask);
  await shows(p1, CHAT.ask);
  await say(p1, '', CHAT.answer);
  await shows(p2, CHAT.answer);
  await server.get(`/Index/pushByRoom?roomNum=room1&message=${encodeURIComponent(CHAT.push)}`);
  await shows(p1, CHAT.push);
  await say(p2, 'room2', CHAT.room2);
  await shows(p2, CHAT.room2);
  await lacks(p1, CHAT.room2);
  await lacks(p2, CHAT.room1);
  await p2.fill('#hello-name', 'Grace');
  await p2.press('#hello-name', 'Enter');
  await helloAnswered(p2);
  await p1.fill('#message', 'See you there');

  // The README's pictures are refreshed only when asked
  // (SCREENSHOTS=update); otherwise they go to a temporary folder, so a test
  // run never changes tracked files.
  const dir = process.env.SCREENSHOTS === 'update'
    ? path.join(repoRoot, 'docs', 'screenshots')
    : await mkdtemp(path.join(os.tmpdir(), 'screenshots-'));
  await mkdir(dir, { recursive: true });
  await p1.screenshot({ path: path.join(dir, 'client1.png') });
  await p2.screenshot({ path: path.join(dir, 'client2.png') });
  await p1.setViewportSize({ width: 390, height: 844 });
  try {
    await p1.screenshot({ path: path.join(dir, 'client1-phone.png') });
  } finally {
    await p1.setViewportSize({ width: 1100, height: 720 });
    await p1.fill('#message', '');
  }
});

test('a room message reaches only its room; a broadcast reaches both', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  const id1 = await myId(p1);

  const toRoom1 = unique('Hello room 1, anyone here?');
  const toRoom2 = unique('Room 2 says hi');
  const toAll = unique('Good morning, everyone');
  await say(p1, 'room1', toRoom1);
  await shows(p1, toRoom1);
  await say(p2, 'room2', toRoom2);
  await shows(p2, toRoom2);
  await say(p1, '', toAll);
  await shows(p1, toAll);
  await shows(p2, toAll);

  // The broadcast went out after the room messages on the same connections,
  // so had a room message leaked it would be there by now.
  await lacks(p2, toRoom1);
  await lacks(p1, toRoom2);

  // Own messages are told apart; the other page sees the sender's id.
  assert.equal(await entry(p1, toRoom1).getAttribute('class'), 'entry message own');
  const seenBy2 = entry(p2, toAll);
  assert.equal(await seenBy2.getAttribute('class'), 'entry message');
  assert.equal(await seenBy2.getAttribute('data-from'), id1);
  assert.equal(await seenBy2.locator('.from').textContent(), id1);
  assert.equal(await seenBy2.locator('.room').textContent(), 'everyone');
  assert.match(await seenBy2.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);

  // Enter cleared the box.
  assert.equal(await p1.inputValue('#message'), '');
});

test('an HTTP trigger shows up in the page of that room', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  const pushed = unique('Deploy finished <b>ok</b> & green');
  const body = await server.get(`/Index/pushByRoom?roomNum=room1&message=${encodeURIComponent(pushed)}`);
  assert.match(body, /success/);
  await shows(p1, pushed);
  assert.equal(await entry(p1, pushed).locator('.from').textContent(), 'HTTP push');

  const toAll = unique('Maintenance at noon');
  await server.get(`/Index/pushAll?message=${encodeURIComponent(toAll)}`);
  await shows(p2, toAll);
  await lacks(p2, pushed);
});

test('a message with HTML shows as text and runs nothing', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  const html = '<img src=x onerror=alert(1)> <script>alert(2)</script>';
  await say(p2, '', html);
  await shows(p1, html);
  await shows(p2, html);
  for (const { page, watch } of [pages.room1, pages.room2]) {
    assert.equal(await page.locator('#log img, #log script').count(), 0);
    assert.deepEqual(watch.dialogs, []);
  }
});

test('join and leave another room from the page', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;

  const before = unique('Said in room2 before page 1 joined');
  await say(p2, 'room2', before);
  await shows(p2, before);

  await p1.fill('#join-room', 'room2');
  await p1.press('#join-room', 'Enter');
  await p1.locator('#log li.notice', { hasText: 'Subscribe roomNum:room2 success!' }).waitFor({ timeout: WAIT });
  assert.deepEqual(await joinedRooms(p1), ['room1', 'room2']);
  assert.deepEqual(await p1.$$eval('#target option', (os) => os.map((o) => o.value)), ['room1', 'room2', '']);

  // Joining asks for the room's history.
  await shows(p1, before);
  assert.equal(await entry(p1, before).getAttribute('data-kind'), 'history');

  const whileIn = unique('Page 1 is in room2 now');
  await say(p2, 'room2', whileIn);
  await shows(p1, whileIn);

  await p1.click('#rooms li[data-room="room2"] button.leave');
  await p1.locator('#log li.notice', { hasText: 'Unsubscribe roomNum:room2 success!' }).waitFor({ timeout: WAIT });
  assert.deepEqual(await joinedRooms(p1), ['room1']);

  const afterLeave = unique('Page 1 has left room2');
  const marker = unique('Everyone again');
  await say(p2, 'room2', afterLeave);
  await say(p2, '', marker);
  await shows(p1, marker);
  await lacks(p1, afterLeave);

  // Joining again brings the room's history again: what the page already
  // shows is not repeated, what it missed is added.
  await p1.fill('#join-room', 'room2');
  await p1.click('#join-form button');
  // History comes oldest first, so once the newest is shown the rest was seen.
  await shows(p1, afterLeave);
  assert.equal(await entry(p1, afterLeave).getAttribute('data-kind'), 'history');
  assert.equal(await entry(p1, before).count(), 1);
  assert.equal(await entry(p1, whileIn).count(), 1);
  await p1.click('#rooms li[data-room="room2"] button.leave');
  assert.deepEqual(await joinedRooms(p1), ['room1']);

  // A room the server refuses (its name is over 128 bytes) is shown as an
  // error and dropped from the list.
  const tooLong = 'é'.repeat(100);
  await p1.fill('#join-room', tooLong);
  await p1.press('#join-room', 'Enter');
  await p1.locator('#log li.notice.error', { hasText: /^Error: subscribe: / }).waitFor({ timeout: WAIT });
  assert.deepEqual(await joinedRooms(p1), ['room1']);
  assert.equal(await p1.inputValue('#target'), 'room1');
});

test('the Hello demo shows the answer of the Tars Hello servant', async () => {
  const p1 = pages.room1.page;
  await p1.fill('#hello-name', 'Ada');
  await p1.press('#hello-name', 'Enter');
  await helloAnswered(p1);
  const reply = await p1.textContent('#hello-reply');
  assert.doesNotMatch(reply, /^Error/, reply);
  assert.match(reply, /Ada/);
});

test('the page calls HelloObj with call| and the hook refuses a word', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  await p2.fill('#hello-name', 'Grace');
  await p2.press('#hello-name', 'Enter');
  await helloAnswered(p2);
  assert.match(await p2.textContent('#hello-reply'), /^hello Grace, no \d+, from TestApp\.WebsocketServer$/);
  const sent = pages.room2.sockets.at(-1);
  assert.ok(sent.some((f) => f.startsWith('call|') && f.includes('"func":"hello"')), 'no call| frame sent');
  assert.ok(!sent.some((f) => f.startsWith('hello|')), 'hello| sent although call-allow lists hello');

  const refused = unique('Buy spam now');
  await say(p1, 'room1', refused);
  await p1.locator('#log li.notice.error', { hasText: 'Error: sendByRoom: the word "spam" is not allowed here' })
    .first().waitFor({ timeout: WAIT });
  const fine = unique('No canned meat here');
  await say(p1, 'room1', fine);
  await shows(p1, fine);
  await lacks(p1, refused);
});

test('after a server restart both pages reconnect and page 1 catches up from history', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  const said = unique('Said before the restart');
  await say(p1, 'room1', said);
  await shows(p1, said);

  await server.kill();
  await waitState(p1, 'reconnecting');
  await waitState(p2, 'reconnecting');
  await p1.locator('#status-text', { hasText: /^Reconnecting in \d+s$/ }).waitFor({ timeout: WAIT });

  // Page 1 is cut off until the missed message has been pushed.
  await pages.room1.context.setOffline(true);
  await server.restart();
  const missed = unique('Pushed while page 1 was away');
  await server.get(`/Index/pushByRoom?roomNum=room1&message=${encodeURIComponent(missed)}`);
  assert.equal(await state(p1), 'reconnecting');
  await pages.room1.context.setOffline(false);

  await waitState(p1, 'online');
  await waitState(p2, 'online');
  await shows(p1, missed);
  assert.equal(await entry(p1, missed).getAttribute('data-kind'), 'history');
  assert.match(await myId(p1), /^c\d+\.[0-9a-z]+$/);

  // Re-subscribed: the pages talk again, and history brought no duplicates.
  const again = unique('Back online');
  await say(p2, '', again);
  await shows(p1, again);
  const back = unique('Room 1 is back too');
  await say(p1, 'room1', back);
  await shows(p1, back);
  assert.equal(await entry(p1, said).count(), 1);
  assert.equal(await entry(p1, missed).count(), 1);
  for (const page of [p1, p2]) {
    await page.locator('#log li.notice', { hasText: 'Connection lost.' }).waitFor({ timeout: WAIT });
    await page.locator('#log li.notice', { hasText: 'Reconnected.' }).waitFor({ timeout: WAIT });
  }
});

// killAndPush kills the server while page 1 is offline, restarts it, pushes
// messages to room1 by HTTP and brings page 1 back; it returns what it pushed.
async function killAndPush(what, n) {
  const p1 = pages.room1.page;
  await server.kill();
  await waitState(p1, 'reconnecting');
  await pages.room1.context.setOffline(true);
  await server.restart();
  const pushed = [];
  for (let i = 0; i < n; i++) {
    pushed.push(unique(`${what} ${i}`));
    await server.get(`/Index/pushByRoom?roomNum=room1&message=${encodeURIComponent(pushed[i])}`);
  }
  await pages.room1.context.setOffline(false);
  await waitState(p1, 'online');
  return pushed;
}

function missedNotices(page) {
  return page.locator('#log li.notice.warn', { hasText: /^Some messages of #room1 were missed/ }).count();
}

test('after the server is killed page 1 recovers with since: every missed message once, in order', async () => {
  const p1 = pages.room1.page;
  const last = unique('Seen before the kill');
  await say(p1, 'room1', last);
  await shows(p1, last);
  const socketsBefore = pages.room1.sockets.length;

  const pushed = await killAndPush('Missed while killed', 5);
  await shows(p1, pushed.at(-1));
  const texts = await p1.$$eval('#log li.entry[data-room="room1"] p.text', (ps) => ps.map((p) => p.textContent));
  assert.deepEqual(texts.slice(-pushed.length), pushed);
  for (const text of [last, ...pushed]) assert.equal(await entry(p1, text).count(), 1, text);

  // The reconnect asked for what came after the last offset seen, not for the last 50.
  const frames = pages.room1.sockets.at(-1);
  assert.ok(pages.room1.sockets.length > socketsBefore);
  const sub = frames.find((f) => f.startsWith('subscribe|'));
  const asked = JSON.parse(sub.slice('subscribe|'.length));
  assert.equal(asked.roomNum, 'room1');
  assert.ok(Number.isInteger(asked.since) && asked.since > 0, sub);
  assert.match(asked.epoch, /\S/);
  assert.ok(!frames.includes('history|room1'), frames.join(' '));
  assert.equal(await missedNotices(p1), 0);
});

test('a gap longer than the history shows that messages were missed', async () => {
  const p1 = pages.room1.page;
  const pushed = await killAndPush('Flood while away', 60); // history keeps 50
  await shows(p1, pushed.at(-1));
  await p1.locator('#log li.notice.warn', { hasText: /^Some messages of #room1 were missed/ }).waitFor({ timeout: WAIT });
  await lacks(p1, pushed[0]);
  await shows(p1, pushed[10]);
});

test('a name is kept in the browser, checked by the server and shown on messages', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  // The tests before restarted the server: both pages must be back before a broadcast.
  await waitState(p1, 'online');
  await waitState(p2, 'online');
  await p1.fill('#name-input', 'Ada <b>');
  await p1.press('#name-input', 'Enter');
  await p1.locator('#log li.notice.error', { hasText: 'Error: name: name contains one of < > & " \'' }).waitFor({ timeout: WAIT });
  assert.equal(await p1.evaluate(() => localStorage.getItem('chat.name')), null);

  await p1.fill('#name-input', 'Ada');
  await p1.press('#name-input', 'Enter');
  await p1.locator('#name-hint', { hasText: 'Others see you as Ada.' }).waitFor({ timeout: WAIT });
  const hi = unique('Hello from Ada');
  await say(p1, '', hi);
  await shows(p2, hi);
  assert.equal(await entry(p2, hi).locator('.from').textContent(), 'Ada');
  assert.equal(await entry(p2, hi).getAttribute('data-from'), await myId(p1));

  // Asked once: after a reload the page sends the kept name by itself.
  await p1.reload();
  await waitState(p1, 'online');
  assert.equal(await p1.inputValue('#name-input'), 'Ada');
  await p1.locator('#name-hint', { hasText: 'Others see you as Ada.' }).waitFor({ timeout: WAIT });
  const again = unique('Ada again');
  await say(p1, '', again);
  await shows(p2, again);
  assert.equal(await entry(p2, again).locator('.from').textContent(), 'Ada');
});

test('each page shows who is in its room, updated on joins and leaves', async () => {
  const p1 = pages.room1.page;
  const p2 = pages.room2.page;
  const id1 = await myId(p1);
  const id2 = await myId(p2);
  const people = (page) => page.$$eval('#presence li', (lis) => lis.map((li) => li.textContent));
  const waitPeople = (page, want) => page.waitForFunction(
    (w) => JSON.stringify([...document.querySelectorAll('#presence li')].map((li) => li.textContent)) === w,
    JSON.stringify(want), { timeout: WAIT }).catch(async (err) => {
    throw new Error(`presence ${JSON.stringify(await people(page))}, want ${JSON.stringify(want)}: ${err.message}`);
  });

  await waitPeople(p1, ['Ada (you)']);
  assert.equal(await p1.textContent('#presence-title'), 'Here now in #room1');
  await waitPeople(p2, [`${id2} (you)`]);

  // Page 2 joins room1: it sees both, and page 1 sees page 2 arrive.
  await p2.fill('#join-room', 'room1');
  await p2.press('#join-room', 'Enter');
  await waitPeople(p2, ['Ada', `${id2} (you)`]);
  assert.equal(await p2.textContent('#presence-count'), '2 people');
  await waitPeople(p1, ['Ada (you)', id2]);
  assert.equal(await p1.getAttribute('#presence li:nth-child(2)', 'title'), id2);

  // It leaves: page 1 sees it go, page 2 shows its own room again.
  await p2.click('#rooms li[data-room="room1"] button.leave');
  await waitPeople(p1, ['Ada (you)']);
  await waitPeople(p2, [`${id2} (you)`]);
  assert.equal(await p2.textContent('#presence-title'), 'Here now in #room2');
  assert.ok(id1);
});

test('no script errors and no dialogs on either page', () => {
  for (const room of ['room1', 'room2']) {
    assert.deepEqual(pages[room].watch.errors, [], room);
    assert.deepEqual(pages[room].watch.dialogs, [], room);
  }
});
