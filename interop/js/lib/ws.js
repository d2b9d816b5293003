'use strict';
// A small RFC 6455 client over net + crypto: enough to play the browser of
// the chat demo (text frames, ping/pong, close) without extra packages.

const crypto = require('node:crypto');
const net = require('node:net');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const WAIT_MS = 10000; // guards against a hang, not a speed check

class WSClient {
  constructor(socket, rest) {
    this.socket = socket;
    this.buf = rest;
    this.fragments = [];
    this.messages = []; // text messages not yet taken
    this.waiters = [];
    this.closed = null;
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this._parse();
    });
    socket.on('close', () => this._end(this.closed || new Error('connection closed')));
    socket.on('error', (err) => this._end(err));
    this._parse();
  }

  // connect opens ws://127.0.0.1:port/path, sending the Origin a page
  // served by the same server would send.
  static connect(port, path = '/', headers = {}) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const socket = net.connect(port, '127.0.0.1');
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`,
        'Sec-WebSocket-Version: 13',
        `Origin: http://127.0.0.1:${port}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`ws handshake to port ${port}: no answer`));
      }, WAIT_MS);
      const onData = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.removeListener('data', onData);
        clearTimeout(timer);
        const text = head.subarray(0, end).toString('latin1');
        const [status, ...fields] = text.split('\r\n');
        const hdr = {};
        for (const f of fields) {
          const i = f.indexOf(':');
          if (i > 0) hdr[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
        }
        const want = crypto.createHash('sha1').update(key + GUID).digest('base64');
        if (!/^HTTP\/1\.1 101\b/.test(status)) {
          socket.destroy();
          reject(new Error(`ws handshake to ${path}: ${status}`));
        } else if (hdr['sec-websocket-accept'] !== want) {
          socket.destroy();
          reject(new Error(`ws handshake: Sec-WebSocket-Accept ${hdr['sec-websocket-accept']}, want ${want}`));
        } else {
          resolve(new WSClient(socket, head.subarray(end + 4)));
        }
      };
      socket.on('data', onData);
      socket.once('error', (err) => { clearTimeout(timer); reject(err); });
      socket.once('connect', () => socket.write(lines.join('\r\n') + '\r\n\r\n'));
    });
  }

  _frame(opcode, payload) {
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    let header;
    if (len < 126) {
      header = Buffer.from([0x80 | opcode, 0x80 | len]);
    } else if (len < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode; header[1] = 0x80 | 126; header.writeUInt16BE(len, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode; header[1] = 0x80 | 127; header.writeBigUInt64BE(BigInt(len), 2);
    }
    const body = Buffer.alloc(len);
    for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
    this.socket.write(Buffer.concat([header, mask, body]));
  }

  send(text) {
    this._frame(0x1, Buffer.from(text, 'utf8'));
  }

  _parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      if (b[1] & 0x80) return this._fail('server sent a masked frame');
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2); off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2)); off = 10;
      }
      if (b.length < off + len) return;
      const payload = b.subarray(off, off + len);
      this.buf = b.subarray(off + len);
      switch (opcode) {
        case 0x0: case 0x1: case 0x2:
          this.fragments.push(payload);
          if (fin) {
            const msg = Buffer.concat(this.fragments).toString('utf8');
            this.fragments = [];
            this._deliver(msg);
          }
          break;
        case 0x8:
          this.closed = new Error(`server closed: code ${payload.length >= 2 ? payload.readUInt16BE(0) : 'none'} ${payload.subarray(2).toString('utf8')}`);
          this._frame(0x8, payload.subarray(0, 2));
          this.socket.end();
          break;
        case 0x9:
          this._frame(0xA, payload);
          break;
        case 0xA:
          break;
        default:
          return this._fail(`unknown opcode ${opcode}`);
      }
    }
  }

  _fail(why) {
    this.socket.destroy();
    this._end(new Error(why));
  }

  _deliver(msg) {
    const w = this.waiters.shift();
    if (w) w.resolve(msg);
    else this.messages.push(msg);
  }

  _end(err) {
    this.closed = this.closed || err;
    for (const w of this.waiters.splice(0)) w.reject(this.closed);
  }

  // next resolves with the next text message.
  next() {
    if (this.messages.length) return Promise.resolve(this.messages.shift());
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no message within ${WAIT_MS} ms`));
      }, WAIT_MS);
      w.resolve = (m) => { clearTimeout(timer); resolve(m); };
      w.reject = (e) => { clearTimeout(timer); reject(e); };
      this.waiters.push(w);
    });
  }

  // until returns the messages received up to and including want.
  async until(want) {
    const seen = [];
    for (;;) {
      let m;
      try {
        m = await this.next();
      } catch (e) {
        throw new Error(`waiting for ${JSON.stringify(want.slice(0, 80))}: ${e.message}; got ${JSON.stringify(seen.map((x) => x.slice(0, 80)))}`);
      }
      seen.push(m);
      if (m === want) return seen;
    }
  }

  // request sends text and waits for the reply equal to want.
  async request(text, want) {
    this.send(text);
    return this.until(want);
  }

  // close sends a close frame and resolves once the socket is gone.
  close() {
    if (this.socket.destroyed) return Promise.resolve();
    if (this.closed) { this.socket.destroy(); return Promise.resolve(); }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), 2000);
      this.socket.once('close', () => { clearTimeout(timer); resolve(); });
      this._frame(0x8, Buffer.from([0x03, 0xe8]));
      this.socket.end();
    });
  }
}

module.exports = { WSClient };
