// Chat page logic for chat.html, served as client1.html and client2.html.
//
// The server speaks text frames "cmd|data". The page asks for JSON replies
// ("format|json"); a server that answers in plain text (the original demo)
// still works: its frames are shown as they are.
//
// Everything the server sends is shown with textContent, never innerHTML.
'use strict';

(() => {
  const HOME_ROOM = document.body.dataset.room || 'room1';
  const PING_EVERY_MS = 10_000;
  const SILENCE_LIMIT_MS = 3 * PING_EVERY_MS; // no frame for this long: the link is dead
  const RETRY_FIRST_MS = 1_000;
  const RETRY_MAX_MS = 30_000;
  const MAX_ENTRIES = 500; // oldest log entries are dropped beyond this
  const PRESENCE_EVERY = 3;  // pings between presence refreshes
  const NAME_KEY = 'chat.name';
  // The Hello servant the page calls with call|{...}: the demo's own HelloObj,
  // which the server's call-allow lists (default.conf).
  const HELLO_SERVANT = 'TestApp.WebsocketServer.HelloObj';

  // Replies not logged: they confirm what the user sees anyway, or (hello)
  // have their own place on the page.
  const QUIET_REPLIES = new Set(['ping', 'format', 'history', 'sendByRoom', 'broadcast', 'hello', 'name']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    statusText: $('status-text'),
    retryNow: $('retry-now'),
    myId: $('my-id'),
    rooms: $('rooms'),
    joinForm: $('join-form'),
    joinRoom: $('join-room'),
    log: $('log'),
    sendForm: $('send-form'),
    target: $('target'),
    message: $('message'),
    helloForm: $('hello-form'),
    helloName: $('hello-name'),
    helloReply: $('hello-reply'),
    presenceSection: $('presence-section'),
    presenceTitle: $('presence-title'),
    presenceCount: $('presence-count'),
    presence: $('presence'),
    nameForm: $('name-form'),
    nameInput: $('name-input'),
    nameHint: $('name-hint'),
  };

  let ws = null;
  let jsonMode = false;         // the server has answered format|json
  let myId = '';                // our connection id, to tell our own messages apart
  const joined = [HOME_ROOM];   // rooms we want to be in, in the order joined
  let target = HOME_ROOM;       // where the composer sends: a room, or '' for everyone
  const pendingJoins = [];      // subscribes sent and not yet answered
  const seen = new Set();       // from+time+text of every message shown
  let attempt = 0;              // failed connection attempts in a row
  let retryTimer = 0;
  let countdownTimer = 0;
  let pingTimer = 0;
  let lastFrameAt = 0;
  let everOnline = false;       // a later open is a reconnect
  let myName = storedName();    // display name the server accepted, kept in localStorage
  let pendingName = '';         // name sent and not yet answered
  let pings = 0;
  let callSeq = 0;              // ids of call frames, answered by a result or error with that id
  const calls = new Map();      // call id -> function taking the answer
  // Per room, the epoch and offset of the last message seen: a later subscribe
  // asks for what came after it (a JSON server only; a text one sends none).
  const positions = new Map();

  // ---- connection ----------------------------------------------------------

  function serverURL() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return scheme + location.host + '/';
  }

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    setStatus('connecting', 'Connecting…');
    jsonMode = false;
    myId = '';
    showMyId();
    pendingJoins.length = 0;
    calls.clear();
    ui.presenceSection.hidden = true;

    const socket = new WebSocket(serverURL());
    ws = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      lastFrameAt = Date.now();
      setStatus('online', 'Online');
      if (everOnline) notice('Reconnected.', 'reply');
      everOnline = true;
      send('format|json');
      for (const room of joined) {
        subscribe(room);
      }
      pingTimer = setInterval(keepAlive, PING_EVERY_MS);
    };
    socket.onmessage = (event) => {
      // Back-off restarts only once the server has answered: one that accepts
      // and then drops every connection is still retried ever more slowly.
      attempt = 0;
      lastFrameAt = Date.now();
      handleFrame(String(event.data));
    };
    socket.onclose = () => lost(socket, opened);
  }

  // lost is called once per socket, when it closes or is found dead.
  function lost(socket, wasOpen) {
    if (socket !== ws) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    ws = null;
    clearInterval(pingTimer);
    if (wasOpen) notice('Connection lost.', 'warn');
    scheduleReconnect();
  }

  // Exponential back-off with jitter: 1 s, 2 s, 4 s … capped at 30 s, each
  // drawn from the upper half of its range so that many pages reconnecting
  // after a restart spread out.
  function scheduleReconnect() {
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempt++;
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setStatus('reconnecting', `Reconnecting in ${seconds}s`);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(connect, delay);
  }

  function retryNow() {
    if (ws === null) connect();
  }

  function keepAlive() {
    if (Date.now() - lastFrameAt > SILENCE_LIMIT_MS) {
      const socket = ws;
      lost(socket, true);
      socket.close();
      return;
    }
    send('ping');
    if (++pings % PRESENCE_EVERY === 0) askPresence();
  }

  function send(frame) {
    if (ws === null || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(frame);
    return true;
  }

  // call calls a Tars servant's function through the server; done gets the
  // answer: {kind: 'result', ret, result} or {kind: 'error', code, error}.
  function call(servant, func, args, done) {
    const id = ++callSeq;
    if (!send('call|' + JSON.stringify({ id, servant, func, args }))) return false;
    calls.set(id, done);
    return true;
  }

  function subscribe(room) {
    const pos = positions.get(room);
    if (pos) {
      const frame = JSON.stringify({ roomNum: room, since: pos.offset, epoch: pos.epoch });
      if (send('subscribe|' + frame)) pendingJoins.push(room);
      return;
    }
    if (send('subscribe|' + room)) {
      pendingJoins.push(room);
      send('history|' + room);
    }
  }

  // ---- frames from the server ------------------------------------------------

  function handleFrame(data) {
    const msg = parseJSON(data);
    if (msg === null) {
      if (data !== 'pong') entry({ kind: 'plain', text: data });
      return;
    }
    // A call's answer: a result, or an error with no cmd, carrying its id.
    if ((msg.kind === 'result' || (msg.kind === 'error' && msg.cmd === undefined)) && calls.has(msg.id)) {
      const done = calls.get(msg.id);
      calls.delete(msg.id);
      done(msg);
      return;
    }
    switch (msg.kind) {
      case 'message':
      case 'history':
        showMessage(msg);
        break;
      case 'reply':
        handleReply(msg);
        break;
      case 'error':
        handleError(msg);
        break;
      case 'presence':
        showPresence(msg);
        break;
      case 'join':
      case 'leave':
        if (msg.room === presenceRoom()) askPresence();
        break;
      default:
        entry({ kind: 'plain', text: data });
    }
  }

  // parseJSON returns the frame as an object when it is a JSON reply, else null.
  function parseJSON(data) {
    if (!data.startsWith('{')) return null;
    try {
      const msg = JSON.parse(data);
      return msg && typeof msg === 'object' && typeof msg.kind === 'string' ? msg : null;
    } catch {
      return null;
    }
  }

  function handleReply(msg) {
    const text = String(msg.text ?? '');
    switch (msg.cmd) {
      case 'format':
        jsonMode = true;
        if (msg.id) {
          myId = String(msg.id);
          showMyId();
        }
        if (myName !== '') sendName(myName);
        askPresence();
        break;
      case 'subscribe': {
        const room = settleJoin(msg);
        if (typeof msg.epoch === 'string' && typeof msg.offset === 'number') {
          positions.set(room, { epoch: msg.epoch, offset: msg.offset });
        }
        if (msg.recovered === false) {
          notice(`Some messages of #${room} were missed while away: the room's history no longer reaches back that far.`, 'warn');
        }
        if (room === presenceRoom()) askPresence();
        break;
      }
      case 'name':
        myName = pendingName;
        try { localStorage.setItem(NAME_KEY, myName); } catch { /* storage off: kept for this page only */ }
        showName();
        askPresence();
        break;
      case 'hello':
        ui.helloReply.textContent = text;
        break;
    }
    if (!QUIET_REPLIES.has(msg.cmd)) notice(text, 'reply');
  }

  function handleError(msg) {
    const text = String(msg.text ?? 'Error');
    if (msg.cmd === 'subscribe') {
      // The server refused the room (bad name, too many rooms): drop it.
      const room = settleJoin(msg);
      if (room !== undefined) leaveLocally(room);
    }
    if (msg.cmd === 'hello') ui.helloReply.textContent = text;
    if (msg.cmd === 'name') ui.nameHint.textContent = text;
    notice(text, 'error');
  }

  // settleJoin takes the subscribe that msg answers off pendingJoins and
  // returns its room. Replies come in order, so without a room it is the oldest.
  function settleJoin(msg) {
    const i = msg.room ? pendingJoins.indexOf(msg.room) : 0;
    return i >= 0 && i < pendingJoins.length ? pendingJoins.splice(i, 1)[0] : msg.room;
  }

  function showMessage(msg) {
    const room = String(msg.room ?? '');
    if (room !== '' && typeof msg.epoch === 'string' && typeof msg.offset === 'number') {
      const pos = positions.get(room);
      if (!pos || pos.epoch !== msg.epoch || pos.offset < msg.offset) {
        positions.set(room, { epoch: msg.epoch, offset: msg.offset });
      }
    }
    const from = String(msg.from ?? '');
    const time = String(msg.time ?? '');
    const text = String(msg.text ?? '');
    const key = from + '\n' + time + '\n' + text;
    if (seen.has(key)) return;
    seen.add(key);
    entry({ kind: msg.kind, from, name: String(msg.name ?? ''), time, text, room, key });
  }

  // ---- the log -----------------------------------------------------------------

  function notice(text, tone) {
    entry({ kind: 'notice', tone, text, time: new Date().toISOString() });
  }

  function entry(e) {
    const li = document.createElement('li');
    li.className = 'entry ' + e.kind;
    li.dataset.kind = e.kind;

    if (e.kind === 'message' || e.kind === 'history') {
      const own = myId !== '' && e.from === myId;
      li.classList.toggle('own', own);
      li.dataset.from = e.from;
      li.dataset.room = e.room;
      li.dataset.key = e.key;
      li.style.setProperty('--hue', hue(e.from));

      const meta = document.createElement('p');
      meta.className = 'meta';
      meta.append(
        span('from', own ? 'You' : e.name || senderName(e.from)),
        span('room', e.room === '' ? 'everyone' : '#' + e.room),
        timeElement(e.time),
      );
      if (e.kind === 'history') meta.append(span('tag', 'earlier'));
      li.append(meta, paragraph('text', e.text));
    } else {
      if (e.tone) li.classList.add(e.tone);
      li.append(paragraph('text', e.text));
      if (e.time) li.append(timeElement(e.time));
    }

    const nearBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
    ui.log.append(li);
    while (ui.log.children.length > MAX_ENTRIES) {
      const old = ui.log.firstElementChild;
      if (old.dataset.key) seen.delete(old.dataset.key);
      old.remove();
    }
    if (nearBottom) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function span(className, text) {
    const s = document.createElement('span');
    s.className = className;
    s.textContent = text;
    return s;
  }

  function paragraph(className, text) {
    const p = document.createElement('p');
    p.className = className;
    p.textContent = text;
    return p;
  }

  function timeElement(iso) {
    const t = document.createElement('time');
    const d = new Date(iso);
    if (iso === '' || Number.isNaN(d.getTime())) {
      t.textContent = iso;
      return t;
    }
    t.dateTime = iso;
    t.title = d.toLocaleString();
    t.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return t;
  }

  function senderName(from) {
    if (from === 'http') return 'HTTP push';
    if (from === 'tars') return 'Tars push';
    return from || 'unknown';
  }

  // hue gives each sender a stable colour; the golden angle keeps ids that
  // differ in one digit (c1, c2) far apart on the colour wheel.
  function hue(from) {
    let h = 0;
    for (const ch of from) h = (h * 31 + ch.codePointAt(0)) % 1000;
    return String(Math.round((h * 137.508) % 360));
  }

  // ---- names and presence ----------------------------------------------------------

  function storedName() {
    try { return localStorage.getItem(NAME_KEY) ?? ''; } catch { return ''; }
  }

  function sendName(name) {
    if (send('name|' + name)) pendingName = name;
  }

  function showName() {
    ui.nameInput.value = myName;
    ui.nameHint.textContent = myName ? `Others see you as ${myName}.` : '';
  }

  // presenceRoom is the room whose members are shown: the one the composer
  // sends to, or the first joined when it sends to everyone.
  function presenceRoom() {
    return target || joined[0] || '';
  }

  // Only a JSON server knows presence; a text one is never asked.
  function askPresence() {
    const room = presenceRoom();
    if (jsonMode && room !== '') send('presence|' + room);
  }

  function showPresence(msg) {
    if (msg.room !== presenceRoom() || !Array.isArray(msg.members)) return;
    const count = Number(msg.count) || 0;
    ui.presenceSection.hidden = false;
    ui.presenceTitle.textContent = 'Here now in #' + msg.room;
    ui.presenceCount.textContent = count === 1 ? '1 person' : `${count} people`;
    ui.presence.replaceChildren();
    for (const m of msg.members) {
      const id = String(m.id ?? '');
      const li = document.createElement('li');
      li.dataset.id = id;
      li.title = id;
      li.textContent = String(m.name || id) + (id === myId ? ' (you)' : '');
      ui.presence.append(li);
    }
    if (count > msg.members.length) {
      const li = document.createElement('li');
      li.className = 'more';
      li.textContent = `and ${count - msg.members.length} more`;
      ui.presence.append(li);
    }
  }

  // ---- status, rooms and forms --------------------------------------------------

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
    ui.retryNow.hidden = state !== 'reconnecting';
  }

  function showMyId() {
    ui.myId.textContent = myId ? 'You are ' + myId : '';
  }

  function renderRooms() {
    ui.rooms.replaceChildren();
    for (const room of joined) {
      const li = document.createElement('li');
      li.dataset.room = room;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'leave';
      button.textContent = 'Leave';
      button.setAttribute('aria-label', 'Leave ' + room);
      button.addEventListener('click', () => leave(room));
      li.append(span('name', '#' + room), button);
      ui.rooms.append(li);
    }
    if (joined.length === 0) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'No rooms: join one below.';
      ui.rooms.append(li);
    }

    ui.target.replaceChildren();
    for (const room of joined) ui.target.append(new Option('#' + room, room));
    ui.target.append(new Option('Everyone', ''));
    if (target !== '' && !joined.includes(target)) target = joined[0] ?? '';
    ui.target.value = target;
  }

  function join(room) {
    if (!joined.includes(room)) joined.push(room);
    target = room;
    renderRooms();
    if (ws === null) {
      notice(`Will join #${room} once connected.`, 'warn');
      return;
    }
    subscribe(room);
  }

  function leave(room) {
    leaveLocally(room);
    send('unsubscribe|' + room);
    ui.joinRoom.focus();
  }

  function leaveLocally(room) {
    const i = joined.indexOf(room);
    if (i < 0) return;
    joined.splice(i, 1);
    renderRooms();
    if (presenceRoom() === '') ui.presenceSection.hidden = true;
    askPresence();
  }

  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = ui.joinRoom.value.trim();
    if (room === '') return;
    ui.joinRoom.value = '';
    join(room);
  });

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const message = ui.message.value.trim();
    if (message === '') return;
    const room = ui.target.value;
    const frame = room === ''
      ? 'broadcast|' + JSON.stringify({ message })
      : 'sendByRoom|' + JSON.stringify({ roomNum: room, message });
    if (!send(frame)) {
      notice('Not connected: the message was not sent. It is still in the box.', 'error');
      return;
    }
    ui.message.value = '';
    ui.message.focus();
  });

  ui.helloForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.helloName.value.trim();
    if (name === '') return;
    // A JSON server is called with call|; one whose call-allow does not list
    // hello (code 2), or a text one, gets the older hello|NAME.
    const answered = (a) => {
      if (a.kind === 'result') ui.helloReply.textContent = String(a.ret);
      else if (a.code === 2) send('hello|' + name);
      else ui.helloReply.textContent = 'Error: ' + String(a.error ?? a.code);
    };
    if (jsonMode && call(HELLO_SERVANT, 'hello', { no: callSeq + 1, name }, answered)) {
      ui.helloReply.textContent = 'Calling…';
    } else if (send('hello|' + name)) {
      ui.helloReply.textContent = jsonMode ? 'Calling…' : 'Sent; the reply appears in the chat.';
    } else {
      ui.helloReply.textContent = 'Not connected.';
    }
  });

  ui.nameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.nameInput.value.trim();
    if (name === '') return;
    if (!jsonMode) {
      ui.nameHint.textContent = 'Not connected to a server that keeps names.';
      return;
    }
    sendName(name);
  });

  ui.target.addEventListener('change', () => { target = ui.target.value; askPresence(); });
  ui.retryNow.addEventListener('click', retryNow);
  window.addEventListener('online', retryNow);

  renderRooms();
  showName();
  connect();
})();
