'use strict';
// Starts the real WebsocketServer binary with a tarsnode-style config on free
// loopback ports, waits until every adapter answers, and stops it again.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');

const APP = 'TestApp';
const SERVER = 'WebsocketServer';
const PUSH_OBJ = `${APP}.${SERVER}.PushObj`;
const HELLO_OBJ = `${APP}.${SERVER}.HelloObj`;
const READY_WAIT_MS = 15000;

function binary() {
  const bin = process.env.WEBSOCKETSERVER_BIN;
  if (!bin) {
    throw new Error('WEBSOCKETSERVER_BIN is not set: run the suite through interop/js/run, which builds the server');
  }
  if (!fs.existsSync(bin)) {
    throw new Error(`WEBSOCKETSERVER_BIN=${bin}: no such file`);
  }
  return bin;
}

// freePort asks the kernel for an unused loopback port.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function adapter(name, servant, protocol, port) {
  return `      <${name}>
        allow
        endpoint=tcp -h 127.0.0.1 -p ${port} -t 60000
        handlegroup=${name}
        maxconns=1000
        protocol=${protocol}
        queuecap=10000
        queuetimeout=60000
        servant=${servant}
        threads=2
      </${name}>
`;
}

// configText renders the config file tarsnode would write for this server,
// without node, locator and the other framework services (none run here).
function configText(dir, ports, websocket) {
  return `<tars>
  <application>
    enableset=n
    setdivision=NULL
    <client>
      sync-invoke-timeout=3000
      async-invoke-timeout=5000
      refresh-endpoint-interval=60000
      report-interval=60000
      modulename=${APP}.${SERVER}
    </client>
    <server>
      app=${APP}
      server=${SERVER}
      localip=127.0.0.1
      local=tcp -h 127.0.0.1 -p ${ports.admin} -t 10000
      basepath=${dir}/bin/
      datapath=${dir}/data/
      logpath=${dir}/log/
      logsize=10M
      lognum=10
      logLevel=DEBUG
      deactivating-timeout=3000
      activating-timeout=60000
${adapter(`${APP}.${SERVER}.objAdapter`, `${APP}.${SERVER}.obj`, 'not_tars', ports.http)}\
${adapter(`${PUSH_OBJ}Adapter`, PUSH_OBJ, 'tars', ports.push)}\
${adapter(`${HELLO_OBJ}Adapter`, HELLO_OBJ, 'tars', ports.hello)}\
    </server>
${websocket ? `    <websocket>\n${websocket}\n    </websocket>\n` : ''}\
  </application>
</tars>
`;
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer`)));
    req.on('error', reject);
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// start launches the server. opts.websocket holds extra key=value lines for
// the /tars/application/websocket section.
async function start(opts = {}) {
  const bin = binary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsserver-js-'));
  for (const d of ['bin', 'data', 'log']) fs.mkdirSync(path.join(dir, d));
  const ports = {
    http: await freePort(),
    push: await freePort(),
    hello: await freePort(),
    admin: await freePort(),
  };
  const conf = path.join(dir, `${APP}.${SERVER}.config.conf`);
  fs.writeFileSync(conf, configText(dir, ports, opts.websocket || ''));

  const proc = spawn(bin, [`--config=${conf}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (c) => { output += c; });
  proc.stderr.on('data', (c) => { output += c; });
  let exited = null;
  const exit = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    // The binary could not be started at all (spawn reports no exit then).
    proc.once('error', (err) => {
      exited = exited || { code: null, signal: null, error: `${bin}: ${err.message}` };
      resolve(exited);
    });
  });

  const server = {
    dir, ports, conf, proc,
    output: () => output,
    pushProxy: `${PUSH_OBJ}@tcp -h 127.0.0.1 -p ${ports.push} -t 60000`,
    helloProxy: `${HELLO_OBJ}@tcp -h 127.0.0.1 -p ${ports.hello} -t 60000`,
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };

  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    if (exited) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`server exited early (${JSON.stringify(exited)}); config:\n${configText(dir, ports, opts.websocket || '')}\noutput:\n${output}`);
    }
    let ok = false;
    try {
      const r = await get(ports.http, '/monitor/monitor');
      ok = r.status === 200 && await canConnect(ports.push) && await canConnect(ports.hello);
    } catch { /* not listening yet */ }
    if (ok) return server;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`server not ready on ports ${JSON.stringify(ports)} after ${READY_WAIT_MS} ms; output:\n${output}`);
    }
    await sleep(50);
  }
}

module.exports = { start, get, freePort, PUSH_OBJ, HELLO_OBJ };
