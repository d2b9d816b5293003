// Test harness: builds the real server binary, runs it with a tarsnode-style
// config on free loopback ports, and drives headless Chromium against it.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

// freePort asks the kernel for an unused loopback port.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// build compiles the server from the repo root into dir and returns the binary's path.
export async function build(dir) {
  const bin = path.join(dir, 'WebsocketServer');
  try {
    await promisify(execFile)('go', ['build', '-o', bin, '.'], { cwd: repoRoot, maxBuffer: 16 << 20 });
  } catch (err) {
    throw new Error(`go build failed:\n${err.stderr || err.message}`);
  }
  return bin;
}

// makeCert writes cert.pem and key.pem, a self-signed certificate for
// 127.0.0.1 and localhost, into dir with the generator shipped in Go's
// sources, and returns the certificate.
export async function makeCert(dir) {
  const run = promisify(execFile);
  const { stdout: goroot } = await run('go', ['env', 'GOROOT']);
  const gen = path.join(goroot.trim(), 'src', 'crypto', 'tls', 'generate_cert.go');
  await run('go', ['run', gen, '--host', '127.0.0.1,localhost', '--duration', '24h'], { cwd: dir });
  return readFile(path.join(dir, 'cert.pem'));
}

// serverConfig renders the config file tarsnode would write for this server;
// with tls the HTTP adapter's endpoint is ssl, with dir's cert.pem and key.pem.
export function serverConfig({ dir, port, pushPort, helloPort, adminPort, tls = false, websocket = '' }) {
  const adapter = (name, p, protocol) => `
      <TestApp.WebsocketServer.${name}Adapter>
        allow
        endpoint=${tls && protocol === 'not_tars' ? 'ssl' : 'tcp'} -h 127.0.0.1 -p ${p} -t 60000
        handlegroup=TestApp.WebsocketServer.${name}Adapter
        maxconns=1000
        protocol=${protocol}
        queuecap=10000
        queuetimeout=60000
        servant=TestApp.WebsocketServer.${name}
        threads=1
      </TestApp.WebsocketServer.${name}Adapter>`;
  return `<tars>
  <application>
    enableset=n
    setdivision=NULL
    <client>
      sync-invoke-timeout=3000
      async-invoke-timeout=5000
      modulename=TestApp.WebsocketServer
    </client>
    <server>
      app=TestApp
      server=WebsocketServer
      localip=127.0.0.1
      local=tcp -h 127.0.0.1 -p ${adminPort} -t 10000
      basepath=${dir}/
      datapath=${dir}/data/
      logpath=${dir}/log/
      logLevel=DEBUG
${adapter('obj', port, 'not_tars')}
${adapter('PushObj', pushPort, 'tars')}
${adapter('HelloObj', helloPort, 'tars')}
    </server>
    <websocket>
      hello=TestApp.WebsocketServer.HelloObj@tcp -h 127.0.0.1 -p ${helloPort} -t 3000
      announce=true
${tls ? '      tls-cert=cert.pem\n      tls-key=key.pem' : ''}
${websocket}
    </websocket>
  </application>
</tars>
`;
}

// Server is one run of the binary; restart() starts it again on the same
// ports and data directory.
export class Server {
  // opts: tls (serve https:// and wss:// with a certificate made here),
  // websocket (more lines for the <websocket> section).
  static async start(opts = {}) {
    const dir = await mkdtemp(path.join(tmpdir(), 'wss-e2e-'));
    await mkdir(path.join(dir, 'data'), { recursive: true });
    await mkdir(path.join(dir, 'log'), { recursive: true });
    const s = new Server();
    Object.assign(s, opts);
    s.dir = dir;
    try {
      if (s.tls) s.ca = await makeCert(dir);
      s.bin = await build(dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    s.port = await freePort();
    s.pushPort = await freePort();
    s.helloPort = await freePort();
    s.adminPort = await freePort();
    s.config = path.join(dir, 'server.conf');
    await writeFile(s.config, serverConfig(s));
    s.url = `${s.tls ? 'https' : 'http'}://127.0.0.1:${s.port}`;
    try {
      await s.restart();
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  async restart() {
    this.output = '';
    this.proc = spawn(this.bin, [`--config=${this.config}`], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk) => { this.output = (this.output + chunk).slice(-20_000); };
    this.proc.stdout.on('data', collect);
    this.proc.stderr.on('data', collect);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    await this.ready();
  }

  // ready waits until the health probe answers, failing early if the process dies.
  async ready(timeoutMs = 20_000) {
    let died = null;
    this.exited.then((how) => { died = how; });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (died) throw new Error(`server exited (${JSON.stringify(died)}) before it was ready:\n${this.output}`);
      try {
        const res = await this.fetch('/monitor/monitor');
        if (res.ok) return;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`server not ready on ${this.url} after ${timeoutMs} ms:\n${this.output}`);
  }

  // kill ends the process with SIGKILL and waits for it to be gone.
  async kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (this.proc) await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  // fetch GETs a path on the HTTP listener: { ok, status, body }. Over TLS it
  // trusts the server's own certificate.
  async fetch(pathAndQuery) {
    if (!this.tls) {
      const res = await fetch(this.url + pathAndQuery);
      return { ok: res.ok, status: res.status, body: await res.text() };
    }
    return new Promise((resolve, reject) => {
      const req = https.get(this.url + pathAndQuery, { ca: this.ca, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => { body += chunk; });
        res.on('end', () => resolve({ ok: res.statusCode < 300, status: res.statusCode, body }));
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${pathAndQuery}: no answer in 10 s`)));
      req.on('error', reject);
    });
  }

  // get fetches a path on the HTTP listener and returns the body text.
  async get(pathAndQuery) {
    const res = await this.fetch(pathAndQuery);
    if (!res.ok) throw new Error(`GET ${pathAndQuery}: ${res.status} ${res.body}`);
    return res.body;
  }
}

export function launchBrowser() {
  // The default profile is a fresh, empty temporary directory per launch.
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

// Watch records what a page did that a test should never see.
export function watch(page) {
  const w = { dialogs: [], errors: [] };
  page.on('dialog', (d) => { w.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (err) => w.errors.push(String(err)));
  return w;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
