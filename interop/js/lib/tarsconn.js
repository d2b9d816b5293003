'use strict';
// A raw TCP connection to a Tars adapter: packets go out as given and come
// back split by the 4-byte length prefix, nothing else interpreted.

const net = require('node:net');

const WAIT_MS = 10000; // guards against a hang, not a speed check

class TarsConn {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.packets = [];
    this.waiters = [];
    this.ended = null;
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 4) {
        const len = this.buf.readUInt32BE(0);
        if (len < 4) return this._end(new Error(`server sent a packet length of ${len}`));
        if (this.buf.length < len) break;
        const pkt = this.buf.subarray(0, len);
        this.buf = this.buf.subarray(len);
        const w = this.waiters.shift();
        if (w) w.resolve(pkt); else this.packets.push(pkt);
      }
    });
    socket.on('close', () => this._end(new Error('connection closed by the server')));
    socket.on('error', (err) => this._end(err));
  }

  static connect(port) {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => resolve(new TarsConn(s)));
      s.once('error', reject);
    });
  }

  _end(err) {
    this.ended = this.ended || err;
    for (const w of this.waiters.splice(0)) w.reject(this.ended);
  }

  write(buf) {
    this.socket.write(buf);
  }

  // next resolves with the next whole packet, length prefix included.
  next() {
    if (this.packets.length) return Promise.resolve(this.packets.shift());
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no packet within ${WAIT_MS} ms`));
      }, WAIT_MS);
      const w = {
        resolve: (p) => { clearTimeout(timer); resolve(p); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.waiters.push(w);
    });
  }

  // closed resolves once the server has closed the connection.
  closed() {
    if (this.socket.destroyed || this.ended) return Promise.resolve(this.ended);
    return new Promise((resolve) => this.socket.once('close', () => resolve(this.ended)));
  }

  close() {
    this.socket.destroy();
  }
}

module.exports = { TarsConn };
